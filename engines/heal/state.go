package heal

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"aiosfs/engines/ml"
)

// StateVersion is the saved state's format version.
const StateVersion = 1

// State is everything the engine has learned, as saved (JSON, one
// object; docs/heal.md §Formats): the failure history with the feature
// windows before each failure, the negative reservoir, the fitted
// hazards, the bandit's counts, the policies and the maintenance
// schedule. Saving it after every failure and outcome, atomically
// (write, fsync, rename, fsync the directory), makes it survive kill -9.
type State struct {
	Version     int                   `json:"version"`
	Saved       time.Time             `json:"saved"`
	Failures    []Failure             `json:"failures"`
	Negatives   map[string][]Snap     `json:"negatives"`
	Hazards     map[string]*ml.Hazard `json:"hazards"`
	Bandit      *ml.Bandit            `json:"bandit"`
	Policies    map[int]SavedPolicy   `json:"policies"`
	Maintenance []SavedWindow         `json:"maintenance"`
	NextID      uint64                `json:"next_id"`
	// History is heal/history's actions (version 1 files without it
	// load with an empty history).
	History []SavedAction `json:"history,omitempty"`
	// Supervisors is each agent's restart bookkeeping: recent starts and
	// exits (restart intensity counts them), the back-off step, the
	// circuit breaker. Without it a daemon restart reset a crash loop's
	// intensity and back-off and closed every breaker.
	Supervisors map[int]SavedSupervisor `json:"supervisors,omitempty"`
	// Rules is `mode rules` set by ctl.
	Rules bool `json:"rules,omitempty"`
}

// SavedAction is an action in the saved state. One still pending when
// the daemon died loads with outcome "-": its verdict was never reached.
type SavedAction struct {
	ID        uint64    `json:"id"`
	Time      time.Time `json:"time"`
	At        time.Time `json:"at"`
	Agent     int       `json:"agent"`
	Cause     string    `json:"cause"`
	Procedure string    `json:"procedure"`
	Steps     []string  `json:"steps"`
	P         float64   `json:"p"`
	ETA       float64   `json:"eta"`
	Reason    string    `json:"reason"`
	Outcome   string    `json:"outcome"`
}

// SavedPolicy is a Policy in the saved state, durations in seconds.
type SavedPolicy struct {
	Restart       string  `json:"restart"`
	Intensity     int     `json:"intensity"`
	Period        float64 `json:"period"`
	BackoffBase   float64 `json:"backoff"`
	BackoffMax    float64 `json:"backoff_max"`
	Maintenance   string  `json:"maintenance,omitempty"`
	MaintEvery    float64 `json:"maint_every,omitempty"`
	MaintDuration float64 `json:"maint_duration,omitempty"`
	Observe       bool    `json:"observe,omitempty"` // observed only: no policy set
}

// SavedSupervisor is one agent's supervisor state (running and a
// pending restart are not kept: the agent engine and the device's queue
// say those after a restart).
type SavedSupervisor struct {
	Starts     []time.Time `json:"starts,omitempty"`
	Exits      []SavedExit `json:"exits,omitempty"`
	BackoffN   int         `json:"backoff_n,omitempty"`
	GaveUp     bool        `json:"gave_up,omitempty"`
	Breaker    int         `json:"breaker,omitempty"`
	FailsInRow int         `json:"fails_in_row,omitempty"`
	OpenedAt   time.Time   `json:"opened_at,omitempty"`
	Restarts   uint64      `json:"restarts,omitempty"`
}

// SavedExit is one exit in a SavedSupervisor.
type SavedExit struct {
	T      time.Time `json:"t"`
	Uptime float64   `json:"uptime"`
	Failed bool      `json:"failed,omitempty"`
}

// SavedWindow is a maintenance window in the saved state.
type SavedWindow struct {
	Agent    int       `json:"agent"`
	Kind     string    `json:"kind"`
	Start    time.Time `json:"start"`
	Duration float64   `json:"duration"`
	Deadline time.Time `json:"deadline"`
	Priority float64   `json:"priority"`
	Reason   string    `json:"reason"`
	State    string    `json:"state"`
	// Load is set when the window was placed in a forecast's lull.
	Load  *float64   `json:"load,omitempty"`
	Ran   *time.Time `json:"ran,omitempty"`
	Ended *time.Time `json:"ended,omitempty"`
}

