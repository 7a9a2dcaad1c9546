package agent

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"aiosfs/ctl"
	"aiosfs/engines/bus"
	"aiosfs/fs"
	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
	"aiosfs/hal/spawn"
)

// spawnKeys are the settings spawn and exec take before "--".
var spawnKeys = []string{"cpus", "weight", "cpumax", "cpuperiod", "memhigh", "memmax", "pidsmax", "user", "env*", "dir", "prio", "cap*"}

// settings are parsed spawn options; parsing all of them before acting is
// what makes a bad one change nothing.
type settings struct {
	limits         Limits
	uid, gid       uint32
	userSet        bool
	env            []string
	dir            string
	prio           int
	prioSet        bool
	capAdd, capDrp []string
	given          map[string]bool // the keys the writer named
}

// caller is what the daemon knows of whoever wrote a verb. A local caller
// is a process on this host that the FUSE request named (its pid): its
// working directory resolves relative paths, and an unprivileged one's
// own cgroup limits and nice value bound what it may ask for. A caller
// over 9P is not local: relative paths are refused.
type caller struct {
	fs.Caller
	local     bool
	cwd       string
	ceiling   *Ceiling // nil: none (root, or not known)
	niceFloor int      // the lowest prio this caller may set
	mount     string   // the daemon's mount point (Config.Mount)
	rlimits   []proc.Rlimit
}

// whoIs learns what it can of c. Root may do anything; for others the
// pid the kernel reported must be theirs.
func (e *Engine) whoIs(c fs.Caller) caller {
	w := caller{Caller: c, niceFloor: -20, mount: filepath.Clean(e.cfg.Mount)}
	if e.cfg.Mount == "" {
		w.mount = ""
	}
	if c.Uid != 0 {
		w.niceFloor = 0
	}
	if c.Pid == 0 {
		return w
	}
	p, err := e.cfg.Proc.Inspect(int(c.Pid))
	if err != nil || (c.Uid != 0 && p.Uid != c.Uid) {
		return w
	}
	if cwd, err := e.cfg.Proc.Cwd(int(c.Pid)); err == nil {
		w.local, w.cwd = true, cwd
	}
	if c.Uid != 0 {
		w.rlimits, _ = e.cfg.Proc.Rlimits(int(c.Pid))
		w.niceFloor = proc.NiceFloor(w.rlimits, p.Nice)
		if ceil, err := e.cfg.Cgroups.CeilingOf(e.cfg.Proc.CgroupFile(int(c.Pid))); err == nil &&
			(ceil.MemMax >= 0 || ceil.Pids >= 0 || ceil.CPUMax > 0) {
			w.ceiling = &Ceiling{MemMax: ceil.MemMax, Pids: ceil.Pids, CPUMax: ceil.CPUMax}
		}
	}
	return w
}

