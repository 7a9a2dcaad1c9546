package heal

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"aiosfs/engines/ml"
	"aiosfs/engines/telemetry"
)

// Obs is one observation of one agent: its telemetry sample and the limits
// it runs under, as the daemon knows them. Zero limits are "none".
type Obs struct {
	Sample          telemetry.Sample
	MemMax, MemHigh int64         // memory.max / memory.high (v1: limit_in_bytes / soft limit)
	FDMax           int64         // RLIMIT_NOFILE of the agent's main process
	PidsMax         int64         // pids.max
	DiskUsed        int64         // bytes used on the agent's filesystem (its state or working directory)
	DiskSize        int64         // that filesystem's size; 0: not watched
	Heartbeat       time.Time     // the last write to agents/N/heartbeat; zero: the agent does not heartbeat
	HeartbeatEvery  time.Duration // the interval it declared; 0: learn it from the gaps
}

// Prediction is one possible failure of one agent.
type Prediction struct {
	Kind   Kind
	P      float64 // probability that it happens within Horizon (exhaustion, crash loop) or is happening (hang, overload)
	ETA    float64 // seconds until it is expected; 0 now; -1 unknown
	Source string  // "learned" (a hazard fitted on history), "prior" (hand-set weights) or "rules" (degraded)
	Reason string
	X      []float64 // the features the hazard saw, kept for learning

	// why holds Reason's figures while Reason is not yet written
	// (PassRemedies: a pass formats no text; a reader of the
	// prediction gets it through text, which Predictions and the
	// renderers call).
	why  reason
	lazy bool // why, not Reason, holds the text
}

// reason is what Prediction.text formats: form picks the sentence, f
// holds its figures in order, unit the exhaustion's unit.
type reason struct {
	form int
	unit string
	f    [6]float64
}

const (
	reasonExhaust = iota
	reasonCrash
	reasonHang
	reasonOverload
)

// format writes the sentence of r, as predict wrote it before the text
// was made lazy.
func (r *reason) format() string {
	f := &r.f
	switch r.form {
	case reasonExhaust:
		return fmt.Sprintf("%s %.0f of %.0f (%.0f%%), %+.4g/s, tau %.2f over %.1fs", r.unit, f[0], f[1], f[2], f[3], f[4], f[5])
	case reasonCrash:
		return fmt.Sprintf("%.0f%% of the restart intensity used, %.0f%% of runs short", f[0], f[1])
	case reasonHang:
		return fmt.Sprintf("idle %.1fs (allowed %.1fs), heartbeat %.0f%% of 3 intervals late", f[0], f[1], f[2])
	}
	return fmt.Sprintf("host cpu pressure %.1f%% (baseline %.1f%%), %.0f%% of periods throttled", f[0], f[1], f[2])
}

// text is the prediction's Reason, formatting it now when the pass left
// it to its readers.
func (p *Prediction) text() string {
	if p.lazy {
		return p.why.format()
	}
	return p.Reason
}

// written returns ps with every Reason written (for callers outside the
// package), in a new slice.
func written(ps []Prediction) []Prediction {
	out := append([]Prediction(nil), ps...)
	for i := range out {
		out[i].Reason, out[i].lazy = out[i].text(), false
	}
	return out
}

// because makes a Prediction's reason: Reason written now, or its figures
// kept for later (PassRemedies).
func because(p *Prediction, r reason) {
	if PassRemedies() {
		p.why, p.lazy = r, true
		return
	}
	p.Reason = r.format()
}

// Horizon is how far ahead exhaustion is forecast: the urgency feature
// saturates at ETA 0 and is one half at ETA Horizon.
const Horizon = 60.0

// point is one kept observation.
type point struct {
	t                     float64 // seconds
	mem, fds, disk, procs float64
	cpu, cpuSec, io       float64
}

// window keeps at most n points at least step apart.
type window struct {
	n    int
	step float64
	p    []point
	t, y []float64 // series' buffers (PassRemedies)
}

func (w *window) add(p point) {
	if k := len(w.p); k > 0 && p.t-w.p[k-1].t < w.step {
		w.p[k-1] = p // keep the newest, not one per sample
		return
	}
	if len(w.p) >= w.n {
		copy(w.p, w.p[1:])
		w.p = w.p[:len(w.p)-1]
	}
	w.p = append(w.p, p)
}

