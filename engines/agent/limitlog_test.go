package agent

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"aiosfs/engines/agent/view"
	"aiosfs/fs"
)

// TestLimitLog: agents/N/limits says who changed which limit, from what
// to what: a ctl write by its uid, an engine by name with its reason. A
// refused change is not in it. The history is saved with the record, so
// a new engine on the same state (after a crash) shows it, and it keeps
// only the last LimitLogLen changes.
func TestLimitLog(t *testing.T) {
	state := t.TempDir()
	r1 := newRig(t, state)
	a := r1.spawn("lim memmax=64M -- sleep 60")
	if err := r1.ctl(a.ID, "memmax 80M"); err != nil {
		t.Fatal(err)
	}
	if err := r1.e.Apply(a.ID, view.CPUMax(0.5), "sched: predicted-rise"); err != nil {
		t.Fatal(err)
	}
	if err := r1.ctl(a.ID, "memmax 12Q"); err == nil {
		t.Fatal("memmax 12Q accepted")
	}
	read := func(e *Engine) string {
		t.Helper()
		ns := &fs.NS{}
		root := ns.StaticDir("/", 0555, fs.Owner{}, e.Nodes(ns)...)
		b, err := fs.ReadFile(context.Background(), root, "agents/"+strconv.Itoa(a.ID)+"/limits", fs.Caller{Uid: 1000, Gid: 1000})
		if err != nil {
			t.Fatalf("read limits: %v", err)
		}
		return string(b)
	}
	got := read(r1.e)
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "time=") || !strings.HasSuffix(lines[0], " limit=memmax old=67108864 new=83886080 by=uid:0") ||
		!strings.HasSuffix(lines[1], " limit=cpumax old=max new=0.5 by=sched why=predicted-rise") {
		t.Fatalf("agents/N/limits:\n%s", got)
	}

	// A crash: the next engine on the same state has the history.
	r1.e.store.Close()
	r1.e = &Engine{cfg: r1.e.cfg, store: mustStore(t, t.TempDir()), agents: map[int]*Agent{}, busy: map[int]bool{}}
	r2 := newRig(t, state)
	if after := read(r2.e); after != got {
		t.Fatalf("after a restore, agents/N/limits:\n%s\nwant:\n%s", after, got)
	}
	// Bounded: the last LimitLogLen changes.
	for i := 0; i < LimitLogLen+5; i++ {
		if err := r2.ctl(a.ID, "pidsmax "+strconv.Itoa(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	last := read(r2.e)
	lines = strings.Split(strings.TrimSuffix(last, "\n"), "\n")
	if len(lines) != LimitLogLen || !strings.HasSuffix(lines[len(lines)-1], " limit=pidsmax old="+strconv.Itoa(100+LimitLogLen+3)+" new="+strconv.Itoa(100+LimitLogLen+4)+" by=uid:0") {
		t.Fatalf("after %d more changes, %d lines, the last %q", LimitLogLen+5, len(lines), lines[len(lines)-1])
	}
	r2.ctl(a.ID, "kill")
	waitState(t, r2.e, a.ID, StateExited)
}
