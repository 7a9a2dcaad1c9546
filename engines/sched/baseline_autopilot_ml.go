package sched

import (
	"math"
	"sort"
)

// Autopilot's ML recommender (Rzadca et al., "Autopilot: workload
// autoscaling at Google", EuroSys 2020, §3.2.3), as far as the paper
// allows. An ensemble of models m, each with its own decay rate d_m and
// safety margin M_m, over the same 5-minute windows as the moving-window
// recommender (§3.2.2: CPU, every sample of the window; memory, the
// window's peak). At the end of window t:
//
//   - each model keeps, for every candidate limit L (the ends of the
//     VPA-layout buckets), a decayed overrun and underrun,
//     o(L)[t] = (1−d_m)·o(L)[t−1] + d_m·Σ_{x in t, x>L} (x − L) and
//     u(L)[t] = (1−d_m)·u(L)[t−1] + d_m·Σ_{x in t, x≤L} (L − x);
//     its limit is L'_m[t] = argmin_L w_o·o(L)[t] + w_u·u(L)[t] +
//     w_ΔL·[L ≠ L'_m[t−1]], and its recommendation L_m[t] = L'_m[t]·(1+M_m);
//   - each model's cost is the decayed cost of its past recommendations,
//     c_m[t] = δ·c_m[t−1] + (1−δ)·(w_o·overrun + w_u·underrun of
//     L_m[t−1] on window t's samples + w_ΔL·[L_m[t−1] ≠ L_m[t−2]]);
//   - the ensemble sets the limit to L_m[t] for the m minimising
//     c_m[t] + w_Δm·[m ≠ m[t−1]] + w_ΔL·[L_m[t] ≠ L[t−1]].
//
// What the paper leaves open, and the reading taken here:
//
//   - the five weights are tuned at Google and not public. w_u is 1 and
//     w_o/w_u is the knob (one run per ratio, NewAutopilotML's ratios):
//     it is exactly the recommender's trade-off (with no penalties a
//     model's argmin is the r/(1+r) quantile of its decayed samples).
//     Costs are divided by the decayed load (a model's Σ weight·x; the
//     ensemble's decayed mean sample × the window's samples), so that
//     w_ΔL and w_Δm read as a share of use and hold for any unit; both
//     are fixed a priori at 0.01, not tuned;
//   - overrun and underrun are amounts (usage above L, slack below L):
//     counted in samples on both sides, w_o·#above + w_u·#below is
//     linear in #above and its argmin is always the lowest or the
//     highest bucket;
//   - the margin multiplies (the moving window's 10–15 % does too);
//   - the models' grid (AutopilotMLHalfLives × AutopilotMLMargins), the
//     ensemble's decay δ (AutopilotMLHalfLife) and the tie rule (equal
//     scores: the higher limit, then the earlier model) are this
//     implementation's;
//   - no max over the last hour (the moving window's post-processing):
//     the change penalties are the ML recommender's damping;
//   - until the first window closes the limit is the highest sample
//     seen (the paper starts a job from its user's limits).
type AutopilotMLConfig struct {
	StepSeconds float64
	// First and MaxValue: the bucket layout, as AutopilotConfig's.
	First, MaxValue float64
	// Memory: the signal is each window's peak (else every sample).
	Memory bool
	// HalfLives (seconds) and Margins: the models, every pair (nil: the
	// defaults below).
	HalfLives, Margins []float64
	// EnsembleHalfLife (seconds) is δ's half-life (0: the default).
	EnsembleHalfLife float64
	// ChangePenalty w_ΔL and SwitchPenalty w_Δm, as a share of use
	// (negative: 0; 0: the default).
	ChangePenalty, SwitchPenalty float64
}

// The ML recommender's grid and constants, fixed a priori.
var (
	// Decay half-lives of the models: 1 h to the moving window's 48 h.
	AutopilotMLHalfLives = []float64{3600, 4 * 3600, 12 * 3600, 48 * 3600}
	// Margins of the models: none to 50 %.
	AutopilotMLMargins = []float64{0, 0.05, 0.1, 0.15, 0.25, 0.5}
	// Ratios w_o/w_u swept by the evaluation (quantiles 0.5 to 0.9999).
	AutopilotMLRatios = []float64{1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000, 10000}
)

const (
	AutopilotMLHalfLife = 12 * 3600 // δ: past costs halve in 12 h
	AutopilotMLPenalty  = 0.01      // w_ΔL and w_Δm: 1 % of use
)

// mlDecay is one decay rate's histogram, shared by the models of that
// rate and by every ratio: W[k] and V[k] the decayed weight and Σ x of
// bucket k, in units that grow by 1/(1−d) a window (rescaled when
// large) instead of decaying every bucket.
type mlDecay struct {
	grow, wt float64
	W, V     []float64
	cw, cv   []float64 // prefix sums, lo..hi
	lo, hi   int       // buckets ever used
}

