package ml

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestTheilSenIgnoresOutliers(t *testing.T) {
	var ts, ys []float64
	for i := 0; i < 40; i++ {
		ts = append(ts, float64(i))
		y := 100 + 2*float64(i)
		if i%7 == 3 {
			y = 0 // a GC drop
		}
		ys = append(ys, y)
	}
	a, b, ok := TheilSen(ts, ys)
	if !ok || math.Abs(b-2) > 0.01 || math.Abs(a-100) > 1 {
		t.Fatalf("a=%v b=%v ok=%v", a, b, ok)
	}
	e := TimeToExhaust(ts, ys, 200)
	// fit at t=39 is 178: 22 left at 2/s
	if math.Abs(e.ETA-11) > 0.5 || e.Tau < 0.5 {
		t.Fatalf("exhaust %+v", e)
	}
	if e := TimeToExhaust(ts, ys, 0); !math.IsInf(e.ETA, 1) {
		t.Fatalf("no limit: %+v", e)
	}
	flat := TimeToExhaust([]float64{0, 1, 2}, []float64{5, 5, 5}, 10)
	if !math.IsInf(flat.ETA, 1) || flat.Fill != 0.5 {
		t.Fatalf("flat %+v", flat)
	}
}

func TestHolt(t *testing.T) {
	h := Holt{Alpha: 0.5, Beta: 0.3}
	for i := 0; i < 50; i++ {
		h.Update(float64(i), 3*float64(i))
	}
	if math.Abs(h.Trend-3) > 0.1 || math.Abs(h.Forecast(10)-(147+30)) > 2 {
		t.Fatalf("%+v", h)
	}
}

func TestBanditLearnsBestArm(t *testing.T) {
	b := NewBandit(7)
	rng := rand.New(rand.NewPCG(1, 2))
	rate := map[string]float64{"a": 0.2, "b": 0.8, "c": 0.5}
	arms := []string{"a", "b", "c"}
	pulls := map[string]int{}
	for i := 0; i < 400; i++ {
		arm, _ := b.Choose("x", arms)
		pulls[arm]++
		b.Update("x", arm, rng.Float64() < rate[arm])
	}
	if pulls["b"] < 250 {
		t.Fatalf("pulls %v", pulls)
	}
	// a new agent starts from the pool
	al, be := b.Posterior("new", "b")
	if al/(al+be) < 0.6 {
		t.Fatalf("pooled posterior %v %v", al, be)
	}
	// determinism
	b1, b2 := NewBandit(3), NewBandit(3)
	for i := 0; i < 20; i++ {
		x, _ := b1.Choose("x", arms)
		y, _ := b2.Choose("x", arms)
		if x != y {
			t.Fatal("same seed, different choice")
		}
	}
	for _, ab := range [][2]float64{{0.5, 0.5}, {1, 1}, {30, 2}} {
		var s float64
		for i := 0; i < 4000; i++ {
			s += BetaSample(rng, ab[0], ab[1])
		}
		if m := s / 4000; math.Abs(m-ab[0]/(ab[0]+ab[1])) > 0.02 {
			t.Fatalf("Beta%v mean %v", ab, m)
		}
	}
}

func TestHazardFit(t *testing.T) {
	h := NewHazard([]float64{0, 0}, 0)
	if err := h.Fit([][]float64{{1, 0}}, []bool{true}, 1); err == nil || !h.Prior {
		t.Fatal("fit on one row")
	}
	rng := rand.New(rand.NewPCG(4, 4))
	var x [][]float64
	var y []bool
	for i := 0; i < 200; i++ {
		v := rng.Float64()
		x = append(x, []float64{v, rng.Float64()})
		y = append(y, v > 0.6)
	}
	if err := h.Fit(x, y, 1); err != nil {
		t.Fatal(err)
	}
	if h.P([]float64{0.9, 0.5}) < 0.7 || h.P([]float64{0.2, 0.5}) > 0.3 || h.Prior {
		t.Fatalf("%+v", h)
	}
}
