package heal

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// Renderers of the engine's files (docs/heal.md §Files). Text, one record
// per line, key=value fields in a fixed order separated by single spaces,
// fractions 0..1 and seconds with 3 decimals, "-" for nothing, values
// with blanks Go-quoted (docs/architecture.md §1).

func appendHealth(b []byte, h Health) []byte {
	b = append(b, "component="...)
	b = append(b, h.Component...)
	b = append(b, " metric="...)
	b = appendQ(b, h.Metric)
	b = append(b, " value="...)
	b = f3(b, h.Value)
	b = append(b, " baseline="...)
	b = f3(b, h.Baseline)
	b = append(b, " limit="...)
	if h.Limit > 0 {
		b = f3(b, h.Limit)
	} else {
		b = append(b, "max"...)
	}
	b = append(b, " trend="...)
	b = append(b, h.Trend.String()...)
	b = append(b, " score="...)
	b = f3(b, h.Score)
	return append(b, '\n')
}

func appendPrediction(b []byte, p Prediction) []byte {
	b = append(b, "failure="...)
	b = append(b, p.Kind.String()...)
	b = append(b, " p="...)
	b = f3(b, p.P)
	b = append(b, " eta="...)
	b = appendSecs(b, p.ETA)
	b = append(b, " source="...)
	b = append(b, p.Source...)
	b = append(b, " reason="...)
	b = appendQ(b, p.text())
	return append(b, '\n')
}

// summary computes an agent's score and trend: the score is the smallest
// of its metrics' scores and 1-P of each prediction; the trend is the
// worst of its metrics' trends, Critical when a prediction is an alarm.
func (e *Engine) summary(a *agentState) (float64, Trend) {
	score, tr := 1.0, Stable
	for _, g := range a.gauges {
		score = min(score, g.h.Score)
		if g.h.Trend > tr {
			tr = g.h.Trend
		}
	}
	for _, p := range a.preds {
		score = min(score, 1-p.P)
		if p.P >= e.cfg.ActP && p.ETA <= e.cfg.ActLead {
			tr = Critical
		}
	}
	if tr == Improving && score < 0.5 {
		tr = Degrading
	}
	return score, tr
}

func sortedGauges(m map[string]*gauge) []*gauge {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*gauge, len(names))
	for i, n := range names {
		out[i] = m[n]
	}
	return out
}

// AgentHealth renders `agents/N/health`: a summary line, then one
// `failure=` line per prediction (strongest first), then one
// `component=` line per metric:
//
//	agent=3 score=0.120 trend=Critical state=running restart=on-failure starts=2 backoff=0.000 breaker=closed
//	failure=MemoryExhaustion p=0.930 eta=12.400 source=prior reason="mem 31457280 of 41943040 (75%), +1.049e+06/s, tau 0.98 over 16.0s"
//	component=agent:3 metric=mem value=31457280.000 baseline=20000000.000 limit=41943040.000 trend=Degrading score=0.500
//
//	score    0..1: the smallest of the metrics' scores and 1-p of each prediction
//	trend    Improving Stable Degrading Critical (an alarm: p >= the action threshold with eta within the lead)
//	state    running exited backoff (a delayed restart is due) failed (gave up) unknown
//	restart  always on-failure never, or off: observed only (no policy set; nothing is done to it)
//	starts   starts within the restart period
//	backoff  seconds until a delayed restart, 0 none
//	breaker  closed open half-open
//	eta      seconds until the failure is expected, 0 now, - unknown
//	source   learned (fitted on this host's failure history), prior (hand-set weights), rules (degraded mode)
//
// An unknown agent renders nothing.
func (e *Engine) AgentHealth(agent int) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.agents[agent]
	if a == nil {
		return ""
	}
	score, tr := e.summary(a)
	b := make([]byte, 0, 1024)
	b = append(b, "agent="...)
	b = strconv.AppendInt(b, int64(agent), 10)
	b = append(b, " score="...)
	b = f3(b, score)
	b = append(b, " trend="...)
	b = append(b, tr.String()...)
	st := "unknown"
	backoff := 0.0
	switch {
	case a.sup.running:
		st = "running"
	case !a.sup.nextStart.IsZero() && a.sup.nextStart.After(e.now):
		st = "backoff"
		backoff = a.sup.nextStart.Sub(e.now).Seconds()
	case a.sup.breaker == Open:
		st = "failed"
	case len(a.sup.exits) > 0:
		st = "exited"
	}
	b = append(b, " state="...)
	b = append(b, st...)
	b = append(b, " restart="...)
	if a.sup.pol.Observe {
		b = append(b, "off"...)
	} else {
		b = append(b, a.sup.pol.Restart.String()...)
	}
	b = append(b, " starts="...)
	b = strconv.AppendInt(b, int64(a.sup.recentStarts(e.now, a.sup.pol.Period)), 10)
	b = append(b, " backoff="...)
	b = f3(b, backoff)
	b = append(b, " breaker="...)
	b = append(b, a.sup.breaker.String()...)
	b = append(b, '\n')
	ps := append([]Prediction(nil), a.preds...)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].P > ps[j].P })
	for _, p := range ps {
		b = appendPrediction(b, p)
	}
	for _, g := range sortedGauges(a.gauges) {
		b = appendHealth(b, g.h)
	}
	return string(b)
}

