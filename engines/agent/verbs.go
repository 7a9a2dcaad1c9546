package agent

import (
	"context"
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"aiosfs/ctl"
	"aiosfs/engines/bus"
	"aiosfs/fs"
	"aiosfs/hal/cgroup"
	"aiosfs/hal/spawn"
)

// spawnKeys are the settings spawn and exec take before "--".
var spawnKeys = []string{"cpus", "weight", "cpumax", "cpuperiod", "memhigh", "memmax", "user", "env*", "dir", "prio", "cap*"}

// settings are parsed spawn options; parsing all of them before acting is
// what makes a bad one change nothing.
type settings struct {
	limits         Limits
	uid, gid       uint32
	userSet        bool
	env            []string
	dir            string
	prio           int
	capAdd, capDrp []string
}

func (e *Engine) parseSettings(c fs.Caller, kvs []ctl.KV, base settings) (settings, error) {
	s := base
	for _, kv := range kvs {
		v := kv.Value
		var err error
		switch kv.Key {
		case "cpus":
			var cpus []int
			if cpus, err = ctl.ParseCPUList(v, e.cfg.Proc.NumCPU()); err == nil {
				s.limits.Cpus = ctl.FormatCPUList(cpus)
			}
		case "weight":
			var w int64
			w, err = ctl.ParseInt(v, 1, 10000)
			s.limits.Weight = uint64(w)
		case "cpumax":
			s.limits.CPUMax, err = ctl.ParseCores(v)
		case "cpuperiod":
			s.limits.CPUPeriod, err = ctl.ParseDuration(v)
			if err == nil && (s.limits.CPUPeriod < cgroup.MinCPUPeriod || s.limits.CPUPeriod > cgroup.MaxCPUPeriod) {
				err = ctl.Errorf("cpuperiod %v not in 1ms..1s", s.limits.CPUPeriod)
			}
		case "memhigh":
			s.limits.MemHigh, err = ctl.ParseSize(v)
		case "memmax":
			s.limits.MemMax, err = ctl.ParseSize(v)
		case "user":
			s.uid, s.gid, err = lookupUser(v)
			s.userSet = true
		case "env":
			if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
				err = ctl.Errorf("bad env %q (want NAME=VALUE)", v)
			}
			s.env = append(s.env, v)
		case "dir":
			if !strings.HasPrefix(v, "/") {
				err = ctl.Errorf("dir %q must be absolute", v)
			}
			s.dir = v
		case "prio":
			var p int64
			p, err = ctl.ParseInt(v, -20, 19)
			s.prio = int(p)
		case "cap":
			var add bool
			var name string
			if add, name, err = parseCap(v); err == nil {
				if c.Uid != 0 {
					return s, fs.Errorf(syscall.EPERM, "capabilities are root's alone")
				}
				if add {
					s.capAdd = append(s.capAdd, name)
				} else {
					s.capDrp = append(s.capDrp, name)
				}
			}
		}
		if err != nil {
			return s, err
		}
	}
	// The kernel takes a quota of at least 1ms a period: 0.05 cores
	// cannot be had over 10ms.
	if s.limits.CPUMax > 0 {
		if err := cgroup.CheckCPUMax(s.limits.CPUMax, s.limits.CPUPeriod); err != nil {
			return s, ctl.Errorf("cpumax %g over cpuperiod %v: below the kernel's least quota of 1ms a period", s.limits.CPUMax, s.limits.Period())
		}
	}
	if c.Uid != 0 {
		// Anyone may spawn, but only as themselves, and never with
		// priority above the default (as setpriority(2) would refuse).
		if s.userSet && s.uid != c.Uid {
			return s, fs.Errorf(syscall.EPERM, "only root may spawn as another user")
		}
		if s.prio < 0 {
			return s, fs.Errorf(syscall.EPERM, "only root may raise priority")
		}
		s.uid, s.gid = c.Uid, c.Gid
	}
	return s, nil
}

func parseCap(v string) (add bool, name string, err error) {
	if len(v) < 2 || (v[0] != '+' && v[0] != '-') {
		return false, "", ctl.Errorf("bad capability %q (want +NAME or -NAME)", v)
	}
	name, err = spawn.CapName(v[1:])
	if err != nil {
		return false, "", ctl.Errorf("%v", err)
	}
	return v[0] == '+', name, nil
}

