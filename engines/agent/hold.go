package agent

import (
	"context"
	"strings"
	"syscall"

	"aiosfs/ctl"
	"aiosfs/fs"
)

// A hold is another engine's claim on an agent (the threat engine's
// quarantine): while it lasts, only root changes the agent through its
// ctl, and other engines' acts through the registry are refused, so
// nothing but root and the holder can thaw, restart, re-limit or signal
// it. The agent's owner, and any process running as the owner's uid,
// gets EPERM; the agent's processes are frozen and cannot even try.
// Holds live in memory: the holder saves its own state and holds again
// when the daemon starts.

// Hold puts (on) or lifts agent id's hold by engine by ("threat").
func (e *Engine) Hold(id int, by string, on bool) error {
	if _, err := e.Get(id); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.holds == nil {
		e.holds = map[int]string{}
	}
	if on {
		e.holds[id] = by
	} else {
		delete(e.holds, id)
	}
	return nil
}

// HeldBy is the engine holding agent id, "" if none.
func (e *Engine) HeldBy(id int) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.holds[id]
}

// checkHold refuses an engine's act on a held agent unless reason names
// the holder ("threat" or "threat: ...").
func (e *Engine) checkHold(id int, reason string) error {
	by := e.HeldBy(id)
	if by == "" || reason == by || strings.HasPrefix(reason, by+":") {
		return nil
	}
	return fs.Errorf(syscall.EBUSY, "agent %d is held by %s (quarantine): only root may change it", id, by)
}

// heldTable makes every verb of a held agent root's alone.
func (e *Engine) heldTable(id int, t ctl.Table) ctl.Table {
	by := e.HeldBy(id)
	if by == "" {
		return t
	}
	out := make(ctl.Table, len(t))
	for i, v := range t {
		run := v.Run
		v.Run = func(ctx context.Context, c fs.Caller, args []string) error {
			if c.Uid != 0 {
				return fs.Errorf(syscall.EPERM, "agent %d is held by %s (quarantine): only root may change it", id, by)
			}
			return run(ctx, c, args)
		}
		out[i] = v
	}
	return out
}
