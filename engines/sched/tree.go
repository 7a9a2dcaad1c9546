package sched

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"aiosfs/ctl"
	"aiosfs/engines/bus"
	"aiosfs/engines/ml"
	"aiosfs/fs"
)

// AgentTab is the scheduler's rows of agents/N.
func (e *Engine) AgentTab(ns *fs.NS) fs.Dirtab {
	text := func(name, doc string, render func(id int) ([]byte, error)) fs.Entry {
		return fs.Entry{Name: name, Perm: 0444, Owner: "sched", Doc: doc, Make: func(id int, p string, own fs.Owner) fs.Node {
			return ns.Text(p, 0444, own, func(fs.Caller) ([]byte, error) { return render(id) })
		}}
	}
	return fs.Dirtab{
		text("pattern", "class=... period=... confidence=...: renderPattern", e.renderPattern),
		text("predict", "one line per resource and horizon: renderPredict", e.renderPredict),
		text("alloc", "limit=KEY value=... forecast=... floor=... share=... reason=...: renderAlloc", e.renderAlloc),
	}
}

// Nodes returns sched/. Its rows of agents/N are AgentTab and its verbs
// in agents/N/ctl AgentVerbs; the daemon wires both, as for every engine.
func (e *Engine) Nodes(ns *fs.NS) []fs.Node {
	root := fs.Owner{}
	t := e.Verbs()
	ns.Document("/sched/ctl", "the scheduler's verbs (read it for the table): enforce, buffer, fall, horizons, pin, ...")
	ns.Document("/sched/status", "enforce= buffer= fall= interval= horizons= capacity= slice= warmup= agents= ticks= decisions= changes=: renderStatus")
	ns.Document("/sched/model", "the forecasters and their errors per agent and horizon: renderModel")
	return []fs.Node{ns.StaticDir("/sched", 0555, root,
		ns.Ctl("/sched/ctl", 0644, root, t.Help, t.Exec),
		ns.Text("/sched/status", 0444, root, func(fs.Caller) ([]byte, error) { return e.renderStatus(), nil }),
		ns.Text("/sched/model", 0444, root, func(fs.Caller) ([]byte, error) { return e.renderModel(), nil }),
	)}
}

func (e *Engine) publish(kind string, agentID int, fields ...bus.Field) {
	if e.cfg.Bus != nil {
		e.cfg.Bus.Publish(bus.Event{Source: "sched", Kind: kind, Agent: agentID, Fields: fields})
	}
}

// durationVerb is a sched/ctl verb that sets one duration setting
// within lo..hi, and publishes it in seconds.
func (e *Engine) durationVerb(name, doc string, lo, hi time.Duration, set func(*Settings, time.Duration)) ctl.Verb {
	return ctl.Verb{Name: name, Args: "DURATION", Min: 1, Max: 1, Root: true, Doc: doc,
		Run: func(_ context.Context, _ fs.Caller, a []string) error {
			d, err := ctl.ParseDuration(a[0])
			if err != nil {
				return err
			}
			if d < lo || d > hi {
				return ctl.Errorf("%s %s outside %s..%s", name, d, lo, hi)
			}
			if err := e.setting(func(s *Settings) error { set(s, d); return nil }); err != nil {
				return err
			}
			e.publish(name, 0, bus.F("seconds", d.Seconds()))
			return nil
		}}
}