func lookupUser(v string) (uint32, uint32, error) {
	u, err := user.Lookup(v)
	if err != nil {
		if u, err = user.LookupId(v); err != nil {
			return 0, 0, fs.Errorf(syscall.ENOENT, "no such user %q", v)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uint32(uid), uint32(gid), nil
}

func validName(n string) error {
	if n == "" || len(n) > 64 || strings.ContainsAny(n, "/ \t\n=\"'") {
		return ctl.Errorf("bad agent name %q", n)
	}
	return nil
}

// Spawn starts a new agent: spawn NAME [key=value ...] -- CMD [ARGS ...].
func (e *Engine) Spawn(c fs.Caller, args []string) (*Agent, error) {
	name := args[0]
	if err := validName(name); err != nil {
		return nil, err
	}
	kvs, argv, err := ctl.KeyValues(args[1:], spawnKeys...)
	if err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, ctl.Errorf("spawn: no command (spawn NAME [key=value ...] -- CMD [ARGS ...])")
	}
	s, err := e.parseSettings(c, kvs, settings{limits: NoLimits})
	if err != nil {
		return nil, err
	}
	a, err := e.newAgent(name, s.uid, s.gid)
	if err != nil {
		return nil, err
	}
	s.applyTo(a)
	a.Cmd = argv
	if err := e.launch(a); err != nil {
		e.discard(a)
		return nil, err
	}
	e.add(a)
	e.publish(a, "spawn", bus.F("name", a.Name), bus.F("pid", a.Pid), bus.F("uid", a.Uid), bus.F("cmd", shellJoin(a.Cmd)))
	return a, nil
}

func (s settings) applyTo(a *Agent) {
	a.Limits = s.limits
	a.Uid, a.Gid = s.uid, s.gid
	a.Env, a.Dir, a.Prio = s.env, s.dir, s.prio
	a.CapAdd, a.CapDrp = s.capAdd, s.capDrp
}

// discard undoes a failed start: the cgroup goes, the record was never
// added, so nothing is left of the attempt but its number.
func (e *Engine) discard(a *Agent) {
	e.mu.Lock()
	g := a.group
	a.group = nil
	e.mu.Unlock()
	if g != nil {
		g.Kill()
		g.Delete()
	}
}

// Adopt makes a running process tree an agent: adopt PID [NAME].
func (e *Engine) Adopt(c fs.Caller, args []string) (*Agent, error) {
	pid64, err := ctl.ParseInt(args[0], 1, 1<<22)
	if err != nil {
		return nil, err
	}
	pid := int(pid64)
	smp, err := e.cfg.Proc.Sample(pid)
	if err != nil {
		return nil, fs.Errorf(syscall.ENOENT, "no such process %d", pid)
	}
	if c.Uid != 0 && smp.Uid != c.Uid {
		return nil, fs.Errorf(syscall.EPERM, "process %d is not yours", pid)
	}
	if id := e.agentOf(pid); id != 0 {
		return nil, fs.Errorf(syscall.EBUSY, "process %d already belongs to agent %d", pid, id)
	}
	name := smp.Comm
	if len(args) > 1 {
		name = args[1]
	}
	if err := validName(name); err != nil {
		return nil, err
	}
	a, err := e.newAgent(name, smp.Uid, 0)
	if err != nil {
		return nil, err
	}
	a.Pid, a.StartTicks = pid, smp.StartTicks
	a.Cmd, _ = e.cfg.Proc.Cmdline(pid)
	a.Origin, _ = e.cfg.Proc.Cgroups(pid)
	if err := e.ensureGroup(a); err != nil {
		e.discard(a)
		return nil, err
	}
	// The tree moves top-down so a child forked meanwhile follows its
	// parent into the cgroup.
	tree, _ := e.cfg.Proc.Descendants(pid)
	g := e.groupOf(a)
	for _, p := range append([]int{pid}, tree...) {
		if err := g.Add(p); err != nil && p == pid {
			e.discard(a)
			return nil, err
		}
	}
	a.State = StateRunning
	a.Started = smp.Start
	e.add(a)
	e.publish(a, "adopt", bus.F("name", a.Name), bus.F("pid", pid), bus.F("procs", 1+len(tree)))
	return a, nil
}

// agentOf finds the live agent whose cgroup holds pid.
func (e *Engine) agentOf(pid int) int {
	type liveGroup struct {
		id int
		g  cgroup.Group
	}
	e.mu.Lock()
	var live []liveGroup
	for _, a := range e.agents {
		if a.Alive() && a.group != nil {
			live = append(live, liveGroup{a.ID, a.group})
		}
	}
	e.mu.Unlock()
	for _, l := range live {
		if pids, _ := l.g.Procs(); slices.Contains(pids, pid) {
			return l.id
		}
	}
	return 0
}

// Alloc is the clone file's open: a new agent with no process, owned by
// the caller, whose ctl then takes exec.
func (e *Engine) Alloc(c fs.Caller) (*Agent, error) {
	a, err := e.newAgent("", c.Uid, c.Gid)
	if err != nil {
		return nil, err
	}
	e.add(a)
	e.publish(a, "alloc", bus.F("uid", c.Uid))
	return a, nil
}

// RootVerbs are the agent engine's rows of the global ctl.
func (e *Engine) RootVerbs() ctl.Table {
	return ctl.Table{
		{Name: "spawn", Args: "NAME [key=value ...] -- CMD [ARGS ...]", Min: 2, Max: -1,
			Doc: "start an agent; keys: " + strings.ReplaceAll(strings.Join(spawnKeys, " "), "*", ""),
			Run: func(_ context.Context, c fs.Caller, a []string) error { _, err := e.Spawn(c, a); return err }},
		{Name: "adopt", Args: "PID [NAME]", Min: 1, Max: 2, Doc: "make a running process tree an agent",
			Run: func(_ context.Context, c fs.Caller, a []string) error { _, err := e.Adopt(c, a); return err }},
	}
}

// Verbs is agent id's ctl table.
func (e *Engine) Verbs(id int) ctl.Table {
	with := func(f func(a *Agent, c fs.Caller, args []string) error) func(context.Context, fs.Caller, []string) error {
		return func(_ context.Context, c fs.Caller, args []string) error {
			a, err := e.Get(id)
			if err != nil {
				return err
			}
			return f(a, c, args)
		}
	}
	return ctl.Table{
		{Name: "kill", Args: "[SIG]", Min: 0, Max: 1, Doc: "signal every process (default KILL)", Run: with(e.kill)},
		{Name: "stop", Min: 0, Max: 0, Doc: "TERM every process, KILL after the grace period", Run: with(e.stop)},
		{Name: "freeze", Min: 0, Max: 0, Doc: "freeze the agent's cgroup", Run: with(e.freeze)},
		{Name: "thaw", Min: 0, Max: 0, Doc: "thaw the agent's cgroup", Run: with(e.thaw)},
		{Name: "restart", Min: 0, Max: 0, Doc: "end every process and run the command again", Run: with(e.restart)},
		{Name: "weight", Args: "N", Min: 1, Max: 1, Doc: "cpu weight 1..10000 (v1: cpu.shares)", Run: with(e.limitVerb("weight"))},
		{Name: "cpumax", Args: "CORES", Min: 1, Max: 1, Doc: "cpu bandwidth in cores (0.5, 150%, max)", Run: with(e.limitVerb("cpumax"))},
		{Name: "cpuperiod", Args: "DURATION", Min: 1, Max: 1, Doc: "time slice cpumax's quota refills over, 1ms..1s (default 100ms)", Run: with(e.limitVerb("cpuperiod"))},
		{Name: "cpus", Args: "LIST", Min: 1, Max: 1, Doc: "cpuset, e.g. 0-1,3", Run: with(e.limitVerb("cpus"))},
		{Name: "memhigh", Args: "SIZE", Min: 1, Max: 1, Doc: "memory.high (v1: soft limit), e.g. 512M, max", Run: with(e.limitVerb("memhigh"))},
		{Name: "memmax", Args: "SIZE", Min: 1, Max: 1, Doc: "memory hard limit, e.g. 2G, max", Run: with(e.limitVerb("memmax"))},
		{Name: "prio", Args: "N", Min: 1, Max: 1, Doc: "nice value -20..19 of every process", Run: with(e.prio)},
		{Name: "cap", Args: "+NAME|-NAME", Min: 1, Max: 1, Root: true, Doc: "grant or drop a capability (at next start)", Run: with(e.capVerb)},
		{Name: "clone", Args: "[NAME]", Min: 0, Max: 1, Doc: "a new agent with the same command and limits", Run: with(e.cloneVerb)},
		{Name: "merge", Args: "M", Min: 1, Max: 1, Doc: "agent M's processes join this one; M ends", Run: with(e.merge)},
		{Name: "split", Args: "PID ... [name=X]", Min: 1, Max: -1, Doc: "move those processes to a new agent", Run: with(e.split)},
		{Name: "exec", Args: "[key=value ...] -- CMD [ARGS ...]", Min: 1, Max: -1, Doc: "start a new (cloned) agent's command", Run: with(e.execVerb)},
		{Name: "remove", Min: 0, Max: 0, Doc: "forget an exited agent", Run: with(e.remove)},
	}
}

func (e *Engine) kill(a *Agent, _ fs.Caller, args []string) error {
	sig := syscall.SIGKILL
	if len(args) == 1 {
		var err error
		if sig, err = ctl.ParseSignal(args[0]); err != nil {
			return err
		}
	}
	g, err := e.live(a)
	if err != nil {
		return err
	}
	pids, err := g.Procs()
	if err != nil {
		return err
	}
	if sig == syscall.SIGKILL {
		err = g.Kill()
	} else {
		for _, p := range pids {
			syscall.Kill(p, sig)
		}
	}
	e.publish(a, "kill", bus.F("signal", SignalName(sig)), bus.F("procs", len(pids)))
	return err
}

func (e *Engine) stop(a *Agent, _ fs.Caller, _ []string) error {
	if _, err := e.live(a); err != nil {
		return err
	}
	e.mu.Lock()
	a.stopped = "stopped"
	e.mu.Unlock()
	e.publish(a, "stop", bus.F("grace", e.cfg.Grace.Seconds()))
	go func() { e.terminate(a, e.cfg.Grace); e.Reap() }()
	return nil
}

func (e *Engine) freeze(a *Agent, _ fs.Caller, _ []string) error {
	g, err := e.live(a)
	if err != nil {
		return err
	}
	if err := g.Freeze(); err != nil {
		return err
	}
	e.setState(a, StateFrozen)
	e.publish(a, "freeze")
	return nil
}

func (e *Engine) thaw(a *Agent, _ fs.Caller, _ []string) error {
	g, err := e.live(a)
	if err != nil {
		return err
	}
	if err := g.Thaw(); err != nil {
		return err
	}
	e.setState(a, StateRunning)
	e.publish(a, "thaw")
	return nil
}

func (e *Engine) setState(a *Agent, s string) {
	e.mu.Lock()
	a.State = s
	e.mu.Unlock()
	e.save(a)
}

// limitVerb handles weight, cpumax, cpuperiod, cpus, memhigh and memmax: the verb's
// name is its spawn key, so spawn and ctl share one parser.
func (e *Engine) limitVerb(key string) func(a *Agent, c fs.Caller, args []string) error {
	return func(a *Agent, c fs.Caller, args []string) error {
		return e.setLimit(a, key, args[0], "ctl")
	}
}

// Apply sets one of the agent's limits (weight, cpumax, cpuperiod, cpus, memhigh,
// memmax, with the value in ctl syntax) for another engine, recording the
// reason in the event, so that a predictive allocation goes through the
// same parser, the same kernel writes and the same record as a ctl write.
func (e *Engine) Apply(id int, key, value, reason string) error {
	a, err := e.Get(id)
	if err != nil {
		return err
	}
	switch key {
	case "weight", "cpumax", "cpuperiod", "cpus", "memhigh", "memmax":
	default:
		return ctl.Errorf("unknown limit %q", key)
	}
	return e.setLimit(a, key, value, reason)
}

func (e *Engine) setLimit(a *Agent, key, value, reason string) error {
	s, err := e.parseSettings(fs.RootCaller, []ctl.KV{{Key: key, Value: value}}, settings{limits: a.Limits})
	if err != nil {
		return err
	}
	if g := e.groupOf(a); g != nil {
		var err error
		switch key {
		case "weight":
			err = g.SetWeight(s.limits.Weight)
		case "cpumax", "cpuperiod":
			err = g.SetCPUMax(s.limits.CPUMax, s.limits.CPUPeriod)
		case "cpus":
			err = g.SetCpus(s.limits.Cpus)
		case "memhigh":
			err = g.SetMemHigh(s.limits.MemHigh)
		case "memmax":
			err = g.SetMemMax(s.limits.MemMax)
		}
		if err != nil {
			return fs.Errorf(syscall.EINVAL, "%s %s: %v", key, value, err)
		}
	}
	e.mu.Lock()
	a.Limits = s.limits
	e.mu.Unlock()
	e.save(a)
	e.publish(a, key, bus.F("value", value), bus.F("reason", reason))
	return nil
}

func (e *Engine) prio(a *Agent, c fs.Caller, args []string) error {
	s, err := e.parseSettings(c, []ctl.KV{{Key: "prio", Value: args[0]}}, settings{})
	if err != nil {
		return err
	}
	if g, err := e.live(a); err == nil {
		pids, _ := g.Procs()
		for _, p := range pids {
			syscall.Setpriority(syscall.PRIO_PROCESS, p, s.prio)
		}
	}
	e.mu.Lock()
	a.Prio = s.prio
	e.mu.Unlock()
	e.save(a)
	e.publish(a, "prio", bus.F("value", s.prio))
	return nil
}

func (e *Engine) capVerb(a *Agent, c fs.Caller, args []string) error {
	add, name, err := parseCap(args[0])
	if err != nil {
		return err
	}
	e.mu.Lock()
	a.CapAdd = slices.DeleteFunc(a.CapAdd, func(s string) bool { return s == name })
	a.CapDrp = slices.DeleteFunc(a.CapDrp, func(s string) bool { return s == name })
	if add {
		a.CapAdd = append(a.CapAdd, name)
	} else {
		a.CapDrp = append(a.CapDrp, name)
	}
	e.mu.Unlock()
	e.save(a)
	e.publish(a, "cap", bus.F("value", args[0]), bus.F("applies", "next start"))
	return nil
}

func (e *Engine) restart(a *Agent, _ fs.Caller, _ []string) error {
	if len(a.Cmd) == 0 {
		return fs.Errorf(syscall.EBUSY, "agent %d has no command to restart", a.ID)
	}
	e.mu.Lock()
	if e.busy[a.ID] {
		e.mu.Unlock()
		return fs.Errorf(syscall.EBUSY, "agent %d is busy", a.ID)
	}
	e.busy[a.ID] = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.busy, a.ID)
		e.mu.Unlock()
	}()
	if g, err := e.live(a); err == nil {
		g.Thaw()
		g.Kill()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if pids, _ := g.Procs(); len(pids) == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	e.mu.Lock()
	a.proc = nil // the old leader's wait(2) must not touch the new run
	a.Restarts++
	e.mu.Unlock()
	if err := e.launch(a); err != nil {
		e.publish(a, "restart", bus.F("err", err.Error()))
		return err
	}
	e.publish(a, "restart", bus.F("pid", a.Pid), bus.F("restarts", a.Restarts))
	return nil
}

