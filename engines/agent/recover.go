package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"aiosfs/engines/bus"
	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
)

// StoreRecovered is the store's Store.Recovered: non-empty when New found
// state.db damaged, moved it aside and started an empty store. The daemon
// logs it; RecoverOrphans then takes back what still runs.
func (e *Engine) StoreRecovered() string { return e.store.Recovered }

// RecoverOrphans takes back agent cgroups that have no record: after a
// lost or damaged store (the records are gone, the cgroups and processes
// are not) or an outage between a cgroup's creation and its record's
// save. Call it after Restore, before serving, and only while this
// daemon holds the cgroup prefix (cgroup.Manager.LockPrefix): without
// that lock a second daemon on the same prefix would take the first
// one's live agents for orphans and adopt them.
//
// Every group the cgroup Manager lists whose last path element is agent-N
// and which no record names is an orphan. One with processes is adopted
// again as agent N (a fresh number if N is taken): running or frozen as
// its freezer says, the uid and command of its leader (the lowest pid
// whose parent is outside the group), the limits the kernel has for it
// (cgroup.ReadSettings), Spawned false (the daemon did not start these
// processes in this life, so a clean stop hands them back rather than
// killing them). The record is saved and an event "recover" published.
// An empty orphan is deleted. Groups not named agent-N are not the
// engine's and are left alone.
//
// Finally the store's next number goes past every agent number found,
// in the cgroups and in STATE/logs/agent-N.log, so a new spawn never
// collides with a live agent-N cgroup (the EEXIST of a lost store) and
// an agent number is not handed out twice.
//
// adopted and removed are the group names; err joins every failure
// (the others are still handled).
func (e *Engine) RecoverOrphans() (adopted, removed []string, err error) {
	names, err := e.cfg.Cgroups.List()
	if err != nil {
		return nil, nil, err
	}
	e.mu.Lock()
	known := map[string]bool{}
	highest := 0
	for _, a := range e.agents {
		known[a.Group] = true
		highest = max(highest, a.ID)
	}
	e.mu.Unlock()
	type orphan struct {
		name string
		id   int
	}
	var orphans []orphan
	for _, name := range names {
		id, ok := agentNumber(name)
		if !ok {
			continue
		}
		highest = max(highest, id)
		if !known[name] {
			orphans = append(orphans, orphan{name, id})
		}
	}
	highest = max(highest, e.highestLog())
	var errs []error
	// First, so that a fresh number for an orphan whose own is taken
	// comes from above them all.
	if err := e.store.EnsureNext(highest); err != nil {
		errs = append(errs, fmt.Errorf("recover: keep agent numbers above %d: %w", highest, err))
	}
	for _, o := range orphans {
		g, err := e.cfg.Cgroups.Load(o.name)
		if err != nil {
			errs = append(errs, fmt.Errorf("recover %s: %w", o.name, err))
			continue
		}
		pids, err := g.Procs()
		if err != nil {
			errs = append(errs, fmt.Errorf("recover %s: %w", o.name, err))
			continue
		}
		if len(pids) == 0 {
			if err := g.Delete(); err != nil {
				errs = append(errs, fmt.Errorf("recover %s: remove the empty orphan: %w", o.name, err))
			} else {
				removed = append(removed, o.name)
			}
			continue
		}
		ok, err := e.readopt(o.name, o.id, g, pids)
		if err != nil {
			errs = append(errs, fmt.Errorf("recover %s: %w", o.name, err))
		}
		if ok {
			adopted = append(adopted, o.name)
		}
	}
	return adopted, removed, errors.Join(errs...)
}

