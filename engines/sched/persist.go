package sched

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"aiosfs/engines/bus"
	"aiosfs/engines/ml"
	"aiosfs/internal/statefile"
)

// saved is what survives a restart of the daemon: sched/ctl's settings and
// each agent's mode and pinned forecaster, as JSON in Config.StateFile
// (written whole, through a rename, after every accepted verb). The
// predictors themselves are not kept: they relearn from the sampler's
// history within their warm-up.
type saved struct {
	Settings Settings           `json:"settings"`
	Agents   map[int]savedAgent `json:"agents,omitempty"`
}

type savedAgent struct {
	Manual bool   `json:"manual,omitempty"`
	Pin    string `json:"pin,omitempty"`
}

// Every verb is a transaction on what sched.json keeps (commit): the
// verb edits a copy of the saved state, the copy is written, and only
// once it is on disk does the change become live. A change that cannot be
// saved (a full or read-only state filesystem, an I/O error) is never
// applied: not to the settings, not to an agent's mode, not through
// enforcement to any agent's limits; the writer of the ctl line gets the
// kernel's errno (ENOSPC, EROFS, EDQUOT, EIO) and sched/status, and a
// restart, show the old value.

// commit runs one verb's change as a transaction (see above). edit gets
// a copy of the saved state and changes it, or refuses (nothing is
// written); apply makes the saved copy live, under e.mu, after it is on
// disk. commits are serialised (saveMu) so each edits what the last one
// made live.
func (e *Engine) commit(edit func(s *saved) error, apply func(s *saved)) error {
	e.saveMu.Lock()
	defer e.saveMu.Unlock()
	e.mu.Lock()
	s := e.savedLocked()
	e.mu.Unlock()
	if err := edit(&s); err != nil {
		return err
	}
	if err := e.write(s); err != nil {
		return fmt.Errorf("sched: not saved, nothing changed: %w", err)
	}
	e.mu.Lock()
	apply(&s)
	e.mu.Unlock()
	return nil
}

// setting is commit for a verb that changes only sched/ctl's settings.
func (e *Engine) setting(edit func(set *Settings) error) error {
	return e.commit(func(s *saved) error { return edit(&s.Settings) },
		func(s *saved) { e.set = s.Settings })
}

// savedLocked is the state as save writes it; the caller holds e.mu.
func (e *Engine) savedLocked() saved {
	s := saved{Settings: e.set, Agents: map[int]savedAgent{}}
	s.Settings.Horizons = append([]time.Duration(nil), e.set.Horizons...)
	for id, st := range e.agents {
		if st.manual || (st.pin != "" && st.pin != "auto") {
			s.Agents[id] = savedAgent{Manual: st.manual, Pin: st.pin}
		}
	}
	return s
}

