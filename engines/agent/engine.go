// Package agent is the registry and lifecycle of agents: a process tree in
// its own cgroup, spawned or adopted, with its settings, kept across daemon
// restarts. It serves this part of the tree:
//
//	ctl                  spawn adopt quota (rows added to the global ctl)
//	clone                open allocates an agent; read gives "N\n"; writes are its ctl
//	quotas               per-user quotas and usage (see Quota)
//	agents/N/
//	    ctl              kill stop freeze thaw restart weight cpumax cpuperiod cpus memhigh memmax
//	                     pidsmax prio cap clone merge split exec remove
//	    status           identity, state, limits, ceiling, cgroup paths (see Agent.Status)
//	    stat             the latest sample (see telemetry.Sample.Line)
//	    history          recent samples, oldest first
//	    events           this agent's events
//	    log              the agent's output, its owner's and root's (see LogTail)
//
// An agent's directory belongs to the uid it runs as: only that uid and
// root write its ctl, and capabilities are root's alone. Agents of a
// non-root uid live in that user's parent cgroup (user-UID) under root's
// quota, and an unprivileged caller's agent never gets more than the
// caller's own cgroups, resource limits and nice value allow
// (docs/security.md). Every change is saved before it is acknowledged; one
// the store refuses is undone and fails with the store's errno.
package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"aiosfs/ctl"
	"aiosfs/engines/agent/view"
	"aiosfs/engines/bus"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
	"aiosfs/hal/process"
	"aiosfs/hal/spawn"
)

// Config is what the engine needs from the daemon.
type Config struct {
	StateDir  string
	Cgroups   *cgroup.Manager
	Proc      proc.FS
	Bus       *bus.Bus
	Telemetry *telemetry.Sampler
	// Grace is how long `stop` waits after SIGTERM before SIGKILL.
	Grace time.Duration
	// Mount is the daemon's own FUSE mount point, if any: an agent never
	// starts inside it (a shell in /aios writing spawn has its working
	// directory there), since a process with its cwd in the tree would
	// keep the daemon from unmounting and hang if the daemon died.
	Mount string
	// Process is how the engine signals, reaps and renices processes and
	// looks users up; nil is the host (process.Host).
	Process process.Ops
	// SignalReapAll makes Run answer SIGCHLD with Reap(nil), which reads
	// the cgroup.procs of every live agent, as before. Off, SIGCHLD reads
	// only the groups of the agents whose leader it reaped (ReapLeaders):
	// a SIGCHLD is about the daemon's own children, the leaders, and
	// every other agent that empties is found by the sampler's pass
	// (Reap with its samples) within one interval, as it was between
	// signals.
	SignalReapAll bool
}

// Engine is the agent registry.
type Engine struct {
	cfg    Config
	store  *Store
	logDir string

	mu     sync.Mutex
	agents map[int]*Agent
	// busy marks agents in the middle of a restart, merge or split, so
	// the reaper does not take an empty cgroup for an ended agent.
	busy map[int]bool
	// holds are other engines' claims (hold.go): agent id → holder.
	holds map[int]string
	// kids are the leaders this daemon started, until reaped.
	kids map[int]kid

	files fs.Dirtab               // other engines' rows of agents/N
	verbs []VerbFunc              // other engines' per-agent verbs
	envs  []func(id int) []string // other engines' spawn environment (GPU devices)

	// quotas are root's per-user quotas by uid ("default" for the rest).
	quotas map[string]Quota
	// trimmed is when trimLogs last looked.
	trimmed time.Time
	// unsaved are agents whose last change outside a verb (an exit the
	// reaper saw) could not be saved; the reaper tries again each tick.
	unsaved map[int]bool
}

// ExtendEnv registers a function whose variables every spawned agent gets
// (after the defaults, before the agent's own env=, which win).
func (e *Engine) ExtendEnv(f func(id int) []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.envs = append(e.envs, f)
}

