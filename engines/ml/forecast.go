package ml

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// Forecaster predicts one series (one agent's use of one resource, one
// sample per step) at several horizons. Observe takes the next sample;
// Predict fills out[i] with the forecast hs[i] steps after the last
// sample (hs ascending). Every Observe is amortised constant work, so a
// tick over many agents costs the same at every age of the agent.
type Forecaster interface {
	Name() string
	Observe(x float64)
	Predict(hs []int, out []float64)
}

// Last repeats the last sample: the baseline every other forecaster has to
// beat at short horizons.
type Last struct{ x float64 }

func (*Last) Name() string        { return "last" }
func (f *Last) Observe(x float64) { f.x = x }
func (f *Last) Predict(hs []int, out []float64) {
	for i := range hs {
		out[i] = f.x
	}
}

// EWMA is an exponentially weighted moving average with factor Alpha.
type EWMA struct {
	Alpha float64
	level float64
	n     int
}

func (*EWMA) Name() string { return "ewma" }
func (f *EWMA) Observe(x float64) {
	if f.n == 0 {
		f.level = x
	} else {
		f.level += f.Alpha * (x - f.level)
	}
	f.n++
}
func (f *EWMA) Predict(hs []int, out []float64) {
	for i := range hs {
		out[i] = f.level
	}
}

// HoltWinters is additive Holt-Winters with a damped trend. Its season
// length comes from SetPeriod (the predictor finds it by autocorrelation
// through an FFT); with no period it is Holt's damped linear method.
type HoltWinters struct {
	Alpha, Beta, Gamma, Phi float64

	level, trend float64
	season       []float64
	t            int // samples seen
}

func (*HoltWinters) Name() string { return "holtwinters" }

// SetPeriod sets the season length in steps (0: none). A changed period
// restarts the seasonal terms at zero: they re-learn within one period,
// and stale terms of another length would be worse than none.
func (f *HoltWinters) SetPeriod(p int) {
	if p == len(f.season) {
		return
	}
	if p < 2 {
		f.season = nil
		return
	}
	f.season = make([]float64, p)
}

func (f *HoltWinters) Observe(x float64) {
	if f.t == 0 {
		f.level, f.trend = x, 0
		f.t++
		return
	}
	var s float64
	var si int
	if m := len(f.season); m > 0 {
		si = f.t % m
		s = f.season[si]
	}
	prevLevel := f.level
	f.level = f.Alpha*(x-s) + (1-f.Alpha)*(prevLevel+f.Phi*f.trend)
	f.trend = f.Beta*(f.level-prevLevel) + (1-f.Beta)*f.Phi*f.trend
	if len(f.season) > 0 {
		f.season[si] = f.Gamma*(x-f.level) + (1-f.Gamma)*s
	}
	f.t++
}

func (f *HoltWinters) Predict(hs []int, out []float64) {
	// Damped trend: sum_{i=1..h} phi^i, accumulated across ascending hs.
	damp, pw, k := 0.0, 1.0, 0
	for i, h := range hs {
		for ; k < h; k++ {
			pw *= f.Phi
			damp += pw
		}
		v := f.level + damp*f.trend
		if m := len(f.season); m > 0 {
			// The last sample had index t-1; h steps later is t-1+h.
			v += f.season[(f.t-1+h)%m]
		}
		out[i] = v
	}
}

// AR is an autoregressive model of order P on the series minus its window
// mean, refitted by ridge-regularised least squares over the last Window
// samples every Refit samples (so each sample costs O(Window*P*P/Refit)).
type AR struct {
	P, Window, Refit int

	hist  ring
	coef  []float64
	mean  float64
	since int
	x, y  []float64 // scratch for the fit

	// A flat stretch (an idle agent's CPU, I/O and network are 0 pass
	// after pass, its memory the same) costs nothing it need not, with
	// the same results bit for bit: a fit over the very window the last
	// fit saw is skipped (it would give the same coefficients), and
	// Predict from the same coefficients and the same last P values
	// returns its last answer.
	flat    int     // how many of the newest samples are equal (bitwise) to the newest
	fitN    int     // the window's length at the last fit; 0 none
	fitC    float64 // its value, when that window was flat
	fitFlat bool
	gen     uint64 // bumped by every fit that ran: coef and mean may have changed
	memo    arMemo
}

// arMemo is Predict's last answer and what it was computed from.
type arMemo struct {
	ok  bool
	gen uint64
	w   []float64
	hs  []int
	out []float64
}

func (*AR) Name() string { return "ar" }

func (f *AR) Observe(x float64) {
	if f.hist.buf == nil {
		f.hist = newRing(f.Window)
	}
	if f.hist.n > 0 && math.Float64bits(x) == math.Float64bits(f.hist.at(f.hist.n-1)) {
		f.flat++
	} else {
		f.flat = 1
	}
	f.hist.add(x)
	f.since++
	if f.since >= f.Refit && f.hist.n >= 4*f.P {
		f.fit()
		f.since = 0
	}
}

