package heal

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"aiosfs/engines/ml"
	"aiosfs/engines/telemetry"
)

// EventType is what happened to an agent.
type EventType int

const (
	Started   EventType = iota // the agent's main process started (or restarted)
	Exited                     // it exited: Code, Signal
	OOMKilled                  // the memory cgroup's oom_kill count rose
	Stopped                    // an operator stopped or removed it: no restart
)

// Event is one lifecycle event of one agent.
type Event struct {
	Time   time.Time
	Agent  int
	Type   EventType
	Code   int // exit status
	Signal int // terminating signal, 0 none
	// Kind, when Failure is set, is the failure the daemon knows the exit
	// was (EMFILE in the log, ENOSPC, ...); otherwise the engine infers it
	// from the last observation against the limits.
	Failure bool
	Kind    Kind
}

// Action is one thing the daemon is asked to do.
type Action struct {
	ID        uint64
	Time      time.Time // when decided
	At        time.Time // when to carry it out (a backoff delays restarts)
	Agent     int
	Cause     string // a failure kind's name, "exit" for a plain supervisor restart, "maintenance"
	Procedure string
	Steps     []Step
	P, ETA    float64 // the prediction that caused it; ETA -1 none
	Reason    string
	Outcome   string // "pending", "ok", "failed", "-" (not verified: supervisor restarts)
	// Window is the start of the maintenance window a maintenance
	// action carries out (MaintenanceDone's start); zero for others.
	Window    time.Time
	verifyBy  time.Time
	kind      Kind
	predicted bool
	// cleared: its failure has not been predicted since some pass after
	// the action (the recovery took effect); a prediction coming back
	// after that is the recovery's failure, not the same alarm again.
	cleared bool
}

// Failure is one recorded failure with the feature windows before it:
// the learning data of the hazards, saved across restarts.
type Failure struct {
	Time      time.Time `json:"time"`
	Agent     int       `json:"agent"`
	Kind      string    `json:"kind"`
	Predicted bool      `json:"predicted"` // an alarm (P >= ActP) came before it
	Lead      float64   `json:"lead"`      // seconds from the first alarm to the failure; 0 none
	P         float64   `json:"p"`         // the highest probability predicted in the horizon before it
	Windows   []Snap    `json:"windows"`   // features before the failure, oldest first
}

// Snap is one feature vector Ago seconds before a failure (or, in the
// negative reservoir, one that no failure followed within Horizon).
type Snap struct {
	Ago float64   `json:"ago"`
	X   []float64 `json:"x"`
}

// Config configures an Engine. Zero fields take defaults.
type Config struct {
	Seed     uint64        // bandit and reservoir seed (default 1)
	Interval time.Duration // the telemetry interval (default 1 s)
	ActP     float64       // act on a prediction at this probability (default 0.7)
	ActLead  float64       // ...when its ETA is within this many seconds (default 60)
	Verify   time.Duration // a recovery succeeded if the failure did not follow within this (default 2 min)
	// OptIn: a new agent is observed only (Policy.Observe) until a
	// policy is set for it; the daemon runs so, so that agents nobody
	// asked to supervise are never restarted or changed.
	OptIn bool
	// HangByHeartbeat: only an agent that heartbeats can be found hung
	// (idle time counts once it has beaten since its start); without
	// it, idleness alone (no CPU, IO or memory movement for longer than
	// max(5 s, 3 x the longest idle stretch seen)) is a hang too, which
	// is what the offline evaluation measures. The daemon sets it.
	HangByHeartbeat bool
	Logf            func(format string, args ...any)
}

type snapT struct {
	t float64
	x []float64
}

type agentState struct {
	pred     *agentPredictor
	sup      supervisor
	gauges   map[string]*gauge
	preds    []Prediction
	snaps    [NumKinds][]snapT
	alarmAt  [NumKinds]time.Time // first alarm of the current episode
	lastFail [NumKinds]time.Time // the last failure recorded, to count an OOM kill and its exit once
	maxP     [NumKinds]float64
	pending  map[Kind]*Action
	lastSeen time.Time
	removed  bool
}