func (w *window) series(f func(point) float64) (t, y []float64) {
	if PassRemedies() { // the window's own buffers: the fit keeps neither
		if cap(w.t) < len(w.p) {
			w.t, w.y = make([]float64, max(w.n, len(w.p))), make([]float64, max(w.n, len(w.p)))
		}
		t, y = w.t[:len(w.p)], w.y[:len(w.p)]
	} else {
		t = make([]float64, len(w.p))
		y = make([]float64, len(w.p))
	}
	for i, p := range w.p {
		t[i], y[i] = p.t, f(p)
	}
	return
}

// flat reports whether f of every point is the same finite number
// (bitwise, as ml.TimeToExhaust's test for a constant series), and it.
func (w *window) flat(f func(point) float64) (float64, bool) {
	if len(w.p) == 0 {
		return 0, false
	}
	v := f(w.p[0])
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	b := math.Float64bits(v)
	for _, p := range w.p[1:] {
		if math.Float64bits(f(p)) != b {
			return 0, false
		}
	}
	return v, true
}

func (w *window) span() float64 {
	if len(w.p) < 2 {
		return 0
	}
	return w.p[len(w.p)-1].t - w.p[0].t
}

// MinSpan is how many seconds of window the exhaustion fit wants before
// it trusts a trend: the evidence feature is span/MinSpan, capped at 1.
const MinSpan = 5.0

// Prior hazard weights per kind, before any history: the features are
// documented at each kind's feature function. They were set by reasoning
// about the features' ranges (docs/heal.md), not fitted on the suite.
func priorHazard(k Kind) *ml.Hazard {
	switch k {
	case MemoryExhaustion, FDExhaustion, DiskExhaustion, PIDExhaustion:
		// x = [fill, urgency, tau, evidence]
		return ml.NewHazard([]float64{3, 6, 2, 2}, -8)
	case CrashLoop:
		// x = [recent crashes / intensity, short-lived share of them]
		return ml.NewHazard([]float64{8, 2}, -5.5)
	case Hang:
		// x = [idle / allowed idle, heartbeat age / (3 intervals)]
		return ml.NewHazard([]float64{8, 8}, -8)
	case CPUOverload:
		// x = [host PSI cpu some avg10 / 100, share of periods throttled,
		//      PSI above the host's own baseline / 100]
		return ml.NewHazard([]float64{10, 4, 10}, -8)
	}
	return ml.NewHazard(nil, -10)
}

// exhaustFeatures are [fill, urgency H/(H+eta), tau, evidence].
func exhaustFeatures(e ml.Exhaustion, span float64) []float64 {
	u := 0.0
	if !math.IsInf(e.ETA, 1) {
		u = Horizon / (Horizon + e.ETA)
	}
	return []float64{math.Min(e.Fill, 1.5), u, e.Tau, math.Min(1, span/MinSpan)}
}

// passRemedies is PassRemedies' switch; on by default.
var passRemedies atomic.Bool

func init() { passRemedies.Store(true) }

// PassRemedies reports whether the engine's per-pass cost remedies are
// on (docs/bench/cost-hooks.md): a prediction's reason is formatted when
// it is read, not at every pass, and the exhaustion fits' series are
// built in the window's own buffers. Each gives the same files and
// actions as without it; the switch is there so that a bench can measure
// what they save in one daemon run.
func PassRemedies() bool { return passRemedies.Load() }

// SetPassRemedies switches the remedies of PassRemedies, for every
// engine of the process.
func SetPassRemedies(on bool) { passRemedies.Store(on) }

// agentPredictor holds what prediction needs of one agent.
type agentPredictor struct {
	w         window
	last      Obs
	has       bool
	idleSince float64 // seconds; when CPU and progress last stopped; -1 moving
	maxIdle   float64 // the longest idle stretch seen while healthy
	hbGaps    []float64
	lastHB    time.Time
	throttled float64    // share of the last interval's periods throttled (approx)
	flat      [4]flatFit // the exhaustion kinds' last fits of a flat series (PassRemedies)
}

// flatFit is the last exhaustion prediction of one kind made from a flat
// series (every point v, bitwise) over a span of at least MinSpan: the fit
// (Level v, Slope 0, Tau 0) and so the features and P depend only on v,
// the limit and the hazard, so a pass whose series is still v, under the
// same limit and hazard, takes it from here; only the reason's span is
// new.
type flatFit struct {
	ok    bool
	v     float64
	limit float64
	h     *ml.Hazard
	x     ml.Exhaustion
	pr    Prediction // Reason not written
}

