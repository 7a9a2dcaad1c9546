package telemetry

import (
	"context"
	"io"
	"strconv"
	"time"

	"aiosfs/ctl"
	"aiosfs/engines/bus"
	"aiosfs/hal/procconn"
)

// EventReader is what WatchProc needs of a proc connector: batches of
// events, blocking until there are some. *procconn.Conn satisfies it.
type EventReader interface {
	Read() ([]procconn.Event, error)
}

// WatchProc consumes proc connector events until ctx ends or conn fails.
// When ctx ends it closes conn if conn is an io.Closer, so that a blocked
// Read returns.
//
// Events about processes of an agent are published on the bus, one line
// each, with source=proc and the agent's number:
//
//	kind=fork agent=N pid=CHILD ppid=PARENT     a new process (not a thread); the child joins the parent's agent
//	kind=exec agent=N pid=P
//	kind=uid  agent=N pid=P ruid=R euid=E
//	kind=gid  agent=N pid=P rgid=R egid=E
//	kind=exit agent=N pid=P status=S            or signal=NAME (KILL, SEGV, ...) [core=1]
//	kind=lost agent=0                           the kernel dropped events (socket buffer overrun)
//
// Thread creation and thread exits are not published. Every process exit
// (agent or not) is remembered for ExitOf.
func (s *Sampler) WatchProc(ctx context.Context, conn EventReader) {
	// While it runs, events tell the sampler when an agent's pids change
	// (Tuning.ProcsEvery).
	s.watching.Add(1)
	defer s.watching.Add(-1)
	stop := make(chan struct{})
	defer close(stop)
	if c, ok := conn.(io.Closer); ok {
		go func() {
			select {
			case <-ctx.Done():
				c.Close()
			case <-stop:
			}
		}()
	}
	for ctx.Err() == nil {
		evs, err := conn.Read()
		if ctx.Err() != nil {
			return
		}
		for i := range evs {
			s.procEvent(&evs[i])
		}
		if err != nil {
			return
		}
	}
}

// procEvent handles one proc connector event.
func (s *Sampler) procEvent(e *procconn.Event) {
	var (
		agent  int
		kind   string
		fields []bus.Field
	)
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	switch e.Kind {
	case procconn.Fork:
		if e.Pid != e.Tgid {
			return // a new thread
		}
		s.mu.Lock()
		agent = s.pids[e.ParentTgid].agent
		if agent != 0 {
			s.pids[e.Pid] = pidEntry{agent: agent, gen: s.gen}
		}
		s.mu.Unlock()
		kind = "fork"
		fields = []bus.Field{bus.F("pid", e.Pid), bus.F("ppid", e.ParentTgid)}
	case procconn.Exec:
		agent = s.AgentOf(e.Tgid)
		kind = "exec"
		fields = []bus.Field{bus.F("pid", e.Tgid)}
	case procconn.UID:
		agent = s.AgentOf(e.Tgid)
		kind = "uid"
		fields = []bus.Field{bus.F("pid", e.Tgid), bus.F("ruid", e.Ruid), bus.F("euid", e.Euid)}
	case procconn.GID:
		agent = s.AgentOf(e.Tgid)
		kind = "gid"
		fields = []bus.Field{bus.F("pid", e.Tgid), bus.F("rgid", e.Rgid), bus.F("egid", e.Egid)}
	case procconn.Exit:
		if e.Pid != e.Tgid {
			return // a thread other than the leader
		}
		status, field := exitString(e)
		s.mu.Lock()
		agent = s.pids[e.Pid].agent
		delete(s.pids, e.Pid)
		s.rememberExit(e.Pid, status)
		s.mu.Unlock()
		kind = "exit"
		fields = []bus.Field{bus.F("pid", e.Pid), field}
		if e.CoreDumped() {
			fields = append(fields, bus.F("core", 1))
		}
	case procconn.Lost:
		// Any agent may have forked or lost a process unseen: every
		// one reads its cgroup.procs at its next full sample.
		s.lost.Add(1)
		if s.bus != nil {
			s.bus.Publish(bus.Event{Time: t, Source: "proc", Kind: "lost"})
		}
		return
	default:
		return
	}
	if agent == 0 {
		return
	}
	// The agent's processes changed: its next pass is a full sample
	// (Tuning.Hold would see the CPU of a fork or an exit anyway; an
	// exec or a uid change need not show there).
	s.Wake(agent)
	if s.bus == nil {
		return
	}
	s.bus.Publish(bus.Event{Time: t, Source: "proc", Kind: kind, Agent: agent, Fields: fields})
}

// exitString decodes an exit event's wait status: ("exit 3", status=3) or
// ("signal KILL", signal=KILL).
func exitString(e *procconn.Event) (string, bus.Field) {
	if sig, ok := e.Signaled(); ok {
		name := ctl.SignalName(sig)
		return "signal " + name, bus.F("signal", name)
	}
	n := e.ExitStatus()
	return "exit " + strconv.Itoa(n), bus.F("status", n)
}

// rememberExit records pid's exit status; called with mu held. The
// table keeps the last exitKeep exits.
func (s *Sampler) rememberExit(pid int, status string) {
	if _, ok := s.exits[pid]; !ok {
		if len(s.exitQ) < exitKeep {
			s.exitQ = append(s.exitQ, pid)
		} else {
			old := s.exitQ[s.exitHd]
			delete(s.exits, old)
			s.exitQ[s.exitHd] = pid
			s.exitHd = (s.exitHd + 1) % exitKeep
		}
	}
	s.exits[pid] = status
}

// ExitOf returns how pid last exited, as the kernel reported it: "exit 3"
// or "signal KILL". It serves processes the daemon cannot wait for (those
// it adopted after a restart); it knows the most recent exitKeep process
// exits seen by WatchProc.
func (s *Sampler) ExitOf(pid int) (status string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	status, ok = s.exits[pid]
	return status, ok
}