// Engine is the healing engine. Its methods are safe for concurrent use.
type Engine struct {
	mu       sync.Mutex
	cfg      Config
	agents   map[int]*agentState
	host     hostHealth
	hostLast HostSample
	hostHas  bool
	engines  map[string]*engineHealth
	haz      hazards
	bandit   *ml.Bandit
	failures []Failure
	neg      [NumKinds][]Snap
	negSeen  [NumKinds]int
	history  []*Action
	maint    []Window
	maintReq []MaintRequest
	nextID   uint64
	forced   bool // mode rules set by ctl
	// fcSource is where load forecasts come from ("sched"), "" none
	// (SetForecastSource); fcLast and fcAt the last forecast a placement
	// used and when (ForecastFile).
	fcSource string
	fcLast   Forecast
	fcAt     time.Time
	rng      *rand.Rand
	now      time.Time
	saved    time.Time
	changes  uint64 // moves whenever the saved state changes (Changes)
}

// Bounds on what is kept: history and failures are rings.
const (
	maxHistory  = 512
	maxFailures = 1024
	maxNeg      = 256
	maxSnaps    = 64
)

// New returns an engine with prior hazards and an empty history.
func New(cfg Config) *Engine {
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.ActP <= 0 {
		cfg.ActP = 0.7
	}
	if cfg.ActLead <= 0 {
		cfg.ActLead = 60
	}
	if cfg.Verify <= 0 {
		cfg.Verify = 2 * time.Minute
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return &Engine{cfg: cfg, agents: map[int]*agentState{}, engines: map[string]*engineHealth{},
		haz: defaultHazards(), bandit: ml.NewBandit(cfg.Seed), rng: rand.New(rand.NewPCG(cfg.Seed, 0x4ea1))}
}

func (e *Engine) agent(n int) *agentState {
	a := e.agents[n]
	if a == nil {
		a = &agentState{pred: newAgentPredictor(), gauges: map[string]*gauge{}, pending: map[Kind]*Action{}}
		a.sup.pol = DefaultPolicy()
		a.sup.pol.Observe = e.cfg.OptIn
		e.agents[n] = a
	}
	return a
}

// SetPolicy sets an agent's supervisor policy (restart=, maintenance=).
func (e *Engine) SetPolicy(agent int, p Policy) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.agent(agent).sup.pol = p.withDefaults()
	e.changes++
}

// Policy returns an agent's policy.
func (e *Engine) Policy(agent int) Policy {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.agent(agent).sup.pol
}

// Remove forgets an agent's live state (its learned counts stay). Its
// feature snapshots older than the horizon, which no failure followed,
// join the negatives; younger ones are censored and dropped.
func (e *Engine) Remove(agent int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a := e.agents[agent]; a != nil {
		ts := float64(e.now.UnixNano()) / 1e9
		for k := Kind(0); k < NumKinds; k++ {
			for _, s := range a.snaps[k] {
				if ts-s.t > Horizon {
					e.addNeg(k, Snap{Ago: -1, X: s.x})
				}
			}
		}
	}
	delete(e.agents, agent)
}

// Observe records one observation of an agent.
func (e *Engine) Observe(agent int, o Obs) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.agent(agent)
	t := o.Sample.Time
	if t.After(e.now) {
		e.now = t
	}
	a.lastSeen = t
	a.pred.observe(o)
	set := func(name string, v, limit float64) {
		g := a.gauges[name]
		if g == nil {
			g = newGauge("agent:"+strconv.Itoa(agent), name)
			a.gauges[name] = g
		}
		bad := 0.0
		if limit > 0 {
			bad = fillBad(v / limit)
		}
		g.update(t, v, limit, bad)
	}
	memLim := o.MemMax
	if o.MemHigh > 0 && (memLim <= 0 || o.MemHigh < memLim) {
		memLim = o.MemHigh
	}
	mem := o.Sample.Mem
	if mem == 0 {
		mem = o.Sample.RSS
	}
	set("mem", float64(mem), float64(memLim))
	set("fds", float64(o.Sample.FDs), float64(o.FDMax))
	set("procs", float64(o.Sample.Procs), float64(o.PidsMax))
	if o.DiskSize > 0 {
		set("disk", float64(o.DiskUsed), float64(o.DiskSize))
	}
	set("cpu", o.Sample.CPU, 0)
	if !a.sup.running {
		a.sup.running, a.sup.startedAt = true, t
	}
}

