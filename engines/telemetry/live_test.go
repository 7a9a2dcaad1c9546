package telemetry

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
)

// pidGroup is a Target group of fixed pids with no cgroup counters.
type pidGroup []int

func (g pidGroup) Procs() ([]int, error)        { return g, nil }
func (g pidGroup) Stats() (cgroup.Stats, error) { return cgroup.Stats{}, nil }

// TestLiveBusyLoop samples a real spinning shell through the real procfs:
// with no cgroup counters the CPU comes from the process's own utime and
// stime, and a busy loop uses about one core.
func TestLiveBusyLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("live test: spins a core for about a second")
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skipf("no procfs at /proc: %v", err)
	}
	pfs, err := proc.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sh: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	pid := cmd.Process.Pid

	s := New(Config{Proc: pfs, Interval: time.Second},
		func() []Target { return []Target{{ID: 1, Group: pidGroup{pid}}} })
	time.Sleep(200 * time.Millisecond) // let it start spinning
	s.Tick(time.Now())
	time.Sleep(time.Second)
	s.Tick(time.Now())
	got, ok := s.Latest(1)
	if !ok {
		t.Fatal("no sample")
	}
	t.Logf("%s", got.Line())
	if got.CPU < 0.5 || got.CPU > 1.1 {
		t.Fatalf("busy loop sampled at %.3f cores, want 0.5..1.1", got.CPU)
	}
	if got.Procs != 1 || got.Threads != 1 || got.RSS <= 0 || got.CPUSeconds <= 0 {
		t.Fatalf("sample %+v", got)
	}
	if os.Geteuid() == 0 || got.FDs >= 0 {
		if got.FDs < 3 {
			t.Fatalf("fds %d: sh has at least stdin, stdout, stderr", got.FDs)
		}
	}
	if s.AgentOf(pid) != 1 {
		t.Fatalf("AgentOf(%d) = %d", pid, s.AgentOf(pid))
	}

	// The daemon's own figures come from /proc/self too.
	share, rss := s.Self()
	if rss <= 0 || share < 0 {
		t.Fatalf("Self() = %v, %d", share, rss)
	}
}