// readopt makes the orphan group name (holding pids) agent id again. ok
// says it is an agent now; err may still say what went wrong on the way
// (limits unreadable, record unsaved).
func (e *Engine) readopt(name string, id int, g cgroup.Group, pids []int) (ok bool, err error) {
	var errs []error
	for _, leader := range leaderCandidates(e, pids) {
		smp, err := e.cfg.Proc.Sample(leader)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cmd, _ := e.cfg.Proc.Cmdline(leader)
		set, serr := cgroup.ReadSettings(g)
		frozen, _ := g.Frozen()

		e.mu.Lock()
		if _, taken := e.agents[id]; taken {
			e.mu.Unlock()
			if id, err = e.store.NextID(); err != nil {
				return false, err
			}
			e.mu.Lock()
		}
		agentName := smp.Comm
		if validName(agentName) != nil {
			agentName = "agent" + strconv.Itoa(id)
		}
		a := &Agent{Record: Record{
			ID: id, Name: agentName, State: StateRunning, Cmd: cmd, Uid: smp.Uid,
			Pid: leader, StartTicks: smp.StartTicks, Group: name,
			Limits: limitsOf(set), Started: smp.Start,
		}, group: g}
		if frozen {
			a.State = StateFrozen
		}
		e.agents[id] = a
		e.mu.Unlock()
		if err := e.store.Put(&a.Record); err != nil {
			// The agent is managed now; only its record did not reach the
			// disk. Say so: a silent failure here is defect 4 again.
			serr = errors.Join(serr, fmt.Errorf("save record of agent %d: %w", id, err))
		}
		e.publish(a, "recover", bus.F("group", name), bus.F("pid", leader), bus.F("pids", len(pids)),
			bus.F("state", a.State), bus.F("uid", a.Uid))
		if serr != nil {
			return true, fmt.Errorf("adopted as agent %d, but: %w", id, serr)
		}
		return true, nil
	}
	return false, fmt.Errorf("no process of %v could be read: %w", pids, errors.Join(errs...))
}

// leaderCandidates orders pids for the leader: first those whose parent
// is outside the group (the lowest first), then all of them. A process
// may end meanwhile, so callers try the next candidate.
func leaderCandidates(e *Engine, pids []int) []int {
	var cand []int
	for _, p := range pids {
		if s, err := e.cfg.Proc.Sample(p); err == nil && !slices.Contains(pids, s.PPid) {
			cand = append(cand, p)
		}
	}
	return append(cand, pids...) // a cycle of parents cannot be, but never leave it empty
}

// leaderOf is the first candidate that can still be read.
func (e *Engine) leaderOf(pids []int) (int, proc.Sample, bool) {
	for _, p := range leaderCandidates(e, pids) {
		if smp, err := e.cfg.Proc.Sample(p); err == nil {
			return p, smp, true
		}
	}
	return 0, proc.Sample{}, false
}

// limitsOf turns the kernel's settings into a record's Limits, with the
// record's "not set" for the kernel defaults (weight 100, the 100ms
// period), as a spawn without those settings records them.
func limitsOf(s cgroup.Settings) Limits {
	l := Limits{Weight: s.Weight, CPUMax: s.CPUMax, CPUPeriod: s.CPUPeriod, Cpus: s.Cpus, MemHigh: s.MemHigh, MemMax: s.MemMax}
	if l.Weight == 100 {
		l.Weight = 0
	}
	if l.CPUPeriod == cgroup.CPUPeriodUs*time.Microsecond {
		l.CPUPeriod = 0
	}
	return l
}

// agentNumber parses N from a group name whose last path element is
// agent-N (agent-7, user-1000/agent-7).
func agentNumber(name string) (int, bool) {
	digits, ok := strings.CutPrefix(filepath.Base(name), "agent-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n <= 0 || strconv.Itoa(n) != digits {
		return 0, false
	}
	return n, true
}

// highestLog is the highest N of the agent-N.log files under the log
// directory (each agent that ran has one): numbers of agents that ended
// before a store was lost, which no cgroup shows any more.
func (e *Engine) highestLog() int {
	highest := 0
	filepath.WalkDir(e.logDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if base, ok := strings.CutSuffix(d.Name(), ".log"); ok {
			if n, ok := agentNumber(base); ok {
				highest = max(highest, n)
			}
		}
		return nil
	})
	return highest
}