// ObserveHost records one host sample.
func (e *Engine) ObserveHost(h HostSample) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.host.observe(h)
	e.hostLast, e.hostHas = h, true
}

// ObserveEngine records one of the daemon's engines' loop statistics.
func (e *Engine) ObserveEngine(s EngineStat) {
	e.mu.Lock()
	defer e.mu.Unlock()
	eh := e.engines[s.Name]
	if eh == nil {
		eh = &engineHealth{}
		e.engines[s.Name] = eh
	}
	eh.observe(s, e.cfg.Interval)
}

// Mode says whether the learned models and the bandit are in use
// ("learned") or the engine fell back to its rules ("rules"), and why.
func (e *Engine) Mode() (mode, why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mode()
}

func (e *Engine) mode() (string, string) {
	if e.forced {
		return "rules", "set by ctl"
	}
	names := make([]string, 0, len(e.engines))
	for n := range e.engines {
		names = append(names, n)
	}
	sort.Strings(names)
	var whys []string
	for _, n := range names {
		if s := e.engines[n].last; s.Failed {
			why := s.Why
			if why == "" {
				why = "failed"
			}
			whys = append(whys, n+": "+why)
		}
	}
	if len(whys) > 0 {
		// Any of the daemon's engines, not only heal's inputs: their
		// hooks share the sampler's pass, so one that stalls starves
		// every input, and a daemon that is failing itself should take
		// the simple, predictable decisions.
		return "rules", strings.Join(whys, "; ")
	}
	return "learned", ""
}

// SetRules forces (true) or releases the rule-only mode.
func (e *Engine) SetRules(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.forced != on {
		e.changes++
	}
	e.forced = on
}

// Rules reports whether ctl forced the rule-only mode (SetRules).
func (e *Engine) Rules() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.forced
}

// Action returns the kept action id.
func (e *Engine) Action(id uint64) (Action, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range e.history {
		if a.ID == id {
			return *a, true
		}
	}
	return Action{}, false
}

func (e *Engine) newAction(now time.Time, agent int, cause string, p Procedure, reason string) *Action {
	e.nextID++
	e.changes++
	act := &Action{ID: e.nextID, Time: now, At: now, Agent: agent, Cause: cause, Procedure: p.Name, Steps: p.Steps,
		ETA: -1, Reason: reason, Outcome: "-", kind: p.Kind}
	e.history = append(e.history, act)
	if len(e.history) > maxHistory {
		e.history = e.history[len(e.history)-maxHistory:]
	}
	return act
}