func (e *Engine) parseSettings(w caller, kvs []ctl.KV, base settings) (settings, error) {
	s := base
	s.given = map[string]bool{}
	for _, kv := range kvs {
		v := kv.Value
		s.given[kv.Key] = true
		var err error
		if row, ok := limitRow(kv.Key); ok {
			if err = row.parse(e, v, &s.limits); err != nil {
				return s, err
			}
			continue
		}
		switch kv.Key {
		case "user":
			s.uid, s.gid, err = e.lookupUser(v)
			s.userSet = true
		case "env":
			if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
				err = ctl.Errorf("bad env %q (want NAME=VALUE)", v)
			}
			s.env = append(s.env, v)
		case "dir":
			s.dir, err = w.path("dir", v)
		case "prio":
			var p int64
			p, err = ctl.ParseInt(v, -20, 19)
			s.prio, s.prioSet = int(p), true
		case "cap":
			var add bool
			var name string
			if add, name, err = parseCap(v); err == nil {
				if w.Uid != 0 {
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
	if w.Uid != 0 {
		// Anyone may spawn, but only as themselves, never at a priority
		// they could not set themselves (setpriority(2): their own nice,
		// or lower as far as RLIMIT_NICE allows), and never with more than
		// their own cgroups allow them (the ceiling).
		if s.userSet && s.uid != w.Uid {
			return s, fs.Errorf(syscall.EPERM, "only root may spawn as another user")
		}
		if !s.prioSet && w.niceFloor > 0 {
			s.prio = w.niceFloor // a child inherits its parent's nice value
		}
		if s.prio < w.niceFloor {
			return s, fs.Errorf(syscall.EPERM, "prio %d is below the least you may set (%d): only root may raise priority", s.prio, w.niceFloor)
		}
		if err := s.fit(w.ceiling); err != nil {
			return s, err
		}
		s.uid, s.gid = w.Uid, w.Gid
	}
	return s, nil
}

// path resolves a path a caller wrote: absolute as it is, relative to a
// local caller's working directory, refused from a caller whose directory
// is not known (9P).
func (w caller) path(key, v string) (string, error) {
	if v == "" {
		return "", ctl.Errorf("%s: empty path", key)
	}
	if filepath.IsAbs(v) {
		return filepath.Clean(v), nil
	}
	if !w.local {
		return "", ctl.Errorf("%s %q: a relative path needs a local caller (over 9P, give an absolute path)", key, v)
	}
	return filepath.Join(w.cwd, v), nil
}

// fit holds the settings to a ceiling: a limit the writer named must not
// be above it (EPERM), and one left unset takes the ceiling's value.
func (s *settings) fit(c *Ceiling) error {
	if c == nil {
		return nil
	}
	if c.MemMax >= 0 {
		if s.given["memmax"] && (s.limits.MemMax < 0 || s.limits.MemMax > c.MemMax) {
			return fs.Errorf(syscall.EPERM, "memmax %s is above your own cgroup's memory limit %d", sizeOrMax(s.limits.MemMax), c.MemMax)
		}
		if s.limits.MemMax < 0 || s.limits.MemMax > c.MemMax {
			s.limits.MemMax = c.MemMax
		}
	}
	if c.Pids >= 0 {
		if s.given["pidsmax"] && (s.limits.Pids <= 0 || s.limits.Pids > c.Pids) {
			return fs.Errorf(syscall.EPERM, "pidsmax %s is above your own cgroup's pids limit %d", pidsMax(s.limits.Pids), c.Pids)
		}
		if s.limits.Pids <= 0 || s.limits.Pids > c.Pids {
			s.limits.Pids = max(c.Pids, 1)
		}
	}
	if c.CPUMax > 0 {
		if s.given["cpumax"] && (s.limits.CPUMax <= 0 || s.limits.CPUMax > c.CPUMax) {
			return fs.Errorf(syscall.EPERM, "cpumax %s is above your own cgroup's cpu limit %g cores", cores(s.limits.CPUMax), c.CPUMax)
		}
		if s.limits.CPUMax <= 0 || s.limits.CPUMax > c.CPUMax {
			s.limits.CPUMax = c.CPUMax
		}
	}
	return nil
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

func (e *Engine) lookupUser(v string) (uint32, uint32, error) {
	u, err := e.cfg.Process.User(v)
	if err != nil {
		return 0, 0, fs.Errorf(syscall.ENOENT, "no such user %q", v)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uint32(uid), uint32(gid), nil
}

// validName accepts an agent name: 1..64 bytes of valid UTF-8, printable,
// without blanks, quotes, '/' or '='. Names reach `status`, `metrics` and
// the events of every reader, so nothing in them may break a format.
func validName(n string) error {
	if n == "" || len(n) > 64 || !utf8.ValidString(n) || strings.ContainsAny(n, "/=\"'\\") ||
		strings.IndexFunc(n, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 {
		return ctl.Errorf("bad agent name %q (want 1..64 printable UTF-8 characters without blanks, quotes, / or =)", n)
	}
	return nil
}

// nameFrom makes a valid name from a process's comm, which the process
// sets itself (prctl PR_SET_NAME) and may hold any byte.
func nameFrom(comm string, pid int) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(comm, "_") {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) || strings.ContainsRune("/=\"'\\", r) {
			r = '_'
		}
		b.WriteRune(r)
	}
	if n := b.String(); validName(n) == nil {
		return n
	}
	return "pid" + strconv.Itoa(pid)
}

// Spawn starts a new agent: spawn NAME [key=value ...] -- CMD [ARGS ...].
// The command's working directory is dir=, else a local caller's own; a
// relative program path is found there, by the agent's user (see launch).
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
	w := e.whoIs(c)
	s, err := e.parseSettings(w, kvs, settings{limits: NoLimits})
	if err != nil {
		return nil, err
	}
	if err := w.command(&s, argv); err != nil {
		return nil, err
	}
	if err := e.checkAgentQuota(c, s.uid); err != nil {
		return nil, err
	}
	a, err := e.newAgent(name, s.uid, s.gid)
	if err != nil {
		return nil, saveErr(err)
	}
	s.applyTo(a, w)
	a.Cmd = argv
	if err := e.start(a); err != nil {
		return nil, err
	}
	e.publish(a, "spawn", bus.F("name", a.Name), bus.F("pid", a.Pid), bus.F("uid", a.Uid), bus.F("cmd", shellJoin(a.Cmd)))
	return a, nil
}

// command checks the program a caller named and fills in the directory it
// runs in: a path with a slash that is not absolute is relative to that
// directory, so it needs one the caller knows (its own, or dir=).
func (w caller) command(s *settings, argv []string) error {
	relative := strings.Contains(argv[0], "/") && !filepath.IsAbs(argv[0])
	if relative && !w.local && !s.given["dir"] {
		return ctl.Errorf("spawn: relative program %q needs a local caller or dir=", argv[0])
	}
	if s.dir == "" {
		s.dir = "/" // a caller whose directory is unknown: never the daemon's
		if w.local && !w.inTree(w.cwd) {
			s.dir = w.cwd
		}
	}
	if w.inTree(s.dir) {
		return ctl.Errorf("spawn: dir %s is inside the aiosfs tree; an agent cannot start there", s.dir)
	}
	return nil
}

// inTree says whether dir is the daemon's mount point or below it.
func (w caller) inTree(dir string) bool {
	return w.mount != "" && (dir == w.mount || strings.HasPrefix(dir, w.mount+"/"))
}

func (s settings) applyTo(a *Agent, w caller) {
	a.Limits = s.limits
	a.Uid, a.Gid = s.uid, s.gid
	a.Env, a.Dir, a.Prio = s.env, s.dir, s.prio
	a.CapAdd, a.CapDrp = s.capAdd, s.capDrp
	if w.Uid != 0 {
		a.Ceiling, a.Rlimits = w.ceiling, proc.Spawnable(w.rlimits)
	}
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
		if strings.HasPrefix(a.Group, cgroup.ParentPrefix) {
			e.cfg.Cgroups.RemoveParent(parentName(a.Uid))
		}
	}
}

// maxAdoptTree bounds the processes one adopt moves (and records the
// origins of).
const maxAdoptTree = 4096

// Adopt makes a running process an agent: adopt PID [NAME] [tree]. It
// moves exactly that process, or with "tree" the process and its
// descendants, each of which goes back to its own cgroups at release.
// It refuses what must never be an agent: PID 1, kernel threads, the
// daemon and its ancestors, and a process whose tree holds the daemon or
// another agent's process (adopting it would take that agent's processes
// out of their limits).
func (e *Engine) Adopt(c fs.Caller, args []string) (*Agent, error) {
	pid64, err := ctl.ParseInt(args[0], 1, 1<<22)
	if err != nil {
		return nil, err
	}
	pid := int(pid64)
	name, tree := "", false
	for _, a := range args[1:] {
		switch {
		case a == "tree":
			tree = true
		case name == "":
			name = a
		default:
			return nil, ctl.Errorf("adopt: bad argument %q (adopt PID [NAME] [tree])", a)
		}
	}
	p, err := e.cfg.Proc.Inspect(pid)
	if err != nil {
		return nil, fs.Errorf(syscall.ENOENT, "no such process %d", pid)
	}
	if pid == 1 {
		return nil, fs.Errorf(syscall.EPERM, "process 1 is the host's init: it is never an agent")
	}
	if p.Kernel {
		return nil, fs.Errorf(syscall.EPERM, "process %d is a kernel thread", pid)
	}
	if c.Uid != 0 && p.Uid != c.Uid {
		return nil, fs.Errorf(syscall.EPERM, "process %d is not yours", pid)
	}
	self := os.Getpid()
	if pid == self || slices.Contains(e.cfg.Proc.Ancestors(self), pid) {
		return nil, fs.Errorf(syscall.EPERM, "process %d is the daemon or one of its ancestors", pid)
	}
	desc, _ := e.cfg.Proc.Descendants(pid)
	if len(desc) >= maxAdoptTree {
		return nil, fs.Errorf(syscall.E2BIG, "process %d has %d descendants, more than adopt takes (%d)", pid, len(desc), maxAdoptTree)
	}
	owners := e.agentPids()
	for _, q := range append([]int{pid}, desc...) {
		if q == self {
			return nil, fs.Errorf(syscall.EPERM, "process %d's tree holds the daemon", pid)
		}
		if id, ok := owners[q]; ok {
			if q == pid {
				return nil, fs.Errorf(syscall.EBUSY, "process %d already belongs to agent %d", pid, id)
			}
			return nil, fs.Errorf(syscall.EBUSY, "process %d's tree holds process %d of agent %d", pid, q, id)
		}
	}
	move := []int{pid}
	if tree {
		for _, q := range desc {
			if c.Uid != 0 {
				if qp, err := e.cfg.Proc.Inspect(q); err == nil && qp.Uid != c.Uid {
					return nil, fs.Errorf(syscall.EPERM, "process %d in %d's tree is not yours", q, pid)
				}
			}
		}
		move = append(move, desc...)
	}
	smp, err := e.cfg.Proc.Sample(pid)
	if err != nil {
		return nil, fs.Errorf(syscall.ENOENT, "no such process %d", pid)
	}
	if name == "" {
		name = nameFrom(smp.Comm, pid)
	}
	if err := validName(name); err != nil {
		return nil, err
	}
	if err := e.checkAgentQuota(c, p.Uid); err != nil {
		return nil, err
	}
	a, err := e.newAgent(name, p.Uid, 0)
	if err != nil {
		return nil, saveErr(err)
	}
	a.Pid, a.StartTicks = pid, smp.StartTicks
	a.Cmd, _ = e.cfg.Proc.Cmdline(pid)
	a.Origin, _ = e.cfg.Proc.Cgroups(pid)
	for _, q := range move[1:] {
		if o, err := e.cfg.Proc.Cgroups(q); err == nil && !maps.Equal(o, a.Origin) {
			if a.Origins == nil {
				a.Origins = map[int]map[string]string{}
			}
			a.Origins[q] = o
		}
	}
	a.State = StateRunning
	a.Started = smp.Start
	// Busy until its processes are in: the reaper would take a running
	// agent with an empty (or no) cgroup for one that has ended.
	e.setBusy(a.ID, true)
	defer e.setBusy(a.ID, false)
	// Saved before anything moves: a record the store refuses leaves the
	// processes where they were.
	if err := e.add(a); err != nil {
		return nil, err
	}
	if err := e.ensureGroup(a); err != nil {
		e.forget(a)
		return nil, err
	}
	// Top-down, so a child forked meanwhile follows its parent.
	g := e.groupOf(a)
	moved := 0
	for _, q := range move {
		if err := g.Add(q); err != nil {
			if q == pid {
				e.release(a)
				e.forget(a)
				return nil, kernelErr("adopt", err)
			}
			continue // ended meanwhile
		}
		moved++
	}
	e.publish(a, "adopt", bus.F("name", a.Name), bus.F("pid", pid), bus.F("procs", moved))
	return a, nil
}

// forget takes a record that never came to be back out of the registry
// and the store.
func (e *Engine) forget(a *Agent) {
	e.discard(a)
	e.mu.Lock()
	delete(e.agents, a.ID)
	e.mu.Unlock()
	if err := e.store.Delete(a.ID); err != nil {
		e.publish(a, "error", bus.F("op", "forget"), bus.F("err", err.Error()))
	}
}

// agentPids maps every process in a live agent's cgroup to the agent.
func (e *Engine) agentPids() map[int]int {
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
	out := map[int]int{}
	for _, l := range live {
		pids, _ := l.g.Procs()
		for _, p := range pids {
			out[p] = l.id
		}
	}
	return out
}

// Alloc is the clone file's open: a new agent with no process, owned by
// the caller, whose ctl then takes exec.
func (e *Engine) Alloc(c fs.Caller) (*Agent, error) {
	if err := e.checkAgentQuota(c, c.Uid); err != nil {
		return nil, err
	}
	a, err := e.newAgent("", c.Uid, c.Gid)
	if err != nil {
		return nil, saveErr(err)
	}
	if err := e.add(a); err != nil {
		return nil, err
	}
	e.publish(a, "alloc", bus.F("uid", c.Uid))
	return a, nil
}

// RootVerbs are the agent engine's rows of the global ctl.
func (e *Engine) RootVerbs() ctl.Table {
	return ctl.Table{
		{Name: "spawn", Args: "NAME [key=value ...] -- CMD [ARGS ...]", Min: 2, Max: -1,
			Doc: "start an agent; keys: " + strings.ReplaceAll(strings.Join(spawnKeys, " "), "*", ""),
			Run: func(_ context.Context, c fs.Caller, a []string) error { _, err := e.Spawn(c, a); return err }},
		{Name: "adopt", Args: "PID [NAME] [tree]", Min: 1, Max: 3, Doc: "make a running process (with tree: and its descendants) an agent",
			Run: func(_ context.Context, c fs.Caller, a []string) error { _, err := e.Adopt(c, a); return err }},
		{Name: "quota", Args: "USER|default key=value ...|reset", Min: 1, Max: -1, Root: true,
			Doc: "what one user's agents may have together; keys: agents weight cpumax memmax pids regionbytes regions (see quotas)",
			Run: e.quotaVerb},
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
	t := ctl.Table{
		{Name: "kill", Args: "[SIG]", Min: 0, Max: 1, Doc: "signal every process (default KILL)", Run: with(e.kill)},
		{Name: "stop", Min: 0, Max: 0, Doc: "TERM every process, KILL after the grace period", Run: with(e.stop)},
		{Name: "freeze", Min: 0, Max: 0, Doc: "freeze the agent's cgroup", Run: with(e.freeze)},
		{Name: "thaw", Min: 0, Max: 0, Doc: "thaw the agent's cgroup", Run: with(e.thaw)},
		{Name: "restart", Min: 0, Max: 0, Doc: "end every process and run the command again", Run: with(e.restart)},
	}
	// The limits, from their table.
	for _, l := range limits {
		t = append(t, ctl.Verb{Name: l.key, Args: l.args, Min: 1, Max: 1, Doc: l.doc, Run: with(e.limitVerb(l.key))})
	}
	return append(t, ctl.Table{
		{Name: "prio", Args: "N", Min: 1, Max: 1, Doc: "nice value -20..19 of every process", Run: with(e.prio)},
		{Name: "interval", Args: "DURATION", Min: 1, Max: 1, Doc: "sample the agent every DURATION (at least 10ms; 0: with every pass)", Run: with(e.intervalVerb)},
		{Name: "cap", Args: "+NAME|-NAME", Min: 1, Max: 1, Root: true, Doc: "grant or drop a capability (at next start)", Run: with(e.capVerb)},
		{Name: "clone", Args: "[NAME]", Min: 0, Max: 1, Doc: "a new agent with the same command and limits", Run: with(e.cloneVerb)},
		{Name: "merge", Args: "M", Min: 1, Max: 1, Doc: "agent M's processes join this one; M ends", Run: with(e.merge)},
		{Name: "split", Args: "PID ... [name=X]", Min: 1, Max: -1, Doc: "move those processes to a new agent", Run: with(e.split)},
		{Name: "exec", Args: "[key=value ...] -- CMD [ARGS ...]", Min: 1, Max: -1, Doc: "start a new (cloned) agent's command", Run: with(e.execVerb)},
		{Name: "remove", Min: 0, Max: 0, Doc: "forget an exited agent", Run: with(e.remove)},
	}...)
}

func (e *Engine) kill(a *Agent, _ fs.Caller, args []string) error {
	sig := syscall.SIGKILL
	if len(args) == 1 {
		var err error
		if sig, err = ctl.ParseSignal(args[0]); err != nil {
			return err
		}
	}
	return e.signal(a, sig)
}

// signal sends sig to every process of a (KILL through the cgroup, so a
// forking agent cannot outrun it); fields go into the event (an engine's
// reason).
func (e *Engine) signal(a *Agent, sig syscall.Signal, fields ...bus.Field) error {
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
			e.cfg.Process.Kill(p, sig)
		}
	}
	e.publish(a, "kill", append([]bus.Field{bus.F("signal", SignalName(sig)), bus.F("procs", len(pids))}, fields...)...)
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
	go func() { e.terminate(a, e.cfg.Grace); e.Reap(nil) }()
	return nil
}

func (e *Engine) freeze(a *Agent, _ fs.Caller, _ []string) error { return e.setFrozen(a, true) }
func (e *Engine) thaw(a *Agent, _ fs.Caller, _ []string) error   { return e.setFrozen(a, false) }

// setFrozen freezes (on) or thaws a's cgroup and records the new state;
// fields go into the freeze or thaw event (an engine's reason).
func (e *Engine) setFrozen(a *Agent, on bool, fields ...bus.Field) error {
	g, err := e.live(a)
	if err != nil {
		return err
	}
	op, undo, state := g.Freeze, g.Thaw, StateFrozen
	name := "freeze"
	if !on {
		op, undo, state, name = g.Thaw, g.Freeze, StateRunning, "thaw"
	}
	if err := op(); err != nil {
		// The agent may have started ending after live(): its cgroup
		// went before the write. Say so rather than the kernel's ENOENT.
		e.mu.Lock()
		ended := e.endedLocked(a)
		e.mu.Unlock()
		if ended != nil {
			return ended
		}
		return kernelErr(name, err)
	}
	if err := e.setState(a, state); err != nil {
		undo()
		return err
	}
	e.publish(a, name, fields...)
	return nil
}

// setState records a's new state; when the store refuses, the old state
// stays and the caller undoes what it did in the kernel.
func (e *Engine) setState(a *Agent, s string) error {
	e.mu.Lock()
	old := a.State
	a.State = s
	e.mu.Unlock()
	if err := e.save(a); err != nil {
		e.mu.Lock()
		a.State = old
		delete(e.unsaved, a.ID)
		e.mu.Unlock()
		return saveErr(err)
	}
	return nil
}

// revert puts back a record field changed by a verb whose save failed,
// and forgets that it is unsaved (the store still has the old value).
func (e *Engine) revert(a *Agent, undo func()) {
	e.mu.Lock()
	undo()
	delete(e.unsaved, a.ID)
	e.mu.Unlock()
}

// limitVerb handles weight, cpumax, cpuperiod, cpus, memhigh, memmax and
// pidsmax: the verb's name is its spawn key, so spawn and ctl share one
// parser.
func (e *Engine) limitVerb(key string) func(a *Agent, c fs.Caller, args []string) error {
	return func(a *Agent, c fs.Caller, args []string) error {
		return e.setLimit(a, c, key, args[0], "ctl", false)
	}
}

// ApplyText sets one of the agent's limits (weight, cpumax, cpuperiod, cpus, memhigh,
// memmax, pidsmax, with the value in ctl syntax), recording the reason in
// the event: the same parser, kernel writes and record as a ctl write. A
// value above the agent's ceiling is lowered to it. Engines use the typed
// Apply (view.Registry).
func (e *Engine) ApplyText(id int, key, value, reason string) error {
	a, err := e.Get(id)
	if err != nil {
		return err
	}
	if _, ok := limitRow(key); !ok {
		return ctl.Errorf("unknown limit %q", key)
	}
	return e.setLimit(a, fs.RootCaller, key, value, reason, true)
}

// setLimit parses and applies one limit: the kernel first, then the
// record; a record the store refuses puts the kernel's old value back.
// An unprivileged writer may not go above the agent's ceiling (EPERM); an
// engine (clamp) is held to it.
func (e *Engine) setLimit(a *Agent, c fs.Caller, key, value, reason string, clamp bool) error {
	return e.setLimitWith(a, c, key, value, reason, clamp, func(old Limits) (settings, error) {
		return e.parseSettings(caller{Caller: fs.RootCaller}, []ctl.KV{{Key: key, Value: value}}, settings{limits: old})
	})
}

// setLimitWith is setLimit with the new limits from set (a parse of ctl
// text, or another engine's typed value); value is what the event shows
// ("" for the new value as the limits table renders it).
func (e *Engine) setLimitWith(a *Agent, c fs.Caller, key, value, reason string, clamp bool, set func(old Limits) (settings, error)) error {
	e.mu.Lock()
	old := a.Limits
	ceil := a.Ceiling
	e.mu.Unlock()
	s, err := set(old)
	if err != nil {
		return err
	}
	if ceil != nil && (c.Uid != 0 || clamp) {
		if !clamp {
			// Only the key written is held to the ceiling: the others
			// are as they were.
			chk := settings{limits: s.limits, given: map[string]bool{key: true}}
			if err := chk.fit(ceil); err != nil {
				return err
			}
		} else {
			// Only the key written is lowered to the ceiling: a limit
			// root set above it by hand stays as root set it.
			low := settings{limits: s.limits, given: map[string]bool{}}
			low.fit(ceil)
			switch key {
			case "memmax":
				s.limits.MemMax = low.limits.MemMax
			case "pidsmax":
				s.limits.Pids = low.limits.Pids
			case "cpumax":
				s.limits.CPUMax = low.limits.CPUMax
			}
		}
	}
	g := e.groupOf(a)
	if value == "" {
		if row, ok := limitRow(key); ok {
			value = row.get(s.limits)
		}
	}
	if err := writeLimit(g, key, s.limits); err != nil {
		return kernelErr(key+" "+value, err)
	}
	e.mu.Lock()
	a.Limits = s.limits
	oldLog := a.LimitLog
	a.LimitLog = appendLimitLog(a.LimitLog, limitChange(time.Now(), c, key, limitText(key, old), limitText(key, s.limits), reason))
	e.mu.Unlock()
	if err := e.save(a); err != nil {
		e.revert(a, func() { a.Limits = old; a.LimitLog = oldLog })
		writeLimit(g, key, old)
		return saveErr(err)
	}
	e.publish(a, key, bus.F("value", value), bus.F("reason", reason))
	return nil
}

// writeLimit writes one limit of l to the agent's cgroup (none: an agent
// without processes keeps it for its start).
func writeLimit(g cgroup.Group, key string, l Limits) error {
	row, ok := limitRow(key)
	if g == nil || !ok {
		return nil
	}
	return row.write(g, l)
}

// prio sets the nice value of every process. An unprivileged writer may
// lower it only as far as it could itself (setpriority(2)).
func (e *Engine) prio(a *Agent, c fs.Caller, args []string) error {
	w := e.whoIs(c)
	p, err := ctl.ParseInt(args[0], -20, 19)
	if err != nil {
		return err
	}
	e.mu.Lock()
	old := a.Prio
	e.mu.Unlock()
	if c.Uid != 0 && int(p) < old && int(p) < w.niceFloor {
		return fs.Errorf(syscall.EPERM, "prio %d is below the least you may set (%d): only root may raise priority", p, min(old, w.niceFloor))
	}
	set := func(v int) {
		if g, err := e.live(a); err == nil {
			pids, _ := g.Procs()
			for _, q := range pids {
				e.cfg.Process.Setpriority(q, v)
			}
		}
	}
	set(int(p))
	e.mu.Lock()
	a.Prio = int(p)
	e.mu.Unlock()
	if err := e.save(a); err != nil {
		e.revert(a, func() { a.Prio = old })
		set(old)
		return saveErr(err)
	}
	e.publish(a, "prio", bus.F("value", p))
	return nil
}

// Bounds of an agent's own sampling interval (the interval verb).
const (
	MinInterval = 10 * time.Millisecond
	MaxInterval = time.Hour
)

// intervalVerb is `interval DURATION`: agent a is sampled every DURATION
// (telemetry.Sampler.SetAgentInterval) instead of with every pass, and its
// history keeps that step; 0 puts it back on the pass. The value is saved
// in the record before it takes effect and set again when the daemon
// restarts. Sampling faster than the pass costs the daemon: only root may
// set an interval below it (EPERM), others may slow their agents down.
func (e *Engine) intervalVerb(a *Agent, c fs.Caller, args []string) error {
	var d time.Duration
	if args[0] != "0" {
		var err error
		if d, err = ctl.ParseDuration(args[0]); err != nil {
			return err
		}
		if d < MinInterval || d > MaxInterval {
			return ctl.Errorf("interval %s out of range (want %s .. %s, or 0 for every pass)", args[0], MinInterval, MaxInterval)
		}
	}
	tel := e.cfg.Telemetry
	if tel == nil {
		return fs.Errorf(syscall.ENOTSUP, "no sampler")
	}
	if c.Uid != 0 && d > 0 && d < tel.Interval() {
		return fs.Errorf(syscall.EPERM, "interval %s is below the pass interval (%s): only root may sample an agent faster", d, tel.Interval())
	}
	e.mu.Lock()
	old := a.Interval
	a.Interval = d
	e.mu.Unlock()
	if err := e.save(a); err != nil {
		e.revert(a, func() { a.Interval = old })
		return saveErr(err)
	}
	tel.SetAgentInterval(a.ID, d)
	e.publish(a, "interval", bus.F("seconds", d.Seconds()))
	return nil
}

func (e *Engine) capVerb(a *Agent, c fs.Caller, args []string) error {
	add, name, err := parseCap(args[0])
	if err != nil {
		return err
	}
	e.mu.Lock()
	oldAdd, oldDrp := a.CapAdd, a.CapDrp
	a.CapAdd = slices.DeleteFunc(slices.Clone(a.CapAdd), func(s string) bool { return s == name })
	a.CapDrp = slices.DeleteFunc(slices.Clone(a.CapDrp), func(s string) bool { return s == name })
	if add {
		a.CapAdd = append(a.CapAdd, name)
	} else {
		a.CapDrp = append(a.CapDrp, name)
	}
	e.mu.Unlock()
	if err := e.save(a); err != nil {
		e.revert(a, func() { a.CapAdd, a.CapDrp = oldAdd, oldDrp })
		return saveErr(err)
	}
	e.publish(a, "cap", bus.F("value", args[0]), bus.F("applies", "next start"))
	return nil
}

func (e *Engine) restart(a *Agent, _ fs.Caller, _ []string) error { return e.rerun(a) }

// rerun ends every process of a and runs its command again; fields go
// into the restart event (an engine's reason).
func (e *Engine) rerun(a *Agent, fields ...bus.Field) error {
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
		e.publish(a, "restart", append([]bus.Field{bus.F("err", err.Error())}, fields...)...)
		return err
	}
	// The old run has ended either way: a record the store refuses now is
	// kept and saved again by the reaper.
	e.save(a)
	e.publish(a, "restart", append([]bus.Field{bus.F("pid", a.Pid), bus.F("restarts", a.Restarts)}, fields...)...)
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
	if err := e.checkAgentQuota(c, a.Uid); err != nil {
		return err
	}
	n, err := e.newAgent(name, a.Uid, a.Gid)
	if err != nil {
		return saveErr(err)
	}
	n.Cmd, n.Env, n.Dir, n.Limits, n.Prio = a.Cmd, a.Env, a.Dir, a.Limits, a.Prio
	n.CapAdd, n.CapDrp, n.Ceiling, n.Rlimits = a.CapAdd, a.CapDrp, a.Ceiling, a.Rlimits
	if err := e.start(n); err != nil {
		return err
	}
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
			return kernelErr(fmt.Sprintf("merge: move pid %d", p), err)
		}
	}
	e.wake(a.ID)
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
	if err := e.checkAgentQuota(c, a.Uid); err != nil {
		return err
	}
	n, err := e.newAgent(name, a.Uid, a.Gid)
	if err != nil {
		return saveErr(err)
	}
	n.Limits, n.Prio, n.Ceiling = a.Limits, a.Prio, a.Ceiling
	n.Pid = pids[0]
	n.StartTicks, _ = e.cfg.Proc.StartTicks(pids[0])
	n.Cmd, _ = e.cfg.Proc.Cmdline(pids[0])
	n.Origin = a.Origin
	for _, p := range pids {
		if o, ok := a.Origins[p]; ok {
			if n.Origins == nil {
				n.Origins = map[int]map[string]string{}
			}
			n.Origins[p] = o
		}
	}
	n.State = StateRunning
	n.Started = time.Now()
	e.setBusy(n.ID, true) // as in Adopt
	defer e.setBusy(n.ID, false)
	// Saved before anything moves, as adopt does.
	if err := e.add(n); err != nil {
		return err
	}
	if err := e.ensureGroup(n); err != nil {
		e.forget(n)
		return err
	}
	ng := e.groupOf(n)
	for i, p := range pids {
		if err := ng.Add(p); err != nil {
			for _, q := range pids[:i] { // back where they were
				ag.Add(q)
			}
			e.forget(n)
			return kernelErr(fmt.Sprintf("split: move pid %d", p), err)
		}
	}
	e.wake(a.ID)
	e.publish(n, "split", bus.F("from", a.ID), bus.F("procs", len(pids)))
	return nil
}

