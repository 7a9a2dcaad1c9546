package sched

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"aiosfs/engines/agent"
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

// The workloads, in perl for sub-second timing without forking: a CPU
// load busy for one second of wall-clock time, then idle for one (its
// demand is a full core half the time whatever quota it gets), and a
// memory load that grows by 4 MiB every half second to 160 MiB, then
// holds.
const (
	periodicCPU = `use Time::HiRes qw(time sleep); while (1) { my $e = time + 1.0; 1 while time < $e; sleep 1.0 }`
	growingMem  = `my @a; for (1..40) { push @a, "x" x (4 << 20); select(undef, undef, undef, 0.5) } sleep 60`
)

type figures struct {
	throttled, oomKills uint64
	peakMem             uint64
	cpuSum, memSum, n   float64 // sums of the limits in force, per poll
	alive               bool
	exit                string
}

// TestLiveEnforcement spawns real agents in real cgroups: a periodic CPU
// load and a growing memory load, each twice, all starting with the same
// tight user limits (cpumax 0.2, memmax 64M). One of each pair is left
// alone (`sched manual`), the other is under the scheduler with
// `enforce on`. The kernel's own counters must show the scheduled ones
// throttled less and never OOM-killed, with a memory limit that averaged
// less than a static limit sized for the peak.
func TestLiveEnforcement(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: agents live in real cgroups")
	}
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("needs perl for the workloads")
	}
	cg, err := cgroup.New(cgroup.Config{Prefix: fmt.Sprintf("aiosfs-schedtest-%d", os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	pfs, err := proc.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	b := bus.New(8192)
	var ag *agent.Engine
	tel := telemetry.New(telemetry.Config{Proc: pfs, Interval: 200 * time.Millisecond, Bus: b}, func() []telemetry.Target { return ag.Targets() })
	ag, err = agent.New(agent.Config{StateDir: t.TempDir(), Cgroups: cg, Proc: pfs, Bus: b, Telemetry: tel, Grace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := ag.Restore(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ag.Shutdown() })
	e := New(Config{Agents: ag, Tel: tel, Bus: b, NCPU: pfs.NumCPU()})
	ns := &fs.NS{}
	// Wired as the daemon wires every device.
	ag.Extend(e.AgentTab(ns), e.AgentVerbs)
	root := ns.StaticDir("/", 0555, fs.Owner{}, append(ag.Nodes(ns), e.Nodes(ns)...)...)
	tel.OnTick(func(now time.Time, latest map[int]telemetry.Sample) {
		ag.Reap(nil)
		e.Tick(now, latest)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tel.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	run := func(line string) {
		t.Helper()
		if err := e.Verbs().Exec(context.Background(), fs.RootCaller, line); err != nil {
			t.Fatalf("sched/ctl %q: %v", line, err)
		}
	}
	spawnAgent := func(name, limit, script string, manual bool) int {
		t.Helper()
		a, err := ag.Spawn(fs.RootCaller, []string{name, limit, "--", "perl", "-e", script})
		if err != nil {
			t.Fatal(err)
		}
		if manual {
			if err := ag.Table(a.ID).Exec(context.Background(), fs.RootCaller, "sched manual"); err != nil {
				t.Fatal(err)
			}
		}
		return a.ID
	}
	run("interval 1s")
	run("slice 50ms")
	// The whole test is shorter than the default warm-up (256 samples at
	// 200 ms), which would hold the allocations at the peak: off, so the
	// forecast sets them.
	run("warmup 0")
	cpuStatic := spawnAgent("cpu-static", "cpumax=0.2", periodicCPU, true)
	cpuPred := spawnAgent("cpu-pred", "cpumax=0.2", periodicCPU, false)
	memStatic := spawnAgent("mem-static", "memmax=64M", growingMem, true)
	memPred := spawnAgent("mem-pred", "memmax=64M", growingMem, false)
	run("enforce on")

	fig := map[int]*figures{}
	ids := []int{cpuStatic, cpuPred, memStatic, memPred}
	for _, id := range ids {
		fig[id] = &figures{}
	}
	// 32 s: the memory load reaches its peak at 20 s and holds; the CPU
	// load goes through 16 busy seconds.
	for end := time.Now().Add(32 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		for _, id := range ids {
			f := fig[id]
			a, _, err := ag.Snapshot(id)
			if err != nil {
				t.Fatal(err)
			}
			f.alive, f.exit = a.Alive(), a.Exit
			g, err := ag.Group(id)
			if err != nil {
				continue // ended (the static memory load, OOM-killed)
			}
			st, err := g.Stats()
			if err != nil {
				continue
			}
			f.throttled, f.oomKills = st.NrThrottled, max(f.oomKills, st.OOMKills)
			f.peakMem = max(f.peakMem, st.MemCurrent)
			f.cpuSum += a.Limits.CPUMax
			f.memSum += float64(a.Limits.MemMax)
			f.n++
		}
	}
	for _, id := range ids {
		f := fig[id]
		a, _, _ := ag.Snapshot(id)
		t.Logf("agent %d %-10s throttled=%d oom_kills=%d peak_mem=%d mean_cpumax=%.3f mean_memmax=%.0f alive=%v exit=%q",
			id, a.Name, f.throttled, f.oomKills, f.peakMem, f.cpuSum/f.n, f.memSum/f.n, f.alive, f.exit)
	}
	for _, id := range []int{cpuPred, memPred} {
		for _, file := range []func(int) ([]byte, error){e.renderAlloc, e.renderPattern} {
			out, _ := file(id)
			t.Logf("agent %d:\n%s", id, out)
		}
	}
	t.Logf("sched/status:\n%s", e.renderStatus())

	// CPU: the scheduler raised the quota and the kernel throttled the
	// scheduled load less than the one left at its static limit. (The
	// scheduled one runs on a 50ms slice, twice the static one's periods
	// a second, so counting periods is conservative.)
	if fig[cpuPred].throttled >= fig[cpuStatic].throttled {
		t.Errorf("throttled periods: scheduled %d, static %d; want fewer", fig[cpuPred].throttled, fig[cpuStatic].throttled)
	}
	// The time slice: every scheduled agent's CFS period is the slice
	// (a fifth of it for a sporadic load) in the kernel's own file; the
	// manual ones keep the kernel's 100ms.
	for _, id := range ids {
		a, _, _ := ag.Snapshot(id)
		g, err := ag.Group(id)
		if err != nil || !a.Alive() {
			continue
		}
		got := cpuPeriod(t, g)
		switch manual := id == cpuStatic || id == memStatic; {
		case manual && got != 100*time.Millisecond:
			t.Errorf("manual agent %d: cfs period %v, want 100ms", id, got)
		case !manual && got != 50*time.Millisecond && got != MinSlice:
			t.Errorf("scheduled agent %d: cfs period %v, want the 50ms slice or a sporadic load's %v", id, got, MinSlice)
		case !manual && got != a.Limits.Period():
			t.Errorf("scheduled agent %d: cfs period %v, record says %v", id, got, a.Limits.Period())
		}
	}
	// Memory: the static 64M limit is hit (the kernel kills the load),
	// the scheduled one never is.
	if fig[memStatic].oomKills == 0 && !strings.Contains(fig[memStatic].exit, "KILL") {
		t.Errorf("static memory load neither OOM-killed nor ended by SIGKILL: the 64M limit was not in force (exit %q)", fig[memStatic].exit)
	}
	if fig[memPred].oomKills != 0 || !fig[memPred].alive {
		t.Errorf("scheduled memory load: oom_kills=%d alive=%v exit=%q", fig[memPred].oomKills, fig[memPred].alive, fig[memPred].exit)
	}
	// ... at less memory on average than a static limit sized for its
	// peak with the same buffer. (The CPU load flips between one core and
	// none every second, as fast as the decisions, and an allocation only
	// falls slowly: its mean quota is about a peak-sized one, and its gain
	// is the throttling above, so no CPU mean is asserted.)
	peakSized := float64(fig[memPred].peakMem) * 1.15
	if mean := fig[memPred].memSum / fig[memPred].n; mean >= peakSized {
		t.Errorf("mean memmax %.0f, static peak-sized limit %.0f: want less", mean, peakSized)
	}
	// Every change the scheduler made is an event with its reason.
	var changes int
	for _, ev := range b.Recent(func(ev bus.Event) bool { return ev.Source == "agent" && strings.HasPrefix(ev.Get("reason"), "sched: ") }) {
		if ev.Agent == cpuStatic || ev.Agent == memStatic {
			t.Errorf("the scheduler changed a manual agent: %s", ev.Line())
		}
		changes++
	}
	if changes == 0 {
		t.Error("no limit change with a reason on the bus")
	}
	t.Logf("%d limit changes with reasons", changes)

	// The files, read through the tree as an adapter would.
	read := func(p string) string {
		t.Helper()
		b, err := fs.ReadFile(context.Background(), root, p, fs.RootCaller)
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		return string(b)
	}
	mp := strconv.Itoa(memPred)
	if got := read("agents/" + mp + "/pattern"); !strings.Contains(got, "resource=mem class=growing ") {
		t.Errorf("pattern of the growing load:\n%s", got)
	}
	if got := read("agents/" + mp + "/predict"); !strings.Contains(got, "resource=mem horizon=1.000 point=") {
		t.Errorf("predict:\n%s", got)
	}
	if got := read("agents/" + mp + "/alloc"); !strings.Contains(got, "limit=memmax value=") {
		t.Errorf("alloc:\n%s", got)
	}
	if got := read("sched/model"); !strings.Contains(got, "agent="+mp+" resource=mem horizon=1.000 forecaster=ensemble") {
		t.Errorf("model lacks the ensemble line")
	}
	if got := read("agents/" + mp + "/ctl"); !strings.Contains(got, "forecaster NAME|auto") {
		t.Errorf("agent ctl help lacks the scheduler's verbs:\n%s", got)
	}
	// Bad per-agent verbs: EINVAL, nothing changes.
	before := read("agents/" + mp + "/pattern")
	for _, line := range []string{"forecaster bogus", "forecaster", "sched sideways", "sched auto manual"} {
		if err := ag.Table(memPred).Exec(context.Background(), fs.RootCaller, line); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%q: %v, want EINVAL", line, err)
		}
	}
	if err := e.Verbs().Exec(context.Background(), fs.RootCaller, "pin 99999 ewma"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("pin of a missing agent: %v, want ENOENT", err)
	}
	if after := read("agents/" + mp + "/pattern"); !strings.Contains(after, "forecaster=auto") || !strings.Contains(before, "forecaster=auto") {
		t.Errorf("a refused verb changed the forecaster:\n%s", after)
	}
	// A good pin shows in pattern and model.
	if err := ag.Table(memPred).Exec(context.Background(), fs.RootCaller, "forecaster holtwinters"); err != nil {
		t.Fatal(err)
	}
	if got := read("agents/" + mp + "/pattern"); !strings.Contains(got, "forecaster=holtwinters") {
		t.Errorf("pin not shown:\n%s", got)
	}
}

// cpuPeriod reads the group's CFS period from the kernel: v1
// cpu.cfs_period_us, or the second field of v2 cpu.max.
func cpuPeriod(t *testing.T, g cgroup.Group) time.Duration {
	t.Helper()
	paths := g.Paths()
	var line string
	if d, ok := paths["cpu"]; ok {
		b, err := os.ReadFile(d + "/cpu.cfs_period_us")
		if err != nil {
			t.Fatal(err)
		}
		line = strings.TrimSpace(string(b))
	} else {
		b, err := os.ReadFile(paths["unified"] + "/cpu.max")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b))
		line = f[len(f)-1]
	}
	us, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("cfs period %q: %v", line, err)
	}
	return time.Duration(us) * time.Microsecond
}