func newAgentPredictor() *agentPredictor {
	return &agentPredictor{w: window{n: 64, step: 0.2}, idleSince: -1}
}

func (a *agentPredictor) observe(o Obs) {
	s := o.Sample
	t := float64(s.Time.UnixNano()) / 1e9
	p := point{t: t, mem: float64(s.Mem), fds: float64(s.FDs), disk: float64(o.DiskUsed), procs: float64(s.Procs),
		cpu: s.CPU, cpuSec: s.CPUSeconds, io: float64(s.IORead + s.IOWrite)}
	if s.Mem == 0 {
		p.mem = float64(s.RSS)
	}
	moving := true
	if a.has {
		prev := a.w.p[len(a.w.p)-1]
		// Progress: CPU, IO, memory moving by more than 1 % (a leaker
		// allocating at a few MiB/s uses almost no CPU), or a new
		// heartbeat (an agent waiting on its work beats while idle).
		moving = s.CPU > 0.005 || p.cpuSec-prev.cpuSec > 0.005 || p.io != prev.io ||
			math.Abs(p.mem-prev.mem) > math.Max(64<<10, 0.01*prev.mem) ||
			!o.Heartbeat.IsZero() && !o.Heartbeat.Equal(a.lastHB)
		dt := t - prev.t
		if dt > 0 && s.Throttled >= a.last.Sample.Throttled {
			// nr_throttled counts 100 ms periods: share of the interval's periods
			a.throttled = clamp01(float64(s.Throttled-a.last.Sample.Throttled) / (dt * 10))
		}
	}
	if moving {
		if a.idleSince >= 0 {
			if d := t - a.idleSince; d > a.maxIdle {
				a.maxIdle = d
			}
		}
		a.idleSince = -1
	} else if a.idleSince < 0 {
		a.idleSince = t
	}
	if !o.Heartbeat.IsZero() && !o.Heartbeat.Equal(a.lastHB) {
		if !a.lastHB.IsZero() {
			a.hbGaps = append(a.hbGaps, o.Heartbeat.Sub(a.lastHB).Seconds())
			if len(a.hbGaps) > 32 {
				a.hbGaps = a.hbGaps[1:]
			}
		}
		a.lastHB = o.Heartbeat
	}
	a.w.add(p)
	a.last, a.has = o, true
}

// reset forgets the trend (after a restart: a fresh process starts low)
// and the last heartbeat (the new process has not beaten yet; the gaps
// learned stay).
func (a *agentPredictor) reset() {
	a.w.p = a.w.p[:0]
	a.idleSince = -1
	a.has = false
	a.lastHB = time.Time{}
}

type hazards [NumKinds]*ml.Hazard

func defaultHazards() hazards {
	var h hazards
	for k := Kind(0); k < NumKinds; k++ {
		h[k] = priorHazard(k)
	}
	return h
}

func src(h *ml.Hazard, rules bool) string {
	switch {
	case rules:
		return "rules"
	case h.Prior:
		return "prior"
	}
	return "learned"
}

