package sched

import (
	"testing"
	"time"

	"aiosfs/engines/telemetry"
)

// The host forecast sums the agents' CPU forecasts step by step: two
// agents that have used 1 and 0.5 cores steadily add up to about 1.5
// cores at every step, starting one step after their last sample.
func TestHostForecast(t *testing.T) {
	e := New(Config{NCPU: 4})
	if _, _, _, ok := e.HostForecast(0); ok || e.Forecasting() {
		t.Fatal("a forecast with no agent sampled")
	}
	t0 := time.Unix(1764795600, 0)
	for s := 0; s < 30; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		e.Tick(now, map[int]telemetry.Sample{
			1: {Time: now, CPU: 1},
			2: {Time: now, CPU: 0.5},
		})
	}
	if !e.Forecasting() {
		t.Fatal("Forecasting false with agents sampled")
	}
	start, step, load, ok := e.HostForecast(0)
	if !ok || step != time.Second || !start.Equal(t0.Add(30*time.Second)) || len(load) != 60 {
		t.Fatalf("ok %v start %v step %v len %d", ok, start, step, len(load))
	}
	for i, v := range load {
		if v < 1.4 || v > 1.6 {
			t.Fatalf("load[%d] = %.3f, want about 1.5: %v", i, v, load)
		}
	}
	if _, _, l, _ := e.HostForecast(5); len(l) != 5 {
		t.Fatalf("k=5 gave %d steps", len(l))
	}
}

// BenchmarkHostForecast is one placement's forecast: 100 agents with
// 600 samples each (a square wave), 60 steps (the default longest
// horizon at a 1 s interval).
func BenchmarkHostForecast(b *testing.B) {
	e := New(Config{NCPU: 4})
	t0 := time.Unix(1764795600, 0)
	for s := 0; s < 600; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		latest := map[int]telemetry.Sample{}
		for id := 1; id <= 100; id++ {
			cpu := 0.0
			if (s+id)%20 < 10 {
				cpu = 1
			}
			latest[id] = telemetry.Sample{Time: now, CPU: cpu}
		}
		e.Tick(now, latest)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, l, ok := e.HostForecast(0); !ok || len(l) != 60 {
			b.Fatal(ok, len(l))
		}
	}
}
