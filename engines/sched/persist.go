package sched

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"aiosfs/ctl"
	"aiosfs/fs"
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

// persisting wraps every verb of t so that an accepted one saves the state.
func (e *Engine) persisting(t ctl.Table) ctl.Table {
	out := make(ctl.Table, len(t))
	for i, v := range t {
		run := v.Run
		v.Run = func(ctx context.Context, c fs.Caller, args []string) error {
			if err := run(ctx, c, args); err != nil {
				return err
			}
			if err := e.save(); err != nil {
				return fmt.Errorf("sched: applied, but not saved: %w", err)
			}
			return nil
		}
		out[i] = v
	}
	return out
}

func (e *Engine) save() error {
	if e.cfg.StateFile == "" {
		return nil
	}
	e.mu.Lock()
	s := saved{Settings: e.set, Agents: map[int]savedAgent{}}
	for id, st := range e.agents {
		if st.manual || (st.pin != "" && st.pin != "auto") {
			s.Agents[id] = savedAgent{Manual: st.manual, Pin: st.pin}
		}
	}
	b, err := json.Marshal(s)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	tmp := e.cfg.StateFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0600); err != nil {
		return err
	}
	return os.Rename(tmp, e.cfg.StateFile)
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
	var s saved
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
		if a.Pin != "" {
			if err := e.pin(id, a.Pin); err != nil {
				return err
			}
		}
		e.mu.Lock()
		e.state(id).manual = a.Manual
		e.mu.Unlock()
	}
	return nil
}