// Verbs is sched/ctl's table. Every verb parses all its arguments before
// it changes anything, so a refused line leaves the settings as they
// were, and changes them through commit, so a change that cannot be saved
// is refused with the save's errno and leaves them as they were too.
// Every one of them is root's alone (ctl.Verb.Root): the settings are the
// scheduler's for every agent, and pin changes another user's agent.
func (e *Engine) Verbs() ctl.Table {
	return ctl.Table{
		{Name: "enforce", Args: "on|off", Min: 1, Max: 1, Root: true, Doc: "apply allocations to agents' limits (off: predict only, never touch a limit)",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				on, err := ctl.ParseOnOff(a[0])
				if err != nil {
					return err
				}
				if err := e.commit(func(s *saved) error { s.Settings.Enforce = on; return nil },
					func(s *saved) { e.set = s.Settings; e.last = time.Time{} }); err != nil {
					return err
				}
				e.publish("enforce", 0, bus.F("value", a[0]))
				return nil
			}},
		{Name: "buffer", Args: "FRACTION", Min: 1, Max: 1, Root: true, Doc: "headroom above the forecast, 0..1 or 0%..100% (default 0.15)",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				v, err := ctl.ParseFraction(a[0])
				if err != nil {
					return err
				}
				if err := e.setting(func(s *Settings) error { s.Buffer = v; return nil }); err != nil {
					return err
				}
				e.publish("buffer", 0, bus.F("value", v))
				return nil
			}},
		{Name: "fall", Args: "FRACTION", Min: 1, Max: 1, Root: true, Doc: "most an allocation is lowered in a minute after a fall, 0..1 (default 0.45)",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				v, err := ctl.ParseFraction(a[0])
				if err != nil {
					return err
				}
				if err := e.setting(func(s *Settings) error { s.Fall = v; return nil }); err != nil {
					return err
				}
				e.publish("fall", 0, bus.F("value", v))
				return nil
			}},
		{Name: "horizons", Args: "DURATION[,DURATION...]", Min: 1, Max: 1, Root: true, Doc: "forecast horizons, ascending, e.g. 1s,5s,30s,60s; restarts every predictor",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				hs, err := ParseHorizons(a[0])
				if err != nil {
					return err
				}
				// The predictors restart only once the new horizons are
				// saved: a refused change costs them nothing learned.
				if err := e.commit(func(s *saved) error { s.Settings.Horizons = hs; return nil }, func(s *saved) {
					e.set = s.Settings
					for id, st := range e.agents {
						ns := e.newState()
						ns.manual, ns.cpu, ns.memHigh, ns.memMax, ns.weight, ns.vruntime = st.manual, st.cpu, st.memHigh, st.memMax, st.weight, st.vruntime
						ns.lastThr, ns.lastOOM, ns.seenThr = st.lastThr, st.lastOOM, st.seenThr
						if st.pin != "auto" {
							ns.setPin(st.pin)
						}
						e.agents[id] = ns
					}
				}); err != nil {
					return err
				}
				e.publish("horizons", 0, bus.F("value", a[0]))
				return nil
			}},
		e.durationVerb("interval", "time between allocation decisions, 100ms..1h (default 5s)",
			100*time.Millisecond, time.Hour, func(set *Settings, d time.Duration) { set.Interval = d }),
		e.durationVerb("slice", "CFS period of enforced agents' CPU quota, 20ms..1s (default 100ms; sporadic agents get a fifth, at least 20ms)",
			MinSlice, MaxSlice, func(set *Settings, d time.Duration) { set.Slice = d }),
		{Name: "warmup", Args: "SAMPLES", Min: 1, Max: 1, Root: true, Doc: "a new agent's allocations never go under its peak use for its first SAMPLES samples, 0..100000 (default 256; 0 off)",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				n, err := ctl.ParseInt(a[0], 0, 100000)
				if err != nil {
					return err
				}
				if err := e.setting(func(s *Settings) error { s.Warmup = int(n); return nil }); err != nil {
					return err
				}
				e.publish("warmup", 0, bus.F("samples", n))
				return nil
			}},
		{Name: "capacity", Args: "CORES", Min: 1, Max: 1, Root: true, Doc: "cores divided among agents (max: all online)",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				v, err := ctl.ParseCores(a[0])
				if err != nil {
					return err
				}
				if v == 0 || v > float64(e.cfg.NCPU) {
					v = float64(e.cfg.NCPU)
				}
				if err := e.setting(func(s *Settings) error { s.Capacity = v; return nil }); err != nil {
					return err
				}
				e.publish("capacity", 0, bus.F("cores", v))
				return nil
			}},
		{Name: "pin", Args: "AGENT FORECASTER|auto", Min: 2, Max: 2, Root: true, Doc: "make one forecaster the agent's only one (auto: the ensemble)",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				id, err := ctl.ParseInt(a[0], 1, math.MaxInt32)
				if err != nil {
					return err
				}
				if _, err := e.cfg.Agents.Info(int(id)); err != nil {
					return err
				}
				return e.pin(int(id), a[1])
			}},
	}
}

