package sched

import "math"

// AutopilotConfig sets Autopilot's moving-window recommender (Rzadca et
// al., "Autopilot: workload autoscaling at Google", EuroSys 2020,
// §3.2.2) for one series.
type AutopilotConfig struct {
	StepSeconds float64
	// First is the first bucket's width of the CPU histogram. The paper
	// gives no bucket layout; this uses the VPA's (5 % growth from
	// First, up to 1e5 × First), and a percentile reports its bucket's
	// end.
	First float64
	// MaxValue is where the last bucket starts (0: 1e5 × First).
	MaxValue float64
	// Memory: the signal is each window's peak and the statistic S_max
	// over the last MaxWindows windows (§3.2.2: S_max for jobs with
	// minimal OOM tolerance, the default for small jobs). Otherwise the
	// statistic is S_Pct of the load-adjusted decayed histogram of every
	// sample (S_p95 or S_p90 for serving jobs' CPU).
	Memory bool
	Pct    float64
	// MaxWindows is S_max's reach in windows. The paper leaves it
	// unstated; 288 (24 h) is the baselines audit's reading
	// (shared/reviews/baselines-audit.md §2.3, "paper default").
	MaxWindows int
	// Margin is the safety margin added to the statistic (the paper:
	// 10–15 %): the evaluation's knob.
	Margin float64
}

// Autopilot's defaults (§3.2.2–3.2.3).
const (
	AutopilotMargin    = 0.15
	AutopilotCPUPct    = 0.95
	AutopilotMaxWindow = 288
	apWindowSeconds    = 300       // one histogram per 5 minutes
	apCPUHalfLife      = 12 * 3600 // CPU weights halve in 12 h
	apMemHalfLife      = 48 * 3600 // memory's in 48 h (S_max ignores weights)
	apHoldSeconds      = 3600      // the limit is the max of the last hour's recommendations
)

// AutopilotRecommender is the paper's moving-window recommender with its
// post-processing. Samples are gathered in 5-minute windows; at each
// window's end the recommendation is recomputed and the limit set for
// the next 5 minutes:
//
//   - CPU: every window's histogram s[τ] of its samples enters an
//     aggregate H = Σ_τ w[τ]·s[τ], w[τ] = 2^(−τ/12 h); the load-adjusted
//     histogram h[k] = b[k]·H[k] (b[k] the bucket's value) weights a
//     bucket by the CPU it holds, and S_p is its p-th percentile;
//   - memory: S_max, the highest window peak among the last MaxWindows;
//
// then × (1+Margin), then the limit is the highest recommendation of the
// last hour. Until its first window closes a task's limit is recomputed
// every step from what it has seen (the paper starts a job from its
// user's limits, which a replay does not have).
type AutopilotRecommender struct {
	c      AutopilotConfig
	perWin int
	k      int // samples in the current window

	// CPU
	h     *vpaHist  // bucket layout only
	agg   []float64 // decayed H
	win   []float64 // this window's histogram
	decay float64   // 2^(−1/half-life in windows)

	// memory
	peak  float64   // this window's peak
	peaks []float64 // last MaxWindows window peaks, a ring
	pn    int

	recs   []float64 // last hour's recommendations, a ring, before the margin
	rn     int
	closed bool
	base   float64 // the limit before the margin
	ms     []float64
	alloc  []float64
}

// NewAutopilotRecommender runs at c.Margin or at every margin given: a
// margin scales every recommendation alike, so the hour's max scales
// too, and one pass serves them all.
func NewAutopilotRecommender(c AutopilotConfig, ms ...float64) *AutopilotRecommender {
	if c.Pct == 0 {
		c.Pct = AutopilotCPUPct
	}
	if c.MaxWindows == 0 {
		c.MaxWindows = AutopilotMaxWindow
	}
	per := max(int(math.Round(apWindowSeconds/c.StepSeconds)), 1)
	winSec := float64(per) * c.StepSeconds
	a := &AutopilotRecommender{c: c, perWin: per, recs: make([]float64, max(int(math.Round(apHoldSeconds/winSec)), 1)), ms: margins(c.Margin, ms)}
	a.alloc = make([]float64, len(a.ms))
	if c.Memory {
		a.peaks = make([]float64, c.MaxWindows)
	} else {
		a.h = newVPAHist(c.First, maxValue(c.First, c.MaxValue), 1)
		a.agg = make([]float64, len(a.h.w))
		a.win = make([]float64, len(a.h.w))
		a.decay = math.Exp2(-winSec / apCPUHalfLife)
	}
	return a
}

// loadPct is S_p of the load-adjusted histogram H + extra (extra: a
// partial window, or nil): the end of the bucket where the running sum
// of b[k]·weight first reaches p of its total.
func (a *AutopilotRecommender) loadPct(extra []float64) float64 {
	total := 0.0
	for k, w := range a.agg {
		if extra != nil {
			w += extra[k]
		}
		total += a.h.start(min(k+1, len(a.agg)-1)) * w
	}
	if total <= 0 {
		return 0
	}
	want, acc := a.c.Pct*total, 0.0
	for k, w := range a.agg {
		if extra != nil {
			w += extra[k]
		}
		end := a.h.start(min(k+1, len(a.agg)-1))
		acc += end * w
		if acc >= want && w > 0 {
			return end
		}
	}
	return a.h.start(len(a.agg) - 1)
}

// stat is the statistic now; partial says the current window is still
// open and counts too.
func (a *AutopilotRecommender) stat(partial bool) float64 {
	if a.c.Memory {
		m := 0.0
		for _, p := range a.peaks {
			m = max(m, p)
		}
		if partial {
			m = max(m, a.peak)
		}
		return m
	}
	if partial {
		return a.loadPct(a.win)
	}
	return a.loadPct(nil)
}

func (a *AutopilotRecommender) Observe(x float64) {
	if a.c.Memory {
		a.peak = max(a.peak, x)
	} else {
		a.win[a.h.bucket(x)]++
	}
	a.k++
	if a.k < a.perWin {
		if !a.closed {
			a.set(a.stat(true))
		}
		return
	}
	// The window closes: it enters the history, and a recommendation
	// is made for the next 5 minutes.
	if a.c.Memory {
		a.peaks[a.pn%len(a.peaks)] = a.peak
		a.pn++
		a.peak = 0
	} else {
		for k := range a.agg {
			a.agg[k] = a.agg[k]*a.decay + a.win[k]
			a.win[k] = 0
		}
	}
	a.k = 0
	a.closed = true
	a.recs[a.rn%len(a.recs)] = a.stat(false)
	a.rn++
	b := 0.0
	for _, r := range a.recs {
		b = max(b, r)
	}
	a.set(b)
}

func (a *AutopilotRecommender) set(b float64) {
	for i, m := range a.ms {
		a.alloc[i] = b * (1 + m)
	}
}

// Alloc is the limit at the first margin.
func (a *AutopilotRecommender) Alloc() float64 { return a.alloc[0] }

// Allocs are the limits at every margin, in order.
func (a *AutopilotRecommender) Allocs() []float64 { return a.alloc }