func (f *AR) fit() {
	n := f.hist.n
	last := f.hist.at(n - 1)
	flat := f.flat >= n
	if flat && f.fitFlat && f.fitN == n && math.Float64bits(f.fitC) == math.Float64bits(last) {
		// The window is the one the last fit saw, value for value: the
		// fit is a function of it alone, so it would end as that one did.
		return
	}
	f.fitN, f.fitC, f.fitFlat = n, last, flat
	f.gen++
	rows := n - f.P
	if cap(f.x) < rows*f.P {
		f.x = make([]float64, rows*f.P)
		f.y = make([]float64, rows)
	}
	f.mean = 0
	for i := 0; i < n; i++ {
		f.mean += f.hist.at(i)
	}
	f.mean /= float64(n)
	X := f.x[:rows*f.P]
	Y := f.y[:rows]
	for r := 0; r < rows; r++ {
		for j := 0; j < f.P; j++ {
			X[r*f.P+j] = f.hist.at(r+f.P-1-j) - f.mean // lag j+1
		}
		Y[r] = f.hist.at(r+f.P) - f.mean
	}
	xm := mat.NewDense(rows, f.P, X)
	var xtx mat.SymDense
	xtx.SymOuterK(1, xm.T())
	// Ridge term scaled to the data: keeps the fit defined on a flat
	// series (X'X singular) without biasing a lively one.
	tr := 0.0
	for j := 0; j < f.P; j++ {
		tr += xtx.At(j, j)
	}
	lam := 1e-3*tr/float64(f.P) + 1e-12
	for j := 0; j < f.P; j++ {
		xtx.SetSym(j, j, xtx.At(j, j)+lam)
	}
	var xty mat.VecDense
	xty.MulVec(xm.T(), mat.NewVecDense(rows, Y))
	var ch mat.Cholesky
	if !ch.Factorize(&xtx) {
		return
	}
	var a mat.VecDense
	if err := ch.SolveVecTo(&a, &xty); err != nil {
		return
	}
	if f.coef == nil {
		f.coef = make([]float64, f.P)
	}
	// An explosive fit (sum of |coef| well over 1) would run away at long
	// horizons; shrink it back to the edge of stationarity.
	s := 0.0
	for j := 0; j < f.P; j++ {
		f.coef[j] = a.AtVec(j)
		s += math.Abs(f.coef[j])
	}
	if s > 0.999 {
		for j := range f.coef {
			f.coef[j] *= 0.999 / s
		}
	}
}

