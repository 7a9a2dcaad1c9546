package threat

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"aiosfs/ctl"
	"aiosfs/engines/ml"
)

// Assessment is the engine's verdict on one agent for one window: what
// `agents/N/threat` shows and what an action carries as its evidence.
type Assessment struct {
	Agent      int
	Time       time.Time // the window's end
	Score      float64   // 0..1: max of the rule floor and the learned detector
	Type       Type
	Confidence float64
	Top        []TopFeature
	Action     Action // the policy's verb for Score and Type
	Escalate   bool
	Source     string // "rules" or "ml": which one set Score
	Trend      Trend
	Forecast   [Horizon]float64
	Warning    *Warning
	Rules      RuleVerdict
	ML         *MLVerdict     // nil when no model is loaded
	Signals    []NamedVerdict // the extra signals that had a verdict
	Vector     Vector
}

// Config configures an Engine. Zero fields take defaults.
type Config struct {
	Rules  []Rule // default DefaultRules
	Policy *Policy
	// Signals are extra anomaly sources (Signal), asked on every window.
	Signals []Signal
	// Logf receives one line per refused model, policy change and so
	// on; nil discards.
	Logf func(format string, args ...any)
}

type agentState struct {
	agg         *Aggregator
	base        *ml.Baseline
	series      *Series
	last        Assessment
	has         bool
	quarantined bool
	x           []float64
	// novelty holds the anomaly of the agent's last NoveltyWindows
	// windows: novelty alone (type Unknown) counts only for as long as
	// it has held in all of them.
	novelty [NoveltyWindows]float64
	novelAt int
	memo    scoreMemo
}

// passRemedies is PassRemedies' switch; on by default.
var passRemedies atomic.Bool

func init() { passRemedies.Store(true) }

// PassRemedies reports whether the engine's per-pass cost remedies are
// on (docs/bench/cost-hooks.md): a window equal to the agent's last is
// scored without walking the forests again (scoreMemo), the forest's
// contributions are computed only for a window it calls an attack, and
// the aggregator reuses its windows' memory. Each gives the same
// assessments as without it; the switch is there so that a bench can
// measure what they save in one daemon run.
func PassRemedies() bool { return passRemedies.Load() }

// SetPassRemedies switches the remedies of PassRemedies, for every
// engine of the process.
func SetPassRemedies(on bool) { passRemedies.Store(on) }

// NoveltyWindows is how many consecutive windows an anomaly the
// classifier does not recognise must last before it scores as one (type
// Unknown). A service or a periodic job does something now and then (a
// backup every 20 s, a compile every 10 s) that its own baseline, learned
// in its quiet spells, calls novel for a window or two; a soak of such
// programs on the daemon (scripts/threat/soak) alerted on them hundreds
// of times per 10 agent-hours with a single window. 3 was chosen after
// that soak, without a sweep (a burst of 1–2 s is not behaviour; a change
// that lasts is), never on the recorded sets, where the per-agent
// baseline never warms (runs are 5–6 windows, docs/threat.md §9); the
// later soaks ran the same programs, so they are in-sample for it.
const NoveltyWindows = 3

// Engine scores agents. Its methods are safe for concurrent use.
type Engine struct {
	mu       sync.Mutex
	rules    []Rule
	policy   Policy
	model    *Model
	modelID  string // manifest digest, "" with no model
	modelErr string // why the last load was refused
	agents   map[int]*agentState
	host     *Series
	hostAt   time.Time
	hostMax  float64
	logf     func(string, ...any)
	signals  []Signal
	windows  uint64
	actions  [NumActions]uint64
}

// New returns an engine on the rule floor, with no model.
func New(cfg Config) *Engine {
	e := &Engine{rules: cfg.Rules, policy: DefaultPolicy(), agents: map[int]*agentState{}, host: NewSeries(), logf: cfg.Logf, signals: cfg.Signals}
	if e.rules == nil {
		e.rules = DefaultRules
	}
	if cfg.Policy != nil {
		e.policy = *cfg.Policy
	}
	if e.logf == nil {
		e.logf = func(string, ...any) {}
	}
	return e
}

