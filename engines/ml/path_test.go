package ml

import "testing"

// A square wave of period 20 steps (2 for 10 steps, 0 for 10): after 20
// periods the path over the next period follows its shape, low where the
// wave will be low, which a forecast at the configured horizons alone
// (1, 5, 30 and 60 steps) cannot show.
func TestPathFollowsThePeriod(t *testing.T) {
	pr := NewPredictor(Params{Horizons: []int{1, 5, 30, 60}, Min: 0.01, StepSeconds: 1})
	wave := func(i int) float64 {
		if i%20 < 10 {
			return 2
		}
		return 0
	}
	n := 400
	for i := 0; i < n; i++ {
		pr.Observe(wave(i), float64(1764795600+i))
	}
	if pr.Path(0) != nil {
		t.Fatal("Path(0) is not nil")
	}
	p := pr.Path(20)
	lo, hi := 0, 0
	for i, v := range p {
		if v < p[lo] {
			lo = i
		}
		if v > p[hi] {
			hi = i
		}
	}
	// p[i] is step n+i.
	if wave(n+lo) != 0 || wave(n+hi) != 2 || p[hi]-p[lo] < 1 {
		t.Fatalf("path %v: low at +%d (wave %v), high at +%d (wave %v)", p, lo+1, wave(n+lo), hi+1, wave(n+hi))
	}
}
