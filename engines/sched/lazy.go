package sched

import (
	"math"
	"slices"

	"aiosfs/engines/ml"
)

// lazyPred is one resource's predictor of one agent, made only when
// something needs more of it than its samples: a forecast, a pattern, a
// pin, a file of sched/ that shows them. Until then it keeps what it was
// given, run-length encoded, and replays it into a fresh ml.Predictor
// when made, so what the predictor then says is bit for bit what it
// would have said had it been there from the start (TestLazyExact).
//
// Why: a Predictor is about 40 KB (Autopilot's hour-long window, the
// VPA histogram, the pattern ring), four per agent, made for every
// agent at its first sample: 26–33 MB of a 46 MB live heap at 200
// agents (docs/cost.md, "Memory"), though with enforcement off nothing
// but the agent's sched files ever reads them. An idle agent's series
// are a few runs (a start-up blip, then zeros), some hundred bytes.
//
// What a replay needs to be exact: the values in order (runs), and for
// the time of day, which hour each sample fell in (segs) and the first
// and last sample times (Observe uses the time for nothing else; a
// sample with time 0, a replayed history's, counts in no hour). The
// samples in between are replayed at a made-up time in their hour.
//
// A series of many distinct values (a busy agent's CPU) is made as soon
// as it passes maxRuns runs, and any series when its hours pass maxSegs
// (two days), so what is kept stays bounded; a made predictor stays.
type lazyPred struct {
	params ml.Params
	p      *ml.Predictor // nil until made

	runs        []obsRun
	segs        []hourSeg
	n           int     // samples kept (the predictor's N)
	npos        int     // of which with a time > 0
	first, last float64 // the first and last of those times
}

// obsRun is n samples of the value x in a row (bitwise equal).
type obsRun struct {
	x float64
	n int
}

// hourSeg says that from sample start on, samples fell in hour (UTC
// hour of day), or had no time (-1).
type hourSeg struct {
	start int
	hour  int
}

// Bounds of what a lazyPred keeps before it makes its predictor: 512
// runs is 8 KB at most (a fifth of a predictor), enough for a memory
// series that changes at every full sample of a held agent (every 10 s)
// for an hour; 48 hours is two days of an idle agent.
const (
	maxRuns = 512
	maxSegs = 48
)

func newLazyPred(p ml.Params) *lazyPred { return &lazyPred{params: p} }

// Observe is ml.Predictor.Observe.
func (l *lazyPred) Observe(x, now float64) {
	if l.p != nil {
		l.p.Observe(x, now)
		return
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return // the predictor takes no notice of these, time included
	}
	if k := len(l.runs) - 1; k >= 0 && math.Float64bits(l.runs[k].x) == math.Float64bits(x) {
		l.runs[k].n++
	} else {
		l.runs = append(l.runs, obsRun{x: x, n: 1})
	}
	h := -1
	if now > 0 {
		h = int(math.Mod(now, 86400) / 3600)
		if l.npos == 0 {
			l.first = now
		}
		l.last = now
		l.npos++
	}
	if k := len(l.segs) - 1; k < 0 || l.segs[k].hour != h {
		l.segs = append(l.segs, hourSeg{start: l.n, hour: h})
	}
	l.n++
	if len(l.runs) > maxRuns || len(l.segs) > maxSegs {
		l.get()
	}
}

// N is ml.Predictor.N: samples taken.
func (l *lazyPred) N() int {
	if l.p != nil {
		return l.p.N()
	}
	return l.n
}

// Made says whether the predictor exists (for tests and the benchmarks).
func (l *lazyPred) Made() bool { return l.p != nil }

// Recent is ml.Predictor.Recent: the last n samples, at most
// ml.PatternWindow, oldest first.
func (l *lazyPred) Recent(n int) []float64 {
	if l.p != nil {
		return l.p.Recent(n)
	}
	n = min(n, l.n, ml.PatternWindow)
	out := make([]float64, max(n, 0))
	i := len(out)
	for k := len(l.runs) - 1; k >= 0 && i > 0; k-- {
		for c := l.runs[k].n; c > 0 && i > 0; c-- {
			i--
			out[i] = l.runs[k].x
		}
	}
	return out
}

// get returns the predictor, made and fed the kept samples if it was
// not yet.
func (l *lazyPred) get() *ml.Predictor {
	if l.p != nil {
		return l.p
	}
	p := ml.NewPredictor(l.params)
	l.replay(p, 0)
	l.p, l.runs, l.segs = p, nil, nil
	return p
}

// replay feeds p the kept samples from the from-th on, each with a time
// in its hour (the first and the last timed sample with their own).
func (l *lazyPred) replay(p *ml.Predictor, from int) {
	i, seg, pos := 0, 0, 0
	for _, r := range l.runs {
		for range r.n {
			for seg+1 < len(l.segs) && l.segs[seg+1].start <= i {
				seg++
			}
			ts := 0.0
			if h := l.segs[seg].hour; h >= 0 {
				pos++
				switch pos {
				case 1:
					ts = l.first
				case l.npos:
					ts = l.last
				default:
					// Any time in hour h: only the hour is used.
					ts = 1000*86400 + float64(h)*3600 + 1800
				}
			}
			if i >= from {
				p.Observe(r.x, ts)
			}
			i++
		}
	}
}

// snapshot is a copy of what l keeps, for a replay without the engine's
// lock (Engine.makeAside); nil when l is made.
func (l *lazyPred) snapshot() *lazyPred {
	if l.p != nil {
		return nil
	}
	return &lazyPred{params: l.params, runs: slices.Clone(l.runs), segs: slices.Clone(l.segs),
		n: l.n, npos: l.npos, first: l.first, last: l.last}
}

// adopt makes l with p, a predictor that snapshot s of l was replayed
// into, feeding it the samples l took since s: the predictor is then bit
// for bit the one get would have made, since an ml.Predictor uses a
// sample's time for its hour and for the first and last times alone, and
// the last sample fed is l's last. A predictor made meanwhile stays.
func (l *lazyPred) adopt(p *ml.Predictor, s *lazyPred) {
	if l.p != nil || s == nil || l.n < s.n {
		return
	}
	l.replay(p, s.n)
	l.p, l.runs, l.segs = p, nil, nil
}

// Path is ml.Predictor.Path, with one shortcut so that asking for the
// host's forecast does not make every idle agent's predictor: a series
// not yet made whose last ml.PatternWindow samples are one value (an
// idle or held agent: no period can be seen in it, and every forecaster
// has converged on that level) is forecast flat at that value. Any other
// series is made and asked, exactly.
func (l *lazyPred) Path(k int) []float64 {
	if l.p == nil && k >= 1 && len(l.runs) > 0 {
		if r := l.runs[len(l.runs)-1]; r.n >= ml.PatternWindow {
			out := make([]float64, k)
			for i := range out {
				out[i] = r.x
			}
			return out
		}
	}
	return l.get().Path(k)
}
