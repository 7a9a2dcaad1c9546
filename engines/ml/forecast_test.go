package ml

import (
	"math"
	"math/rand/v2"
	"testing"
)

// sine is a periodic series with noise, fixed seed.
func sine(n, period int, amp, level, noise float64, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	x := make([]float64, n)
	for i := range x {
		x[i] = level + amp*math.Sin(2*math.Pi*float64(i)/float64(period)) + noise*r.NormFloat64()
	}
	return x
}

// mae scores forecaster f at horizon h over x after warm samples.
func mae(f Forecaster, x []float64, h, warm int) float64 {
	pred := make([]float64, len(x)+h)
	out := []float64{0}
	sum, n := 0.0, 0
	for t, v := range x {
		if t >= warm {
			sum += math.Abs(v - pred[t])
			n++
		}
		f.Observe(v)
		f.Predict([]int{h}, out)
		pred[t+h] = out[0]
	}
	return sum / float64(n)
}

func TestLastAndEWMA(t *testing.T) {
	l := &Last{}
	e := &EWMA{Alpha: 0.5}
	out := make([]float64, 2)
	for _, v := range []float64{1, 2, 3} {
		l.Observe(v)
		e.Observe(v)
	}
	l.Predict([]int{1, 5}, out)
	if out[0] != 3 || out[1] != 3 {
		t.Fatalf("last: %v", out)
	}
	e.Predict([]int{1, 5}, out)
	// 1, then 1.5, then 2.25
	if out[0] != 2.25 || out[1] != 2.25 {
		t.Fatalf("ewma: %v", out)
	}
}

func TestHoltWintersSeasonBeatsLast(t *testing.T) {
	x := sine(2000, 20, 10, 50, 0.5, 1)
	hw := &HoltWinters{Alpha: 0.3, Beta: 0.05, Gamma: 0.3, Phi: 0.95}
	hw.SetPeriod(20)
	hwErr := mae(hw, x, 5, 500)
	lastErr := mae(&Last{}, x, 5, 500)
	if hwErr > lastErr/3 {
		t.Fatalf("holt-winters with the season: MAE %.3f, last %.3f; want a third or less", hwErr, lastErr)
	}
}

func TestHoltTrend(t *testing.T) {
	hw := &HoltWinters{Alpha: 0.5, Beta: 0.3, Gamma: 0.1, Phi: 1}
	for i := 0; i < 200; i++ {
		hw.Observe(float64(2 * i))
	}
	out := []float64{0}
	hw.Predict([]int{10}, out)
	if math.Abs(out[0]-(398+20)) > 1 {
		t.Fatalf("linear trend: predicted %.2f for 418", out[0])
	}
}

func TestARRecoversProcess(t *testing.T) {
	// AR(2): x_t = 1.2 x_{t-1} - 0.5 x_{t-2} + e; a fit must beat last
	// value at horizon 3 clearly.
	r := rand.New(rand.NewPCG(7, 7))
	x := make([]float64, 3000)
	for i := 2; i < len(x); i++ {
		x[i] = 1.2*x[i-1] - 0.5*x[i-2] + r.NormFloat64()
	}
	for i := range x {
		x[i] += 100
	}
	arErr := mae(&AR{P: 8, Window: 256, Refit: 32}, x, 3, 500)
	// The oracle knows the coefficients: the fit must come close to it.
	var oracle float64
	for i := 500; i < len(x); i++ {
		a, b := x[i-3]-100, x[i-4]-100
		p1 := 1.2*a - 0.5*b
		p2 := 1.2*p1 - 0.5*a
		p3 := 1.2*p2 - 0.5*p1
		oracle += math.Abs(x[i] - 100 - p3)
	}
	oracle /= float64(len(x) - 500)
	if arErr > 1.1*oracle {
		t.Fatalf("AR MAE %.3f vs the true model's %.3f", arErr, oracle)
	}
}

