package threat

import (
	"math"
	"time"
)

// Threat intelligence: every agent's score history and the host's, a
// trend, a forecast of the next windows' scores, and an early warning
// when the forecast reaches a policy threshold the score has not.

// Trend is a series' direction over its last TrendWindow points.
type Trend int8

const (
	Steady Trend = iota
	Rising
	Falling
)

func (t Trend) String() string {
	switch t {
	case Rising:
		return "rising"
	case Falling:
		return "falling"
	}
	return "steady"
}

const (
	// HistoryLen bounds each series (one point per window).
	HistoryLen = 600
	// TrendWindow is how many recent points the trend's slope spans.
	TrendWindow = 10
	// TrendSlope is the least-squares slope per window beyond which a
	// series is rising or falling.
	TrendSlope = 0.01
	// Horizon is how many windows ahead Forecast predicts.
	Horizon = 10
)

// Point is one score at one window's end.
type Point struct {
	Time  time.Time
	Score float64
}

// Series is a bounded score history with a damped Holt forecaster
// (level α = 0.5, trend β = 0.3, damping φ = 0.9), updated in O(1) per
// point.
type Series struct {
	buf          []point
	head, n      int
	level, slope float64
	seen         int
}

// point is a Point as kept: its time as Unix nanoseconds, 16 bytes
// against a time.Time's 24 plus the score (600 of them an agent were the
// largest single holder of the daemon's heap, issue 17). At gives back
// the same instant (without the monotonic reading, which nothing reads).
type point struct {
	ns    int64
	score float64
}

// zeroNS stands for the zero time.Time, whose UnixNano is not defined.
const zeroNS = math.MinInt64

func toPoint(p Point) point {
	if p.Time.IsZero() {
		return point{zeroNS, p.Score}
	}
	return point{p.Time.UnixNano(), p.Score}
}

func (q point) Point() Point {
	if q.ns == zeroNS {
		return Point{Score: q.score}
	}
	return Point{Time: time.Unix(0, q.ns), Score: q.score}
}

func NewSeries() *Series { return &Series{buf: make([]point, HistoryLen)} }

const (
	holtAlpha = 0.5
	holtBeta  = 0.3
	holtPhi   = 0.9
)

// Add appends a point.
func (s *Series) Add(p Point) {
	s.buf[s.head] = toPoint(p)
	s.head = (s.head + 1) % len(s.buf)
	if s.n < len(s.buf) {
		s.n++
	}
	x := p.Score
	switch s.seen {
	case 0:
		s.level = x
	case 1:
		s.slope = x - s.level
		s.level = x
	default:
		prev := s.level
		s.level = holtAlpha*x + (1-holtAlpha)*(s.level+holtPhi*s.slope)
		s.slope = holtBeta*(s.level-prev) + (1-holtBeta)*holtPhi*s.slope
	}
	s.seen++
}

// Len is the number of points kept.
func (s *Series) Len() int { return s.n }

// At returns the i-th newest point (0: the latest).
func (s *Series) At(i int) Point { return s.buf[(s.head-1-i+2*len(s.buf))%len(s.buf)].Point() }

// Last is the latest point (zero when empty).
func (s *Series) Last() Point {
	if s.n == 0 {
		return Point{}
	}
	return s.At(0)
}

// Points returns the kept points, oldest first.
func (s *Series) Points() []Point {
	out := make([]Point, s.n)
	for i := 0; i < s.n; i++ {
		out[s.n-1-i] = s.At(i)
	}
	return out
}

// Trend is the direction of the last TrendWindow points by their
// least-squares slope.
func (s *Series) Trend() (Trend, float64) {
	k := min(s.n, TrendWindow)
	if k < 3 {
		return Steady, 0
	}
	var sx, sy, sxx, sxy float64
	for i := 0; i < k; i++ {
		x := float64(i)
		y := s.At(k - 1 - i).Score
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	n := float64(k)
	slope := (n*sxy - sx*sy) / (n*sxx - sx*sx)
	switch {
	case slope > TrendSlope:
		return Rising, slope
	case slope < -TrendSlope:
		return Falling, slope
	}
	return Steady, slope
}

// Forecast fills out[h-1] with the predicted score h windows ahead,
// h = 1..len(out), clipped to 0..1.
func (s *Series) Forecast(out []float64) []float64 {
	damp := 0.0
	phi := 1.0
	for h := range out {
		phi *= holtPhi
		damp += phi
		v := s.level + damp*s.slope
		out[h] = math.Max(0, math.Min(1, v))
		if s.seen == 0 {
			out[h] = 0
		}
	}
	return out
}

// Warning is an early warning: the forecast reaches Verb's threshold in
// In windows while the score is still below it.
type Warning struct {
	Verb      string // alert, throttle, quarantine, kill or escalate
	Threshold float64
	In        int     // windows ahead
	Predicted float64 // the forecast there
}

// EarlyWarning returns the strongest verb whose threshold (for type t)
// the forecast crosses within the horizon while the latest score is
// below it, and the first window at which it does.
func EarlyWarning(score float64, forecast []float64, p *Policy, t Type) (Warning, bool) {
	var best Warning
	found := false
	check := func(verb string, th float64) {
		if th < 0 || score >= th {
			return
		}
		for h, v := range forecast {
			if v >= th {
				best = Warning{Verb: verb, Threshold: th, In: h + 1, Predicted: v}
				found = true
				return
			}
		}
	}
	for a := Alert; a < NumActions; a++ {
		check(a.String(), p.ThresholdFor(a, t))
	}
	return best, found
}