// LoadModel verifies and installs the model in dir (signed by pub). On
// any failure the engine keeps scoring with rules only (a model loaded
// earlier is dropped too: a directory that no longer verifies is not
// trusted), logs one line saying why, and returns the error.
func (e *Engine) LoadModel(dir string, pub ed25519.PublicKey) error {
	return e.loadModel(dir, pub, false)
}

// ReloadModel is LoadModel for a model replacing the one in force (the
// ctl's "model reload"): a refused model changes nothing, the model in
// force (or the rules) stays, and the refusal is returned, logged and
// shown as model_error until the next load.
func (e *Engine) ReloadModel(dir string, pub ed25519.PublicKey) error {
	return e.loadModel(dir, pub, true)
}

func (e *Engine) loadModel(dir string, pub ed25519.PublicKey, keep bool) error {
	m, id, err := LoadModel(dir, pub)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.modelErr = err.Error()
		if !keep {
			e.model, e.modelID = nil, ""
			e.logf("threat: model %s refused, falling back to rules: %v", dir, err)
			return err
		}
		left := "rules"
		if e.model != nil {
			left = "model " + e.modelID[:16]
		}
		e.logf("threat: model %s refused, keeping %s: %v", dir, left, err)
		return err
	}
	e.model, e.modelID, e.modelErr = m, id, ""
	e.logf("threat: model %s loaded (sha256 %s, %d training windows)", dir, id[:16], m.Trained.Rows)
	return nil
}

// SetModel installs m directly (tests, the evaluation). nil: rules only.
func (e *Engine) SetModel(m *Model, id string) {
	e.mu.Lock()
	e.model, e.modelID, e.modelErr = m, id, ""
	e.mu.Unlock()
}

// SetPolicy replaces the policy. Parse it with ParsePolicy first: a
// table that failed to parse never reaches here, so nothing changes.
func (e *Engine) SetPolicy(p Policy) {
	e.mu.Lock()
	e.policy = p
	e.mu.Unlock()
	e.logf("threat: policy set: %s", oneLine(p.String()))
}

// Policy returns the policy in force.
func (e *Engine) Policy() Policy {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.policy
}

// SetQuarantined marks an agent as quarantined (or released): while
// quarantined nothing it does is learned into its baseline.
func (e *Engine) SetQuarantined(agent int, q bool) {
	e.mu.Lock()
	e.agent(agent).quarantined = q
	e.mu.Unlock()
}

// Quarantined reports the mark SetQuarantined set.
func (e *Engine) Quarantined(agent int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.agents[agent]
	return ok && a.quarantined
}

func (e *Engine) agent(id int) *agentState {
	a, ok := e.agents[id]
	if !ok {
		a = &agentState{agg: NewAggregator(), base: ml.NewBaseline(VectorLen), series: NewSeries(), x: make([]float64, VectorLen)}
		e.agents[id] = a
	}
	return a
}

// Forget drops an agent that has gone.
func (e *Engine) Forget(agent int) {
	e.mu.Lock()
	delete(e.agents, agent)
	e.mu.Unlock()
	for _, sg := range e.signals {
		sg.Forget(agent)
	}
}

