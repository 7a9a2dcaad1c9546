package telemetry

import (
	"math"
	"os"
	"testing"
	"time"

	"aiosfs/hal/proc"
)

// TestSelfLite checks Tuning.SelfLite's reading of the daemon's own CPU
// and RSS against the full process sample it replaces (same counters:
// stat's utime+stime, in clock ticks, and VmRSS), and that Self measures
// a spin of this process with it.
func TestSelfLite(t *testing.T) {
	pfs, err := proc.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	full, err := pfs.Sample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	lite, err := selfLite()
	if err != nil {
		t.Fatal(err)
	}
	// stat's ticks are truncated to 10 ms; the two reads are a moment apart.
	if d := lite.CPUSeconds - full.CPUSeconds; d < 0 || d > 0.05 {
		t.Errorf("getrusage %.4f s, /proc/self/stat %.4f s", lite.CPUSeconds, full.CPUSeconds)
	}
	if d := math.Abs(float64(lite.RSS - full.RSS)); d > 1<<20 {
		t.Errorf("statm RSS %d, VmRSS %d", lite.RSS, full.RSS)
	}

	tun := DefaultTuning
	tun.SelfLite = true
	s := New(Config{Proc: pfs, Tuning: &tun}, nil)
	s.Self() // the first call takes the full sample
	end := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(end) {
	}
	share, rss := s.Self()
	if share < 0.2 || share > 2.5 || rss <= 0 {
		t.Errorf("after spinning 300 ms: Self() = %.3f cores, %d bytes", share, rss)
	}
}
