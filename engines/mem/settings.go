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
type savedSettings struct {
	Paging   bool           `json:"paging"`
	Pressure float64        `json:"pressure"`
	Interval time.Duration  `json:"interval_ns"`
	Policies map[int]string `json:"agent_policies,omitempty"`
}

func (e *Engine) settingsFile() string { return filepath.Join(e.dir, "settings.json") }

// saveSettings writes the current settings (see savedSettings).
func (e *Engine) saveSettings() error {
	e.mu.Lock()
	s := savedSettings{Paging: e.paging, Pressure: e.threshold, Interval: e.interval, Policies: map[int]string{}}
	for id, pm := range e.procs {
		if pm.policy != Adaptive {
			s.Policies[id] = pm.policy
		}
	}
	e.mu.Unlock()
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return statefile.Write(e.settingsFile(), b)
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

// savedAfter runs a verb's change and then saves the settings, so that an
// accepted change survives a restart and a refused one writes nothing.
func (e *Engine) savedAfter(err error) error {
	if err != nil {
		return err
	}
	if err := e.saveSettings(); err != nil {
		return fmt.Errorf("mem: applied, but not saved: %w", err)
	}
	return nil
}