func (e *Engine) cloneVerb(a *Agent, c fs.Caller, args []string) error {
	if len(a.Cmd) == 0 {
		return fs.Errorf(syscall.EBUSY, "agent %d has no command to clone", a.ID)
	}
	name := a.Name + "-clone"
	if len(args) == 1 {
		name = args[0]
	}
	if err := validName(name); err != nil {
		return err
	}
	n, err := e.newAgent(name, a.Uid, a.Gid)
	if err != nil {
		return err
	}
	n.Cmd, n.Env, n.Dir, n.Limits, n.Prio = a.Cmd, a.Env, a.Dir, a.Limits, a.Prio
	n.CapAdd, n.CapDrp = a.CapAdd, a.CapDrp
	if err := e.launch(n); err != nil {
		e.discard(n)
		return err
	}
	e.add(n)
	e.publish(n, "clone", bus.F("from", a.ID), bus.F("pid", n.Pid))
	return nil
}

func (e *Engine) merge(a *Agent, c fs.Caller, args []string) error {
	mid, err := ctl.ParseInt(args[0], 1, 1<<40)
	if err != nil {
		return err
	}
	m, err := e.Get(int(mid))
	if err != nil {
		return err
	}
	if m.ID == a.ID {
		return ctl.Errorf("cannot merge agent %d into itself", a.ID)
	}
	if c.Uid != 0 && m.Uid != c.Uid {
		return fs.Errorf(syscall.EPERM, "agent %d is not yours", m.ID)
	}
	ag, err := e.live(a)
	if err != nil {
		return err
	}
	mg, err := e.live(m)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.busy[m.ID] = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.busy, m.ID)
		e.mu.Unlock()
	}()
	pids, _ := mg.Procs()
	for _, p := range pids {
		if err := ag.Add(p); err != nil {
			return fmt.Errorf("merge: move pid %d: %w", p, err)
		}
	}
	e.mu.Lock()
	m.proc = nil
	e.mu.Unlock()
	e.finish(m, fmt.Sprintf("merged into %d", a.ID))
	e.publish(a, "merge", bus.F("from", m.ID), bus.F("procs", len(pids)))
	return nil
}

