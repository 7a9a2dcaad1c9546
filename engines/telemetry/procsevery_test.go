package telemetry

import (
	"context"
	"io/fs"
	"slices"
	"testing"
	"time"

	"aiosfs/hal/cgroup"
	"aiosfs/hal/procconn"
)

// With a proc connector watched, a busy agent's cgroup.procs is read every
// ProcsEvery-th full sample, and at once after a fork, exit or lost-events
// report, a Wake, or when its counters fail; without a connector, every
// full sample reads it.
func TestProcsEvery(t *testing.T) {
	g := &counterGroup{fakeGroup: fakeGroup{pids: []int{10}, stats: cgroup.Stats{CPUUsageNs: 5e9}}}
	fp := newFakeProc()
	fp.set(process(10, 5, 0, 0))
	fp.set(process(11, 0, 0, 0))
	tun := DefaultTuning
	tun.ProcsEvery = 3
	s := New(Config{Proc: fp, Tuning: &tun, TCPBytes: noSockets}, func() []Target { return []Target{{ID: 1, Group: g}} })
	i := 0
	pass := func() {
		t.Helper()
		i++
		g.setStats(func(st *cgroup.Stats) { st.CPUUsageNs += 5e8 }) // busy: never held
		s.Tick(at(i))
	}
	want := func(reads int32, pids ...int) {
		t.Helper()
		if n := g.procs.Load(); n != reads {
			t.Fatalf("pass %d: %d cgroup.procs reads, want %d", i, n, reads)
		}
		if got, _, _ := s.Procs(1); !slices.Equal(got, pids) {
			t.Fatalf("pass %d: pids %v, want %v", i, got, pids)
		}
		if l, _ := s.Latest(1); l.Procs != len(pids) {
			t.Fatalf("pass %d: sample procs %d, want %d", i, l.Procs, len(pids))
		}
	}
	// No connector: every pass reads it.
	pass()
	pass()
	want(2, 10)

	conn := newFakeConn()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.WatchProc(ctx, conn); close(done) }()
	defer func() { cancel(); <-done }()
	for s.watching.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	pass() // the last read's pids, once
	want(2, 10)
	pass() // twice
	want(2, 10)
	pass() // the third full sample since the read: read
	want(3, 10)
	pass()
	want(3, 10)

	// A fork of the agent's process: read at the next pass, the child
	// in the sample.
	g.setPids(10, 11)
	conn.batches <- []procconn.Event{{Kind: procconn.Fork, Pid: 11, Tgid: 11, ParentPid: 10, ParentTgid: 10}}
	waitWoken(t, s, 1)
	pass()
	want(4, 10, 11)
	pass()
	want(4, 10, 11)

	// A process moved in by someone else, without an event: within
	// ProcsEvery passes.
	g.setPids(10, 11, 12)
	fp.set(process(12, 0, 0, 0))
	pass()
	want(4, 10, 11)
	pass()
	want(5, 10, 11, 12)

	// An exit: at once.
	g.setPids(10, 12)
	conn.batches <- []procconn.Event{{Kind: procconn.Exit, Pid: 11, Tgid: 11}}
	waitWoken(t, s, 1)
	pass()
	want(6, 10, 12)

	// Lost events: at once, though no agent was woken.
	g.setPids(10)
	conn.batches <- []procconn.Event{{Kind: procconn.Lost}}
	for s.lost.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	pass()
	want(7, 10)

	// Wake (merge, split).
	pass()
	want(7, 10)
	s.Wake(1)
	pass()
	want(8, 10)

	// The group goes: its counters fail, cgroup.procs is read and says
	// so: no sample.
	pass()
	want(8, 10)
	g.mu.Lock()
	g.err = fs.ErrNotExist
	g.mu.Unlock()
	pass()
	if n := g.procs.Load(); n != 9 {
		t.Fatalf("gone group: %d cgroup.procs reads, want 9", n)
	}
	if l, _ := s.Latest(1); !l.Time.Equal(at(i - 1)) {
		t.Fatalf("gone group sampled at %v", l.Time)
	}

	// The connector stops: every pass reads it again.
	g.mu.Lock()
	g.err = nil
	g.mu.Unlock()
	cancel()
	<-done
	pass()
	pass()
	want(11, 10)
}

// waitWoken waits until WatchProc has handled the event that wakes id.
func waitWoken(t *testing.T, s *Sampler, id int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if a := s.lookup(id); a != nil && a.wake.Load() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the event did not wake the agent")
		}
		time.Sleep(time.Millisecond)
	}
}
