package agent

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"aiosfs/ctl"
	"aiosfs/engines/agent/view"
	"aiosfs/engines/bus"
	"aiosfs/fs"
	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
)

// Agent states: view's, which the other engines read in view.Info.
const (
	StateNew     = view.StateNew
	StateRunning = view.StateRunning
	StateFrozen  = view.StateFrozen
	StateExited  = view.StateExited
)

// Record is what survives a restart of the daemon: the agent's identity,
// command, settings and outcome. It is stored as JSON (see Store).
type Record struct {
	ID      int      `json:"id"`
	Name    string   `json:"name"`
	State   string   `json:"state"`
	Cmd     []string `json:"cmd,omitempty"` // argv; empty for a new agent
	Env     []string `json:"env,omitempty"`
	Dir     string   `json:"dir,omitempty"`
	Uid     uint32   `json:"uid"`
	Gid     uint32   `json:"gid"`
	Spawned bool     `json:"spawned"` // started by the daemon, not adopted

	Pid        int    `json:"pid"` // leader
	StartTicks uint64 `json:"start_ticks"`
	Group      string `json:"group"` // cgroup name under the daemon's prefix

	Limits Limits   `json:"limits"`
	Prio   int      `json:"prio"`
	CapAdd []string `json:"cap_add,omitempty"`
	CapDrp []string `json:"cap_drop,omitempty"`

	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
	Exit     string    `json:"exit,omitempty"` // "exit 0", "signal KILL", "merged into 4", ...
	Restarts int       `json:"restarts"`
	// Interval is the agent's own sampling interval (the interval verb;
	// telemetry.Sampler.SetAgentInterval); 0 is the pass interval.
	Interval time.Duration `json:"interval,omitempty"`
	// Resume marks an agent the daemon stopped at a clean shutdown; it is
	// started again when the daemon starts.
	Resume bool `json:"resume,omitempty"`
	// Origin is the cgroup (per hierarchy) an adopted process came from;
	// at a clean shutdown its processes go back there.
	Origin map[string]string `json:"origin,omitempty"`
	// Origins are the cgroups of each other process adopted with the
	// leader (adopt PID NAME tree), by pid, so that each goes back to
	// where it was; a process forked since goes back to Origin.
	Origins map[int]map[string]string `json:"origins,omitempty"`
	// Ceiling is what the unprivileged caller who made the agent had
	// itself (the tightest limits of its own cgroups): the agent's limits
	// never go above it (see cgroup.Ceiling). Nil for root's agents.
	Ceiling *Ceiling `json:"ceiling,omitempty"`
	// Rlimits are that caller's resource limits, which its agent keeps
	// across restarts as a child of the caller would have them.
	Rlimits []proc.Rlimit `json:"rlimits,omitempty"`
	// LimitLog is who changed which limit, the last LimitLogLen changes,
	// oldest first: agents/N/limits. It is saved with the change itself.
	LimitLog []LimitChange `json:"limit_log,omitempty"`
}

// LimitChange is one change of one of an agent's limits.
type LimitChange struct {
	Time time.Time `json:"time"`
	Key  string    `json:"limit"` // memmax, cpumax, ...: the limits table's key
	Old  string    `json:"old"`   // as status shows it (max for none)
	New  string    `json:"new"`
	// By is who: "uid:N" for a write to the agent's ctl, else the engine
	// (sched, threat), whose reason is Why.
	By  string `json:"by"`
	Why string `json:"why,omitempty"`
}

// LimitLogLen is how many limit changes an agent's record keeps.
const LimitLogLen = 64

// Line renders the change as agents/N/limits shows it:
//
//	time=1796331581.456 limit=memmax old=67108864 new=83886080 by=uid:0
//	time=1796331582.001 limit=cpumax old=0.5 new=0.29 by=sched why=predicted-fall
func (c LimitChange) Line() string {
	var l ctl.Line
	l.Time("time", c.Time).Str("limit", c.Key).Str("old", c.Old).Str("new", c.New).Str("by", c.By)
	if c.Why != "" {
		l.Str("why", c.Why)
	}
	return l.String()
}