// New opens the engine's store in cfg.StateDir. Call Restore next.
func New(cfg Config) (*Engine, error) {
	if cfg.Grace == 0 {
		cfg.Grace = 5 * time.Second
	}
	if cfg.Process == nil {
		cfg.Process = process.Host{}
	}
	st, err := OpenStore(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	// Agents' output is their owners' alone (agents/N/log shows it to
	// them): the directory is root's, and so is each file, mode 0600.
	logDir := filepath.Join(cfg.StateDir, "logs")
	if err := os.MkdirAll(logDir, 0700); err != nil {
		st.Close()
		return nil, err
	}
	if err := os.Chmod(logDir, 0700); err != nil { // made 0755 by an older daemon
		st.Close()
		return nil, err
	}
	e := &Engine{cfg: cfg, store: st, logDir: logDir, agents: map[int]*Agent{}, busy: map[int]bool{}, kids: map[int]kid{}, unsaved: map[int]bool{}}
	if err := e.loadQuotas(); err != nil {
		st.Close()
		return nil, err
	}
	return e, nil
}

func (e *Engine) publish(a *Agent, kind string, fields ...bus.Field) {
	ev := bus.Event{Source: "agent", Kind: kind, Fields: fields}
	if a != nil {
		ev.Agent = a.ID
	}
	e.cfg.Bus.Publish(ev)
}

// save writes a's record. A verb that changed the agent undoes its change
// when this fails and hands the writer saveErr; a change the daemon could
// not refuse (an exit) is kept in memory, reported, and saved again by the
// reaper until the store takes it.
func (e *Engine) save(a *Agent) error {
	e.mu.Lock()
	rec := a.Record
	e.mu.Unlock()
	err := e.store.Put(&rec)
	e.mu.Lock()
	if err != nil {
		e.unsaved[a.ID] = true
	} else {
		delete(e.unsaved, a.ID)
	}
	e.mu.Unlock()
	if err != nil {
		e.publish(a, "error", bus.F("op", "save"), bus.F("err", err.Error()))
	}
	return err
}

// retrySaves saves again the records whose last save failed.
func (e *Engine) retrySaves() {
	e.mu.Lock()
	var again []*Agent
	for id := range e.unsaved {
		if a, ok := e.agents[id]; ok {
			again = append(again, a)
		} else {
			delete(e.unsaved, id)
		}
	}
	e.mu.Unlock()
	for _, a := range again {
		e.save(a)
	}
}

// Unsaved is how many agents' records the store has not taken yet.
func (e *Engine) Unsaved() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.unsaved)
}

func groupName(id int) string { return "agent-" + strconv.Itoa(id) }

// Restore loads every record and takes back what still runs: an agent
// whose cgroup still has processes is adopted again with its settings; one
// whose processes ended while the daemon was away is marked exited (with
// the status the kernel reported, when known); one stopped by a clean
// shutdown is started again.
func (e *Engine) Restore() error {
	recs, err := e.store.All()
	if err != nil {
		return err
	}
	for _, r := range recs {
		a := &Agent{Record: *r}
		e.mu.Lock()
		e.agents[a.ID] = a
		e.mu.Unlock()
		if !a.Alive() && !a.Resume {
			e.reclaimExited(a)
			continue
		}
		if a.Interval > 0 && e.cfg.Telemetry != nil {
			e.cfg.Telemetry.SetAgentInterval(a.ID, a.Interval)
		}
		if g, err := e.cfg.Cgroups.Load(a.Group); err == nil {
			a.group = g
		}
		if a.Resume {
			a.Resume = false
			if err := e.launch(a); err != nil {
				e.finish(a, "restart failed: "+err.Error())
			} else {
				e.save(a) // a failure is retried by the reaper
				e.publish(a, "resume", bus.F("pid", a.Pid))
			}
			continue
		}
		var pids []int
		if a.group != nil {
			pids, _ = a.group.Procs()
		}
		if len(pids) == 0 {
			e.finish(a, "unknown (ended while the daemon was down)")
			continue
		}
		if frozen, _ := a.group.Frozen(); frozen {
			a.State = StateFrozen
		} else {
			a.State = StateRunning
		}
		e.save(a)
		e.publish(a, "readopt", bus.F("pids", len(pids)))
	}
	return nil
}