// write saves s to Config.StateFile (nothing without one).
func (e *Engine) write(s saved) error {
	if e.cfg.StateFile == "" {
		return nil
	}
	for id, a := range s.Agents {
		if a == (savedAgent{}) || (!a.Manual && a.Pin == "auto") {
			delete(s.Agents, id) // the defaults: nothing to keep
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return statefile.Write(e.cfg.StateFile, b)
}

// load restores what save wrote; a missing file is a first start.
func (e *Engine) load() error {
	if e.cfg.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(e.cfg.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// Settings a file from an older daemon lacks keep their defaults.
	s := saved{Settings: e.Settings()}
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("sched: %s: %w", filepath.Base(e.cfg.StateFile), err)
	}
	if len(s.Settings.Horizons) == 0 || s.Settings.Interval <= 0 || s.Settings.Capacity <= 0 {
		return fmt.Errorf("sched: %s: incomplete settings", filepath.Base(e.cfg.StateFile))
	}
	if s.Settings.Slice == 0 { // saved before slices were settable
		s.Settings.Slice = DefaultSlice
	}
	e.mu.Lock()
	e.set = s.Settings
	e.mu.Unlock()
	for id, a := range s.Agents {
		if a.Pin != "" && a.Pin != "auto" && !validForecaster(a.Pin) {
			return fmt.Errorf("sched: %s: agent %d: unknown forecaster %q", filepath.Base(e.cfg.StateFile), id, a.Pin)
		}
	}
	e.mu.Lock()
	for id, a := range s.Agents {
		st := e.state(id)
		if a.Pin != "" {
			st.setPin(a.Pin)
		}
		st.manual = a.Manual
	}
	e.mu.Unlock()
	return nil
}

// HistoryKeep is how many of each resource's latest samples SaveHistory
// keeps per agent: enough for the forecasters' warm-up, the AR fit and
// the pattern detector's period search to resume where they were.
const HistoryKeep = ml.PatternWindow

// savedHistory is the predictors' warm start, in Config.StateFile with
// ".history" appended: per agent, each resource's latest samples (oldest
// first) and the allocations with what they learned (the adapted CPU
// buffer, the floors an OOM kill or throttling taught). Restore replays
// the samples through fresh predictors, which costs one Observe each
// (about 3 µs) and rebuilds every forecaster's state, loss and residual
// quantiles exactly as the live run built them from those samples, where
// serialising each model's internals would tie the file to them. Samples
// taken at another step (the sampling interval changed) are not replayed.
type savedHistory struct {
	Step   float64              `json:"step"`
	Agents map[int]savedPredict `json:"agents"`
}

type savedPredict struct {
	Samples [nres][]float64 `json:"samples"`
	CPU     Alloc           `json:"cpu"`
	MemHigh Alloc           `json:"memhigh"`
	MemMax  Alloc           `json:"memmax"`
}

func (e *Engine) historyFile() string { return e.cfg.StateFile + ".history" }

// SaveHistory writes every agent's recent samples and allocations (see
// savedHistory). The daemon calls it every minute and when it stops, so a
// kill -9 loses at most a minute of learning.
func (e *Engine) SaveHistory() error {
	if e.cfg.StateFile == "" {
		return nil
	}
	// A save before the warm-up has replayed everything would write the
	// agents still waiting with only their few new samples.
	e.waitWarm()
	e.mu.Lock()
	h := savedHistory{Step: e.stepSeconds(), Agents: make(map[int]savedPredict, len(e.agents))}
	for id, st := range e.agents {
		if st.pred[resCPU].N() == 0 {
			continue
		}
		var sp savedPredict
		for r, p := range st.pred {
			xs := p.Recent(HistoryKeep)
			for i, x := range xs {
				if math.IsNaN(x) || math.IsInf(x, 0) {
					xs[i] = 0 // JSON has no NaN; one odd sample must not cost the whole file
				}
			}
			sp.Samples[r] = xs
		}
		sp.CPU, sp.MemHigh, sp.MemMax = st.cpu, st.memHigh, st.memMax
		h.Agents[id] = sp
	}
	e.mu.Unlock()
	b, err := json.Marshal(h)
	if err == nil {
		err = statefile.Write(e.historyFile(), b)
	}
	if err != nil {
		// Nobody waits on this save: say so on the bus as well as to the
		// caller (the daemon logs it), never silently. The old file
		// stays whole, so a restart warms from the last good history.
		err = fmt.Errorf("sched: history not saved (%s keeps the last one): %w", filepath.Base(e.historyFile()), err)
		e.publish("error", 0, bus.F("op", "save-history"), bus.F("err", err.Error()))
	}
	return err
}

// readHistory reads what SaveHistory wrote; a missing file (a first
// start, or a daemon that never ran a minute) or one taken at another
// sampling step reads as nothing to replay.
func (e *Engine) readHistory() (map[int]savedPredict, error) {
	if e.cfg.StateFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(e.historyFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var h savedHistory
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("sched: %s: %w", filepath.Base(e.historyFile()), err)
	}
	if h.Step != e.stepSeconds() {
		return nil, nil
	}
	return h.Agents, nil
}

// waitWarm returns once Restore's replay of the saved histories is done.
func (e *Engine) waitWarm() {
	e.mu.Lock()
	w := e.warmed
	e.mu.Unlock()
	<-w
}

// warm replays saved histories into fresh predictors, one agent at a
// time and outside the engine's lock: at 1,000 agents it is seconds of
// work (BenchmarkRestoreHistory1000), which must delay neither the
// daemon's start nor the sampler's ticks. Samples an agent took since the
// start are replayed after its saved ones, and the warmed predictors
// replace its fresh ones, keeping its mode and pin. Closes done.
func (e *Engine) warm(saved map[int]savedPredict, done chan struct{}) {
	defer close(done)
	for _, id := range slices.Sorted(maps.Keys(saved)) {
		sp := saved[id]
		e.mu.Lock()
		fresh := e.newState()
		e.mu.Unlock()
		for r, xs := range sp.Samples {
			if len(xs) > HistoryKeep {
				xs = xs[len(xs)-HistoryKeep:]
			}
			for _, x := range xs {
				fresh.pred[r].Observe(x, 0)
			}
		}
		e.mu.Lock()
		st := e.agents[id]
		if st == nil {
			st = fresh
			e.agents[id] = st
		} else {
			for r, p := range st.pred {
				for _, x := range p.Recent(p.N()) {
					fresh.pred[r].Observe(x, 0)
				}
				if st.pin != "" && st.pin != "auto" {
					fresh.pred[r].get().Pin(st.pin)
				}
				st.pred[r] = fresh.pred[r]
			}
		}
		if st.cpu.Value == 0 && st.memHigh.Value == 0 && st.memMax.Value == 0 {
			st.cpu, st.memHigh, st.memMax = sp.CPU.restored(), sp.MemHigh.restored(), sp.MemMax.restored()
		}
		e.mu.Unlock()
	}
}
