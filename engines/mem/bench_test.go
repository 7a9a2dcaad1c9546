package mem

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkAccess is each policy's cost per reference (ns/op is one
// Access) at 100 pages on the phased synthetic stream, all in one run:
// Adaptive pays for its nine shadow experts on the fabric's read path.
// ns/op is wall time, which on a shared machine counts the time other
// work holds the CPU; cpu-ns/op is the thread's own CPU time per
// reference (CLOCK_THREAD_CPUTIME_ID, the goroutine locked to its
// thread), the steadier figure there.
func BenchmarkAccess(b *testing.B) {
	trace := synth(7)
	for _, name := range allPolicies {
		b.Run(name, func(b *testing.B) {
			p, _ := NewPolicy(name, 100, 1)
			b.ReportAllocs()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			t0 := threadCPU()
			for i := 0; b.Loop(); i++ {
				p.Access(trace[i%len(trace)])
			}
			if t := threadCPU() - t0; t > 0 && b.N > 0 {
				b.ReportMetric(float64(t)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// threadCPU is the calling thread's CPU time in nanoseconds (0 if the
// clock cannot be read).
func threadCPU() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return ts.Nano()
}

func runtimeLock()   { runtime.LockOSThread() }
func runtimeUnlock() { runtime.UnlockOSThread() }