// limitChange is the record of key going from old to new for caller c
// with reason (a ctl write's "ctl", or an engine's "ENGINE: WHY").
func limitChange(now time.Time, c fs.Caller, key, old, new, reason string) LimitChange {
	ch := LimitChange{Time: now, Key: key, Old: old, New: new}
	if reason == "ctl" {
		ch.By = "uid:" + strconv.FormatUint(uint64(c.Uid), 10)
	} else if by, why, ok := strings.Cut(reason, ":"); ok {
		ch.By, ch.Why = strings.TrimSpace(by), strings.TrimSpace(why)
	} else {
		ch.By = reason
	}
	return ch
}

// limitText is limit key of l as status shows it (max for none).
func limitText(key string, l Limits) string {
	switch key {
	case "weight":
		return weight(l.Weight)
	case "cpumax":
		return cores(l.CPUMax)
	case "cpuperiod":
		return strconv.FormatFloat(l.Period().Seconds(), 'g', -1, 64)
	case "cpus":
		return orDash(l.Cpus)
	case "memhigh":
		return sizeOrMax(l.MemHigh)
	case "memmax":
		return sizeOrMax(l.MemMax)
	case "pidsmax":
		return pidsMax(l.Pids)
	}
	if row, ok := limitRow(key); ok {
		return row.get(l)
	}
	return "-"
}

// appendLimitLog adds ch to log, keeping the last LimitLogLen.
func appendLimitLog(log []LimitChange, ch LimitChange) []LimitChange {
	out := append(log[:len(log):len(log)], ch)
	if len(out) > LimitLogLen {
		out = append([]LimitChange(nil), out[len(out)-LimitLogLen:]...)
	}
	return out
}

// Ceiling bounds an agent's limits: MemMax and Pids -1 and CPUMax 0 for
// none.
type Ceiling struct {
	MemMax int64   `json:"memmax"`
	Pids   int64   `json:"pids"`
	CPUMax float64 `json:"cpumax"`
}

// Limits are an agent's cgroup limits: the type the other engines see
// (view.Limits), so the scheduler reads them without a conversion.
type Limits = view.Limits

// NoLimits is the default for a new agent.
var NoLimits = Limits{MemHigh: ctl.Unlimited, MemMax: ctl.Unlimited}

// Agent is a live agent: its record plus what only this daemon run has.
type Agent struct {
	Record
	group   cgroup.Group
	proc    *os.Process // our child (spawned this run); nil when adopted or re-adopted
	leader  string      // leader's status once known
	stopped string      // why the daemon ended it (stop, kill), for Exit
	// finishing is set while finish removes the cgroup.
	finishing bool
	// emptySince is when the reaper first found the cgroup of an agent
	// that is not its child empty (see Engine.waitExit).
	emptySince time.Time
}

// Alive reports whether the agent has (or may have) processes.
func (r *Record) Alive() bool { return r.State == StateRunning || r.State == StateFrozen }

// Paths returns the agent's cgroup directories, or nil.
func (a *Agent) Paths() map[string]string {
	if a.group == nil {
		return nil
	}
	return a.group.Paths()
}

func cores(c float64) string {
	if c <= 0 {
		return "max"
	}
	return fmt.Sprintf("%g", c)
}

