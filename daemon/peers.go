package daemon

import (
	"sync"
	"time"

	"aiosfs/engines/telemetry"
)

// Peers is what the devices offer one another beyond the bus, one per
// daemon and the same in every Deps: the scheduler's host load forecast
// and the timing of each engine's loop, both read by the healing engine
// (maintenance windows in the forecast's lulls; the health of the
// daemon's own engines). A device that has something sets it in its
// constructor; one that reads does so at run time, since constructors
// run in the files' order (heal's before sched's).
type Peers struct {
	mu       sync.Mutex
	forecast func(steps int) (start time.Time, step time.Duration, load []float64, ok bool)
	ready    func() bool // whether forecast has anything to say, cheaply
	loops    map[string]*loop
	names    []string // every device, in order: listed even without a timed loop
}

// loop is one engine's pass timing.
type loop struct {
	running time.Time     // start of the pass in progress; zero none
	last    time.Duration // the last pass's duration
	passes  uint64
}

// LoopStat is one engine's loop as Loops reports it.
type LoopStat struct {
	Name string
	// Latency is the last pass's duration or, while a pass runs, how long
	// it has been running: a pass that never ends keeps growing here.
	Latency time.Duration
	Passes  uint64
	Timed   bool // false: the engine's loop is not timed (only its errors are known)
}

func newPeers() *Peers { return &Peers{loops: map[string]*loop{}} }

// SetForecast gives the host forecast and a cheap test of whether it has
// anything to say (the scheduler's constructor).
func (p *Peers) SetForecast(f func(steps int) (time.Time, time.Duration, []float64, bool), ready func() bool) {
	p.mu.Lock()
	p.forecast, p.ready = f, ready
	p.mu.Unlock()
}

// ForecastReady reports whether Forecast would give one, without
// computing it (heal/status asks every interval).
func (p *Peers) ForecastReady() bool {
	p.mu.Lock()
	r := p.ready
	p.mu.Unlock()
	return r != nil && r()
}

// Forecast is the host load forecast for the next steps (0: the
// forecaster's own length); ok is false when there is none (no scheduler,
// or nothing sampled yet).
func (p *Peers) Forecast(steps int) (start time.Time, step time.Duration, load []float64, ok bool) {
	p.mu.Lock()
	f := p.forecast
	p.mu.Unlock()
	if f == nil {
		return time.Time{}, 0, nil, false
	}
	return f(steps)
}

// Timed wraps an engine's sampler hook so that each pass is timed as
// engine name's loop (Loops): the start is recorded before the hook runs,
// so a hook that blocks shows as a pass whose latency keeps growing.
func (p *Peers) Timed(name string, f func(time.Time, map[int]telemetry.Sample)) func(time.Time, map[int]telemetry.Sample) {
	p.mu.Lock()
	l := p.loops[name]
	if l == nil {
		l = &loop{}
		p.loops[name] = l
	}
	p.mu.Unlock()
	return func(now time.Time, latest map[int]telemetry.Sample) {
		start := time.Now()
		p.mu.Lock()
		l.running = start
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			l.running, l.last = time.Time{}, time.Since(start)
			l.passes++
			p.mu.Unlock()
		}()
		f(now, latest)
	}
}

// setNames records the devices' names (Start, once they are made).
func (p *Peers) setNames(names []string) {
	p.mu.Lock()
	p.names = names
	p.mu.Unlock()
}

// Loops reports every device's loop as of now, by name, then any other
// timed loop: Timed false for a device whose loop runs inside its
// package (mem, gpu) where no hook reaches.
func (p *Peers) Loops(now time.Time) []LoopStat {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []LoopStat
	seen := map[string]bool{}
	add := func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		st := LoopStat{Name: n}
		if l := p.loops[n]; l != nil {
			st.Timed, st.Latency, st.Passes = true, l.last, l.passes
			if !l.running.IsZero() {
				st.Latency = now.Sub(l.running)
			}
		}
		out = append(out, st)
	}
	for _, n := range p.names {
		add(n)
	}
	for n := range p.loops {
		add(n)
	}
	return out
}