// Event feeds one lifecycle event and returns the supervisor's actions.
func (e *Engine) Event(ev Event) []Action {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ev.Time.After(e.now) {
		e.now = ev.Time
	}
	a := e.agent(ev.Agent)
	switch ev.Type {
	case Started:
		a.sup.started(ev.Time)
		a.sup.restarts++
		a.pred.reset()
		return nil
	case Stopped:
		a.sup.running = false
		return nil
	case OOMKilled:
		e.failure(ev.Agent, a, MemoryExhaustion, ev.Time)
		return nil
	}
	// Exited.
	failed := ev.Code != 0 || ev.Signal != 0 || ev.Failure
	if failed {
		k, ok := ev.Kind, ev.Failure
		if !ok {
			k, ok = e.inferKind(a)
		}
		if ok {
			e.failure(ev.Agent, a, k, ev.Time)
		}
	}
	restart, delay, loop, why := a.sup.exited(ev.Time, failed)
	if loop {
		e.failure(ev.Agent, a, CrashLoop, ev.Time)
	}
	var out []Action
	if restart {
		p := Procedure{Name: "restart", Kind: CrashLoop, Steps: []Step{{VerbRestart, ""}}}
		cause := "exit"
		if loop {
			cause = CrashLoop.String()
			p.Name = "restart-backoff"
		}
		act := e.newAction(ev.Time, ev.Agent, cause, p, fmt.Sprintf("%s (code %d signal %d)", why, ev.Code, ev.Signal))
		act.At = ev.Time.Add(delay)
		out = append(out, *act)
	} else if a.sup.breaker == Open && failed && !a.sup.pol.Observe {
		act := e.newAction(ev.Time, ev.Agent, "exit", Escalation(CrashLoop), why)
		out = append(out, *act)
	}
	return out
}

// inferKind names the failure an exit most likely was from the last
// observation against the agent's limits.
func (e *Engine) inferKind(a *agentState) (Kind, bool) {
	if !a.pred.has {
		return 0, false
	}
	o := a.pred.last
	frac := func(v, lim int64) float64 {
		if lim <= 0 {
			return 0
		}
		return float64(v) / float64(lim)
	}
	mem := o.Sample.Mem
	memLim := o.MemMax
	switch {
	case frac(int64(o.Sample.FDs), o.FDMax) >= 0.9:
		return FDExhaustion, true
	case frac(o.DiskUsed, o.DiskSize) >= 0.95:
		return DiskExhaustion, true
	case frac(int64(o.Sample.Procs), o.PidsMax) >= 0.9:
		return PIDExhaustion, true
	case frac(mem, memLim) >= 0.9:
		return MemoryExhaustion, true
	}
	return 0, false
}

// failure records a failure of kind: its windows, whether it was
// predicted, the verdict on a pending recovery; then refits the hazard.
func (e *Engine) failure(agent int, a *agentState, k Kind, t time.Time) {
	if last := a.lastFail[k]; !last.IsZero() && t.Sub(last).Abs() < 2*time.Second {
		return // the same failure seen twice (the OOM kill and the exit it caused)
	}
	a.lastFail[k] = t
	e.changes++
	ts := float64(t.UnixNano()) / 1e9
	f := Failure{Time: t, Agent: agent, Kind: k.String(), P: a.maxP[k]}
	if !a.alarmAt[k].IsZero() && t.Sub(a.alarmAt[k]).Seconds() <= Horizon*2 {
		f.Predicted = true
		f.Lead = t.Sub(a.alarmAt[k]).Seconds()
	}
	for _, s := range a.snaps[k] {
		f.Windows = append(f.Windows, Snap{Ago: ts - s.t, X: s.x})
	}
	a.snaps[k] = nil
	a.alarmAt[k], a.maxP[k] = time.Time{}, 0
	e.failures = append(e.failures, f)
	if len(e.failures) > maxFailures {
		e.failures = e.failures[len(e.failures)-maxFailures:]
	}
	if act := a.pending[k]; act != nil {
		e.settle(a, act, false, k.String()+" happened anyway")
	}
	e.refit(k)
}

// refit fits kind's hazard on the recorded failures' windows within the
// horizon (positives) and the negative reservoir.
func (e *Engine) refit(k Kind) {
	var x [][]float64
	var y []bool
	for _, f := range e.failures {
		if f.Kind != k.String() {
			continue
		}
		for _, s := range f.Windows {
			if s.Ago <= Horizon && len(s.X) == len(e.haz[k].W) && fullEvidence(k, s.X) {
				x, y = append(x, s.X), append(y, true)
			}
		}
	}
	for _, s := range e.neg[k] {
		if len(s.X) == len(e.haz[k].W) && fullEvidence(k, s.X) {
			x, y = append(x, s.X), append(y, false)
		}
	}
	h := priorHazard(k)
	if err := h.Fit(x, y, e.cfg.Seed); err != nil {
		return // keeps the previous model
	}
	e.haz[k] = h
}