// Status renders `heal/status`, one line:
//
//	mode=learned why=- agents=4 failures=12 predicted=10 actions=30 pending=1 breakers_open=0 maintenance=2 forecast=sched hazards=MemoryExhaustion:learned,FDExhaustion:prior,... saved=1764795600.000
//
//	mode      learned, or rules when one of the daemon's engines failed (stalled, or
//	          erring repeatedly) or ctl said so; why says which, e.g.
//	          why="sched: pass running 6.2s" or why="set by ctl"
//	failures  recorded failures kept; predicted: of them, those an alarm came before
//	actions   actions kept in history; pending: recoveries awaiting their verdict
//	maintenance  windows scheduled or running
//	forecast  where maintenance windows' load forecast comes from: sched (the
//	          scheduler's host CPU forecast), or none (windows go as soon as possible)
//	hazards   per kind, whether its model is learned or still the prior
//	saved     when the state was last saved, - never
func (e *Engine) Status() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	mode, why := e.mode()
	var pred, pending, open, maint int
	for _, f := range e.failures {
		if f.Predicted {
			pred++
		}
	}
	for _, a := range e.agents {
		pending += len(a.pending)
		if a.sup.breaker == Open {
			open++
		}
	}
	for _, w := range e.maint {
		if w.State == "scheduled" || w.State == "running" {
			maint++
		}
	}
	b := make([]byte, 0, 512)
	b = append(b, "mode="...)
	b = append(b, mode...)
	b = append(b, " why="...)
	b = appendQ(b, why)
	for _, kv := range []struct {
		k string
		v int
	}{{"agents", len(e.agents)}, {"failures", len(e.failures)}, {"predicted", pred}, {"actions", len(e.history)},
		{"pending", pending}, {"breakers_open", open}, {"maintenance", maint}} {
		b = append(b, ' ')
		b = append(b, kv.k...)
		b = append(b, '=')
		b = strconv.AppendInt(b, int64(kv.v), 10)
	}
	b = append(b, " forecast="...)
	if e.fcSource == "" {
		b = append(b, "none"...)
	} else {
		b = appendQ(b, e.fcSource)
	}
	b = append(b, " hazards="...)
	for k := Kind(0); k < NumKinds; k++ {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, k.String()...)
		b = append(b, ':')
		b = append(b, src(e.haz[k], false)...)
	}
	b = append(b, " saved="...)
	b = appendTime(b, e.saved)
	return string(append(b, '\n'))
}