// AutopilotML is the ensemble for one series, run at every ratio given.
type AutopilotML struct {
	c      AutopilotMLConfig
	ratios []float64
	h      *vpaHist  // layout only
	ends   []float64 // candidate limits: the buckets' ends
	perWin int
	k      int
	sig    []float64 // this window's signal
	sorted []float64
	cum    []float64
	peak   float64 // memory: this window's peak
	seen   float64 // highest sample so far
	closed bool

	dec    []*mlDecay
	mDec   []int     // model → decay
	mMar   []float64 // model → margin
	delta  float64   // δ per window
	ew, ev float64   // ensemble's decayed count and Σ x

	prev    [][]int     // [ratio][decay] L'_m's bucket, −1 none
	lim     [][]float64 // [ratio][model] L_m
	changed [][]bool    // [ratio][model] L_m changed when last set
	cost    [][]float64 // [ratio][model] c_m
	chosen  []int       // [ratio] m[t], −1 none
	alloc   []float64
}

// NewAutopilotML runs the ensemble at each ratio w_o/w_u (at least one).
func NewAutopilotML(c AutopilotMLConfig, ratios ...float64) *AutopilotML {
	if len(ratios) == 0 {
		panic("autopilot-ml: no ratio")
	}
	if c.HalfLives == nil {
		c.HalfLives = AutopilotMLHalfLives
	}
	if c.Margins == nil {
		c.Margins = AutopilotMLMargins
	}
	if c.EnsembleHalfLife == 0 {
		c.EnsembleHalfLife = AutopilotMLHalfLife
	}
	if c.ChangePenalty == 0 {
		c.ChangePenalty = AutopilotMLPenalty
	}
	if c.SwitchPenalty == 0 {
		c.SwitchPenalty = AutopilotMLPenalty
	}
	c.ChangePenalty, c.SwitchPenalty = max(c.ChangePenalty, 0), max(c.SwitchPenalty, 0)
	per := max(int(math.Round(apWindowSeconds/c.StepSeconds)), 1)
	winSec := float64(per) * c.StepSeconds
	a := &AutopilotML{c: c, ratios: ratios, perWin: per, h: newVPAHist(c.First, maxValue(c.First, c.MaxValue), 1),
		delta: math.Exp2(-winSec / c.EnsembleHalfLife)}
	nb := len(a.h.w)
	a.ends = make([]float64, nb)
	for k := range a.ends {
		a.ends[k] = a.h.start(min(k+1, nb-1))
	}
	for _, hl := range c.HalfLives {
		a.dec = append(a.dec, &mlDecay{grow: math.Exp2(winSec / hl), wt: 1, W: make([]float64, nb), V: make([]float64, nb),
			cw: make([]float64, nb), cv: make([]float64, nb), lo: nb, hi: -1})
	}
	for d := range c.HalfLives {
		for _, m := range c.Margins {
			a.mDec, a.mMar = append(a.mDec, d), append(a.mMar, m)
		}
	}
	nm := len(a.mDec)
	for range ratios {
		p := make([]int, len(a.dec))
		for i := range p {
			p[i] = -1
		}
		a.prev = append(a.prev, p)
		a.lim = append(a.lim, make([]float64, nm))
		a.changed = append(a.changed, make([]bool, nm))
		a.cost = append(a.cost, make([]float64, nm))
		a.chosen = append(a.chosen, -1)
	}
	a.alloc = make([]float64, len(ratios))
	return a
}

// costAt is a model's normalised cost w_o·o(L) + w_u·u(L) at candidate
// limit k, the end of bucket k (the last bucket's start, as loadPct).
func (a *AutopilotML) costAt(d *mlDecay, wo float64, k int) float64 {
	Wt, Vt := d.cw[d.hi], d.cv[d.hi]
	cw, cv := 0.0, 0.0
	if k >= d.hi {
		cw, cv = Wt, Vt
	} else if k >= d.lo {
		cw, cv = d.cw[k], d.cv[k]
	}
	L := a.ends[k]
	n := Vt
	if n <= 0 {
		n = Wt // all zero: in units of use
	}
	return (wo*((Vt-cv)-L*(Wt-cw)) + (L*cw - cv)) / n
}

func (a *AutopilotML) Observe(x float64) {
	a.seen = max(a.seen, x)
	if a.c.Memory {
		a.peak = max(a.peak, x)
	} else {
		a.sig = append(a.sig, x)
	}
	a.k++
	if a.k < a.perWin {
		if !a.closed {
			for i := range a.alloc {
				a.alloc[i] = a.seen
			}
		}
		return
	}
	if a.c.Memory {
		a.sig = append(a.sig, a.peak)
		a.peak = 0
	}
	a.k = 0
	a.window(a.sig)
	a.sig = a.sig[:0]
	a.closed = true
}

