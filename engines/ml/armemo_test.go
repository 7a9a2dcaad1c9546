package ml

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestARFlatShortcutsExact: the fit skipped over a window the last fit
// saw and Predict's memo give the same forecasts, bit for bit, as an AR
// that computes everything every time, on a series of long flat stretches
// (an idle agent's), steps, and noise.
func TestARFlatShortcutsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var x []float64
	for _, seg := range []struct {
		n int
		f func(i int) float64
	}{
		{600, func(int) float64 { return 0 }},
		{1, func(int) float64 { return 3 }},
		{700, func(int) float64 { return 5.25 }},
		{300, func(int) float64 { return r.Float64() }},
		{400, func(int) float64 { return 3 << 20 }},
		{50, func(i int) float64 { return float64(i % 2) }},
		{600, func(int) float64 { return math.Copysign(0, -1) }},
		{300, func(int) float64 { return 0 }},
	} {
		for i := 0; i < seg.n; i++ {
			x = append(x, seg.f(i))
		}
	}
	hs := []int{1, 5, 30, 60}
	a := &AR{P: 8, Window: 256, Refit: 32}
	ref := &AR{P: 8, Window: 256, Refit: 32}
	got, want := make([]float64, len(hs)), make([]float64, len(hs))
	skipped, memo := 0, 0
	for i, v := range x {
		gen := a.gen
		ref.fitFlat, ref.memo.ok = false, false
		a.Observe(v)
		ref.Observe(v)
		if a.since == 0 && a.gen == gen && a.hist.n >= 4*a.P {
			skipped++
		}
		ok := a.memo.ok && a.memo.gen == a.gen
		a.Predict(hs, got)
		ref.memo.ok = false
		ref.Predict(hs, want)
		if ok && a.coef != nil {
			memo++
		}
		for j := range hs {
			if math.Float64bits(got[j]) != math.Float64bits(want[j]) {
				t.Fatalf("step %d horizon %d: %v, computed afresh %v", i, hs[j], got[j], want[j])
			}
		}
	}
	if skipped == 0 || memo == 0 {
		t.Errorf("the shortcuts never ran: %d fits skipped, %d memo candidates", skipped, memo)
	}
	t.Logf("%d steps: %d fits skipped, %d predictions from the memo candidates", len(x), skipped, memo)
}