// fullEvidence: exhaustion windows shorter than MinSpan are neither
// positives nor negatives (their alarms are gated, see predict).
func fullEvidence(k Kind, x []float64) bool {
	return k > PIDExhaustion || len(x) < 4 || x[3] >= 1
}

// Train fits every kind's hazard on failures and negatives given (an
// offline history, e.g. a recorded suite), replacing the engine's own.
func (e *Engine) Train(failures []Failure, neg [NumKinds][]Snap) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failures = append([]Failure(nil), failures...)
	e.neg = neg
	for k := Kind(0); k < NumKinds; k++ {
		e.refit(k)
	}
}

func (e *Engine) settle(a *agentState, act *Action, ok bool, why string) {
	e.changes++
	if ok {
		act.Outcome = "ok"
	} else {
		act.Outcome = "failed"
		act.Reason += "; " + why
	}
	if act.Procedure != "escalate" {
		e.bandit.Update(strconv.Itoa(act.Agent), act.kind.String()+"/"+act.Procedure, ok)
	}
	a.sup.outcome(e.now, ok)
	delete(a.pending, act.kind)
}

// Outcome reports what became of an action the daemon carried out: ok
// false when a step failed (EPERM, the scheduler refused the limit).
func (e *Engine) Outcome(id uint64, ok bool, why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, act := range e.history {
		if act.ID != id {
			continue
		}
		a := e.agents[act.Agent]
		if a == nil {
			return
		}
		if act.Outcome == "pending" && !ok {
			e.settle(a, act, false, why)
		}
		return
	}
}

// Predictions returns the agent's latest predictions.
func (e *Engine) Predictions(agent int) []Prediction {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a := e.agents[agent]; a != nil {
		return written(a.preds)
	}
	return nil
}

// Tick runs prediction for every agent at now and returns the actions to
// take: recoveries before predicted failures, maintenance that is due.
// f is the scheduler's load forecast (empty: none) used to place
// maintenance windows.
func (e *Engine) Tick(now time.Time, f Forecast) []Action {
	return e.TickWith(now, func() (Forecast, bool) { return f, len(f.Load) > 0 })
}