// window closes a window whose signal is sig.
func (a *AutopilotML) window(sig []float64) {
	wo, wL, wM := 0.0, a.c.ChangePenalty, a.c.SwitchPenalty
	// The ensemble's scale, then the cost of every model's last
	// recommendation on this window.
	sum := 0.0
	for _, x := range sig {
		sum += x
	}
	a.ew = a.delta*a.ew + (1-a.delta)*float64(len(sig))
	a.ev = a.delta*a.ev + (1-a.delta)*sum
	if a.closed && a.ev > 0 {
		norm := float64(len(sig)) * a.ev / a.ew
		s := append(a.sorted[:0], sig...)
		sort.Float64s(s)
		a.sorted = s
		cum := append(a.cum[:0], 0)
		for i, x := range s {
			cum = append(cum, cum[i]+x)
		}
		a.cum = cum
		for i, r := range a.ratios {
			for m, L := range a.lim[i] {
				j := 0 // s[:j] ≤ L
				if len(s) == 1 {
					if s[0] <= L {
						j = 1
					}
				} else {
					j = sort.Search(len(s), func(q int) bool { return s[q] > L })
				}
				under := L*float64(j) - cum[j]
				over := (cum[len(s)] - cum[j]) - L*float64(len(s)-j)
				c := (r*over + under) / norm
				if a.changed[i][m] {
					c += wL
				}
				a.cost[i][m] = a.delta*a.cost[i][m] + (1-a.delta)*c
			}
		}
	}

	// Each decay's histogram takes the window, then each model's argmin.
	for _, d := range a.dec {
		for _, x := range sig {
			b := a.h.bucket(x)
			d.W[b] += d.wt
			d.V[b] += d.wt * x
			d.lo, d.hi = min(d.lo, b), max(d.hi, b)
		}
		d.wt *= d.grow
		if d.wt > 1e100 {
			for k := d.lo; k <= d.hi; k++ {
				d.W[k] /= d.wt
				d.V[k] /= d.wt
			}
			d.wt = 1
		}
		cw, cv := 0.0, 0.0
		for k := d.lo; k <= d.hi; k++ {
			cw += d.W[k]
			cv += d.V[k]
			d.cw[k], d.cv[k] = cw, cv
		}
	}
	if a.dec[0].hi < 0 {
		return // no sample
	}
	for i, r := range a.ratios {
		wo = r
		for di, d := range a.dec {
			Wt := d.cw[d.hi]
			// With no penalty the cost is convex in L and its least
			// value over the buckets' ends is at the end of the bucket
			// where the cumulative weight reaches r/(1+r), or the end
			// of the bucket before.
			want := r / (1 + r) * Wt
			ks := d.lo + sort.Search(d.hi-d.lo+1, func(j int) bool { return d.cw[d.lo+j] >= want })
			ks = min(ks, d.hi)
			best, bc := ks, a.costAt(d, wo, ks)
			if ks > 0 {
				if c := a.costAt(d, wo, ks-1); c < bc {
					best, bc = ks-1, c
				}
			}
			p := a.prev[i][di]
			if p >= 0 && p != best && a.costAt(d, wo, p) <= bc+wL {
				best = p
			}
			a.prev[i][di] = best
			Lb := a.ends[best]
			nm := len(a.c.Margins)
			for m := di * nm; m < (di+1)*nm; m++ {
				L := Lb * (1 + a.mMar[m])
				a.changed[i][m] = a.closed && L != a.lim[i][m]
				a.lim[i][m] = L
			}
		}
		// The ensemble's pick.
		bm, bs := -1, 0.0
		for m, L := range a.lim[i] {
			s := a.cost[i][m]
			if m != a.chosen[i] {
				s += wM
			}
			if L != a.alloc[i] {
				s += wL
			}
			if bm < 0 || s < bs || (s == bs && L > a.lim[i][bm]) {
				bm, bs = m, s
			}
		}
		a.chosen[i] = bm
		a.alloc[i] = a.lim[i][bm]
	}
}

// Alloc is the limit at the first ratio.
func (a *AutopilotML) Alloc() float64 { return a.alloc[0] }

// Allocs are the limits at every ratio, in order.
func (a *AutopilotML) Allocs() []float64 { return a.alloc }

// Chosen is the model the ensemble follows at ratio i (−1: none yet);
// Model says its half-life and margin.
func (a *AutopilotML) Chosen(i int) int { return a.chosen[i] }

func (a *AutopilotML) Model(m int) (halfLife, margin float64) {
	return a.c.HalfLives[a.mDec[m]], a.mMar[m]
}