// reclaimExited handles the cgroup of an agent recorded as exited, which
// finish always removes, so one still there is a daemon killed half way:
// in a restart (rerun counts the restart, makes the cgroup and launches
// before it saves the record as running; the healing engine restarts
// often) or in a removal that failed. With processes in it, the restart
// went through: the agent is running again under its own number, its
// leader found as orphan recovery finds one. Empty, it is removed: no
// record claims it, and orphan recovery skips groups whose agent has a
// record, so nothing else ever would (one left behind blocks its
// parent's removal).
func (e *Engine) reclaimExited(a *Agent) {
	g, err := e.cfg.Cgroups.Load(a.Group)
	if err != nil {
		return // gone, as it should be
	}
	pids, err := g.Procs()
	if err != nil {
		e.publish(a, "error", bus.F("op", "reclaim cgroup"), bus.F("err", err.Error()))
		return
	}
	if len(pids) == 0 {
		if err := g.Delete(); err != nil {
			e.publish(a, "error", bus.F("op", "delete cgroup"), bus.F("err", err.Error()))
			return
		}
		if strings.HasPrefix(a.Group, cgroup.ParentPrefix) {
			e.cfg.Cgroups.RemoveParent(parentName(a.Uid))
		}
		e.publish(a, "recover", bus.F("group", a.Group), bus.F("removed", "empty cgroup of an exited agent"))
		return
	}
	leader, smp, ok := e.leaderOf(pids)
	if !ok {
		e.publish(a, "error", bus.F("op", "reclaim cgroup"), bus.F("err", fmt.Sprintf("no process of %v could be read", pids)))
		return
	}
	frozen, _ := g.Frozen()
	e.mu.Lock()
	a.group = g
	a.Pid, a.StartTicks, a.Started = leader, smp.StartTicks, smp.Start
	a.State, a.Exit, a.Ended = StateRunning, "", time.Time{}
	if frozen {
		a.State = StateFrozen
	}
	e.mu.Unlock()
	if a.Interval > 0 && e.cfg.Telemetry != nil {
		e.cfg.Telemetry.SetAgentInterval(a.ID, a.Interval)
	}
	e.save(a)
	e.publish(a, "readopt", bus.F("pids", len(pids)), bus.F("pid", leader), bus.F("why", "restarted as the daemon stopped"))
}

// Get returns agent id or an ENOENT error.
func (e *Engine) Get(id int) (*Agent, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.agents[id]
	if !ok {
		return nil, fs.Errorf(syscall.ENOENT, "no such agent %d", id)
	}
	return a, nil
}

// IDs returns the agent numbers in order.
func (e *Engine) IDs() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]int, 0, len(e.agents))
	for id := range e.agents {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// Group returns a live agent's cgroup, for engines that read its kernel
// counters (memory.stat, pressure) or act on it directly.
func (e *Engine) Group(id int) (cgroup.Group, error) {
	a, err := e.Get(id)
	if err != nil {
		return nil, err
	}
	return e.live(a)
}

// Record returns a copy of agent id's record, without reading the kernel
// (Snapshot also lists the cgroup's pids).
func (e *Engine) Record(id int) (Record, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.agents[id]
	if !ok {
		return Record{}, fs.Errorf(syscall.ENOENT, "no such agent %d", id)
	}
	return a.Record, nil
}

// Targets are the live agents for the sampler.
func (e *Engine) Targets() []telemetry.Target {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]telemetry.Target, 0, len(e.agents))
	for _, a := range e.agents {
		if a.Alive() && a.group != nil {
			out = append(out, telemetry.Target{ID: a.ID, Group: a.group})
		}
	}
	return out
}

// Snapshot returns a copy of agent id's record and its cgroup's pids.
func (e *Engine) Snapshot(id int) (Agent, []int, error) {
	e.mu.Lock()
	a, ok := e.agents[id]
	var cp Agent
	if ok {
		cp = *a
	}
	e.mu.Unlock()
	if !ok {
		return Agent{}, nil, fs.Errorf(syscall.ENOENT, "no such agent %d", id)
	}
	var pids []int
	if cp.Alive() && cp.group != nil {
		pids, _ = cp.group.Procs()
	}
	return cp, pids, nil
}

// newAgent allocates a record.
func (e *Engine) newAgent(name string, uid, gid uint32) (*Agent, error) {
	id, err := e.store.NextID()
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = "agent" + strconv.Itoa(id)
	}
	a := &Agent{Record: Record{ID: id, Name: name, State: StateNew, Uid: uid, Gid: gid, Group: groupFor(id, uid), Limits: NoLimits}}
	return a, nil
}

// add registers a new agent and saves it; when the store refuses, the
// agent is taken back out (its processes and cgroup go too) and the
// writer gets the store's errno: nothing runs that a restart would lose.
func (e *Engine) add(a *Agent) error {
	e.mu.Lock()
	e.agents[a.ID] = a
	e.mu.Unlock()
	if err := e.save(a); err != nil {
		e.mu.Lock()
		delete(e.agents, a.ID)
		delete(e.unsaved, a.ID)
		e.mu.Unlock()
		e.discard(a)
		return saveErr(err)
	}
	return nil
}

