package main

import (
	"testing"
	"time"

	"aiosfs/engines/gpu"
)

// The replay is a function of the seed, and every job ends exactly one
// way under every policy.
func TestReplayDeterministicAndComplete(t *testing.T) {
	jobs := makeJobs(7, 400, 15)
	for _, p := range gpu.Policies {
		a := replay(p, jobs, 8, (15 * time.Minute).Seconds())
		b := replay(p, makeJobs(7, 400, 15), 8, (15 * time.Minute).Seconds())
		if a != b {
			t.Fatalf("%s: two replays differ: %+v %+v", p, a, b)
		}
		if n := a.done + a.rejected + a.abandoned + a.overruns; n != len(jobs) {
			t.Fatalf("%s: %d jobs accounted for, want %d: %+v", p, n, len(jobs), a)
		}
		if a.util <= 0 || a.util > 1 || a.frag < 0 || a.frag > 1 {
			t.Fatalf("%s: %+v", p, a)
		}
	}
}