// wake makes the sampler's next pass sample agent id in full: processes
// moved into or out of its group cost it no CPU, so a held sample would
// keep its old pids (which the reaper, the memory and GPU engines take
// from it) for up to Tuning.Hold passes.
func (e *Engine) wake(id int) {
	if e.cfg.Telemetry != nil {
		e.cfg.Telemetry.Wake(id)
	}
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
	w := e.whoIs(c)
	s, err := e.parseSettings(w, kvs, settings{limits: NoLimits, uid: a.Uid, gid: a.Gid})
	if err != nil {
		return err
	}
	if err := w.command(&s, argv); err != nil {
		return err
	}
	e.mu.Lock()
	before := a.Record
	e.mu.Unlock()
	undo := func() {
		e.discard(a)
		// The killed leader stays in e.kids for the reaper to wait for.
		e.revert(a, func() { a.Record = before })
	}
	e.mu.Lock()
	s.applyTo(a, w)
	a.Cmd = argv
	e.mu.Unlock()
	if err := e.launch(a); err != nil {
		undo()
		return err
	}
	if err := e.save(a); err != nil {
		undo()
		return saveErr(err)
	}
	e.publish(a, "exec", bus.F("pid", a.Pid), bus.F("cmd", shellJoin(a.Cmd)))
	return nil
}

func (e *Engine) remove(a *Agent, _ fs.Caller, _ []string) error {
	if a.Alive() {
		return fs.Errorf(syscall.EBUSY, "agent %d is %s; stop it first", a.ID, a.State)
	}
	// The store first: a record it keeps would come back at restart.
	if err := e.store.Delete(a.ID); err != nil {
		return saveErr(err)
	}
	e.mu.Lock()
	delete(e.agents, a.ID)
	delete(e.unsaved, a.ID)
	e.mu.Unlock()
	os.Remove(e.logPath(a.ID))
	os.Remove(e.logPath(a.ID) + ".old")
	e.cfg.Telemetry.Forget(a.ID)
	e.publish(a, "remove")
	return nil
}