// start puts a new agent in the table, launches its process and saves
// it. In the table first, so that agents/N (and the heartbeat file named
// in its $AIOS_HEARTBEAT) exists before the process's first instruction
// runs, as a State new agent with no process, like one clone makes; a
// launch that fails takes it back out, and add's save failing takes
// the running process out with it.
func (e *Engine) start(a *Agent) error {
	e.mu.Lock()
	e.agents[a.ID] = a
	e.mu.Unlock()
	if err := e.launch(a); err != nil {
		e.mu.Lock()
		delete(e.agents, a.ID)
		e.mu.Unlock()
		e.discard(a)
		return err
	}
	return e.add(a)
}

// ensureGroup creates the agent's cgroup if it has none and applies its
// limits to it.
func (e *Engine) ensureGroup(a *Agent) error {
	g := e.groupOf(a)
	if g == nil {
		if strings.HasPrefix(a.Group, parentName(a.Uid)+"/") {
			if err := e.userParent(a.Uid); err != nil {
				return kernelErr("user group", err)
			}
		}
		var err error
		if g, err = e.cfg.Cgroups.Create(a.Group); err != nil {
			return kernelErr("cgroup", err)
		}
		e.mu.Lock()
		a.group = g
		e.mu.Unlock()
	}
	return kernelErr("limits", applyLimits(g, a.Limits))
}

// groupOf reads a's cgroup under the lock: finish sets it to nil while
// verbs, the reaper and the sampler may be using the agent.
func (e *Engine) groupOf(a *Agent) cgroup.Group {
	e.mu.Lock()
	defer e.mu.Unlock()
	return a.group
}

// live returns a's cgroup when a is running or frozen and not ending,
// else EBUSY matching view.ErrEnded.
func (e *Engine) live(a *Agent) (cgroup.Group, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.endedLocked(a); err != nil {
		return nil, err
	}
	return a.group, nil
}

// endedLocked is the error for acting on a when it has ended or is ending,
// nil while it lives. finish deletes the cgroup before it records
// "exited", so an agent being finished still says running or frozen:
// finishing is what tells its cgroup is going.
func (e *Engine) endedLocked(a *Agent) error {
	switch {
	case a.finishing:
		return endedError{fs.Errorf(syscall.EBUSY, "agent %d is ending", a.ID)}
	case !a.Alive() || a.group == nil:
		return endedError{fs.Errorf(syscall.EBUSY, "agent %d is %s", a.ID, a.State)}
	}
	return nil
}

// endedError is an *fs.Error (its errno and message reach the writer
// unchanged) that also matches view.ErrEnded.
type endedError struct{ err error }

func (e endedError) Error() string { return e.err.Error() }

func (e endedError) Unwrap() error { return e.err }

func (e endedError) Is(target error) bool { return target == view.ErrEnded }

func applyLimits(g cgroup.Group, l Limits) error {
	if l.Weight != 0 {
		if err := g.SetWeight(l.Weight); err != nil {
			return err
		}
	}
	if l.CPUMax != 0 || l.CPUPeriod != 0 {
		if err := g.SetCPUMax(l.CPUMax, l.CPUPeriod); err != nil {
			return err
		}
	}
	if l.Cpus != "" {
		if err := g.SetCpus(l.Cpus); err != nil {
			return err
		}
	}
	if l.MemHigh >= 0 {
		if err := g.SetMemHigh(l.MemHigh); err != nil {
			return err
		}
	}
	if l.MemMax >= 0 {
		if err := g.SetMemMax(l.MemMax); err != nil {
			return err
		}
	}
	if l.Pids > 0 {
		if err := g.SetPidsMax(l.Pids); err != nil {
			return err
		}
	}
	return nil
}