// AgentVerbs are the rows added to agents/N/ctl. They are the agent's
// owner's and root's: agents/N/ctl opens for writing only for them, and
// each verb checks the caller again (mayAct), so an adapter or a table
// reached another way cannot let another user change the agent's mode.
func (e *Engine) AgentVerbs(id int) ctl.Table {
	return ctl.Table{
		{Name: "sched", Args: "auto|manual", Min: 1, Max: 1, Doc: "manual: the scheduler never changes this agent's limits",
			Run: func(_ context.Context, c fs.Caller, a []string) error {
				var manual bool
				switch a[0] {
				case "auto":
				case "manual":
					manual = true
				default:
					return ctl.Errorf("sched %q: want auto or manual", a[0])
				}
				if err := e.mayAct(c, id); err != nil {
					return err
				}
				if err := e.commit(func(s *saved) error {
					sa := s.Agents[id]
					sa.Manual = manual
					s.Agents[id] = sa
					return nil
				}, func(*saved) { e.state(id).manual = manual }); err != nil {
					return err
				}
				e.publish("mode", id, bus.F("value", a[0]))
				return nil
			}},
		{Name: "forecaster", Args: "NAME|auto", Min: 1, Max: 1, Doc: "pin one forecaster (" + strings.Join(forecasterNames(), " ") + ") or auto",
			Run: func(_ context.Context, c fs.Caller, a []string) error {
				if err := e.mayAct(c, id); err != nil {
					return err
				}
				return e.pin(id, a[0])
			}},
	}
}

// mayAct refuses (EPERM) a caller who is neither root nor agent id's
// owner.
func (e *Engine) mayAct(c fs.Caller, id int) error {
	if c.Uid == 0 {
		return nil
	}
	if e.cfg.Agents == nil {
		return fs.Errorf(syscall.EPERM, "agent %d is not yours", id)
	}
	r, err := e.cfg.Agents.Info(id)
	if err != nil {
		return err
	}
	if r.Uid != c.Uid {
		return fs.Errorf(syscall.EPERM, "agent %d is not yours", id)
	}
	return nil
}

// state returns agent id's state, making one for an agent not sampled
// yet so that a mode or pin set before its first sample holds. The
// caller holds e.mu.
func (e *Engine) state(id int) *agentState {
	st := e.agents[id]
	if st == nil {
		st = e.newState()
		e.agents[id] = st
	}
	return st
}

// setPin makes forecaster name (or auto) st's only one.
func (st *agentState) setPin(name string) {
	for _, p := range st.pred {
		p.get().Pin(name)
	}
	st.pin = name
}

func forecasterNames() []string {
	return ml.NewPredictor(ml.Params{Horizons: []int{1}}).Models()
}

// pin commits agent id's forecaster (see commit).
func (e *Engine) pin(id int, name string) error {
	if name != "auto" && !validForecaster(name) {
		return ctl.Errorf("unknown forecaster %q: want one of %s or auto", name, strings.Join(forecasterNames(), " "))
	}
	if err := e.commit(func(s *saved) error {
		sa := s.Agents[id]
		sa.Pin = name
		if name == "auto" {
			sa.Pin = ""
		}
		if sa == (savedAgent{}) {
			delete(s.Agents, id)
		} else {
			s.Agents[id] = sa
		}
		return nil
	}, func(*saved) { e.state(id).setPin(name) }); err != nil {
		return err
	}
	e.publish("pin", id, bus.F("forecaster", name))
	return nil
}

func validForecaster(name string) bool {
	for _, n := range forecasterNames() {
		if n == name {
			return true
		}
	}
	return false
}

// ParseHorizons parses a comma-separated list of 1..8 durations, each
// 100ms..1h, strictly ascending ("1s,5s,30s,60s").
func ParseHorizons(s string) ([]time.Duration, error) {
	parts := strings.Split(s, ",")
	if len(parts) > 8 {
		return nil, ctl.Errorf("horizons %q: at most 8", s)
	}
	var out []time.Duration
	for _, p := range parts {
		d, err := ctl.ParseDuration(p)
		if err != nil {
			return nil, err
		}
		if d < 100*time.Millisecond || d > time.Hour {
			return nil, ctl.Errorf("horizon %s outside 100ms..1h", d)
		}
		if len(out) > 0 && d <= out[len(out)-1] {
			return nil, ctl.Errorf("horizons %q: not ascending", s)
		}
		out = append(out, d)
	}
	return out, nil
}

func (e *Engine) live(id int) (*agentState, error) {
	if _, err := e.cfg.Agents.Info(id); err != nil {
		return nil, err
	}
	return e.agents[id], nil
}

