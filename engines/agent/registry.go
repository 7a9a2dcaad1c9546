package agent

import (
	"syscall"

	"aiosfs/engines/agent/view"
	"aiosfs/engines/bus"
)

// The Engine is the registry every other engine sees (view.Registry):
// these methods and Apply (limits.go) and IDs (engine.go). An engine's
// reason goes into the event as by=REASON, as a ctl write's would show
// its writer.
var _ view.Registry = (*Engine)(nil)

// Info is agent id's record as the other engines see it.
func (e *Engine) Info(id int) (view.Info, error) {
	a, err := e.Get(id)
	if err != nil {
		return view.Info{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r := &a.Record
	return view.Info{ID: r.ID, Name: r.Name, State: r.State, Alive: r.Alive(), Uid: r.Uid, Gid: r.Gid,
		Spawned: r.Spawned, Prio: r.Prio, CapAdd: append([]string(nil), r.CapAdd...), Limits: r.Limits, Restarts: r.Restarts, Dir: r.Dir}, nil
}

// Procs are the processes in agent id's cgroup now (none once it ended).
func (e *Engine) Procs(id int) ([]int, error) {
	_, pids, err := e.Snapshot(id)
	return pids, err
}

// Cgroups maps each hierarchy to agent id's directory in it.
func (e *Engine) Cgroups(id int) (map[string]string, error) {
	g, err := e.Group(id)
	if err != nil {
		return nil, err
	}
	return g.Paths(), nil
}

// Freeze freezes (on) or thaws agent id, as the freeze and thaw verbs do.
func (e *Engine) Freeze(id int, on bool, reason string) error {
	a, err := e.Get(id)
	if err != nil {
		return err
	}
	if err := e.checkHold(id, reason); err != nil {
		return err
	}
	return e.setFrozen(a, on, bus.F("by", reason))
}

// Pause works agent id's freezer without changing its recorded state or
// publishing (a throttle freezes and thaws many times a second).
func (e *Engine) Pause(id int, on bool) error {
	if by := e.HeldBy(id); by != "" {
		return e.checkHold(id, "")
	}
	g, err := e.Group(id)
	if err != nil {
		return err
	}
	if on {
		return g.Freeze()
	}
	return g.Thaw()
}

// Signal sends sig to every process of agent id, as the kill verb does.
func (e *Engine) Signal(id int, sig syscall.Signal, reason string) error {
	a, err := e.Get(id)
	if err != nil {
		return err
	}
	if err := e.checkHold(id, reason); err != nil {
		return err
	}
	return e.signal(a, sig, bus.F("by", reason))
}

// Restart ends every process of agent id and runs its command again, as
// the restart verb does.
func (e *Engine) Restart(id int, reason string) error {
	a, err := e.Get(id)
	if err != nil {
		return err
	}
	if err := e.checkHold(id, reason); err != nil {
		return err
	}
	return e.rerun(a, bus.F("by", reason))
}