// launch starts the agent's command in its cgroup. The caller must not
// hold e.mu.
func (e *Engine) launch(a *Agent) error {
	if len(a.Cmd) == 0 {
		return fs.Errorf(syscall.EINVAL, "agent %d has no command", a.ID)
	}
	if err := e.ensureGroup(a); err != nil {
		return err
	}
	out, err := os.OpenFile(e.logPath(a.ID), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0600)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := out.Chmod(0600); err != nil { // a file an older daemon made 0644
		return err
	}
	// The owner's file, in root's 0700 directory: the owner cannot reach
	// it by name, but the bytes count against their disk quota where the
	// filesystem keeps one, as their own files would.
	if err := out.Chown(int(a.Uid), int(a.Gid)); err != nil {
		return err
	}
	// The program is looked up, and Dir entered, by the shim once it runs
	// as the agent's user (see spawn.Spec): never with the daemon's rights.
	spec := spawn.Spec{Path: a.Cmd[0], Args: a.Cmd, Env: e.environ(a), Dir: a.Dir, Uid: a.Uid, Gid: a.Gid,
		Nice: a.Prio, Add: a.CapAdd, Drop: a.CapDrp}
	for _, r := range a.Rlimits {
		spec.Rlimits = append(spec.Rlimits, spawn.Rlimit{Resource: r.Resource, Cur: r.Cur, Max: r.Max})
	}
	if u, err := e.cfg.Process.UserID(a.Uid); err == nil {
		if gids, err := u.GroupIds(); err == nil {
			for _, g := range gids {
				if n, err := strconv.Atoi(g); err == nil {
					spec.Groups = append(spec.Groups, uint32(n))
				}
			}
		}
	}
	p, err := spawn.Start(spec, e.groupOf(a).Add, out, out)
	if err != nil {
		return kernelErr("spawn", err)
	}
	e.mu.Lock()
	a.proc = p
	a.Pid = p.Pid
	a.StartTicks, _ = e.cfg.Proc.StartTicks(p.Pid)
	a.State = StateRunning
	a.Started = time.Now()
	a.Ended = time.Time{}
	a.Exit = ""
	a.leader = ""
	a.Spawned = true
	e.kids[p.Pid] = kid{a, p}
	e.mu.Unlock()
	return nil
}

// MaxLog is the most an agent's output file grows to before the daemon
// trims it: the agent's owner has no disk quota in the state directory, so
// an agent printing without end would otherwise fill it (and with it every
// save of every engine). The last LogTail bytes are kept in agent-N.log.old.
const MaxLog = 32 << 20

// trimLogs bounds each live agent's output file (see MaxLog), at most once
// a second. The file is open O_APPEND in the agent, so after the truncation
// its writes go on at the new end.
func (e *Engine) trimLogs() {
	e.mu.Lock()
	if time.Since(e.trimmed) < time.Second {
		e.mu.Unlock()
		return
	}
	e.trimmed = time.Now()
	var ids []int
	for id, a := range e.agents {
		if a.Alive() && a.Spawned {
			ids = append(ids, id)
		}
	}
	e.mu.Unlock()
	for _, id := range ids {
		p := e.logPath(id)
		st, err := os.Stat(p)
		if err != nil || st.Size() <= MaxLog {
			continue
		}
		tail, err := tailFile(p, LogTail)
		if err == nil {
			err = os.WriteFile(p+".old", tail, 0600)
		}
		if err == nil {
			err = os.Truncate(p, 0)
		}
		if err != nil {
			e.publish(&Agent{Record: Record{ID: id}}, "error", bus.F("op", "trim log"), bus.F("err", err.Error()))
			continue
		}
		e.publish(&Agent{Record: Record{ID: id}}, "log-trimmed", bus.F("bytes", st.Size()))
	}
}

// logPath is agent id's output file (stdout and stderr), shown to its
// owner as agents/N/log.
func (e *Engine) logPath(id int) string {
	return filepath.Join(e.logDir, groupName(id)+".log")
}

// kid is a leader the daemon started and must reap.
type kid struct {
	a *Agent
	p *os.Process
}

// reapKids collects the exit status of every leader that has ended, with
// wait4(WNOHANG) on each one's pid. Reaping by polling, instead of a
// goroutine blocked in wait(2) per agent, keeps the daemon from holding an
// OS thread for every agent it runs. A leader replaced by a restart or
// merged away is still reaped here; only the current leader's status is
// recorded. Run calls Reap on SIGCHLD, so a status arrives at once.
func (e *Engine) reapKids() []*Agent {
	type ended struct {
		a      *Agent
		pid    int
		status string
	}
	var done []ended
	e.mu.Lock()
	for pid, k := range e.kids {
		ws, reaped, err := e.cfg.Process.Reap(pid)
		if (!reaped && err == nil) || errors.Is(err, syscall.EINTR) {
			continue
		}
		status := "unknown"
		if err == nil {
			status = WaitStatus(ws)
		}
		delete(e.kids, pid)
		k.p.Release()
		if k.a.proc == k.p {
			k.a.leader = status
			k.a.proc = nil
			done = append(done, ended{k.a, pid, status})
		}
	}
	e.mu.Unlock()
	agents := make([]*Agent, 0, len(done))
	for _, d := range done {
		e.publish(d.a, "leader-exit", bus.F("pid", d.pid), bus.F("status", d.status))
		agents = append(agents, d.a)
	}
	return agents
}