func g(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// renderPattern is agents/N/pattern, one line per resource:
//
//	resource=cpu class=periodic period=10.000 confidence=0.812 typical=0.003 peak=1.002 slope=0.000 samples=180 forecaster=auto
//
//	resource     cpu (cores), mem (bytes), io (bytes/s read+written),
//	             net (TCP bytes/s sent+received; forecast only, see package doc)
//	class        unknown steady periodic sporadic growing (re-detected every
//	             64 samples over the last 512)
//	period       seconds, 0 unless periodic
//	confidence   0..1 (see Classify)
//	typical peak median and maximum over the last 512 samples, resource units
//	slope        resource units per second over that window
//	samples      samples seen
//	forecaster   auto (the ensemble) or the pinned forecaster
//
// Once the series spans a day, a line `resource=cpu tod=v0,...,v23` gives
// the mean per UTC hour. An agent with no sample yet has no lines.
func (e *Engine) renderPattern(id int) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, err := e.live(id)
	if err != nil || st == nil {
		return nil, err
	}
	var b strings.Builder
	for r, name := range Resources {
		p := st.pred[r].get()
		pt := p.Pattern()
		fmt.Fprintf(&b, "resource=%s class=%s period=%s confidence=%s typical=%s peak=%s slope=%s samples=%d forecaster=%s\n",
			name, pt.Class, g(float64(pt.Period)*st.step), g(pt.Confidence), g(pt.Typical), g(pt.Peak), g(pt.Slope/st.step), p.N(), p.Pinned())
	}
	for r, name := range Resources {
		if tod := st.pred[r].get().TimeOfDay(); tod != nil {
			vs := make([]string, len(tod))
			for i, v := range tod {
				vs[i] = g(v)
			}
			fmt.Fprintf(&b, "resource=%s tod=%s\n", name, strings.Join(vs, ","))
		}
	}
	return []byte(b.String()), nil
}

// renderPredict is agents/N/predict, one line per resource and horizon:
//
//	resource=cpu horizon=5.000 point=0.512 p90=0.600 p99=0.700 model=holtwinters weight=0.620
//
// horizon in seconds; point, p90, p99 in the resource's units (see
// pattern); model is the forecaster with the largest ensemble weight at
// that horizon and weight its share (sched/model has them all).
func (e *Engine) renderPredict(id int) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, err := e.live(id)
	if err != nil || st == nil {
		return nil, err
	}
	var b strings.Builder
	for r, name := range Resources {
		for _, f := range st.pred[r].get().Forecasts() {
			fmt.Fprintf(&b, "resource=%s horizon=%s point=%s p90=%s p99=%s model=%s weight=%s\n",
				name, g(float64(f.Horizon)*st.step), g(f.Point), g(f.P90), g(f.P99), f.Model, g(f.Weight))
		}
	}
	return []byte(b.String()), nil
}

// renderAlloc is agents/N/alloc: a first line with the mode, then one
// line per limit the scheduler manages:
//
//	enforce=off mode=auto weight=100
//	limit=cpumax value=1.150 forecast=1.000 floor=0.000 share=1.150 reason=predicted-rise
//	limit=cpuperiod value=0.100 reason=slice-steady
//	limit=memhigh value=73400320 forecast=63823200 floor=0 reason=predicted-rise
//	limit=memmax value=83886080 forecast=72944000 floor=0 reason=initial
//
// cpumax in cores (share: the fair share it got), cpuperiod in seconds
// (the time slice the quota refills over: sched/ctl's slice, a fifth of
// it for a sporadic load, see SliceFor), memory in bytes; value
// is what the scheduler allocates (written to the kernel only with
// enforce=on and mode=auto); forecast the p90 (cpumax, memhigh) or p99
// (memmax) over the next decision interval; floor what an OOM kill or
// throttling taught; reason why the value last changed (initial,
// predicted-rise, predicted-fall, hold, oom-bump, throttle-bump,
// fair-share, warm-up-peak); cpuperiod's reason is slice-CLASS, the
// pattern class that chose it (see SliceFor). Lines appear after the
// first decision.
func (e *Engine) renderAlloc(id int) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, err := e.live(id)
	if err != nil || st == nil {
		return nil, err
	}
	var b strings.Builder
	mode := "auto"
	if st.manual {
		mode = "manual"
	}
	fmt.Fprintf(&b, "enforce=%s mode=%s weight=%d\n", ctl.OnOff(e.set.Enforce), mode, st.weight)
	if st.cpu.Value > 0 {
		why := st.cpu.Reason
		if st.share < st.demand-1e-9 {
			why = ReasonFair
		}
		fmt.Fprintf(&b, "limit=cpumax value=%s forecast=%s floor=%s share=%s reason=%s\n", g(math.Max(0.05, st.share)), g(st.cpu.Forecast), g(st.cpu.Floor), g(st.share), why)
		class := st.pred[resCPU].get().Pattern().Class
		fmt.Fprintf(&b, "limit=cpuperiod value=%s reason=slice-%s\n", g(SliceFor(e.set.Slice, class).Seconds()), class)
	}
	for _, m := range []struct {
		n string
		a *Alloc
	}{{"memhigh", &st.memHigh}, {"memmax", &st.memMax}} {
		if m.a.Value > 0 {
			fmt.Fprintf(&b, "limit=%s value=%d forecast=%d floor=%d reason=%s\n", m.n, int64(m.a.Value), int64(m.a.Forecast), int64(m.a.Floor), m.a.Reason)
		}
	}
	return []byte(b.String()), nil
}

