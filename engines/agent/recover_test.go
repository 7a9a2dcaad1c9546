package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"aiosfs/engines/bus"
	"aiosfs/fs"
	"aiosfs/hal/proc"
)

// The review's "lost store" (defect 4): a daemon is killed with agents
// running and its state.db comes back empty. The new daemon says the
// store was damaged, takes every live agent back under its own number
// with its processes, state and limits, removes the cgroup of the agent
// that ended meanwhile, and a new spawn gets a fresh number instead of
// EEXIST on a live agent-N cgroup.
func TestRecoverOrphansAfterLostStore(t *testing.T) {
	state := t.TempDir()
	r1 := newRig(t, state)
	web := r1.spawn("web memmax=48M cpumax=0.5 cpuperiod=20ms weight=200 cpus=0 -- sleep 60")
	cold := r1.spawn("cold memhigh=32M -- sleep 60")
	if err := r1.ctl(cold.ID, "freeze"); err != nil {
		t.Fatal(err)
	}
	// A tree started outside the daemon, then adopted.
	outside := exec.Command("sh", "-c", "sleep 60 & wait")
	if err := outside.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outside.Process.Kill(); outside.Wait() }) // our own child
	pfs, _ := proc.NewFS("/proc")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if kids, _ := pfs.Descendants(outside.Process.Pid); len(kids) > 0 {
			break
		}
	}
	adopted, err := r1.e.Adopt(fs.RootCaller, []string{strconv.Itoa(outside.Process.Pid), "outsider"})
	if err != nil {
		t.Fatal(err)
	}
	gone := r1.spawn("gone -- sleep 0.2")

	// The crash: the engine vanishes without Shutdown, then state.db is
	// emptied (as a full disk or an operator's mistake leaves it).
	r1.e.store.Close()
	r1.e = &Engine{cfg: r1.e.cfg, store: mustStore(t, t.TempDir()), agents: map[int]*Agent{}, busy: map[int]bool{}}
	time.Sleep(500 * time.Millisecond) // gone ends while nobody watches
	if err := os.Truncate(filepath.Join(state, storeFile), 0); err != nil {
		t.Fatal(err)
	}

	r2 := newRig(t, state) // New + Restore: nothing to restore
	ids := []int{web.ID, cold.ID, adopted.ID}
	t.Cleanup(func() {
		// The re-adopted agents are not spawned in r2's life, so its
		// Shutdown would hand them back rather than end them: end them.
		for _, id := range ids {
			if a, err := r2.e.Get(id); err == nil && a.Alive() {
				r2.ctl(id, "kill")
				waitState(t, r2.e, id, StateExited)
			}
		}
	})
	if msg := r2.e.StoreRecovered(); !strings.Contains(msg, "empty") || len(damagedFiles(t, state)) != 1 {
		t.Fatalf("an emptied store was not reported: %q", msg)
	}
	if n := len(r2.e.IDs()); n != 0 {
		t.Fatalf("%d agents before RecoverOrphans", n)
	}
	events := r2.bus.Subscribe(func(ev bus.Event) bool { return ev.Kind == "recover" }, 16)
	defer events.Close()

	got, removed, err := r2.e.RecoverOrphans()
	if err != nil {
		t.Fatalf("RecoverOrphans: %v", err)
	}
	want := []string{groupName(web.ID), groupName(cold.ID), groupName(adopted.ID)}
	if !slices.Equal(got, want) || !slices.Equal(removed, []string{groupName(gone.ID)}) {
		t.Fatalf("adopted %v removed %v; want %v and [%s]", got, removed, want, groupName(gone.ID))
	}

	check := func(id int, state string, leader int) Agent {
		t.Helper()
		a, pids, err := r2.e.Snapshot(id)
		if err != nil {
			t.Fatalf("agent %d not back: %v", id, err)
		}
		if a.State != state || a.Pid != leader || !slices.Contains(pids, leader) || a.Spawned || a.Uid != 0 {
			t.Errorf("agent %d: state %s pid %d pids %v spawned %v uid %d; want %s with leader %d", id, a.State, a.Pid, pids, a.Spawned, a.Uid, state, leader)
		}
		return a
	}
	w := check(web.ID, StateRunning, web.Pid)
	wantLim := Limits{Weight: 200, CPUMax: 0.5, CPUPeriod: 20 * time.Millisecond, Cpus: "0", MemHigh: -1, MemMax: 48 << 20}
	if parentCpus(t, w) == "0" {
		wantLim.Cpus = "" // a one-CPU host: "0" is the parent's
	}
	if w.Limits != wantLim {
		t.Errorf("web limits %+v, want %+v", w.Limits, wantLim)
	}
	if strings.Join(w.Cmd, " ") != "sleep 60" {
		t.Errorf("web cmd %q", w.Cmd)
	}
	c := check(cold.ID, StateFrozen, cold.Pid)
	if c.Limits.MemHigh != 32<<20 || c.Limits.MemMax != -1 || c.Limits.CPUMax != 0 || c.Limits.Weight != 0 {
		t.Errorf("cold limits %+v", c.Limits)
	}
	o := check(adopted.ID, StateRunning, outside.Process.Pid)
	if strings.Join(o.Cmd, " ") != "sh -c sleep 60 & wait" || o.Name != "sh" {
		t.Errorf("outsider: name %q cmd %q", o.Name, o.Cmd)
	}
	for range want {
		select {
		case ev := <-events.C():
			if !slices.Contains(ids, ev.Agent) {
				t.Errorf("recover event for agent %d", ev.Agent)
			}
		case <-time.After(time.Second):
			t.Fatal("missing recover event")
		}
	}

	// The records are saved: a restart now restores them as usual.
	recs, err := r2.e.store.All()
	if err != nil || len(recs) != 3 {
		t.Fatalf("saved records %v, %v", recs, err)
	}
	// Verbs work on a recovered agent.
	if err := r2.ctl(web.ID, "memmax 80M"); err != nil {
		t.Fatal(err)
	}
	if v1(r2) {
		if got := kfile(t, mustGet(t, r2.e, web.ID), "memory", "memory.limit_in_bytes"); got != "83886080" {
			t.Errorf("memmax on a recovered agent: %s", got)
		}
	}

	// A new spawn gets a number past every one in use: no EEXIST.
	fresh := r2.spawn("fresh -- sleep 60")
	ids = append(ids, fresh.ID)
	if fresh.ID <= gone.ID {
		t.Errorf("new agent got number %d, not above %d", fresh.ID, gone.ID)
	}
	// Nothing left to recover.
	if got, removed, err := r2.e.RecoverOrphans(); len(got)+len(removed) != 0 || err != nil {
		t.Errorf("second RecoverOrphans: %v %v %v", got, removed, err)
	}
}

