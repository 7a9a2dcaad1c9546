package sched

import (
	"math"
	"testing"
)

// Two models, a spike and a level shift, computed by hand (the formulas
// of §3.2.3 transcribed literally: every bucket decayed every window,
// every bucket end tried). One sample per 5-minute window, w_o/w_u = 1
// (the median), no margins, no change penalty; the fast model's weights
// halve every window, the slow one's never; δ halves every window.
//
// Use is 5 for four windows, a one-window spike to 10, 5 for three
// windows, then 10. 5 lies in the bucket [4.310, 5.526), 10 in [9.549,
// 11.027).
//
//   - Windows 1–4: both models recommend 5.526 (cost 0.526·n of slack
//     against (5 − 4.310)·n of overrun at 4.310); equal costs and limits:
//     the ensemble follows the first model, the fast one.
//   - The spike (window 5): the fast model's weights are 0.5 at 10 and
//     0.469 at 5, so its median is in 10's bucket, and 9.549 (cost
//     0.5·0.451 + 0.469·4.549 = 2.36) beats 11.027 (3.34); the slow
//     model's median stays 5.526 (4 samples of 5). Past costs are equal
//     (both recommended 5.526 for the spike): the fast model, 9.549.
//   - Window 6 (5 again): the fast model's 9.549 wasted 4.549, the slow
//     model's 5.526 0.526; decayed costs 0.533 against 0.213: the
//     ensemble switches to the slow model (with a switch penalty of
//     0.3: 0.213 + 0.3 < 0.533, it switches too).
//   - The shift (window 9 on): the slow model stays at 5.526 and
//     overruns by 4.474 a window; the fast model's cost falls below it
//     at window 10 (0.223 against 0.431), where the ensemble switches
//     back to 9.549, or one window later with the switch penalty
//     (0.223 + 0.3 > 0.431; at window 11, 0.136 + 0.3 < 0.453).
func TestAutopilotMLTwoModelsSpike(t *testing.T) {
	xs := []float64{5, 5, 5, 5, 10, 5, 5, 5, 10, 10, 10, 10}
	for _, tc := range []struct {
		switchPenalty float64
		chosen        []int
	}{
		{-1, []int{0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0}},
		{0.3, []int{0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0}},
	} {
		a := NewAutopilotML(AutopilotMLConfig{StepSeconds: 300, First: 1, HalfLives: []float64{300, 1e12}, Margins: []float64{0},
			EnsembleHalfLife: 300, ChangePenalty: -1, SwitchPenalty: tc.switchPenalty}, 1)
		if hl, m := a.Model(0); hl != 300 || m != 0 {
			t.Fatalf("model 0: %v %v", hl, m)
		}
		lo, hi := bucketEnd(5, 1), bucketEnd(9, 1) // 9's bucket ends where 10's starts
		if math.Abs(lo-5.5256) > 1e-4 || math.Abs(hi-9.5491) > 1e-4 {
			t.Fatalf("bucket ends %v %v", lo, hi)
		}
		for i, x := range xs {
			a.Observe(x)
			want := lo
			if tc.chosen[i] == 0 && (i == 4 || i >= 8) {
				want = hi
			}
			if a.Chosen(0) != tc.chosen[i] {
				t.Fatalf("penalty %v, window %d: model %d, want %d", tc.switchPenalty, i+1, a.Chosen(0), tc.chosen[i])
			}
			near(t, "limit", a.Alloc(), want)
		}
	}
}

// With no penalty and one model without margin or decay, the limit is
// the end of the bucket holding the r/(1+r) quantile, or the end of
// the bucket before (whichever costs less); at several ratios in one run.
func TestAutopilotMLQuantile(t *testing.T) {
	a := NewAutopilotML(AutopilotMLConfig{StepSeconds: 10, First: 1, HalfLives: []float64{1e12}, Margins: []float64{0},
		ChangePenalty: -1, SwitchPenalty: -1}, 1, 9, 99)
	// One window of 30 samples: 20 at 2, 9 at 10, 1 at 100.
	for i := 0; i < 30; i++ {
		x := 2.0
		if i >= 20 {
			x = 10
		}
		if i == 29 {
			x = 100
		}
		a.Observe(x)
		if i < 29 { // before the window closes: the highest sample seen
			near(t, "before the window closes", a.Alloc(), x)
		}
	}
	// r = 1: the median, in 2's bucket [1, 2.05), whose end 2.05 costs 0.05·20 of slack + 1·(8.45·9 +
	// 97.95) of overrun, less than at 1 (1·20 + more overrun).
	// r = 9 (p90): 10's bucket [9.549, 11.027); at 11.027 the cost is
	// 9·88.97 + 20·9.03 + 9·1.03 = 990.5, at 9.549 9·(0.451·9 +
	// 90.45) + 20·7.55 = 1001.6: 11.027.
	// r = 99 (p99): 100's bucket; its end, 103.3, costs 20·101.3 +
	// 9·93.3 + 3.3 = 2869 of slack, its start, 98.4, 99·1.6 + 20·96.4 +
	// 9·88.4 = 2882: the end.
	got := a.Allocs()
	near(t, "r=1", got[0], bucketEnd(2, 1))
	near(t, "r=9", got[1], bucketEnd(10, 1))
	near(t, "r=99", got[2], bucketEnd(100, 1))
}

// Memory's signal is the window's peak; the models' margins multiply.
func TestAutopilotMLMemoryPeakMargin(t *testing.T) {
	a := NewAutopilotML(AutopilotMLConfig{StepSeconds: 60, First: 1, Memory: true, HalfLives: []float64{1e12}, Margins: []float64{0.5},
		ChangePenalty: -1, SwitchPenalty: -1}, 1)
	for _, x := range []float64{3, 3, 50, 3, 3} { // one 5-minute window, peak 50
		a.Observe(x)
	}
	near(t, "peak × 1.5", a.Alloc(), 1.5*bucketEnd(50, 1))
}
