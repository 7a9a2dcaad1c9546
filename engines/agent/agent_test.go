package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"aiosfs/engines/bus"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
	"aiosfs/hal/spawn"
)

func TestMain(m *testing.M) {
	// The test binary is the agents' shim, as the daemon binary is.
	spawn.MaybeShim()
	os.Exit(m.Run())
}

type rig struct {
	t     testing.TB
	e     *Engine
	cg    *cgroup.Manager
	state string
	bus   *bus.Bus
}

// newRig builds an engine on the real host: real cgroups under this
// process's own cgroup, real /proc, a state directory in TempDir.
func newRig(t testing.TB, state string) *rig {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: agents live in real cgroups")
	}
	if state == "" {
		state = t.TempDir()
	}
	cg, err := cgroup.New(cgroup.Config{Prefix: fmt.Sprintf("aiosfs-test-%d", os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	pfs, err := proc.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	b := bus.New(256)
	var e *Engine
	tel := telemetry.New(telemetry.Config{Proc: pfs, Interval: 50 * time.Millisecond, Bus: b}, func() []telemetry.Target { return e.Targets() })
	e, err = New(Config{StateDir: state, Cgroups: cg, Proc: pfs, Bus: b, Telemetry: tel, Grace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Restore(); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, e: e, cg: cg, state: state, bus: b}
	t.Cleanup(func() {
		if err := e.Shutdown(); err != nil && !strings.Contains(err.Error(), "closed") {
			t.Errorf("shutdown: %v", err)
		}
	})
	return r
}

func (r *rig) ctl(id int, line string) error {
	return r.e.Table(id).Exec(context.Background(), fs.RootCaller, line)
}

func (r *rig) spawn(line string) *Agent {
	r.t.Helper()
	f := strings.Fields(line)
	a, err := r.e.Spawn(fs.RootCaller, f)
	if err != nil {
		r.t.Fatalf("spawn %s: %v", line, err)
	}
	return a
}

// kfile reads a kernel cgroup file of agent a's controller.
func kfile(t *testing.T, a *Agent, ctrl, file string) string {
	t.Helper()
	dir, ok := a.Paths()[ctrl]
	if !ok {
		t.Fatalf("agent %d has no %s cgroup: %v", a.ID, ctrl, a.Paths())
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func procsOf(t *testing.T, a *Agent) []int {
	t.Helper()
	var out []int
	for _, ctrl := range []string{"memory", "cpu", "freezer", "unified"} {
		if dir, ok := a.Paths()[ctrl]; ok {
			b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range strings.Fields(string(b)) {
				n, _ := strconv.Atoi(f)
				out = append(out, n)
			}
			return out
		}
	}
	t.Fatalf("no cgroup with cgroup.procs among %v", a.Paths())
	return nil
}

func waitState(t *testing.T, e *Engine, id int, state string) Agent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.Reap(nil)
		a, _, err := e.Snapshot(id)
		if err != nil {
			t.Fatal(err)
		}
		if a.State == state {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %d is %s (exit %q), want %s", id, a.State, a.Exit, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func v1(r *rig) bool { return r.cg.Version() == "v1" }

func TestSpawnVerbsInKernelFiles(t *testing.T) {
	r := newRig(t, "")
	a := r.spawn("web cpus=0 cpumax=0.5 memmax=64M memhigh=32M weight=200 prio=3 -- sleep 60")
	if got := procsOf(t, a); !slices.Contains(got, a.Pid) {
		t.Fatalf("cgroup.procs %v lacks leader %d", got, a.Pid)
	}
	if v1(r) {
		for file, want := range map[string]string{"cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"} {
			if got := kfile(t, a, "cpu", file); got != want {
				t.Errorf("%s = %s, want %s", file, got, want)
			}
		}
		if got := kfile(t, a, "memory", "memory.limit_in_bytes"); got != "67108864" {
			t.Errorf("memory.limit_in_bytes = %s", got)
		}
		if got := kfile(t, a, "memory", "memory.soft_limit_in_bytes"); got != "33554432" {
			t.Errorf("memory.soft_limit_in_bytes = %s", got)
		}
		if got := kfile(t, a, "cpuset", "cpuset.cpus"); got != "0" {
			t.Errorf("cpuset.cpus = %s", got)
		}
	} else {
		if got := kfile(t, a, "unified", "cpu.max"); got != "50000 100000" {
			t.Errorf("cpu.max = %s", got)
		}
	}
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.Pid))
	if f := strings.Fields(string(stat)); len(f) < 19 || f[18] != "3" {
		t.Errorf("nice of leader = %v, want 3", f[18])
	}

	// Each verb writes the kernel's file.
	for _, step := range []struct{ line, ctrl, file, want string }{
		{"cpumax 0.25", "cpu", "cpu.cfs_quota_us", "25000"},
		// A 20ms time slice keeps the share: 5ms of every 20ms.
		{"cpuperiod 20ms", "cpu", "cpu.cfs_quota_us", "5000"},
		{"cpumax 0.5", "cpu", "cpu.cfs_period_us", "20000"},
		{"cpumax max", "cpu", "cpu.cfs_quota_us", "-1"},
		{"memmax 128M", "memory", "memory.limit_in_bytes", "134217728"},
		{"memhigh 96M", "memory", "memory.soft_limit_in_bytes", "100663296"},
		{"cpus 0-1", "cpuset", "cpuset.cpus", "0-1"},
		{"freeze", "freezer", "freezer.state", "FROZEN"},
		{"thaw", "freezer", "freezer.state", "THAWED"},
	} {
		if err := r.ctl(a.ID, step.line); err != nil {
			t.Fatalf("%s: %v", step.line, err)
		}
		if !v1(r) {
			continue
		}
		if got := kfile(t, a, step.ctrl, step.file); got != step.want {
			t.Errorf("after %q: %s = %s, want %s", step.line, step.file, got, step.want)
		}
	}
	snap, _, _ := r.e.Snapshot(a.ID)
	if snap.Limits.CPUMax != 0 || snap.Limits.CPUPeriod != 20*time.Millisecond || snap.Limits.MemMax != 128<<20 || snap.Limits.Cpus != "0-1" {
		t.Errorf("record limits %+v do not follow the verbs", snap.Limits)
	}
	paths := a.Paths()
	if err := r.ctl(a.ID, "kill"); err != nil {
		t.Fatal(err)
	}
	done := waitState(t, r.e, a.ID, StateExited)
	if done.Exit != "signal KILL" {
		t.Errorf("exit = %q, want signal KILL", done.Exit)
	}
	for ctrl, dir := range paths {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s cgroup %s still there after the agent ended", ctrl, dir)
		}
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	r := newRig(t, "")
	a := r.spawn("calm memmax=64M cpumax=0.05 -- sleep 60")
	before, _, _ := r.e.Snapshot(a.ID)
	for _, tc := range []struct {
		line  string
		errno syscall.Errno
	}{
		{"bogus", syscall.EINVAL},
		{"memmax", syscall.EINVAL},
		{"memmax 1G 2G", syscall.EINVAL},
		{"memmax 12Q", syscall.EINVAL},
		{"memmax -5", syscall.EINVAL},
		{"cpus 0-99", syscall.EINVAL},
		{"weight 0", syscall.EINVAL},
		{"cpuperiod 2s", syscall.EINVAL},
		{"cpuperiod 0.5ms", syscall.EINVAL},
		{"cpuperiod soon", syscall.EINVAL},
		{"cpuperiod 10ms", syscall.EINVAL}, // 0.05 cores is 0.5ms of 10ms: under the kernel's 1ms
		{"cpumax 0.001", syscall.EINVAL},
		{"kill SIGNOPE", syscall.EINVAL},
		{"merge 99999", syscall.ENOENT},
		{"split 1", syscall.ENOENT},
		{"exec -- true", syscall.EBUSY},
		{"remove", syscall.EBUSY},
	} {
		err := r.ctl(a.ID, tc.line)
		if fs.Errno(err) != tc.errno {
			t.Errorf("%q: %v (errno %d), want %v", tc.line, err, fs.Errno(err), tc.errno)
		}
	}
	after, _, _ := r.e.Snapshot(a.ID)
	if after.Limits != before.Limits || after.State != StateRunning {
		t.Errorf("bad input changed the agent: %+v -> %+v", before.Limits, after.Limits)
	}
	if v1(r) {
		if got := kfile(t, a, "memory", "memory.limit_in_bytes"); got != "67108864" {
			t.Errorf("memory.limit_in_bytes = %s after refused writes", got)
		}
	}
	ids := len(r.e.IDs())
	for _, line := range []string{"x", "x -- ", "x memmax=lots -- sleep 1", "x colour=red -- sleep 1", "x cpumax=0.05 cpuperiod=10ms -- sleep 1", "x -- /nonexistent/prog", "a/b -- sleep 1"} {
		if _, err := r.e.Spawn(fs.RootCaller, strings.Fields(line)); err == nil {
			t.Errorf("spawn %q accepted", line)
		}
	}
	if _, err := r.e.Adopt(fs.RootCaller, []string{"999999"}); fs.Errno(err) != syscall.ENOENT {
		t.Errorf("adopt of a missing pid: %v", err)
	}
	if n := len(r.e.IDs()); n != ids {
		t.Errorf("refused spawns left %d agents behind", n-ids)
	}
	if _, err := r.e.Get(424242); fs.Errno(err) != syscall.ENOENT {
		t.Errorf("missing agent: %v", err)
	}
}

func TestAdoptMergeSplit(t *testing.T) {
	r := newRig(t, "")
	// A process tree started outside the daemon: the shell and two sleeps.
	cmd := exec.Command("sh", "-c", "sleep 60 & sleep 60 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var kids []int
	pfs, _ := proc.NewFS("/proc")
	for deadline := time.Now().Add(5 * time.Second); len(kids) < 2 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		kids, _ = pfs.Descendants(cmd.Process.Pid)
	}
	a, err := r.e.Adopt(fs.RootCaller, []string{strconv.Itoa(cmd.Process.Pid), "tree"})
	if err != nil {
		t.Fatal(err)
	}
	got := procsOf(t, a)
	for _, p := range append([]int{cmd.Process.Pid}, kids...) {
		if !slices.Contains(got, p) {
			t.Fatalf("adopted cgroup.procs %v lacks %d", got, p)
		}
	}
	if _, err := r.e.Adopt(fs.RootCaller, []string{strconv.Itoa(cmd.Process.Pid)}); fs.Errno(err) != syscall.EBUSY {
		t.Fatalf("adopting twice: %v, want EBUSY", err)
	}

	// split one sleep into its own agent, then merge it back.
	if err := r.ctl(a.ID, fmt.Sprintf("split %d name=napper", kids[0])); err != nil {
		t.Fatal(err)
	}
	ids := r.e.IDs()
	n, _ := r.e.Get(ids[len(ids)-1])
	if n.Name != "napper" || !slices.Contains(procsOf(t, n), kids[0]) || slices.Contains(procsOf(t, a), kids[0]) {
		t.Fatalf("split: new agent %q has %v, old has %v", n.Name, procsOf(t, n), procsOf(t, a))
	}
	if err := r.ctl(a.ID, fmt.Sprintf("merge %d", n.ID)); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(procsOf(t, a), kids[0]) {
		t.Fatalf("merge: %d not back in agent %d", kids[0], a.ID)
	}
	m, _, _ := r.e.Snapshot(n.ID)
	if m.State != StateExited || m.Exit != fmt.Sprintf("merged into %d", a.ID) {
		t.Fatalf("merged agent is %s %q", m.State, m.Exit)
	}
	if err := r.ctl(a.ID, "freeze"); err != nil {
		t.Fatal(err)
	}
	if v1(r) && kfile(t, a, "freezer", "freezer.state") != "FROZEN" {
		t.Fatal("not frozen")
	}
	if err := r.ctl(a.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	waitState(t, r.e, a.ID, StateExited)
}

func TestCloneExecRestartAndStatus(t *testing.T) {
	r := newRig(t, "")
	c, err := r.e.Alloc(fs.Caller{Uid: 0})
	if err != nil {
		t.Fatal(err)
	}
	if c.State != StateNew {
		t.Fatalf("clone state %s", c.State)
	}
	if err := r.ctl(c.ID, "exec memmax=32M -- sh -c 'sleep 60'"); err != nil {
		t.Fatal(err)
	}
	a, _ := r.e.Get(c.ID)
	first := a.Pid
	if err := r.ctl(a.ID, "restart"); err != nil {
		t.Fatal(err)
	}
	snap, pids, _ := r.e.Snapshot(a.ID)
	if snap.Pid == first || snap.Restarts != 1 || snap.State != StateRunning || !slices.Contains(pids, snap.Pid) {
		t.Fatalf("after restart: pid %d (was %d) restarts %d state %s pids %v", snap.Pid, first, snap.Restarts, snap.State, pids)
	}
	st := snap.Status(pids)
	for _, want := range []string{"agent id=" + strconv.Itoa(a.ID) + " ", "state=running", "memmax=33554432", "cpuperiod=0.1 ", "restarts=1", `cmd argv="sh -c 'sleep 60'"`, "cgroup controller="} {
		if !strings.Contains(st, want) {
			t.Errorf("status lacks %q:\n%s", want, st)
		}
	}
	if err := r.ctl(a.ID, "clone twin"); err != nil {
		t.Fatal(err)
	}
	ids := r.e.IDs()
	twin, _, _ := r.e.Snapshot(ids[len(ids)-1])
	if twin.Name != "twin" || twin.Limits.MemMax != 32<<20 || strings.Join(twin.Cmd, " ") != "sh -c sleep 60" {
		t.Fatalf("clone: %+v", twin.Record)
	}
}

// TestRestoreAfterCrash: an engine that vanishes without shutting down
// (as when the daemon is killed with SIGKILL) leaves its agents running;
// a new engine on the same state directory takes them back with their
// settings, and records the end of those that exited meanwhile.
func TestRestoreAfterCrash(t *testing.T) {
	state := t.TempDir()
	r1 := newRig(t, state)
	live := r1.spawn("survivor memmax=48M -- sleep 60")
	gone := r1.spawn("shortlived -- sleep 0.2")
	// Simulate the crash: drop the engine without Shutdown.
	r1.e.store.Close()
	r1.e = &Engine{cfg: r1.e.cfg, store: mustStore(t, t.TempDir()), agents: map[int]*Agent{}, busy: map[int]bool{}}
	time.Sleep(500 * time.Millisecond) // shortlived ends while nobody watches

	r2 := newRig(t, state)
	a, pids, err := r2.e.Snapshot(live.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.State != StateRunning || !slices.Contains(pids, live.Pid) || a.Limits.MemMax != 48<<20 || a.Name != "survivor" {
		t.Fatalf("re-adopted: state %s pids %v limits %+v", a.State, pids, a.Limits)
	}
	g, _, _ := r2.e.Snapshot(gone.ID)
	if g.State != StateExited {
		t.Fatalf("agent that ended during the outage is %s", g.State)
	}
	if err := r2.ctl(live.ID, "memmax 80M"); err != nil {
		t.Fatalf("verbs on a re-adopted agent: %v", err)
	}
	// The re-adopted leader is not this engine's child: killing it must
	// still end the agent.
	r2.ctl(live.ID, "kill")
	waitState(t, r2.e, live.ID, StateExited)
}

func mustStore(t *testing.T, dir string) *Store {
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// What kill publishes names the signal the way kill reads it back: STOP,
// not 19 (the agent engine had a table of its own that lacked STOP).
func TestKillPublishesSignalName(t *testing.T) {
	r := newRig(t, "")
	a := r.spawn("sig -- sleep 60")
	sub := r.bus.Subscribe(func(ev bus.Event) bool { return ev.Agent == a.ID && ev.Kind == "kill" }, 16)
	defer sub.Close()
	for _, sig := range []string{"STOP", "CONT", "-9"} {
		if err := r.ctl(a.ID, "kill "+sig); err != nil {
			t.Fatalf("kill %s: %v", sig, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		line, err := sub.Next(ctx)
		cancel()
		want := "signal=" + strings.TrimPrefix(sig, "-")
		if sig == "-9" {
			want = "signal=KILL"
		}
		if err != nil || !strings.Contains(string(line), want+" ") {
			t.Errorf("kill %s published %q (%v), want %s", sig, line, err, want)
		}
	}
}

// An agent that prints without end cannot fill the state directory: past
// MaxLog its output file is cut back, the last LogTail bytes kept aside.
func TestOutputIsBounded(t *testing.T) {
	r := newRig(t, "")
	line := fmt.Sprintf("spawn chatty -- sh -c 'head -c %d /dev/zero; echo; echo last-line; sleep 60'", MaxLog+(4<<20))
	if err := r.e.RootVerbs().Exec(context.Background(), fs.RootCaller, line); err != nil {
		t.Fatal(err)
	}
	ids := r.e.IDs()
	p := r.e.logPath(ids[len(ids)-1])
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.e.Reap(nil)
		if st, err := os.Stat(p + ".old"); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			st, _ := os.Stat(p)
			t.Fatalf("output never trimmed (size %v)", st.Size())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st, _ := os.Stat(p); st.Size() > MaxLog {
		t.Errorf("output file still %d bytes", st.Size())
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0600 {
		t.Errorf("output file mode %v, want 0600", st.Mode().Perm())
	}
	// Nothing printed after the cut is lost: the last line is in the
	// kept tail or in the file (if the cut came before it was printed).
	time.Sleep(100 * time.Millisecond)
	old, _ := os.ReadFile(p + ".old")
	cur, _ := os.ReadFile(p)
	if !bytes.Contains(old, []byte("last-line\n")) && !bytes.Contains(cur, []byte("last-line\n")) {
		t.Errorf("the last line is lost: tail %q, file %q", old[max(0, len(old)-32):], cur[max(0, len(cur)-32):])
	}
}

// The reaper runs while adopt moves processes in: it must not take the
// new agent, whose cgroup is empty for a moment, for one that has ended.
func TestAdoptRacesTheReaper(t *testing.T) {
	r := newRig(t, "")
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				r.e.Reap(nil)
			}
		}
	}()
	defer close(stop)
	for i := 0; i < 20; i++ {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		a, err := r.e.Adopt(fs.RootCaller, []string{strconv.Itoa(cmd.Process.Pid)})
		if err != nil {
			t.Fatal(err)
		}
		if snap, pids, _ := r.e.Snapshot(a.ID); snap.State != StateRunning || len(pids) != 1 {
			t.Fatalf("adopted agent %d is %s with pids %v right after adopt", a.ID, snap.State, pids)
		}
	}
}

// An engine's change (Apply) is lowered to the agent's ceiling; the owner's
// own write above it is refused; root's by hand is not held.
func TestCeilingHoldsForEnginesAndOwners(t *testing.T) {
	r := newRig(t, "")
	a := r.spawn("capped user=nobody -- sleep 60")
	r.e.mu.Lock()
	a.Ceiling = &Ceiling{MemMax: 64 << 20, Pids: -1}
	r.e.mu.Unlock()
	if err := r.e.ApplyText(a.ID, "memmax", "1G", "test"); err != nil {
		t.Fatal(err)
	}
	if got := kfile(t, a, "memory", "memory.limit_in_bytes"); got != "67108864" {
		t.Errorf("Apply memmax 1G over a 64 MiB ceiling: kernel has %s", got)
	}
	if err := r.e.ApplyText(a.ID, "cpumax", "0.5", "test"); err != nil {
		t.Fatal(err)
	}
	if rec, _ := r.e.Record(a.ID); rec.Limits.MemMax != 64<<20 || rec.Limits.CPUMax != 0.5 {
		t.Errorf("limits after Apply: %+v", rec.Limits)
	}
	owner := fs.Caller{Uid: 65534, Gid: 65534}
	if err := r.e.Table(a.ID).Exec(context.Background(), owner, "memmax 128M"); fs.Errno(err) != syscall.EPERM {
		t.Errorf("owner's memmax above the ceiling: %v, want EPERM", err)
	}
	if err := r.e.Table(a.ID).Exec(context.Background(), owner, "memmax 32M"); err != nil {
		t.Errorf("owner's memmax within the ceiling: %v", err)
	}
	if err := r.ctl(a.ID, "memmax 256M"); err != nil {
		t.Errorf("root's memmax: %v", err)
	}
	if got := kfile(t, a, "memory", "memory.limit_in_bytes"); got != "268435456" {
		t.Errorf("root's memmax 256M: kernel has %s", got)
	}
}

// TestListedBeforeLaunch: spawn and clone put agents/N in the table
// before the process starts (the environment is made just before it
// does), so the agent's first instruction can write to its own files
// ($AIOS_HEARTBEAT); a spawn whose launch fails leaves no agent behind.
func TestListedBeforeLaunch(t *testing.T) {
	r := newRig(t, "")
	var mu sync.Mutex
	seen := map[int]error{}
	r.e.ExtendEnv(func(id int) []string {
		_, err := r.e.Get(id)
		mu.Lock()
		seen[id] = err
		mu.Unlock()
		return nil
	})
	a := r.spawn("first -- sleep 600")
	if err := r.ctl(a.ID, "clone"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("the environment was made for %d agents, want 2 (spawn, clone): %v", len(seen), seen)
	}
	for id, err := range seen {
		if err != nil {
			t.Errorf("agent %d was not in the table when its process started: %v", id, err)
		}
	}
	before := r.e.IDs()
	mu.Unlock() // the hook runs again in this spawn
	_, err := r.e.Spawn(fs.RootCaller, strings.Fields("bad -- /nonexistent/program"))
	mu.Lock()
	if err == nil {
		t.Fatal("spawn of a program that does not exist succeeded")
	}
	if after := r.e.IDs(); len(after) != len(before) {
		t.Errorf("a failed spawn left an agent: %v, before %v", after, before)
	}
}
