package ml

import (
	"testing"
	"time"
)

func TestGPUDemandFollowsGrowth(t *testing.T) {
	g := NewGPUDemand(time.Second)
	now := time.Unix(1_800_000_000, 0)
	if _, ok := g.PredictGPU(1, time.Minute); ok {
		t.Fatal("a forecast for an agent never watched")
	}
	// Agent 1 grows by 256 MiB a watch; agent 2 holds 1 GiB.
	for i := 0; i < 40; i++ {
		g.Observe(map[int]int64{1: int64(i+1) << 28, 2: 1 << 30}, now.Add(time.Duration(i)*time.Second))
		if i == gpuWarm-2 {
			if _, ok := g.PredictGPU(1, time.Minute); ok {
				t.Fatal("forecast before the warm-up")
			}
		}
	}
	last := int64(40) << 28
	grow, ok := g.PredictGPU(1, 30*time.Second)
	if !ok || grow <= last {
		t.Fatalf("growing agent: forecast %d (ok %v), want above its last use %d", grow, ok, last)
	}
	near, _ := g.PredictGPU(1, time.Second)
	if near > grow {
		t.Fatalf("the 1 s forecast %d is above the 30 s one %d for a growing series", near, grow)
	}
	flat, ok := g.PredictGPU(2, 30*time.Second)
	if !ok || flat < 1<<30 || flat > 1<<30+(1<<30)/10 {
		t.Fatalf("steady agent: forecast %d, want about 1 GiB", flat)
	}
	// An agent gone from the GPU is forgotten.
	g.Observe(map[int]int64{2: 1 << 30}, now.Add(41*time.Second))
	if _, ok := g.PredictGPU(1, time.Minute); ok {
		t.Fatal("forecast for an agent no longer on a GPU")
	}
}
