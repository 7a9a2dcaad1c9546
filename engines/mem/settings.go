package mem

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"aiosfs/internal/statefile"
)

// savedSettings are what mem/ctl's paging verbs and agents/N/mem/ctl's
// policy verb set, kept in <state>/mem/settings.json so that a restart,
// kill -9 included, loses none of them. The file is JSON, rewritten whole
// through a rename after every accepted change:
//
//	{"paging":true,"pressure":0.1,"interval_ns":2000000000,"agent_policies":{"3":"lfu"}}
//
// A key the file lacks (written by an older daemon) keeps its default.
// A change is written before it takes effect (commitSettings), so what
// the file holds is what runs.
type savedSettings struct {
	Paging   bool           `json:"paging"`
	Pressure float64        `json:"pressure"`
	Interval time.Duration  `json:"interval_ns"`
	Policies map[int]string `json:"agent_policies,omitempty"`
}

func (e *Engine) settingsFile() string { return filepath.Join(e.dir, "settings.json") }

// currentSettings is what saveSettings writes; the caller holds e.mu.
func (e *Engine) currentSettings() savedSettings {
	s := savedSettings{Paging: e.paging, Pressure: e.threshold, Interval: e.interval, Policies: map[int]string{}}
	for id, pm := range e.procs {
		if pm.policy != Adaptive {
			s.Policies[id] = pm.policy
		}
	}
	return s
}

func (e *Engine) writeSettings(s savedSettings) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return statefile.Write(e.settingsFile(), b)
}

// commitSettings is a settings verb's transaction: edit changes a copy
// of the saved settings (or refuses), the copy is written, and only then
// does apply (run under e.mu) make the change live. A change that cannot
// be saved is refused with the save's errno (ENOSPC, EROFS, EIO) and
// leaves the settings, mem/status and the next restart as they were.
func (e *Engine) commitSettings(edit func(s *savedSettings) error, apply func()) error {
	e.txMu.Lock()
	defer e.txMu.Unlock()
	e.mu.Lock()
	s := e.currentSettings()
	e.mu.Unlock()
	if err := edit(&s); err != nil {
		return err
	}
	if err := e.writeSettings(s); err != nil {
		return fmt.Errorf("mem: not saved, nothing changed: %w", err)
	}
	e.mu.Lock()
	apply()
	e.mu.Unlock()
	return nil
}

// loadSettings restores what saveSettings wrote; no file is a first start.
func (e *Engine) loadSettings() error {
	b, err := os.ReadFile(e.settingsFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	e.mu.Lock()
	s := savedSettings{Paging: e.paging, Pressure: e.threshold, Interval: e.interval}
	e.mu.Unlock()
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("mem: settings.json: %w", err)
	}
	if s.Pressure < 0 || s.Pressure > 1 || s.Interval < minInterval {
		return fmt.Errorf("mem: settings.json: pressure %v or interval %v out of range", s.Pressure, s.Interval)
	}
	for id, p := range s.Policies {
		if !validCtlPolicy(p) {
			return fmt.Errorf("mem: settings.json: agent %d: bad policy %q", id, p)
		}
	}
	e.mu.Lock()
	e.paging, e.threshold, e.interval = s.Paging, s.Pressure, s.Interval
	for id, p := range s.Policies {
		pm, ok := e.procs[id]
		if !ok {
			pm = newProcMem(id)
			e.procs[id] = pm
		}
		pm.policy = p
	}
	e.mu.Unlock()
	return nil
}

func validCtlPolicy(p string) bool {
	for _, q := range CtlPolicies {
		if p == q {
			return true
		}
	}
	return false
}
