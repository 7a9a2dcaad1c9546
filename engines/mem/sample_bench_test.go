package mem

import (
	"os/exec"
	"testing"
	"time"
)

// BenchmarkSampleAgent is one period of an agent of one idle perl loop
// (the agents of scripts/bench): smaps read and parsed, clear_refs
// written, the analyzer's bookkeeping. cpu-ns/op is the thread's CPU
// time per period.
func BenchmarkSampleAgent(b *testing.B) {
	perl := idlePerl(b)
	e, err := New(Config{StateDir: b.TempDir(), Proc: "/proc", Seed: 1, Interval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	pids := []int{perl.Process.Pid}
	now := time.Now()
	e.SampleAgent(1, pids, now)
	b.ReportAllocs()
	runtimeLock()
	t0 := threadCPU()
	for b.Loop() {
		now = now.Add(2 * time.Second)
		e.SampleAgent(1, pids, now)
	}
	if t := threadCPU() - t0; t > 0 {
		b.ReportMetric(float64(t)/float64(b.N), "cpu-ns/op")
	}
	runtimeUnlock()
}

// idlePerl starts a process that sleeps in select(2) for a benchmark to
// sample (perl-base is on every Debian system), and kills it when the
// benchmark ends.
func idlePerl(b *testing.B) *exec.Cmd {
	b.Helper()
	perl := exec.Command("perl", "-e", "select(undef,undef,undef,undef)")
	if err := perl.Start(); err != nil {
		b.Fatalf("perl, the process these benchmarks sample: %v", err)
	}
	b.Cleanup(func() { perl.Process.Kill(); perl.Wait() })
	time.Sleep(100 * time.Millisecond) // let it reach select
	return perl
}
