package sched

import (
	"strings"
	"testing"
	"time"

	"aiosfs/engines/agent"
	"aiosfs/engines/telemetry"
)

// TestKernelGetsWhatAllocShows: the cpumax the scheduler hands the agent
// registry (and so the kernel) is the value agents/N/alloc shows, not a
// copy rounded to two decimals (three agents fair-sharing two cores get
// 0.667 each, which used to reach the kernel as 0.67).
func TestKernelGetsWhatAllocShows(t *testing.T) {
	ag := &benchAgents{recs: map[int]*agent.Record{}}
	for id := 1; id <= 3; id++ {
		ag.recs[id] = &agent.Record{ID: id, State: agent.StateRunning, Limits: agent.NoLimits}
	}
	e := New(Config{NCPU: 2, Agents: ag})
	e.set.Enforce, e.set.Interval = true, time.Second
	now := time.Unix(1764000000, 0)
	latest := map[int]telemetry.Sample{}
	for i := 0; i < 30; i++ {
		now = now.Add(time.Second)
		for id := 1; id <= 3; id++ {
			latest[id] = telemetry.Sample{Time: now, CPU: 1.5, Mem: 100 << 20}
		}
		e.Tick(now, latest)
	}
	for id := 1; id <= 3; id++ {
		out, err := e.renderAlloc(id)
		if err != nil {
			t.Fatal(err)
		}
		var shown string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "limit=cpumax ") {
				shown = strings.TrimPrefix(strings.Fields(l)[1], "value=")
			}
		}
		if got := g(ag.recs[id].Limits.CPUMax); shown == "" || got != shown {
			t.Errorf("agent %d: the kernel got cpumax %s (%v), alloc shows %q:\n%s", id, got, ag.recs[id].Limits.CPUMax, shown, out)
		}
	}
}
