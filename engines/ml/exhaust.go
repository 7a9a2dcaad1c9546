package ml

import (
	"math"
	"sort"
	"sync"
)

// Healing engine (engines/heal): robust trend fits for time-to-exhaustion.

// TheilSen fits y = a + b·t robustly: b is the median of the pairwise
// slopes (y[j]-y[i])/(t[j]-t[i]) over i<j with t[j]>t[i], a the median of
// y[i]-b·t[i]. It tolerates up to ~29% outliers (a GC drop, a burst).
// Work is O(n²) in the points given: callers keep a bounded window (the
// healing engine keeps at most 64 points). With fewer than two distinct
// times ok is false.
//
// It runs for every watched series of every agent on every pass, so the
// medians are found by selection in a pooled buffer rather than by
// sorting a fresh copy (about 5× less work and no garbage at 64 points);
// the values are the same ones a sort would pick (TestTheilSenSelect).
func TheilSen(t, y []float64) (a, b float64, ok bool) {
	n := len(t)
	if n != len(y) || n < 2 {
		return 0, 0, false
	}
	bp := scratch.Get().(*[]float64)
	defer scratch.Put(bp)
	slopes := (*bp)[:0]
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			dt := t[j] - t[i]
			if dt > 0 {
				slopes = append(slopes, (y[j]-y[i])/dt)
			}
		}
	}
	if len(slopes) == 0 {
		*bp = slopes
		return 0, 0, false
	}
	b = selectMedian(slopes)
	res := slopes[:0]
	for i := range t {
		res = append(res, y[i]-b*t[i])
	}
	a = selectMedian(res)
	*bp = res
	return a, b, true
}

// scratch holds TheilSen's slope buffers (n·(n-1)/2 floats each).
var scratch = sync.Pool{New: func() any { s := make([]float64, 0, 64*63/2); return &s }}

// selectMedian is exhaustMedian without the copy and the sort: it
// reorders x in place and returns the middle value (the mean of the two
// middle ones for an even length), found by quickselect. Values that do
// not order (NaN) fall back to the sort, whose order puts them first.
func selectMedian(x []float64) float64 {
	for _, v := range x {
		if v != v {
			return exhaustMedian(x)
		}
	}
	m := len(x) / 2
	hi := quickselect(x, m)
	if len(x)%2 == 1 {
		return hi
	}
	// After selecting m, x[:m] holds the m smallest: the largest of
	// them is the lower middle.
	lo := x[0]
	for _, v := range x[1:m] {
		lo = max(lo, v)
	}
	return (lo + hi) / 2
}

// quickselect reorders x so that x[k] is the value a sort would put at
// k, every x[:k] ≤ x[k] ≤ every x[k+1:], and returns it. The pivot is the
// median of three, so a sorted or constant window (the common case: an
// idle agent's fd count) takes no more than a shuffled one.
func quickselect(x []float64, k int) float64 {
	lo, hi := 0, len(x)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if x[mid] < x[lo] {
			x[mid], x[lo] = x[lo], x[mid]
		}
		if x[hi] < x[lo] {
			x[hi], x[lo] = x[lo], x[hi]
		}
		if x[hi] < x[mid] {
			x[hi], x[mid] = x[mid], x[hi]
		}
		p := x[mid]
		i, j := lo, hi
		for i <= j {
			for x[i] < p {
				i++
			}
			for x[j] > p {
				j--
			}
			if i <= j {
				x[i], x[j] = x[j], x[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return x[k]
		}
	}
	return x[k]
}

// Monotonic is Kendall's tau of y against t in [-1, 1]: 1 when every
// later point is higher, 0 for no trend. A leak scores near 1; a sawtooth
// (grow, free, grow) near 0 over a window that holds a free.
func Monotonic(t, y []float64) float64 {
	var c, d float64
	for i := 0; i < len(t); i++ {
		for j := i + 1; j < len(t); j++ {
			s := (t[j] - t[i]) * (y[j] - y[i])
			if s > 0 {
				c++
			} else if s < 0 {
				d++
			}
		}
	}
	if c+d == 0 {
		return 0
	}
	return (c - d) / (c + d)
}

// Exhaustion is a projection of a growing quantity onto its limit.
type Exhaustion struct {
	Level float64 // the fitted level now (never below the last value)
	Slope float64 // units per second, Theil–Sen
	Tau   float64 // Kendall's tau of the window
	Fill  float64 // Level/limit, 0..1+
	ETA   float64 // seconds until the fit reaches the limit; +Inf when not growing
}

// TimeToExhaust fits the window (t seconds, y values) with TheilSen and
// returns when the fit reaches limit. limit <= 0 means no limit: ETA is
// +Inf. The level is the larger of the fit at the last time and the last
// value, so a sudden jump is not fitted away.
func TimeToExhaust(t, y []float64, limit float64) Exhaustion {
	e := Exhaustion{ETA: math.Inf(1)}
	if len(t) == 0 {
		return e
	}
	last := y[len(y)-1]
	e.Level = last
	if constant(y) {
		// Every pairwise slope is 0 and no pair is concordant: the fit
		// is the value itself, Slope 0, Tau 0, exactly what the two
		// O(n²) passes below would say. An idle agent's series are.
		return e.project(limit)
	}
	a, b, ok := TheilSen(t, y)
	if ok {
		if fit := a + b*t[len(t)-1]; fit > e.Level {
			e.Level = fit
		}
		e.Slope = b
		e.Tau = Monotonic(t, y)
	}
	return e.project(limit)
}

// project fills in Fill and ETA against limit (≤ 0: none).
func (e Exhaustion) project(limit float64) Exhaustion {
	if limit <= 0 {
		return e
	}
	e.Fill = e.Level / limit
	switch {
	case e.Level >= limit:
		e.ETA = 0
	case e.Slope > 0:
		e.ETA = (limit - e.Level) / e.Slope
	}
	return e
}

// constant says whether every y is the same finite number (bitwise, so
// NaN and -0 are never taken for "the same").
func constant(y []float64) bool {
	if math.IsInf(y[0], 0) {
		return false // Inf−Inf slopes are NaN: the fit says what it says
	}
	for _, v := range y[1:] {
		if math.Float64bits(v) != math.Float64bits(y[0]) {
			return false
		}
	}
	return true
}

func exhaustMedian(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// Holt is double exponential smoothing (level and trend) for a series
// sampled at irregular times: what the healing engine uses for a cheap
// trend on health metrics where Theil–Sen's window would be too costly.
type Holt struct {
	Alpha, Beta float64 // smoothing of level and trend, 0..1
	Level       float64
	Trend       float64 // per second
	T           float64 // time of the last update, seconds
	N           int
}

// Update adds value y observed at time t (seconds, increasing).
func (h *Holt) Update(t, y float64) {
	if h.N == 0 {
		h.Level, h.T, h.N = y, t, 1
		return
	}
	dt := t - h.T
	if dt <= 0 {
		dt = 1e-3
	}
	prev := h.Level
	pred := h.Level + h.Trend*dt
	h.Level = h.Alpha*y + (1-h.Alpha)*pred
	h.Trend = h.Beta*(h.Level-prev)/dt + (1-h.Beta)*h.Trend
	h.T = t
	h.N++
}

// Forecast is the level expected d seconds after the last update.
func (h *Holt) Forecast(d float64) float64 { return h.Level + h.Trend*d }
