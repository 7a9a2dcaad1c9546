package main

import (
	"math"
	"testing"
)

// maxWin agrees with MarkovScore.MaxWin's rule: the highest mean over w
// consecutive values, the plain mean when there are fewer than w.
func TestMaxWin(t *testing.T) {
	for _, c := range []struct {
		v    []float64
		w    int
		want float64
	}{
		{[]float64{1, 5, 3, 0}, 2, 4},
		{[]float64{1, 5, 3, 0}, 4, 2.25},
		{[]float64{1, 5}, 3, 3},
		{nil, 2, 0},
	} {
		if got := maxWin(c.v, c.w); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("maxWin(%v, %d) = %v, want %v", c.v, c.w, got, c.want)
		}
	}
}

// rankMean gives each score its rank among the calibration scores of the
// same model (share strictly below) and averages the models.
func TestRankMean(t *testing.T) {
	sets := map[string]set{
		"a": {c: []float64{1, 2, 3, 4}, te: []float64{2.5}, a: []float64{10}},
		"b": {c: []float64{40, 30, 20, 10}, te: []float64{5}, a: []float64{35}},
	}
	got := rankMean(sets, []string{"a", "b"})
	// a: 2.5 → 2/4, 10 → 4/4; b: 5 → 0/4, 35 → 3/4
	if got.te[0] != 0.25 || got.a[0] != 0.875 {
		t.Errorf("test %v attack %v, want [0.25] [0.875]", got.te, got.a)
	}
	if got.c[0] != 0.375 { // a 1 → 0, b 40 → 3/4
		t.Errorf("calibration %v, want first 0.375", got.c)
	}
}

// par calls every index exactly once.
func TestPar(t *testing.T) {
	seen := make([]int, 1000)
	par(len(seen), func(i int) { seen[i]++ })
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("index %d called %d times", i, n)
		}
	}
}