func unixTime(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return fmt.Sprintf("%.3f", float64(t.UnixMilli())/1000)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Status renders agents/N/status. Records are lines whose first word names
// the record, then key=value fields in a fixed order:
//
//	agent id=3 name=web state=running pid=1234 pids=1234,1240 uid=0 gid=0 prio=0 caps=+net_admin,-net_raw weight=100 cpumax=0.5 cpuperiod=0.1 cpus=0-1 memhigh=max memmax=268435456 started=1764092400.123 ended=0 exit=- restarts=0 spawned=1 pidsmax=max interval=-
//	cmd argv="sleep 100" dir=/home/alice
//	ceiling memmax=31457280 pidsmax=max cpumax=max
//	cgroup controller=cpu path=/sys/fs/cgroup/cpu/aiosfs/agent-3
//	cgroup controller=memory path=/sys/fs/cgroup/memory/aiosfs/agent-3
//
// Sizes are bytes, times Unix seconds, cpumax cores, cpuperiod seconds
// (the CFS period: cpumax×cpuperiod of CPU time per period); "max" means no limit,
// "-" nothing. pids are the processes in the cgroup now. dir is the
// command's working directory ("-": the daemon's). The ceiling line, only
// for an agent an unprivileged caller made, is what that caller's own
// cgroups allowed it: the agent's limits stay at or below it. interval is
// the agent's own sampling interval in seconds (the interval verb), "-"
// when it is sampled with every pass.
func (a *Agent) Status(pids []int) string {
	var b strings.Builder
	ps := make([]string, len(pids))
	for i, p := range pids {
		ps[i] = fmt.Sprint(p)
	}
	var caps []string
	for _, c := range a.CapAdd {
		caps = append(caps, "+"+c)
	}
	for _, c := range a.CapDrp {
		caps = append(caps, "-"+c)
	}
	spawned := 0
	if a.Spawned {
		spawned = 1
	}
	fmt.Fprintf(&b, "agent id=%d name=%s state=%s pid=%d pids=%s uid=%d gid=%d prio=%d caps=%s weight=%s cpumax=%s cpuperiod=%g cpus=%s memhigh=%s memmax=%s started=%s ended=%s exit=%s restarts=%d spawned=%d pidsmax=%s interval=%s\n",
		a.ID, bus.Quote(a.Name), a.State, a.Pid, orDash(strings.Join(ps, ",")), a.Uid, a.Gid, a.Prio,
		orDash(strings.Join(caps, ",")), weight(a.Limits.Weight), cores(a.Limits.CPUMax), a.Limits.Period().Seconds(), orDash(a.Limits.Cpus),
		sizeOrMax(a.Limits.MemHigh), sizeOrMax(a.Limits.MemMax), unixTime(a.Started), unixTime(a.Ended),
		bus.Quote(orDash(a.Exit)), a.Restarts, spawned, pidsMax(a.Limits.Pids), interval(a.Interval))
	if len(a.Cmd) > 0 {
		fmt.Fprintf(&b, "cmd argv=%s dir=%s\n", bus.Quote(shellJoin(a.Cmd)), bus.Quote(orDash(a.Dir)))
	}
	if c := a.Ceiling; c != nil {
		fmt.Fprintf(&b, "ceiling memmax=%s pidsmax=%s cpumax=%s\n", sizeOrMax(c.MemMax), sizeOrMax(c.Pids), cores(c.CPUMax))
	}
	paths := a.Paths()
	for _, c := range sortedKeys(paths) {
		fmt.Fprintf(&b, "cgroup controller=%s path=%s\n", c, paths[c])
	}
	return b.String()
}

// interval renders the agent's own sampling interval in seconds, "-" for
// the pass interval.
func interval(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return strconv.FormatFloat(d.Seconds(), 'g', -1, 64)
}

// weight renders an unset weight (the kernel's default) as "-".
func weight(w uint64) string {
	if w == 0 {
		return "-"
	}
	return fmt.Sprint(w)
}

// pidsMax renders a pids limit: 0 (not set) as max.
func pidsMax(n int64) string {
	if n <= 0 {
		return "max"
	}
	return fmt.Sprint(n)
}

func sizeOrMax(n int64) string {
	if n < 0 {
		return "max"
	}
	return fmt.Sprint(n)
}

// shellJoin renders argv so that ctl.Tokenize reads it back.
func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t'\"\\#") {
			a = "'" + strings.ReplaceAll(a, "'", `'"'"'`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
