package telemetry

import (
	"fmt"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
	"aiosfs/hal/sockdiag"
)

// busyGroup is one real process as an agent whose cgroup CPU usage moves
// at every read, as a busy agent's does, so it is never held.
type busyGroup struct {
	pid   int
	usage atomic.Uint64
}

func (g *busyGroup) Procs() ([]int, error) { return []int{g.pid}, nil }
func (g *busyGroup) Stats() (cgroup.Stats, error) {
	return cgroup.Stats{CPUUsageNs: g.usage.Add(1e6)}, nil
}
func (g *busyGroup) Counters() (cgroup.Counters, error) {
	return cgroup.Counters{CPUUsageNs: g.usage.Add(1e6), MemCurrent: 1 << 20}, nil
}
func (g *busyGroup) CPUUsage() (uint64, error) { return g.usage.Add(1e6), nil }

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBusyPass is one pass over 20 busy one-process agents whose
// processes are real (sleep, read from /proc), with Tuning.ProcEvery 1
// (process files every pass, as before) and 5 (the default). The cgroup
// is faked (no file reads), so the difference is the process files
// alone. cpu-ns/op is the process's CPU time per pass (getrusage), which
// a loaded machine disturbs less than the wall time.
func BenchmarkBusyPass(b *testing.B) {
	fs, err := proc.NewFS("/proc")
	if err != nil {
		b.Skip(err)
	}
	var targets []Target
	for i := range 20 {
		cmd := exec.Command("sleep", "600")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		targets = append(targets, Target{ID: i + 1, Group: &busyGroup{pid: cmd.Process.Pid}})
	}
	for _, every := range []int{1, 5} {
		b.Run(fmt.Sprintf("procevery=%d", every), func(b *testing.B) {
			tun := DefaultTuning
			tun.ProcEvery = every
			s := New(Config{Proc: fs, Tuning: &tun, TCPBytes: noSockets}, func() []Target { return targets })
			b.ReportAllocs()
			benchTicks(b, s)
		})
	}
}

// noSockets is a dump of a host without TCP sockets.
func noSockets() (map[uint64]sockdiag.Bytes, error) { return map[uint64]sockdiag.Bytes{}, nil }

// benchTicks times b.N passes of s a second apart, after one untimed
// pass, and reports the thread's CPU per pass as cpu-ns/op.
func benchTicks(b *testing.B, s *Sampler) {
	b.Helper()
	now := t0
	s.Tick(now)
	b.ResetTimer()
	c0 := cpuTime()
	for range b.N {
		now = now.Add(time.Second)
		s.Tick(now)
	}
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
}