// TickWith is Tick with the forecast asked for only when a maintenance
// request is to be placed (rarely), so a forecast that costs something
// to compute is not made every pass. fc may be nil (no forecast).
func (e *Engine) TickWith(now time.Time, fc func() (Forecast, bool)) []Action {
	e.mu.Lock()
	defer e.mu.Unlock()
	if now.After(e.now) {
		e.now = now
	}
	mode, _ := e.mode()
	rules := mode == "rules"
	psi, psiBase := -1.0, 0.0
	if e.hostHas && now.Sub(e.hostLast.Time) < 5*e.cfg.Interval {
		psi = e.hostLast.PSICPU
		if g := e.host.g["psi_cpu"]; g != nil {
			psiBase = g.h.Baseline
		}
	}
	ids := make([]int, 0, len(e.agents))
	for n := range e.agents {
		ids = append(ids, n)
	}
	sort.Ints(ids)
	var out []Action
	ts := float64(now.UnixNano()) / 1e9
	for _, n := range ids {
		a := e.agents[n]
		a.sup.tick(now)
		cx, ceta := a.sup.crashFeatures(now)
		var reuse []Prediction
		if PassRemedies() {
			clear(a.preds) // nothing of the last pass's is kept through the array
			reuse = a.preds[:0]
		}
		a.preds = a.pred.predict(reuse, &e.haz, rules, now, psi, psiBase, cx, ceta, e.cfg.HangByHeartbeat)
		if !a.sup.running && len(a.sup.exits) > 0 {
			// Down (exited or stopped): its last observation is stale, so
			// only the supervisor's crash-loop view applies; a dead agent
			// is neither hung nor filling a limit, and no recovery may
			// start it again behind its restart= policy.
			ps := a.preds[:0]
			for _, p := range a.preds {
				if p.Kind == CrashLoop {
					ps = append(ps, p)
				}
			}
			a.preds = ps
		}
		// a recovery succeeded when its verification time has passed and
		// its failure is no longer predicted
		for k, act := range a.pending {
			if !hasP(a.preds, k, e.cfg.ActP) {
				act.cleared = true
				if !now.Before(act.verifyBy) {
					e.settle(a, act, true, "")
				}
			}
		}
		for i := range a.preds {
			p := &a.preds[i]
			k := p.Kind
			// feature snapshots: one a second, kept for the failure record;
			// those older than the horizon with no failure become negatives
			sn := a.snaps[k]
			if len(sn) == 0 || ts-sn[len(sn)-1].t >= 1 {
				// The oldest go first and the rest move down in place,
				// so a kind's slice keeps one backing array of maxSnaps:
				// appending after reslicing sn[1:] reallocated it every
				// few passes and held up to twice that (3.7 MB of heap
				// at 200 agents, the engine's largest holder).
				drop := 0
				for drop < len(sn) && (ts-sn[drop].t > Horizon*1.5 || len(sn)-drop >= maxSnaps) {
					e.addNeg(k, Snap{Ago: -1, X: sn[drop].x})
					drop++
				}
				if drop > 0 {
					n := copy(sn, sn[drop:])
					clear(sn[n:])
					sn = sn[:n]
				}
				a.snaps[k] = append(sn, snapT{ts, p.X})
			}
			if p.P > a.maxP[k] {
				a.maxP[k] = p.P
			}
			alarm := p.P >= e.cfg.ActP && (p.ETA <= e.cfg.ActLead)
			if !alarm {
				if p.P < e.cfg.ActP/2 {
					a.alarmAt[k] = time.Time{}
				}
				if p.P >= 0.5 && p.ETA > e.cfg.ActLead && p.ETA < 3600 {
					e.requestMaint(n, a, *p, now)
				}
				continue
			}
			if a.alarmAt[k].IsZero() {
				a.alarmAt[k] = now
			}
			if k == CrashLoop && a.sup.breaker == Closed || a.sup.pol.Observe {
				continue // crash loops are handled at exit by the supervisor; observed agents are never acted on
			}
			if act := a.pending[k]; act != nil {
				if !act.cleared {
					continue // the same alarm: the recovery has not taken effect yet
				}
				// Cleared, then predicted again within its verification
				// time: the recovery only postponed the failure (a leak
				// restarted grows again). It failed, and the bandit
				// learns so; a new recovery is chosen now rather than
				// waiting for the failure the pending one would block.
				e.settle(a, act, false, k.String()+" predicted again after the recovery")
			}
			proc := e.choose(n, a, k, rules)
			act := e.newAction(now, n, k.String(), proc, p.text())
			act.P, act.ETA, act.Outcome, act.verifyBy, act.predicted = p.P, p.ETA, "pending", now.Add(e.cfg.Verify), true
			a.pending[k] = act
			out = append(out, *act)
		}
	}
	out = append(out, e.dueMaint(now, fc)...)
	return out
}

// choose picks a procedure for kind: the bandit's draw, or the first rule
// in rules mode; escalate when the breaker is open or none applies.
func hasP(ps []Prediction, k Kind, p float64) bool {
	for _, x := range ps {
		if x.Kind == k && x.P >= p {
			return true
		}
	}
	return false
}

