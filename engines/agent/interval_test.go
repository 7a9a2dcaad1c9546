package agent

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"aiosfs/engines/telemetry"
	"aiosfs/fs"

	"golang.org/x/sys/unix"
)

// status is agents/N/status as a reader sees it.
func (r *rig) status(id int) string {
	r.t.Helper()
	a, pids, err := r.e.Snapshot(id)
	if err != nil {
		r.t.Fatal(err)
	}
	return a.Status(pids)
}

// TestIntervalVerb: `interval DURATION` on agents/N/ctl gives the agent a
// sampling interval of its own, shown in status as interval=SECONDS; bad
// input is refused with EINVAL and changes nothing (status, the sampler,
// the record); 0 puts it back on the pass; the value survives a restart
// of the daemon (a crash: the engine dropped without Shutdown).
func TestIntervalVerb(t *testing.T) {
	state := t.TempDir()
	r := newRig(t, state)
	a := r.spawn("watched -- sleep 60")
	tel := r.e.cfg.Telemetry
	if st := r.status(a.ID); !strings.Contains(st, " interval=-\n") {
		t.Fatalf("new agent's status: %q", st)
	}
	for _, line := range []string{"interval", "interval 5ms", "interval 0.001", "interval -1s", "interval soon", "interval 2h", "interval 1s 2s", "interval 0ms"} {
		err := r.ctl(a.ID, line)
		if fs.Errno(err) != syscall.EINVAL {
			t.Errorf("%q: %v (errno %d), want EINVAL", line, err, fs.Errno(err))
		}
		if st := r.status(a.ID); !strings.Contains(st, " interval=-\n") {
			t.Errorf("after %q, status: %q", line, st)
		}
		if d := tel.AgentInterval(a.ID); d != 0 {
			t.Errorf("after %q, the sampler's interval is %s", line, d)
		}
	}
	recs, err := r.e.store.All()
	for _, rec := range recs {
		if rec.ID == a.ID && rec.Interval != 0 {
			t.Errorf("record after refused lines: interval %s", rec.Interval)
		}
	}
	if err != nil {
		t.Error(err)
	}
	if err := r.ctl(a.ID, "interval 250ms"); err != nil {
		t.Fatal(err)
	}
	if st := r.status(a.ID); !strings.Contains(st, " interval=0.25\n") {
		t.Errorf("status after interval 250ms: %q", st)
	}
	if d := tel.AgentInterval(a.ID); d != 250*time.Millisecond {
		t.Errorf("sampler's interval %s, want 250ms", d)
	}
	// A refused line leaves the set value as it is.
	if err := r.ctl(a.ID, "interval 1ms"); fs.Errno(err) != syscall.EINVAL {
		t.Errorf("interval 1ms: %v", err)
	}
	if d := tel.AgentInterval(a.ID); d != 250*time.Millisecond {
		t.Errorf("after a refused line the sampler's interval is %s", d)
	}
	if err := r.ctl(a.ID, "interval 0"); err != nil {
		t.Fatal(err)
	}
	if st := r.status(a.ID); !strings.Contains(st, " interval=-\n") || tel.AgentInterval(a.ID) != 0 {
		t.Errorf("after interval 0: status %q, sampler %s", st, tel.AgentInterval(a.ID))
	}
	if err := r.ctl(a.ID, "interval 3s"); err != nil {
		t.Fatal(err)
	}
	// The daemon dies; a new one on the same state directory has it.
	r.e.store.Close()
	r.e = &Engine{cfg: r.e.cfg, store: mustStore(t, t.TempDir()), agents: map[int]*Agent{}, busy: map[int]bool{}}
	r2 := newRig(t, state)
	if st := r2.status(a.ID); !strings.Contains(st, "state=running") || !strings.Contains(st, " interval=3\n") {
		t.Errorf("after a restart, status: %q", st)
	}
	if d := r2.e.cfg.Telemetry.AgentInterval(a.ID); d != 3*time.Second {
		t.Errorf("after a restart the sampler's interval is %s, want 3s", d)
	}
	r2.ctl(a.ID, "kill")
	waitState(t, r2.e, a.ID, StateExited)
}