// lastN is the last n of xs.
func lastN[T any](xs []T, n int) []T {
	if len(xs) > n {
		xs = xs[len(xs)-n:]
	}
	return append([]T(nil), xs...)
}

func secs(d time.Duration) float64 { return d.Seconds() }
func dur(s float64) time.Duration  { return time.Duration(s * float64(time.Second)) }

// Snapshot returns the learned state.
func (e *Engine) Snapshot() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := State{Version: StateVersion, Saved: e.now, Failures: append([]Failure(nil), e.failures...),
		Negatives: map[string][]Snap{}, Hazards: map[string]*ml.Hazard{}, Bandit: e.bandit,
		Policies: map[int]SavedPolicy{}, NextID: e.nextID, Rules: e.forced}
	for k := Kind(0); k < NumKinds; k++ {
		s.Negatives[k.String()] = e.neg[k]
		s.Hazards[k.String()] = e.haz[k]
	}
	for n, a := range e.agents {
		p := a.sup.pol
		s.Policies[n] = SavedPolicy{p.Restart.String(), p.Intensity, secs(p.Period), secs(p.BackoffBase), secs(p.BackoffMax),
			p.Maintenance, secs(p.MaintEvery), secs(p.MaintDuration), p.Observe}
	}
	for n, a := range e.agents {
		u := a.sup
		if len(u.starts) == 0 && len(u.exits) == 0 && u.breaker == Closed && u.restarts == 0 {
			continue
		}
		ss := SavedSupervisor{Starts: append([]time.Time(nil), u.starts...), BackoffN: u.backoffN, GaveUp: u.gaveUp,
			Breaker: int(u.breaker), FailsInRow: u.failsInRow, OpenedAt: u.openedAt, Restarts: u.restarts}
		for _, x := range u.exits {
			ss.Exits = append(ss.Exits, SavedExit{x.t, x.uptime, x.failed})
		}
		if s.Supervisors == nil {
			s.Supervisors = map[int]SavedSupervisor{}
		}
		s.Supervisors[n] = ss
	}
	for _, a := range e.history {
		st := make([]string, len(a.Steps))
		for i, x := range a.Steps {
			st[i] = x.String()
		}
		s.History = append(s.History, SavedAction{a.ID, a.Time, a.At, a.Agent, a.Cause, a.Procedure, st, a.P, a.ETA, a.Reason, a.Outcome})
	}
	for _, w := range e.maint {
		sw := SavedWindow{Agent: w.Agent, Kind: w.Kind.String(), Start: w.Start, Duration: secs(w.Duration), Deadline: w.Deadline,
			Priority: w.Priority, Reason: w.Reason, State: w.State}
		if w.Forecast {
			sw.Load = &w.Load
		}
		if !w.Ran.IsZero() {
			sw.Ran = &w.Ran
		}
		if !w.Ended.IsZero() {
			sw.Ended = &w.Ended
		}
		s.Maintenance = append(s.Maintenance, sw)
	}
	return s
}

// Save writes the state as JSON.
func (e *Engine) Save(w io.Writer) error {
	s := e.Snapshot()
	enc := json.NewEncoder(w)
	return enc.Encode(&s)
}