// Numbers of agents that ended before the store was lost survive in
// STATE/logs/agent-N.log; they are not handed out again either.
func TestRecoverOrphansKeepsLogNumbers(t *testing.T) {
	state := t.TempDir()
	if err := os.MkdirAll(filepath.Join(state, "logs"), 0755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(state, "logs", "agent-7.log"), []byte("old output\n"), 0644)
	os.WriteFile(filepath.Join(state, "logs", "agent-x.log"), nil, 0644)
	r := newRig(t, state)
	if _, _, err := r.e.RecoverOrphans(); err != nil {
		t.Fatal(err)
	}
	a := r.spawn("after -- sleep 60")
	if a.ID != 8 {
		t.Errorf("new agent is %d, want 8 (agent-7.log exists)", a.ID)
	}
	r.ctl(a.ID, "kill")
	waitState(t, r.e, a.ID, StateExited)
}

func TestAgentNumber(t *testing.T) {
	for name, want := range map[string]int{"agent-7": 7, "user-1000/agent-12": 12, "agent-0": 0, "agent-07": 0, "agent-": 0, "agent7": 0, "web": 0, "agent-x": 0, "agent--1": 0} {
		if got, ok := agentNumber(name); got != want || ok != (want > 0) {
			t.Errorf("agentNumber(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
}

func mustGet(t *testing.T, e *Engine, id int) *Agent {
	t.Helper()
	a, err := e.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// parentCpus is the cpuset.cpus of the prefix above agent a.
func parentCpus(t *testing.T, a Agent) string {
	d, ok := a.Paths()["cpuset"]
	if !ok {
		return ""
	}
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(d), "cpuset.cpus"))
	return strings.TrimSpace(string(b))
}

// A daemon killed in the middle of a restart (the healing engine's
// restarts make it likely): rerun has made the cgroup and launched the
// process, but the record on disk still says exited. The next start
// takes the agent back as running under its own number, with the new
// process as its pid. A second agent whose record says exited but whose
// cgroup is still there, empty (a removal that did not happen), has that
// cgroup removed: no record would ever claim it otherwise.
func TestRestoreReclaimsRestartInFlight(t *testing.T) {
	state := t.TempDir()
	r1 := newRig(t, state)
	mid := r1.spawn("mid -- sleep 60")
	empty := r1.spawn("empty -- sleep 60")
	t.Cleanup(func() { syscall.Kill(mid.Pid, syscall.SIGKILL) }) // our own child, whatever happens

	// What the disk holds when the daemon dies between rerun's launch
	// and its save: both records say exited.
	for _, a := range []*Agent{mid, empty} {
		rec, err := r1.e.Record(a.ID)
		if err != nil {
			t.Fatal(err)
		}
		rec.State, rec.Exit = StateExited, "exit status 1"
		if err := r1.e.store.Put(&rec); err != nil {
			t.Fatal(err)
		}
	}
	// empty's processes end; its cgroup stays (nobody reaps it).
	g, err := r1.cg.Load(empty.Group)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(empty.Pid, syscall.SIGKILL)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if pids, _ := g.Procs(); len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed process stayed in its cgroup")
		}
	}
	// The crash: no Shutdown.
	r1.e.store.Close()
	r1.e = &Engine{cfg: r1.e.cfg, store: mustStore(t, t.TempDir()), agents: map[int]*Agent{}, busy: map[int]bool{}}

	r2 := newRig(t, state)
	t.Cleanup(func() {
		if a, err := r2.e.Get(mid.ID); err == nil && a.Alive() {
			r2.ctl(mid.ID, "kill")
			waitState(t, r2.e, mid.ID, StateExited)
		}
	})
	got, _, err := r2.e.Snapshot(mid.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateRunning || got.Pid != mid.Pid || got.Exit != "" {
		t.Fatalf("agent %d after the restart: state=%s pid=%d exit=%q; want running, pid %d, no exit", mid.ID, got.State, got.Pid, got.Exit, mid.Pid)
	}
	if _, err := r2.cg.Load(empty.Group); err == nil {
		t.Fatalf("the empty cgroup %s of exited agent %d is still there", empty.Group, empty.ID)
	}
	if a, _, _ := r2.e.Snapshot(empty.ID); a.State != StateExited {
		t.Fatalf("agent %d is %s, want exited", empty.ID, a.State)
	}
	// It is managed again: a verb reaches its process.
	if err := r2.ctl(mid.ID, "kill"); err != nil {
		t.Fatal(err)
	}
	waitState(t, r2.e, mid.ID, StateExited)
}
