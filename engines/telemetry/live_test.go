package telemetry

import (
	"context"
	"io"
	"net"
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
	// The kernel's own count over the same window is the truth: on a
	// loaded machine the loop gets less than a core, and the sample must
	// say how much it got, not that it got one.
	cpuSeconds := func() float64 {
		smp, err := pfs.Sample(pid)
		if err != nil {
			t.Fatal(err)
		}
		return smp.CPUSeconds
	}
	t0, c0 := time.Now(), cpuSeconds()
	s.Tick(t0)
	time.Sleep(time.Second)
	t1, c1 := time.Now(), cpuSeconds()
	s.Tick(t1)
	got, ok := s.Latest(1)
	if !ok {
		t.Fatal("no sample")
	}
	t.Logf("%s", got.Line())
	want := (c1 - c0) / t1.Sub(t0).Seconds()
	if got.CPU < want-0.1-0.1*want || got.CPU > want+0.1+0.1*want || got.CPU > 1.1 {
		t.Fatalf("busy loop sampled at %.3f cores, the kernel counted %.3f over the same second", got.CPU, want)
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

// TestLiveNetBytes samples this test process as an agent through the real
// procfs and the real sock_diag dump: 1 MiB over loopback TCP between two
// of its goroutines shows as >= 1 MiB sent and received (both ends are the
// agent's sockets) and as a positive rate.
func TestLiveNetBytes(t *testing.T) {
	pfs, err := proc.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal("loopback TCP:", err)
	}
	defer ln.Close()
	s := New(Config{Proc: pfs, Interval: time.Second},
		func() []Target { return []Target{{ID: 1, Group: pidGroup{os.Getpid()}}} })
	s.Tick(time.Now()) // before the connection: its sockets are new next pass

	const n = 1 << 20
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		_, err = io.CopyN(io.Discard, c, n)
		done <- err
		// Stays open until the test ends (ln.Close does not close it).
		t.Cleanup(func() { c.Close() })
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got Sample
	for deadline := time.Now().Add(5 * time.Second); ; {
		time.Sleep(100 * time.Millisecond)
		s.Tick(time.Now())
		got, _ = s.Latest(1)
		if got.NetSent >= n && got.NetRecv >= n || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%s", got.Line())
	if got.NetSent < n || got.NetRecv < n {
		t.Fatalf("net_sent %d net_recv %d, want >= %d each", got.NetSent, got.NetRecv, n)
	}
	if h := s.History(1); len(h) < 2 || h[1].NetRate <= 0 {
		t.Fatalf("no rate in the pass after the transfer: %+v", h)
	}
}