// Run reaps ended leaders as soon as the kernel says a child changed
// state (the sampler's tick also reaps, so a missed signal costs at most
// one interval).
func (e *Engine) Run(ctx context.Context) {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, syscall.SIGCHLD)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			if e.cfg.SignalReapAll {
				e.Reap(nil)
			} else {
				e.ReapLeaders()
			}
		}
	}
}

// WaitStatus renders a wait status as "exit N" or "signal NAME".
func WaitStatus(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + SignalName(ws.Signal())
	}
	return "exit " + strconv.Itoa(ws.ExitStatus())
}

// SignalName is the short name of a signal (KILL, TERM), or its number:
// ctl's one table, so that what kill publishes reads back in kill.
func SignalName(s syscall.Signal) string { return ctl.SignalName(s) }

// environ is the agent's environment: a minimal login-like set plus its
// env= settings, which win.
func (e *Engine) environ(a *Agent) []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "AIOS_AGENT=" + strconv.Itoa(a.ID)}
	if u, err := e.cfg.Process.UserID(a.Uid); err == nil {
		env = append(env, "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username)
	}
	e.mu.Lock()
	hooks := append([]func(int) []string(nil), e.envs...)
	e.mu.Unlock()
	for _, f := range hooks {
		env = append(env, f(a.ID)...)
	}
	return append(env, a.Env...)
}

// Reap ends agents whose cgroups have emptied. The sampler calls it after
// every pass with the pass's latest samples: an agent sampled with
// processes (Procs > 0) is alive and its group is not read again; only
// agents missing from latest (not sampled in this pass) or sampled empty
// are. A sample is at most the pass old, so an agent that empties after
// it is reaped at the next pass. latest nil reads every group: a
// leader's wait(2) calls it so, at once.
func (e *Engine) Reap(latest map[int]telemetry.Sample) {
	e.reapKids()
	e.retrySaves()
	e.trimLogs()
	e.mu.Lock()
	var check []*Agent
	for _, a := range e.agents {
		if a.Alive() && !e.busy[a.ID] {
			check = append(check, a)
		}
	}
	e.mu.Unlock()
	e.reap(check, latest)
}

// ReapLeaders is Run's answer to SIGCHLD (unless Config.SignalReapAll):
// it collects the status of every leader that ended and ends those of
// their agents whose cgroups have emptied, reading only their groups.
func (e *Engine) ReapLeaders() {
	ended := e.reapKids()
	e.mu.Lock()
	check := ended[:0]
	for _, a := range ended {
		if a.Alive() && !e.busy[a.ID] {
			check = append(check, a)
		}
	}
	e.mu.Unlock()
	e.reap(check, nil)
}

// reap ends the agents of check whose cgroups have emptied (see Reap).
func (e *Engine) reap(check []*Agent, latest map[int]telemetry.Sample) {
	for _, a := range check {
		n := 0
		if s, ok := latest[a.ID]; ok && s.Procs > 0 {
			n = s.Procs
		} else if g := e.groupOf(a); g != nil {
			pids, _ := g.Procs()
			n = len(pids)
		}
		if n > 0 {
			e.mu.Lock()
			a.emptySince = time.Time{}
			e.mu.Unlock()
			continue
		}
		e.mu.Lock()
		// Our child's status arrives from wait(2); wait for it rather
		// than record "unknown".
		pending := a.proc != nil && a.leader == ""
		status := a.leader
		e.mu.Unlock()
		if pending || e.isBusy(a.ID) {
			continue
		}
		if status == "" {
			s, ok := e.cfg.Telemetry.ExitOf(a.Pid)
			if !ok && e.waitExit(a) {
				// The cgroup can empty before the proc connector's
				// exit event is read: give it a moment.
				continue
			}
			status = "unknown"
			if ok {
				status = s
			}
		}
		e.finish(a, status)
	}
}

// exitWait is how long the reaper waits, after an agent that is not its
// child empties, for the kernel's exit event to give its status.
const exitWait = time.Second