// Load replaces the learned state with what r holds; on any error the
// engine is unchanged.
func (e *Engine) Load(r io.Reader) error {
	var s State
	dec := json.NewDecoder(io.LimitReader(r, 64<<20))
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("heal: state: %w", err)
	}
	if s.Version != StateVersion {
		return fmt.Errorf("heal: state version %d, want %d", s.Version, StateVersion)
	}
	var haz hazards
	var neg [NumKinds][]Snap
	for k := Kind(0); k < NumKinds; k++ {
		h := s.Hazards[k.String()]
		p := priorHazard(k)
		if h == nil || len(h.W) != len(p.W) {
			h = p
		}
		haz[k] = h
		neg[k] = s.Negatives[k.String()]
		if len(neg[k]) > maxNeg {
			neg[k] = neg[k][:maxNeg]
		}
	}
	b := s.Bandit
	if b == nil {
		b = ml.NewBandit(e.cfg.Seed)
	}
	b.Seed(e.cfg.Seed + s.NextID)
	pols := map[int]Policy{}
	for n, sp := range s.Policies {
		p := DefaultPolicy()
		switch sp.Restart {
		case "always":
			p.Restart = RestartAlways
		case "never":
			p.Restart = RestartNever
		}
		p.Intensity, p.Period, p.BackoffBase, p.BackoffMax = sp.Intensity, dur(sp.Period), dur(sp.BackoffBase), dur(sp.BackoffMax)
		p.Maintenance, p.MaintEvery, p.MaintDuration = sp.Maintenance, dur(sp.MaintEvery), dur(sp.MaintDuration)
		p.Observe = sp.Observe
		pols[n] = p.withDefaults()
	}
	var hist []*Action
	if len(s.History) > maxHistory {
		s.History = s.History[len(s.History)-maxHistory:]
	}
	for _, sa := range s.History {
		a := &Action{ID: sa.ID, Time: sa.Time, At: sa.At, Agent: sa.Agent, Cause: sa.Cause, Procedure: sa.Procedure,
			P: sa.P, ETA: sa.ETA, Reason: sa.Reason, Outcome: sa.Outcome}
		for _, x := range sa.Steps {
			a.Steps = append(a.Steps, parseStep(x))
		}
		if a.Outcome == "pending" {
			a.Outcome = "-"
			a.Reason += "; not verified: the daemon restarted"
		}
		hist = append(hist, a)
	}
	var ws []Window
	for _, w := range s.Maintenance {
		k := Preventive
		switch w.Kind {
		case "Corrective":
			k = Corrective
		case "Predictive":
			k = Predictive
		}
		st := w.State
		if st == "running" {
			st = "failed" // interrupted by the daemon's own death
		}
		win := Window{MaintRequest: MaintRequest{w.Agent, k, dur(w.Duration), w.Deadline, w.Priority, w.Reason}, Start: w.Start, State: st}
		if w.Load != nil {
			win.Load, win.Forecast = *w.Load, true
		}
		if w.Ran != nil {
			win.Ran = *w.Ran
		}
		if w.Ended != nil {
			win.Ended = *w.Ended
		}
		ws = append(ws, win)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(s.Failures) > maxFailures {
		s.Failures = s.Failures[len(s.Failures)-maxFailures:]
	}
	e.failures, e.neg, e.haz, e.bandit, e.maint, e.history = s.Failures, neg, haz, b, ws, hist
	if s.NextID > e.nextID {
		e.nextID = s.NextID
	}
	for n, p := range pols {
		e.agent(n).sup.pol = p
	}
	for n, ss := range s.Supervisors {
		if n <= 0 || ss.Breaker < int(Closed) || ss.Breaker > int(HalfOpen) {
			continue // not ours to trust: the rest of the state still loads
		}
		u := &e.agent(n).sup
		u.starts = lastN(ss.Starts, 64)
		u.exits = nil
		for _, x := range lastN(ss.Exits, 64) {
			u.exits = append(u.exits, exitRec{x.T, x.Uptime, x.Failed})
		}
		u.backoffN, u.gaveUp, u.breaker = max(0, ss.BackoffN), ss.GaveUp, Breaker(ss.Breaker)
		u.failsInRow, u.openedAt, u.restarts = max(0, ss.FailsInRow), ss.OpenedAt, ss.Restarts
	}
	e.saved = s.Saved
	e.forced = s.Rules
	return nil
}

// SaveFile writes the state to path atomically: a temporary file in the
// same directory, fsync, rename over path, fsync of the directory.
func (e *Engine) SaveFile(path string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".heal-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := e.Save(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	e.mu.Lock()
	e.saved = e.now
	e.mu.Unlock()
	return nil
}

// LoadFile loads path; a missing file is no error (a first start).
func (e *Engine) LoadFile(path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return e.Load(f)
}

// parseStep is Step.String's inverse ("raise:memmax*1.5").
func parseStep(s string) Step {
	name, arg, _ := strings.Cut(s, ":")
	for i, n := range verbNames {
		if n == name {
			return Step{Verb(i), arg}
		}
	}
	return Step{VerbNone, s}
}
