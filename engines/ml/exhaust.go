package ml

import (
	"math"
	"sort"
)

// Healing engine (engines/heal): robust trend fits for time-to-exhaustion.

// TheilSen fits y = a + b·t robustly: b is the median of the pairwise
// slopes (y[j]-y[i])/(t[j]-t[i]) over i<j with t[j]>t[i], a the median of
// y[i]-b·t[i]. It tolerates up to ~29% outliers (a GC drop, a burst).
// Work is O(n²) in the points given: callers keep a bounded window (the
// healing engine keeps at most 64 points). With fewer than two distinct
// times ok is false.
func TheilSen(t, y []float64) (a, b float64, ok bool) {
	n := len(t)
	if n != len(y) || n < 2 {
		return 0, 0, false
	}
	slopes := make([]float64, 0, n*(n-1)/2)
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			dt := t[j] - t[i]
			if dt > 0 {
				slopes = append(slopes, (y[j]-y[i])/dt)
			}
		}
	}
	if len(slopes) == 0 {
		return 0, 0, false
	}
	b = exhaustMedian(slopes)
	res := make([]float64, n)
	for i := range t {
		res[i] = y[i] - b*t[i]
	}
	return exhaustMedian(res), b, true
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
	a, b, ok := TheilSen(t, y)
	if ok {
		if fit := a + b*t[len(t)-1]; fit > e.Level {
			e.Level = fit
		}
		e.Slope = b
		e.Tau = Monotonic(t, y)
	}
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