func (e *Engine) choose(agent int, a *agentState, k Kind, rules bool) Procedure {
	if a.sup.breaker == Open {
		return Escalation(k)
	}
	var cands []Procedure
	for _, p := range Procedures[k] {
		ok := true
		for _, s := range p.Steps {
			if s.Verb == VerbRestart && a.sup.pol.Restart == RestartNever {
				ok = false
			}
		}
		if ok {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return Escalation(k)
	}
	if rules {
		return cands[0]
	}
	arms := make([]string, len(cands))
	for i, p := range cands {
		arms[i] = k.String() + "/" + p.Name
	}
	best, _ := e.bandit.Choose(strconv.Itoa(agent), arms)
	for i := range cands {
		if arms[i] == best {
			return cands[i]
		}
	}
	return cands[0]
}

func (e *Engine) addNeg(k Kind, s Snap) {
	e.negSeen[k]++
	if len(e.neg[k]) < maxNeg {
		e.neg[k] = append(e.neg[k], s)
		return
	}
	if j := e.rng.IntN(e.negSeen[k]); j < maxNeg {
		e.neg[k][j] = s
	}
}

func (e *Engine) requestMaint(agent int, a *agentState, p Prediction, now time.Time) {
	if a.sup.pol.Observe || a.sup.pol.Restart == RestartNever && a.sup.pol.Maintenance == "" {
		return
	}
	for _, r := range e.maintReq {
		if r.Agent == agent && r.Kind == Predictive {
			return
		}
	}
	for _, w := range e.maint {
		if w.Agent == agent && w.Kind == Predictive && w.State == "scheduled" {
			return
		}
	}
	e.changes++
	e.maintReq = append(e.maintReq, MaintRequest{Agent: agent, Kind: Predictive, Duration: a.sup.pol.MaintDuration,
		Deadline: now.Add(time.Duration(p.ETA*0.8) * time.Second), Priority: p.P,
		Reason: fmt.Sprintf("%s expected in %.0fs", p.Kind, p.ETA)})
}

// RequestMaintenance adds a maintenance request (Preventive from the
// agent's schedule, Corrective from an operator).
func (e *Engine) RequestMaintenance(r MaintRequest) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.maintReq = append(e.maintReq, r)
	e.changes++
}

// dueMaint schedules pending requests into the lulls of fc's forecast
// and returns the actions of windows that start now.
func (e *Engine) dueMaint(now time.Time, fc func() (Forecast, bool)) []Action {
	for n, a := range e.agents {
		pol := a.sup.pol
		if pol.MaintEvery <= 0 || pol.Observe {
			continue
		}
		last := time.Time{}
		for _, w := range e.maint {
			if w.Agent == n && w.Kind == Preventive && w.Start.After(last) {
				last = w.Start
			}
		}
		if last.IsZero() || now.Sub(last) >= pol.MaintEvery-pol.MaintEvery/4 {
			pending := false
			for _, r := range e.maintReq {
				pending = pending || (r.Agent == n && r.Kind == Preventive)
			}
			if !pending && (last.IsZero() || now.After(last)) {
				dl := now.Add(pol.MaintEvery / 4)
				if !last.IsZero() {
					dl = last.Add(pol.MaintEvery + pol.MaintEvery/4)
				}
				if last.IsZero() || now.Sub(last) >= pol.MaintEvery-pol.MaintEvery/4 {
					e.maintReq = append(e.maintReq, MaintRequest{Agent: n, Kind: Preventive, Duration: pol.MaintDuration,
						Deadline: dl, Priority: 0.2, Reason: "every " + pol.MaintEvery.String()})
				}
			}
		}
	}
	if len(e.maintReq) > 0 {
		var busy []Window
		for _, w := range e.maint {
			if w.State == "scheduled" || w.State == "running" {
				busy = append(busy, w)
			}
		}
		var f Forecast
		if fc != nil {
			if g, ok := fc(); ok && len(g.Load) > 0 && g.Step > 0 {
				f = g
				e.fcLast, e.fcAt = g, now
			}
		}
		e.maint = append(e.maint, Schedule(e.maintReq, f, now, busy)...)
		e.maintReq = nil
		e.changes++
	}
	var out []Action
	for i := range e.maint {
		w := &e.maint[i]
		if w.State != "scheduled" || now.Before(w.Start) {
			continue
		}
		a := e.agents[w.Agent]
		if a == nil || a.sup.pol.Observe {
			w.State = "failed"
			e.changes++
			continue
		}
		w.State, w.Ran = "running", now
		e.changes++
		p := Procedure{Name: "maintain", Steps: []Step{{VerbRestart, ""}}}
		if a.sup.pol.Maintenance != "" {
			p.Steps = []Step{{VerbMaintain, a.sup.pol.Maintenance}}
		}
		act := e.newAction(now, w.Agent, "maintenance", p, w.Kind.String()+": "+w.Reason)
		act.Window = w.Start
		out = append(out, *act)
	}
	if len(e.maint) > maxHistory {
		e.maint = e.maint[len(e.maint)-maxHistory:]
	}
	return out
}