// renderStatus is sched/status: a settings line, then one line per agent.
//
//	enforce=off buffer=0.150 fall=0.050 interval=5.000 horizons=1,5,30,60 capacity=2.000 agents=2 ticks=120 decisions=0 changes=0
//	agent=1 mode=auto weight=100 vruntime=12.345 cpu=0.500 demand=0.575 share=0.575
//
// interval and horizons in seconds, capacity and cpu (latest use),
// demand (allocation before fair sharing) and share in cores; vruntime
// is CPU seconds scaled by 100/weight; changes counts limits written.
func (e *Engine) renderStatus() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	hs := make([]string, len(e.set.Horizons))
	for i, h := range e.set.Horizons {
		hs[i] = strconv.FormatFloat(h.Seconds(), 'f', -1, 64)
	}
	fmt.Fprintf(&b, "enforce=%s buffer=%s fall=%s interval=%s horizons=%s capacity=%s slice=%s warmup=%d agents=%d ticks=%d decisions=%d changes=%d\n",
		ctl.OnOff(e.set.Enforce), g(e.set.Buffer), g(e.set.Fall), g(e.set.Interval.Seconds()), strings.Join(hs, ","), g(e.set.Capacity), g(e.set.Slice.Seconds()), e.set.Warmup,
		len(e.agents), e.ticks, e.decisions, e.changes)
	for _, id := range e.ids() {
		st := e.agents[id]
		mode := "auto"
		if st.manual {
			mode = "manual"
		}
		w := st.weight
		if w == 0 {
			w = 100
		}
		fmt.Fprintf(&b, "agent=%d mode=%s weight=%d vruntime=%s cpu=%s demand=%s share=%s\n", id, mode, w, g(st.vruntime), g(st.used), g(st.demand), g(st.share))
	}
	return []byte(b.String())
}

// renderModel is sched/model: per agent, resource and horizon, every
// forecaster's standing and then the ensemble's:
//
//	agent=1 resource=cpu horizon=5.000 forecaster=ar loss=0.0123 weight=0.410 samples=100
//
// loss is the forecaster's decayed mean absolute error (decay 0.99 per
// sample) divided by the series' mean level, so it is comparable across
// resources; weight its share of the ensemble at that horizon (a softmax
// of the losses relative to the best); samples the predictions scored.
func (e *Engine) renderModel() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, id := range e.ids() {
		st := e.agents[id]
		for r, name := range Resources {
			for _, m := range st.pred[r].get().ModelStats() {
				fmt.Fprintf(&b, "agent=%d resource=%s horizon=%s forecaster=%s loss=%s weight=%s samples=%d\n",
					id, name, g(float64(m.Horizon)*st.step), m.Model, strconv.FormatFloat(m.Loss, 'f', 4, 64), g(m.Weight), m.Samples)
			}
		}
	}
	return []byte(b.String())
}

func (e *Engine) ids() []int {
	ids := make([]int, 0, len(e.agents))
	for id := range e.agents {
		ids = append(ids, id)
	}
	sortInts(ids)
	return ids
}

func sortInts(a []int) { sort.Ints(a) }
