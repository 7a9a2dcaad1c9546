package heal

import (
	"time"

	"aiosfs/engines/ml"
)

// Health is one metric of one component: what `heal/health` lists and
// `agents/N/health` shows for the agent.
type Health struct {
	Component string  // "agent:3", "host", "engine:sched"
	Metric    string  // mem fds disk procs cpu psi_cpu ...
	Value     float64 // the metric now, in base units
	Baseline  float64 // its slow moving average (half-life ~100 updates)
	Limit     float64 // what it is measured against; 0 for none
	Trend     Trend
	Score     float64 // 0..1, 1 healthy
}

// gauge tracks one metric: a slow baseline, a Holt trend of its badness
// (0 fine .. 1 exhausted) and the score 1-badness.
type gauge struct {
	h        Health
	holt     ml.Holt
	baseN    int
	critical bool // set by the predictor: a failure of this metric is near
}

func newGauge(component, metric string) *gauge {
	return &gauge{h: Health{Component: component, Metric: metric, Score: 1}, holt: ml.Holt{Alpha: 0.3, Beta: 0.2}}
}

// update records value v against limit, with badness bad in 0..1.
func (g *gauge) update(t time.Time, v, limit, bad float64) {
	g.h.Value, g.h.Limit = v, limit
	g.baseN++
	a := 0.01
	if g.baseN < 100 {
		a = 1 / float64(g.baseN)
	}
	g.h.Baseline += a * (v - g.h.Baseline)
	bad = clamp01(bad)
	g.holt.Update(float64(t.UnixNano())/1e9, bad)
	g.h.Score = 1 - bad
	perMin := g.holt.Trend * 60
	switch {
	case g.critical || g.h.Score < 0.1:
		g.h.Trend = Critical
	case perMin > 0.05:
		g.h.Trend = Degrading
	case perMin < -0.05:
		g.h.Trend = Improving
	default:
		g.h.Trend = Stable
	}
}

// fillBad maps a fill fraction to badness: 0 up to half full, 1 full.
func fillBad(f float64) float64 { return clamp01((f - 0.5) / 0.5) }

// psiBad maps a PSI avg10 percentage: 0 up to 10 %, 1 at 80 %.
func psiBad(p float64) float64 { return clamp01((p - 10) / 70) }

// hostHealth keeps the host's gauges.
type hostHealth struct {
	g     map[string]*gauge
	order []string
}

func (hh *hostHealth) set(t time.Time, name string, v, limit, bad float64) {
	if hh.g == nil {
		hh.g = map[string]*gauge{}
	}
	g := hh.g[name]
	if g == nil {
		g = newGauge("host", name)
		hh.g[name] = g
		hh.order = append(hh.order, name)
	}
	g.update(t, v, limit, bad)
}

func (hh *hostHealth) observe(s HostSample) {
	t := s.Time
	if s.PSICPU >= 0 {
		hh.set(t, "psi_cpu", s.PSICPU, 100, psiBad(s.PSICPU))
	}
	if s.PSIMem >= 0 {
		hh.set(t, "psi_mem", s.PSIMem, 100, psiBad(s.PSIMem*2))
	}
	if s.PSIIO >= 0 {
		hh.set(t, "psi_io", s.PSIIO, 100, psiBad(s.PSIIO))
	}
	if s.MemTotal > 0 {
		hh.set(t, "mem_available", float64(s.MemAvailable), float64(s.MemTotal), fillBad(1-float64(s.MemAvailable)/float64(s.MemTotal)))
	}
	for _, d := range s.Disks {
		if d.Total > 0 {
			hh.set(t, "disk_free:"+d.Path, float64(d.Free), float64(d.Total), fillBad(1-float64(d.Free)/float64(d.Total)))
		}
	}
	if s.FDMax > 0 {
		hh.set(t, "fds", float64(s.FDUsed), float64(s.FDMax), fillBad(float64(s.FDUsed)/float64(s.FDMax)))
	}
	if s.NCPU > 0 {
		hh.set(t, "load1", s.Load1, float64(s.NCPU), clamp01((s.Load1/float64(s.NCPU)-1)/2))
	}
}

// engineHealth keeps one daemon engine's gauges.
type engineHealth struct {
	last  EngineStat
	has   bool
	lat   *gauge
	errs  *gauge
	drops *gauge
}

func (eh *engineHealth) observe(s EngineStat, interval time.Duration) {
	c := "engine:" + s.Name
	// Gauges are made as their figures come: an engine whose loop is
	// not timed has no loop_latency, and drops are listed once some
	// engine reports any (none does yet: the bus does not say).
	if eh.errs == nil {
		eh.errs = newGauge(c, "errors")
	}
	if eh.lat == nil && !s.NoLoop {
		eh.lat = newGauge(c, "loop_latency")
	}
	if eh.drops == nil && s.Drops > 0 {
		eh.drops = newGauge(c, "drops")
	}
	// A failed engine is Critical in every metric it has, from this
	// observation on.
	eh.errs.critical = s.Failed
	if eh.lat != nil {
		eh.lat.critical = s.Failed
	}
	iv := interval.Seconds()
	if iv <= 0 {
		iv = 1
	}
	if eh.lat != nil && !s.NoLoop {
		lat := s.LoopLatency.Seconds()
		eh.lat.update(s.Time, lat, iv, clamp01(lat/(5*iv)))
	}
	var de, dd float64
	if eh.has {
		if s.Errors >= eh.last.Errors {
			de = float64(s.Errors - eh.last.Errors)
		}
		if s.Drops >= eh.last.Drops {
			dd = float64(s.Drops - eh.last.Drops)
		}
	}
	eh.errs.update(s.Time, float64(s.Errors), 0, clamp01(de/5))
	if eh.drops != nil {
		eh.drops.update(s.Time, float64(s.Drops), 0, clamp01(dd/50))
	}
	eh.last, eh.has = s, true
}