// HealthFile renders `heal/health`: one `component=` line (the format of
// AgentHealth's metric lines) per metric of the host, then each daemon
// engine (sorted by name), then each agent (by number).
func (e *Engine) HealthFile() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b []byte
	for _, n := range e.host.order {
		b = appendHealth(b, e.host.g[n].h)
	}
	names := make([]string, 0, len(e.engines))
	for n := range e.engines {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		eh := e.engines[n]
		for _, g := range []*gauge{eh.lat, eh.errs, eh.drops} {
			if g != nil {
				b = appendHealth(b, g.h)
			}
		}
	}
	ids := make([]int, 0, len(e.agents))
	for n := range e.agents {
		ids = append(ids, n)
	}
	sort.Ints(ids)
	for _, n := range ids {
		for _, g := range sortedGauges(e.agents[n].gauges) {
			b = appendHealth(b, g.h)
		}
	}
	return string(b)
}

// Failures renders `heal/failures`, oldest first:
//
//	time=1764795600.000 agent=3 kind=MemoryExhaustion predicted=1 lead=14.200 p=0.930 windows=16
func (e *Engine) Failures() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b []byte
	for _, f := range e.failures {
		b = append(b, "time="...)
		b = appendTime(b, f.Time)
		b = append(b, " agent="...)
		b = strconv.AppendInt(b, int64(f.Agent), 10)
		b = append(b, " kind="...)
		b = append(b, f.Kind...)
		b = append(b, " predicted="...)
		b = append(b, "01"[btoi(f.Predicted)])
		b = append(b, " lead="...)
		b = f3(b, f.Lead)
		b = append(b, " p="...)
		b = f3(b, f.P)
		b = append(b, " windows="...)
		b = strconv.AppendInt(b, int64(len(f.Windows)), 10)
		b = append(b, '\n')
	}
	return string(b)
}

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}

// ProceduresFile renders `heal/procedures`: one line per kind and
// procedure with its pooled record over all agents:
//
//	kind=MemoryExhaustion procedure=raise-mem steps=raise:memmax*1.5 ok=3 failed=1 rate=0.667
//
//	rate  the posterior mean success rate, (ok+1)/(ok+failed+2)
func (e *Engine) ProceduresFile() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b []byte
	for k := Kind(0); k < NumKinds; k++ {
		for _, p := range append(append([]Procedure(nil), Procedures[k]...), Escalation(k)) {
			arm := e.bandit.Pool[k.String()+"/"+p.Name]
			b = append(b, "kind="...)
			b = append(b, k.String()...)
			b = append(b, " procedure="...)
			b = append(b, p.Name...)
			b = append(b, " steps="...)
			b = appendQ(b, p.StepsString())
			b = append(b, " ok="...)
			b = strconv.AppendInt(b, int64(arm.S), 10)
			b = append(b, " failed="...)
			b = strconv.AppendInt(b, int64(arm.F), 10)
			b = append(b, " rate="...)
			b = f3(b, arm.Rate())
			b = append(b, '\n')
		}
	}
	return string(b)
}

// ActionLine renders one action as in `heal/history`:
//
//	id=7 time=1764795600.000 at=1764795610.000 agent=3 cause=MemoryExhaustion procedure=raise-mem steps=raise:memmax*1.5 p=0.930 eta=12.400 outcome=pending reason="..."
//
//	cause    a failure kind, exit (a supervisor restart), maintenance
//	at       when to carry it out (later than time under a backoff)
//	outcome  pending ok failed, or - (not verified)
func (a *Action) Line() string {
	b := make([]byte, 0, 256)
	b = append(b, "id="...)
	b = strconv.AppendUint(b, a.ID, 10)
	b = append(b, " time="...)
	b = appendTime(b, a.Time)
	b = append(b, " at="...)
	b = appendTime(b, a.At)
	b = append(b, " agent="...)
	b = strconv.AppendInt(b, int64(a.Agent), 10)
	b = append(b, " cause="...)
	b = append(b, a.Cause...)
	b = append(b, " procedure="...)
	b = append(b, a.Procedure...)
	b = append(b, " steps="...)
	s := make([]string, len(a.Steps))
	for i, st := range a.Steps {
		s[i] = st.String()
	}
	b = appendQ(b, strings.Join(s, ","))
	b = append(b, " p="...)
	b = f3(b, a.P)
	b = append(b, " eta="...)
	b = appendSecs(b, a.ETA)
	b = append(b, " outcome="...)
	b = append(b, a.Outcome...)
	b = append(b, " reason="...)
	b = appendQ(b, a.Reason)
	return string(append(b, '\n'))
}