// waitExit says whether the reaper should wait longer for a's exit status:
// it notes when a was first seen empty and waits until exitWait has gone.
func (e *Engine) waitExit(a *Agent) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a.emptySince.IsZero() {
		a.emptySince = time.Now()
		return true
	}
	return time.Since(a.emptySince) < exitWait
}

// setBusy marks agent id as being set up or changed, so the reaper leaves
// it alone.
func (e *Engine) setBusy(id int, busy bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if busy {
		e.busy[id] = true
	} else {
		delete(e.busy, id)
	}
}

func (e *Engine) isBusy(id int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.busy[id]
}

// finish records the end of agent a and removes its cgroup. The cgroup
// goes before the state changes, so whoever sees "exited" also sees the
// cgroup gone; busy keeps a second finisher (the reaper and a leader's
// wait both get here) from recording the end twice.
func (e *Engine) finish(a *Agent, status string) {
	e.mu.Lock()
	if a.finishing || a.State == StateExited {
		e.mu.Unlock()
		return
	}
	a.finishing = true
	g := a.group
	e.mu.Unlock()
	if g != nil {
		if err := g.Delete(); err != nil {
			e.publish(a, "error", bus.F("op", "delete cgroup"), bus.F("err", err.Error()))
		}
		if strings.HasPrefix(a.Group, cgroup.ParentPrefix) {
			e.cfg.Cgroups.RemoveParent(parentName(a.Uid)) // kept while another agent of the user runs
		}
	}
	e.mu.Lock()
	if a.stopped != "" {
		status += " (" + a.stopped + ")"
		a.stopped = ""
	}
	a.State = StateExited
	a.Exit = status
	a.Ended = time.Now()
	a.group = nil
	a.finishing = false
	e.mu.Unlock()
	e.save(a)
	e.publish(a, "exit", bus.F("name", a.Name), bus.F("status", status))
}

// Shutdown is the daemon's clean stop: spawned agents are stopped (TERM,
// then KILL after the grace period) and marked to resume at the next start;
// adopted processes go back to the cgroups they came from; every cgroup
// the engine created is removed.
func (e *Engine) Shutdown() error {
	var errs []error
	for _, id := range e.IDs() {
		a, _ := e.Get(id)
		if a == nil || !a.Alive() {
			continue
		}
		if a.Spawned {
			a.Resume = true
			a.stopped = "daemon shutdown"
			e.terminate(a, e.cfg.Grace)
		} else if err := e.release(a); err != nil {
			errs = append(errs, err)
		}
	}
	// Give wait(2) a moment to report, then reap whatever remains.
	deadline := time.Now().Add(e.cfg.Grace + time.Second)
	for time.Now().Before(deadline) {
		e.Reap(nil)
		if !e.anyAlive() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, id := range e.IDs() {
		if a, _ := e.Get(id); a != nil && a.Alive() {
			errs = append(errs, fmt.Errorf("agent %d still has processes", id))
		}
	}
	errs = append(errs, e.cfg.Cgroups.Close(), e.store.Close())
	return errors.Join(errs...)
}

func (e *Engine) anyAlive() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range e.agents {
		if a.Alive() {
			return true
		}
	}
	return false
}

// terminate sends SIGTERM to every process of a, then SIGKILL after grace
// if any remain. It blocks up to grace.
func (e *Engine) terminate(a *Agent, grace time.Duration) {
	g := e.groupOf(a)
	if g == nil {
		return
	}
	g.Thaw() // a frozen process cannot act on SIGTERM
	if pids, _ := g.Procs(); len(pids) > 0 {
		for _, p := range pids {
			e.cfg.Process.Kill(p, syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if pids, _ := g.Procs(); len(pids) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.Kill()
}

// release hands an adopted agent's processes back to where they came from
// and ends the agent without signalling anything.
func (e *Engine) release(a *Agent) error {
	g := e.groupOf(a)
	if g == nil {
		return nil
	}
	pids, _ := g.Procs()
	for _, p := range pids {
		origin := a.Origin
		if o, ok := a.Origins[p]; ok {
			origin = o // each adopted process goes back to its own cgroups
		}
		if err := e.cfg.Cgroups.Return(p, origin); err != nil {
			return fmt.Errorf("agent %d: return pid %d: %w", a.ID, p, err)
		}
	}
	a.stopped = "released at daemon shutdown"
	e.finish(a, "running")
	return nil
}