func TestDecayHistPercentile(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	f := NewVPA(0.01, 1)
	for i := 0; i < 20000; i++ {
		f.Observe(r.Float64()) // uniform 0..1: p90 = 0.9
	}
	out := []float64{0}
	f.Predict([]int{1}, out)
	want := 0.9 * 1.15
	if math.Abs(out[0]-want) > 0.06 {
		t.Fatalf("VPA p90*1.15 of uniform: %.3f, want about %.3f", out[0], want)
	}
	// Decay: after a long stretch at a new level the old one is forgotten.
	g := &DecayHist{Min: 0.01, Ratio: 1.05, Buckets: 600, HalfLife: 100, Pct: 0.9}
	for i := 0; i < 1000; i++ {
		g.Observe(10)
	}
	for i := 0; i < 2000; i++ {
		g.Observe(1)
	}
	g.Predict([]int{1}, out)
	if out[0] > 1.1 {
		t.Fatalf("decayed histogram still at the old level: %.3f", out[0])
	}
}

func TestWindowMaxMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	f := &WindowMax{Window: 17}
	var xs []float64
	out := []float64{0}
	for i := 0; i < 5000; i++ {
		v := r.Float64() * 100
		xs = append(xs, v)
		f.Observe(v)
		f.Predict([]int{1}, out)
		m := 0.0
		for j := max(0, len(xs)-17); j < len(xs); j++ {
			m = math.Max(m, xs[j])
		}
		if out[0] != m {
			t.Fatalf("step %d: window max %.3f, brute force %.3f", i, out[0], m)
		}
	}
	if cap(f.dqV) > 4*17+64+17 {
		t.Fatalf("deque grew to %d", cap(f.dqV))
	}
}

func TestEnsembleAndQuantiles(t *testing.T) {
	x := sine(3000, 30, 10, 50, 1, 11)
	hs := []int{1, 5, 30}
	pr := NewPredictor(Params{Horizons: hs, Min: 0.01, StepSeconds: 1})
	type rec struct{ pt, p90 float64 }
	preds := make([][]rec, len(hs))
	for j := range preds {
		preds[j] = make([]rec, len(x)+40)
	}
	for t0, v := range x {
		pr.Observe(v, 0)
		for j, f := range pr.Forecasts() {
			preds[j][t0+hs[j]] = rec{f.Point, f.P90}
		}
	}
	lastErr := mae(&Last{}, x, 5, 1000)
	var ensErr float64
	var above, n int
	for t0 := 1000; t0 < len(x); t0++ {
		ensErr += math.Abs(x[t0] - preds[1][t0].pt)
		if x[t0] > preds[1][t0].p90 {
			above++
		}
		n++
	}
	ensErr /= float64(n)
	if ensErr > lastErr/2 {
		t.Fatalf("ensemble h5 MAE %.3f vs last %.3f", ensErr, lastErr)
	}
	// p90 must be exceeded about 10 % of the time (a loose band: the
	// tracker adapts online).
	if share := float64(above) / float64(n); share < 0.03 || share > 0.2 {
		t.Fatalf("p90 exceeded %.3f of the time", share)
	}
	if p := pr.Pattern(); p.Class != Periodic || p.Period < 28 || p.Period > 32 {
		t.Fatalf("pattern %+v, want periodic 30", p)
	}
	// Pinning puts all weight on one forecaster.
	if !pr.Pin("ewma") || pr.Pin("nonsense") {
		t.Fatal("pin")
	}
	pr.Observe(50, 0)
	for _, f := range pr.Forecasts() {
		if f.Model != "ewma" || f.Weight != 1 {
			t.Fatalf("pinned forecast %+v", f)
		}
	}
}

func TestDeterministic(t *testing.T) {
	x := sine(1500, 25, 5, 20, 2, 99)
	run := func() []Forecast {
		pr := NewPredictor(Params{Horizons: []int{1, 5, 30, 60}, Min: 0.01, StepSeconds: 1})
		for _, v := range x {
			pr.Observe(v, 0)
		}
		return pr.Forecasts()
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("two runs differ: %+v vs %+v", a[i], b[i])
		}
	}
}
