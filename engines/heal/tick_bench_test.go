package heal

import (
	"testing"
	"time"

	"aiosfs/engines/telemetry"
)

// The healing engine's share of a sampler pass at 200 agents: each
// agent observed and the engine ticked, after a full 64-point window.
// Idle agents' series are flat (memory, fds and procs unchanged); busy
// ones' memory moves every pass. docs/cost.md quotes it; "off" and "on"
// are PassRemedies.
//
//	go test -run '^$' -bench Pass200 -benchmem -count 3 ./engines/heal/
func BenchmarkPass200(b *testing.B) {
	for _, busy := range []bool{false, true} {
		name := "idle"
		if busy {
			name = "busy"
		}
		for _, on := range []bool{false, true} {
			b.Run(name+"/"+map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
				defer SetPassRemedies(PassRemedies())
				SetPassRemedies(on)
				e := New(Config{})
				now := time.Unix(1764000000, 0)
				obs := func(i, k int) Obs {
					mem := int64(8 << 20)
					if busy {
						mem += int64((k*7+i)%13) << 12
					}
					return Obs{Sample: telemetry.Sample{Time: now, Mem: mem, FDs: 9, Procs: 1, CPU: 0.01},
						MemMax: 64 << 20, FDMax: 1024, PidsMax: 64}
				}
				k := 0
				pass := func() {
					now = now.Add(time.Second)
					k++
					for i := 1; i <= 200; i++ {
						e.Observe(i, obs(i, k))
					}
					e.Tick(now, Forecast{})
				}
				for range 70 {
					pass()
				}
				b.ResetTimer()
				for b.Loop() {
					pass()
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/200, "µs/agent-pass")
			})
		}
	}
}