// sameBits says whether a and b hold the same float64s bit for bit.
func sameBits(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

func (f *AR) Predict(hs []int, out []float64) {
	if f.coef == nil || f.hist.n < f.P {
		last := 0.0
		if f.hist.n > 0 {
			last = f.hist.at(f.hist.n - 1)
		}
		for i := range hs {
			out[i] = last
		}
		return
	}
	// Iterate the recursion up to the longest horizon over a small
	// window of the last P values (newest first).
	var buf [64]float64
	w := buf[:0]
	if f.P > len(buf) {
		w = make([]float64, 0, f.P)
	}
	for j := 0; j < f.P; j++ {
		w = append(w, f.hist.at(f.hist.n-1-j)-f.mean)
	}
	if m := &f.memo; m.ok && m.gen == f.gen && slices.Equal(m.hs, hs) && sameBits(m.w, w) {
		copy(out, m.out)
		return
	}
	// The recursion below overwrites w: keep the inputs now, the
	// answer when it is made.
	m := &f.memo
	m.ok, m.gen = false, f.gen
	m.w = append(m.w[:0], w...)
	m.hs = append(m.hs[:0], hs...)
	k := 0
	for i, h := range hs {
		for ; k < h; k++ {
			v := 0.0
			for j, c := range f.coef {
				v += c * w[j]
			}
			copy(w[1:], w[:len(w)-1])
			w[0] = v
		}
		out[i] = w[0] + f.mean
	}
	m.out, m.ok = append(m.out[:0], out[:len(hs)]...), true
}

// DecayHist is the Kubernetes VPA recommender's method: a histogram with
// exponentially growing buckets whose samples are weighted by
// 2^(age/HalfLife) (newer count more), and a recommendation of the
// Percentile of that histogram times (1+Margin). The VPA uses a 24 h
// half-life, the 90th percentile and a 15 % margin. It forecasts the same
// value at every horizon: it is a recommender, not a predictor.
type DecayHist struct {
	Min      float64 // first bucket's upper bound; smaller values land in bucket 0
	Ratio    float64 // bucket growth (VPA: 1.05)
	Buckets  int
	HalfLife float64 // in steps
	Pct      float64 // 0..1
	Margin   float64

	w     []float64
	total float64
	t     float64 // steps seen, the weights' clock
	scale float64 // log(Ratio)
}

func (*DecayHist) Name() string { return "vpa" }

func (f *DecayHist) bucket(x float64) int {
	if x <= f.Min {
		return 0
	}
	b := 1 + int(math.Log(x/f.Min)/f.scale)
	if b >= f.Buckets {
		b = f.Buckets - 1
	}
	return b
}

// upper is bucket b's upper bound, the value a percentile in it reports
// (the VPA reports bucket starts; the upper bound errs on the safe side).
func (f *DecayHist) upper(b int) float64 {
	return f.Min * math.Exp(float64(b)*f.scale)
}

func (f *DecayHist) Observe(x float64) {
	if f.w == nil {
		f.w = make([]float64, f.Buckets)
		f.scale = math.Log(f.Ratio)
	}
	wt := math.Exp2(f.t / f.HalfLife)
	f.t++
	if wt > 1e100 {
		// Renormalise before the weights overflow: every weight and the
		// clock shift together, so ratios (and percentiles) are unchanged.
		for i := range f.w {
			f.w[i] /= wt
		}
		f.total /= wt
		f.t -= f.HalfLife * math.Log2(wt)
		wt = 1
	}
	f.w[f.bucket(x)] += wt
	f.total += wt
}

func (f *DecayHist) Predict(hs []int, out []float64) {
	v := 0.0
	if f.total > 0 {
		want, acc := f.Pct*f.total, 0.0
		for b, w := range f.w {
			acc += w
			if acc >= want {
				v = f.upper(b)
				break
			}
		}
		v *= 1 + f.Margin
	}
	for i := range hs {
		out[i] = v
	}
}

// WindowMax is Google Autopilot's moving-window recommender in its
// max form: the peak over the last Window samples, each sample first
// discounted by 2^(-age/HalfLife) so an old spike counts less than a new
// one. A monotonic deque keeps it amortised O(1) per sample; the decay
// multiplies every stored value alike, so ordering in the deque holds.
type WindowMax struct {
	Window   int
	HalfLife float64 // steps; 0 for a plain max
	Margin   float64

	t   int
	dqT []int
	dqV []float64
}

func (*WindowMax) Name() string { return "autopilot" }

func (f *WindowMax) Observe(x float64) {
	// Compare in "undecayed at time 0" units: x*2^(t/HalfLife); values
	// stored that way keep their order under the common decay.
	v := x * f.grow(f.t)
	for len(f.dqV) > 0 && f.dqV[len(f.dqV)-1] <= v {
		f.dqV = f.dqV[:len(f.dqV)-1]
		f.dqT = f.dqT[:len(f.dqT)-1]
	}
	f.dqV = append(f.dqV, v)
	f.dqT = append(f.dqT, f.t)
	for f.dqT[0] <= f.t-f.Window {
		f.dqV = f.dqV[1:]
		f.dqT = f.dqT[1:]
	}
	// Compact the slices now and then so the backing arrays stay small.
	if cap(f.dqV) > 4*f.Window+64 {
		f.dqV = append([]float64(nil), f.dqV...)
		f.dqT = append([]int(nil), f.dqT...)
	}
	f.t++
	if f.HalfLife > 0 && float64(f.t)/f.HalfLife > 900 {
		// Rebase before 2^(t/HalfLife) overflows.
		g := f.grow(f.t)
		for i := range f.dqV {
			f.dqV[i] /= g
			f.dqT[i] -= f.t
		}
		f.t = 0
	}
}

func (f *WindowMax) grow(t int) float64 {
	if f.HalfLife <= 0 {
		return 1
	}
	return math.Exp2(float64(t) / f.HalfLife)
}

func (f *WindowMax) Predict(hs []int, out []float64) {
	v := 0.0
	if len(f.dqV) > 0 {
		v = f.dqV[0] / f.grow(f.t-1) * (1 + f.Margin)
	}
	for i := range hs {
		out[i] = v
	}
}

// ring is a fixed-size window of the last samples, oldest at index 0.
type ring struct {
	buf  []float64
	head int // next write
	n    int
}

func newRing(n int) ring { return ring{buf: make([]float64, n)} }

func (r *ring) add(x float64) {
	r.buf[r.head] = x
	r.head = (r.head + 1) % len(r.buf)
	if r.n < len(r.buf) {
		r.n++
	}
}

// at returns the i-th oldest kept sample.
func (r *ring) at(i int) float64 {
	start := r.head - r.n
	if start < 0 {
		start += len(r.buf)
	}
	return r.buf[(start+i)%len(r.buf)]
}

// copyTo writes the kept samples oldest first into dst (len >= n).
func (r *ring) copyTo(dst []float64) []float64 {
	dst = dst[:r.n]
	for i := range dst {
		dst[i] = r.at(i)
	}
	return dst
}