// MaintenanceDone records the end of a window that started at start, at
// the engine's time (its last Tick); MaintenanceEnded takes the time.
func (e *Engine) MaintenanceDone(agent int, start time.Time, ok bool) {
	e.mu.Lock()
	at := e.now
	e.mu.Unlock()
	e.MaintenanceEnded(agent, start, at, ok)
}

// MaintenanceEnded records that the window of agent that started at
// start ended at at, done (ok) or failed.
func (e *Engine) MaintenanceEnded(agent int, start, at time.Time, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.maint {
		if w := &e.maint[i]; w.Agent == agent && w.Start.Equal(start) && w.State == "running" {
			w.State = map[bool]string{true: "done", false: "failed"}[ok]
			w.Ended = at
			e.changes++
		}
	}
}

// SetForecastSource says where the load forecast comes from ("sched"),
// or that there is none (""): heal/status's forecast= field. Windows are
// placed in the forecast's lulls when there is one, else as soon as
// possible.
func (e *Engine) SetForecastSource(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fcSource = s
}

// Changes is a counter that moves whenever what SaveFile writes changes
// in a way worth saving at once: a failure, an action or its outcome, a
// policy, a maintenance window. The daemon saves when it has moved.
func (e *Engine) Changes() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changes
}

// Stats are the engine's counts, as heal/status shows them.
type Stats struct {
	Agents, Failures, Predicted, Actions, Pending, BreakersOpen, Maintenance int
	Learned                                                                  int // kinds whose hazard is fitted, not the prior
	Rules                                                                    bool
}

// Stats returns the engine's counts.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	mode, _ := e.mode()
	st := Stats{Agents: len(e.agents), Failures: len(e.failures), Actions: len(e.history), Rules: mode == "rules"}
	for _, f := range e.failures {
		if f.Predicted {
			st.Predicted++
		}
	}
	for _, a := range e.agents {
		st.Pending += len(a.pending)
		if a.sup.breaker == Open {
			st.BreakersOpen++
		}
	}
	for _, w := range e.maint {
		if w.State == "scheduled" || w.State == "running" {
			st.Maintenance++
		}
	}
	for k := Kind(0); k < NumKinds; k++ {
		if !e.haz[k].Prior {
			st.Learned++
		}
	}
	return st
}

// AgentScore is an agent's health score 0..1 (AgentHealth's score) and
// whether the engine knows the agent.
func (e *Engine) AgentScore(agent int) (float64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.agents[agent]
	if a == nil {
		return 0, false
	}
	score, _ := e.summary(a)
	return score, true
}

// Agents are the agents the engine knows, by number.
func (e *Engine) Agents() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]int, 0, len(e.agents))
	for n := range e.agents {
		ids = append(ids, n)
	}
	sort.Ints(ids)
	return ids
}

// lastSample is the agent's last observed sample.
func (e *Engine) lastSample(agent int) (telemetry.Sample, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a := e.agents[agent]; a != nil && a.pred.has {
		return a.pred.last.Sample, true
	}
	return telemetry.Sample{}, false
}