// TestReapTrustsSamples: the reaper reads an agent's cgroup only when the
// pass's samples do not show it with processes. An adopted process (not
// the engine's child: no wait(2) status) is killed behind the engine's
// back: with a sample that says Procs=1 the agent stays running, its group
// not read; missing from the samples, or with Procs=0, its group is read
// and it ends.
func TestReapTrustsSamples(t *testing.T) {
	r := newRig(t, "")
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	a, err := r.e.Adopt(fs.RootCaller, []string{strconv.Itoa(cmd.Process.Pid)})
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, pids, _ := r.e.Snapshot(a.ID); len(pids) != 0 {
		t.Fatalf("killed agent's group still has %v", pids)
	}
	alive := map[int]telemetry.Sample{a.ID: {Procs: 1}}
	for end := time.Now().Add(exitWait + 500*time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		r.e.Reap(alive)
	}
	if s, _, _ := r.e.Snapshot(a.ID); s.State != StateRunning {
		t.Fatalf("with a sample showing processes, the agent is %s", s.State)
	}
	for i, latest := range []map[int]telemetry.Sample{{a.ID: {Procs: 0}}, {}} {
		if i == 1 {
			// Missing from the samples: end it again from scratch.
			cmd2 := exec.Command("sleep", "60")
			if err := cmd2.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd2.Process.Kill(); cmd2.Wait() })
			if a, err = r.e.Adopt(fs.RootCaller, []string{strconv.Itoa(cmd2.Process.Pid)}); err != nil {
				t.Fatal(err)
			}
			cmd2.Process.Kill()
			cmd2.Wait()
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			r.e.Reap(latest)
			if s, _, _ := r.e.Snapshot(a.ID); s.State == StateExited {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("samples %v: agent never reaped", latest)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// BenchmarkReap is one reaper pass over 50 live agents: reading every
// group's cgroup.procs (latest nil, as every pass did) against the pass's
// samples showing each with processes (as the daemon's hook now passes).
func BenchmarkReap(b *testing.B) {
	r := newRig(b, "")
	latest := map[int]telemetry.Sample{}
	for i := 0; i < 50; i++ {
		a, err := r.e.Spawn(fs.RootCaller, strings.Fields(fmt.Sprintf("b%d -- sleep 600", i)))
		if err != nil {
			b.Fatal(err)
		}
		latest[a.ID] = telemetry.Sample{Procs: 1}
	}
	for _, tc := range []struct {
		name   string
		latest map[int]telemetry.Sample
	}{{"read-all", nil}, {"samples", latest}, {"leaders", nil}} {
		b.Run(tc.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			t0 := threadCPU()
			for b.Loop() {
				if tc.name == "leaders" {
					r.e.ReapLeaders() // SIGCHLD's, no leader ended
				} else {
					r.e.Reap(tc.latest)
				}
			}
			b.ReportMetric(float64(threadCPU()-t0)/float64(b.N)/50, "cpu-ns/agent")
		})
	}
}

// TestSigchldReapsLeader: Run's answer to SIGCHLD (ReapLeaders, which
// reads only the groups of agents whose leader ended) ends an agent
// whose leader was killed, with its status, and no sampler pass; the
// other agent runs on. With Config.SignalReapAll (every group read) the
// same.
func TestSigchldReapsLeader(t *testing.T) {
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("signalreapall=%v", all), func(t *testing.T) {
			r := newRig(t, "")
			r.e.cfg.SignalReapAll = all
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { r.e.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			a := r.spawn("victim -- sleep 60")
			b := r.spawn("bystander -- sleep 60")
			if err := syscall.Kill(a.Pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				rec, err := r.e.Record(a.ID)
				if err != nil {
					t.Fatal(err)
				}
				if rec.State == StateExited {
					if rec.Exit != "signal KILL" {
						t.Errorf("exit %q, want signal KILL", rec.Exit)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("agent %d is %s 10 s after its leader was killed", a.ID, rec.State)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if rec, _ := r.e.Record(b.ID); rec.State == StateExited {
				t.Errorf("the other agent ended: %q", rec.Exit)
			}
			r.ctl(b.ID, "kill")
		})
	}
}

func threadCPU() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return ts.Nano()
}

// TestMergeWakesTheSampler: processes moved into an agent by merge (no
// CPU of its own: the hold test cannot see them) show in the sampler's
// next pass, not up to Tuning.Hold passes later; the agent they left
// (split) drops them at once as well.
func TestMergeWakesTheSampler(t *testing.T) {
	r := newRig(t, "")
	tel := r.e.cfg.Telemetry
	a := r.spawn("into -- sleep 60")
	b := r.spawn("from -- sleep 60")
	now := time.Now()
	// Let both settle into held samples: sleep uses no CPU.
	for i := 0; i < 4; i++ {
		now = now.Add(time.Second)
		tel.Tick(now)
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.ctl(a.ID, fmt.Sprintf("merge %d", b.ID)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	tel.Tick(now)
	pids, _, _ := tel.Procs(a.ID)
	if !slices.Contains(pids, b.Pid) {
		t.Fatalf("after merge, the sampler's pids of agent %d: %v, want %d among them", a.ID, pids, b.Pid)
	}
	if err := r.ctl(a.ID, fmt.Sprintf("split %d", b.Pid)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	tel.Tick(now)
	if pids, _, _ := tel.Procs(a.ID); slices.Contains(pids, b.Pid) {
		t.Errorf("after split, the sampler's pids of agent %d still hold %d: %v", a.ID, b.Pid, pids)
	}
	r.ctl(a.ID, "kill")
}