// predict returns the agent's predictions, one per kind that applies.
// rules: use the prior weights only (degraded mode). psiCPU: host CPU
// pressure avg10 (-1 unknown). crash: the supervisor's crash features.
//
// out, when not nil, is appended to (the agent's last predictions,
// emptied: PassRemedies reuses their array, which readers only copy under
// the engine's lock).
func (a *agentPredictor) predict(out []Prediction, h *hazards, rules bool, now time.Time, psiCPU, psiBase float64, crash []float64, crashETA float64, beatsOnly bool) []Prediction {
	hz := func(k Kind) *ml.Hazard {
		if rules {
			return priorHazard(k)
		}
		return h[k]
	}
	if a.has && len(a.w.p) >= 2 {
		span := a.w.span()
		type ex struct {
			k     Kind
			f     func(point) float64
			limit float64
			unit  string
		}
		memLimit := float64(a.last.MemMax)
		if a.last.MemHigh > 0 && (memLimit <= 0 || float64(a.last.MemHigh) < memLimit) {
			memLimit = float64(a.last.MemHigh)
		}
		for i, e := range []ex{
			{MemoryExhaustion, func(p point) float64 { return p.mem }, memLimit, "mem"},
			{FDExhaustion, func(p point) float64 { return p.fds }, float64(a.last.FDMax), "fds"},
			{DiskExhaustion, func(p point) float64 { return p.disk }, float64(a.last.DiskSize), "disk"},
			{PIDExhaustion, func(p point) float64 { return p.procs }, float64(a.last.PidsMax), "procs"},
		} {
			if e.limit <= 0 {
				continue
			}
			H := hz(e.k)
			// A flat series (an idle agent's) with a full evidence span
			// gives the fit and the features of the last pass again.
			c := &a.flat[i]
			v, flat := 0.0, false
			if PassRemedies() && !rules && span >= MinSpan {
				v, flat = a.w.flat(e.f)
				if flat && c.ok && math.Float64bits(c.v) == math.Float64bits(v) && c.limit == e.limit && c.h == H {
					pr := c.pr
					because(&pr, reason{form: reasonExhaust, unit: e.unit, f: [6]float64{c.x.Level, e.limit, 100 * c.x.Fill, c.x.Slope, c.x.Tau, span}})
					out = append(out, pr)
					continue
				}
			}
			t, y := a.w.series(e.f)
			x := ml.TimeToExhaust(t, y, e.limit)
			feat := exhaustFeatures(x, span)
			pr := Prediction{Kind: e.k, P: H.P(feat), ETA: -1, Source: src(H, rules), X: feat}
			if span < MinSpan && x.Fill < 0.9 {
				// too short a window to tell a leak from a sawtooth's rise:
				// no trend-based alarm yet (a nearly full limit still is one)
				pr.P = math.Min(pr.P, 0.5*feat[3])
			}
			if !math.IsInf(x.ETA, 1) {
				pr.ETA = x.ETA
			}
			*c = flatFit{ok: flat, v: v, limit: e.limit, h: H, x: x, pr: pr}
			because(&pr, reason{form: reasonExhaust, unit: e.unit, f: [6]float64{x.Level, e.limit, 100 * x.Fill, x.Slope, x.Tau, span}})
			out = append(out, pr)
		}
	}
	if crash != nil {
		H := hz(CrashLoop)
		pr := Prediction{Kind: CrashLoop, P: H.P(crash), ETA: crashETA, Source: src(H, rules), X: crash}
		because(&pr, reason{form: reasonCrash, f: [6]float64{100 * crash[0], 100 * crash[1]}})
		out = append(out, pr)
	}
	if a.has {
		t := float64(now.UnixNano()) / 1e9
		idle := 0.0
		if a.idleSince >= 0 {
			idle = t - a.idleSince
		}
		allowed := math.Max(5, 3*a.maxIdle)
		hb := 0.0
		every := a.last.HeartbeatEvery.Seconds()
		if every <= 0 && len(a.hbGaps) >= 3 {
			every = median(a.hbGaps)
		}
		if !a.lastHB.IsZero() && every > 0 {
			hb = now.Sub(a.lastHB).Seconds() / (3 * every)
		}
		if beatsOnly && a.lastHB.IsZero() {
			// Config.HangByHeartbeat: an agent that does not beat is
			// never found hung by idleness alone (a server waiting for
			// work is idle, not hung).
			idle = 0
		}
		feat := []float64{idle / allowed, hb}
		H := hz(Hang)
		pr := Prediction{Kind: Hang, P: H.P(feat), ETA: 0, Source: src(H, rules), X: feat}
		because(&pr, reason{form: reasonHang, f: [6]float64{idle, allowed, 100 * hb}})
		out = append(out, pr)
		if psiCPU >= 0 || a.throttled > 0 {
			feat := []float64{math.Max(psiCPU, 0) / 100, a.throttled, math.Max(0, psiCPU-psiBase) / 100}
			H := hz(CPUOverload)
			pr := Prediction{Kind: CPUOverload, P: H.P(feat), ETA: 0, Source: src(H, rules), X: feat}
			because(&pr, reason{form: reasonOverload, f: [6]float64{math.Max(psiCPU, 0), psiBase, 100 * a.throttled}})
			out = append(out, pr)
		}
	}
	return out
}

func median(x []float64) float64 {
	s := append([]float64(nil), x...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