func (e *Engine) split(a *Agent, c fs.Caller, args []string) error {
	ag, err := e.live(a)
	if err != nil {
		return err
	}
	name := a.Name + "-split"
	var pids []int
	for _, s := range args {
		if v, ok := strings.CutPrefix(s, "name="); ok {
			name = v
			continue
		}
		p, err := ctl.ParseInt(s, 1, 1<<22)
		if err != nil {
			return err
		}
		pids = append(pids, int(p))
	}
	if len(pids) == 0 {
		return ctl.Errorf("split: no pids")
	}
	if err := validName(name); err != nil {
		return err
	}
	mine, _ := ag.Procs()
	for _, p := range pids {
		if !slices.Contains(mine, p) {
			return fs.Errorf(syscall.ENOENT, "process %d is not in agent %d", p, a.ID)
		}
	}
	n, err := e.newAgent(name, a.Uid, a.Gid)
	if err != nil {
		return err
	}
	n.Limits, n.Prio = a.Limits, a.Prio
	n.Pid = pids[0]
	n.StartTicks, _ = e.cfg.Proc.StartTicks(pids[0])
	n.Cmd, _ = e.cfg.Proc.Cmdline(pids[0])
	n.Origin = a.Origin
	if err := e.ensureGroup(n); err != nil {
		e.discard(n)
		return err
	}
	ng := e.groupOf(n)
	for _, p := range pids {
		if err := ng.Add(p); err != nil {
			return fmt.Errorf("split: move pid %d: %w", p, err)
		}
	}
	n.State = StateRunning
	n.Started = time.Now()
	e.add(n)
	e.publish(n, "split", bus.F("from", a.ID), bus.F("procs", len(pids)))
	return nil
}