// Learn starts agent's normal profile afresh (threat/ctl learn N): its
// baseline and history go, its quarantine stays, and every signal
// learns it again.
func (e *Engine) Learn(agent int) error {
	e.mu.Lock()
	q := false
	if a, ok := e.agents[agent]; ok {
		q = a.quarantined
	}
	delete(e.agents, agent)
	if q {
		e.agent(agent).quarantined = true
	}
	e.mu.Unlock()
	var errs []error
	for _, sg := range e.signals {
		if err := sg.Learn(agent); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sg.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// SignalStatus is one line per extra signal: its name and Status.
func (e *Engine) SignalStatus() string {
	var b strings.Builder
	for _, sg := range e.signals {
		b.WriteString(new(ctl.Line).Str("signal", sg.Name()).Str("status", sg.Status()).String())
	}
	return b.String()
}

// Observe feeds one observation of an agent. When it closes a window
// the agent is scored and the assessment returned with ok true; the
// caller carries out its Action (alert, throttle, quarantine, kill) and
// Escalate, publishing the assessment as the action's evidence.
func (e *Engine) Observe(agent int, o Observation) (Assessment, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.agent(agent)
	v, end, ok := a.agg.Add(o)
	if !ok {
		return Assessment{}, false
	}
	return e.score(agent, a, &v, end), true
}

// ScoreVector scores a ready-made window vector for an agent, as
// Observe does when a window closes (the evaluation replays recorded
// windows through it).
func (e *Engine) ScoreVector(agent int, v Vector, end time.Time) Assessment {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.score(agent, e.agent(agent), &v, end)
}

func (e *Engine) score(id int, a *agentState, v *Vector, end time.Time) Assessment {
	as := Assessment{Agent: id, Time: end, Vector: *v, Source: "rules"}
	as.Rules = EvalRules(e.rules, v)
	as.Score, as.Type = as.Rules.Score, as.Rules.Type
	for _, r := range as.Rules.Fired {
		for _, rr := range e.rules {
			if rr.Name == r {
				for _, c := range rr.When {
					as.Top = append(as.Top, TopFeature{Name: c.F.String() + "@" + itoa(Windows[c.W]) + "s", Weight: rr.Score})
				}
			}
		}
	}
	if len(as.Top) > 3 {
		as.Top = as.Top[:3]
	}
	if as.Score > 0 {
		as.Confidence = 1
	}
	if e.model != nil {
		// with a model, only the Floor rules stay a floor under it
		mv := e.model.score(v, a.base, a.x, &a.memo)
		a.persistNovelty(&mv, e.model.AnomalyWeight)
		as.ML = &mv
		if mv.Score >= as.Rules.FloorScore {
			as.Score, as.Type, as.Confidence, as.Top, as.Source = mv.Score, mv.Type, mv.Confidence, mv.Top, "ml"
		} else {
			as.Score, as.Type = as.Rules.FloorScore, as.Rules.FloorType
			as.Top = as.Top[:0]
			for _, r := range e.rules {
				if r.Name == firstFloor(e.rules, as.Rules.Fired) {
					for _, c := range r.When {
						as.Top = append(as.Top, TopFeature{Name: c.F.String() + "@" + itoa(Windows[c.W]) + "s", Weight: r.Score})
					}
				}
			}
		}
		// Learn what is the agent's own, never from a quarantined agent
		// nor a window the classifier or a rule names as an attack type.
		// A novel window (Unknown) is learned: novelty is against the
		// agent's own past, and a baseline that never takes in what it
		// found new calls the same burst new for ever. What an attacker
		// can teach it this way is bounded by the clip (mean ± 4 sd per
		// window) and by the classifier, which does not learn online.
		if !a.quarantined && (as.Type == Benign || as.Type == Unknown) && as.Rules.Score < e.policy.Threshold[Alert] {
			a.base.Update(a.x)
		}
	}
	for _, sg := range e.signals {
		v, ok := sg.Score(id, end)
		if !ok {
			continue
		}
		v.Score = math.Max(0, math.Min(1, v.Score))
		as.Signals = append(as.Signals, NamedVerdict{Name: sg.Name(), SignalVerdict: v})
		// A signal that cannot name the type reports novelty, which
		// counts as the detector's does: weighted under the default
		// alert (its own score stays on its line).
		eff := v.Score
		if v.Type == Unknown {
			eff *= e.noveltyWeight()
		}
		if eff > as.Score {
			as.Score, as.Type, as.Source = eff, v.Type, sg.Name()
			as.Confidence = v.Score
			as.Top = as.Top[:0]
		}
	}
	if as.Score == 0 {
		as.Type = Benign
	}
	as.Action, as.Escalate = e.policy.Decide(as.Score, as.Type)
	a.series.Add(Point{end, as.Score})
	as.Trend, _ = a.series.Trend()
	a.series.Forecast(as.Forecast[:])
	if w, ok := EarlyWarning(as.Score, as.Forecast[:], &e.policy, as.Type); ok {
		as.Warning = new(w) // not &w: that would allocate w at every window, warned or not
	}
	a.last, a.has = as, true
	e.windows++
	e.actions[as.Action]++
	// host series: the highest agent score per window end
	if !end.Equal(e.hostAt) {
		if !e.hostAt.IsZero() {
			e.host.Add(Point{e.hostAt, e.hostMax})
		}
		e.hostAt, e.hostMax = end, 0
	}
	if as.Score > e.hostMax {
		e.hostMax = as.Score
	}
	return as
}

// noveltyWeight is what a score of novelty alone (type Unknown) counts
// for: the model's AnomalyWeight, 0.45 with no model.
func (e *Engine) noveltyWeight() float64 {
	if e.model != nil && e.model.AnomalyWeight > 0 {
		return e.model.AnomalyWeight
	}
	return 0.45
}

// persistNovelty records mv's anomaly and, when novelty is what drives
// mv (type Unknown), scores it only as far as it has held over the last
// NoveltyWindows windows; what is left is the classifier's (Benign).
func (a *agentState) persistNovelty(mv *MLVerdict, w float64) {
	a.novelty[a.novelAt%NoveltyWindows] = mv.Anomaly
	a.novelAt++
	if mv.Type != Unknown {
		return
	}
	held := mv.Anomaly
	for _, x := range a.novelty {
		held = math.Min(held, x)
	}
	if w <= 0 {
		w = 0.45
	}
	if w*held >= mv.Score {
		return
	}
	if w*held > mv.PAttack {
		mv.Score, mv.Confidence = w*held, held
		return
	}
	mv.Type, mv.Score, mv.Confidence, mv.Top = Benign, mv.PAttack, mv.Prob[Benign], nil
}

// Assessment returns an agent's latest assessment.
func (e *Engine) Assessment(agent int) (Assessment, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.agents[agent]
	if !ok || !a.has {
		return Assessment{}, false
	}
	return a.last, true
}

// Status is the engine's state for `threat/status`.
type Status struct {
	Mode        string // "ml" or "rules"
	Model       string // manifest sha256, "-" without
	ModelErr    string // why the last model was refused, "" if none
	Agents      int
	Quarantined int
	Windows     uint64
	Actions     [NumActions]uint64
	HostScore   float64
	HostTrend   Trend
}

// Status reports the engine's state.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Status{Mode: "rules", Model: "-", ModelErr: e.modelErr, Agents: len(e.agents), Windows: e.windows, Actions: e.actions}
	if e.model != nil {
		s.Mode, s.Model = "ml", e.modelID
		if s.Model == "" {
			s.Model = "unsigned"
		}
	}
	for _, a := range e.agents {
		if a.quarantined {
			s.Quarantined++
		}
	}
	s.HostScore = e.hostMax
	s.HostTrend, _ = e.host.Trend()
	return s
}

// AgentTrend is one agent's row in `threat/trends` and `threat/predict`.
type AgentTrend struct {
	Agent    int
	Score    float64
	Type     Type
	Trend    Trend
	Slope    float64
	Forecast [Horizon]float64
	Warning  *Warning
}

// Trends returns every scored agent's trend and forecast, by agent
// number, then the host's as agent 0.
func (e *Engine) Trends() []AgentTrend {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []AgentTrend
	for id, a := range e.agents {
		if !a.has {
			continue
		}
		t := AgentTrend{Agent: id, Score: a.last.Score, Type: a.last.Type, Forecast: a.last.Forecast, Warning: a.last.Warning}
		t.Trend, t.Slope = a.series.Trend()
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Agent < out[j].Agent })
	h := AgentTrend{Agent: 0, Score: e.host.Last().Score, Type: Benign}
	h.Trend, h.Slope = e.host.Trend()
	e.host.Forecast(h.Forecast[:])
	if w, ok := EarlyWarning(h.Score, h.Forecast[:], &e.policy, Unknown); ok {
		h.Warning = &w
	}
	return append(out, h)
}

// firstFloor is the first (strongest) Floor rule among fired.
func firstFloor(rules []Rule, fired []string) string {
	for _, n := range fired {
		for _, r := range rules {
			if r.Name == n && r.Floor {
				return n
			}
		}
	}
	return ""
}

func oneLine(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == '\n' {
			b[i] = ';'
		}
	}
	return fmt.Sprint(string(b))
}