// History renders `heal/history`: the kept actions, oldest first, one
// Action.Line each.
func (e *Engine) History() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var sb strings.Builder
	for _, a := range e.history {
		sb.WriteString(a.Line())
	}
	return sb.String()
}

// Maintenance renders `heal/maintenance`, by start:
//
//	agent=3 kind=Predictive start=1764795600.000 duration=30.000 deadline=1764796200.000 priority=0.930 load=0.120 state=done ran=1764795600.012 ended=1764795601.100 reason="MemoryExhaustion expected in 900s"
//
//	load   the forecast's mean load over the window, in its unit (the
//	       scheduler's: cores, summed over agents), where the window was
//	       placed in the forecast's lowest-load slot; - when it was placed
//	       as soon as possible (no forecast, or none fitting the deadline)
//	state  scheduled running done failed
//	ran    when it was carried out (became running), - not yet
//	ended  when its action ended (done or failed), - not yet
func (e *Engine) Maintenance() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	ws := append([]Window(nil), e.maint...)
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].Start.Before(ws[j].Start) })
	var b []byte
	for _, w := range ws {
		b = append(b, "agent="...)
		b = strconv.AppendInt(b, int64(w.Agent), 10)
		b = append(b, " kind="...)
		b = append(b, w.Kind.String()...)
		b = append(b, " start="...)
		b = appendTime(b, w.Start)
		b = append(b, " duration="...)
		b = f3(b, w.Duration.Seconds())
		b = append(b, " deadline="...)
		b = appendTime(b, w.Deadline)
		b = append(b, " priority="...)
		b = f3(b, w.Priority)
		b = append(b, " load="...)
		if w.Forecast {
			b = f3(b, w.Load)
		} else {
			b = append(b, '-')
		}
		b = append(b, " state="...)
		b = append(b, w.State...)
		b = append(b, " ran="...)
		b = appendTime(b, w.Ran)
		b = append(b, " ended="...)
		b = appendTime(b, w.Ended)
		b = append(b, " reason="...)
		b = appendQ(b, w.Reason)
		b = append(b, '\n')
	}
	return string(b)
}

// ForecastFile renders `heal/forecast`: the load forecast the last
// placement of maintenance windows used, a header then one line per step:
//
//	forecast=sched placed=1764795600.000 start=1764795600.100 step=0.100 steps=600
//	time=1764795600.100 load=1.250
//
// forecast: its source (heal/status's forecast=); placed: when windows
// were placed by it; load: in the forecast's unit (cores). Only
// `forecast=none` (or `forecast=sched placed=-`) when no placement has
// used one since the daemon started.
func (e *Engine) ForecastFile() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	b := []byte("forecast=")
	if e.fcSource == "" {
		b = append(b, "none"...)
	} else {
		b = appendQ(b, e.fcSource)
	}
	if e.fcAt.IsZero() {
		if e.fcSource != "" {
			b = append(b, " placed=-"...)
		}
		return string(append(b, '\n'))
	}
	f := e.fcLast
	b = append(b, " placed="...)
	b = appendTime(b, e.fcAt)
	b = append(b, " start="...)
	b = appendTime(b, f.Start)
	b = append(b, " step="...)
	b = f3(b, f.Step.Seconds())
	b = append(b, " steps="...)
	b = strconv.AppendInt(b, int64(len(f.Load)), 10)
	b = append(b, '\n')
	for i, v := range f.Load {
		b = append(b, "time="...)
		b = appendTime(b, f.Start.Add(time.Duration(i)*f.Step))
		b = append(b, " load="...)
		b = f3(b, v)
		b = append(b, '\n')
	}
	return string(b)
}