func (e *Engine) execVerb(a *Agent, c fs.Caller, args []string) error {
	if a.State != StateNew {
		return fs.Errorf(syscall.EBUSY, "agent %d is %s; exec starts a new agent only", a.ID, a.State)
	}
	kvs, argv, err := ctl.KeyValues(args, spawnKeys...)
	if err != nil {
		return err
	}
	if len(argv) == 0 {
		return ctl.Errorf("exec: no command")
	}
	s, err := e.parseSettings(c, kvs, settings{limits: NoLimits, uid: a.Uid, gid: a.Gid})
	if err != nil {
		return err
	}
	s.applyTo(a)
	a.Cmd = argv
	if err := e.launch(a); err != nil {
		a.Cmd = nil
		e.discard(a)
		return err
	}
	e.publish(a, "exec", bus.F("pid", a.Pid), bus.F("cmd", shellJoin(a.Cmd)))
	return nil
}

func (e *Engine) remove(a *Agent, _ fs.Caller, _ []string) error {
	if a.Alive() {
		return fs.Errorf(syscall.EBUSY, "agent %d is %s; stop it first", a.ID, a.State)
	}
	e.mu.Lock()
	delete(e.agents, a.ID)
	e.mu.Unlock()
	if err := e.store.Delete(a.ID); err != nil {
		return err
	}
	e.cfg.Telemetry.Forget(a.ID)
	e.publish(a, "remove")
	return nil
}
