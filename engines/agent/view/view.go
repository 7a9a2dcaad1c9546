// Package view is the agent registry as the other engines see it: typed
// limits to apply, with no text round trip through ctl syntax. It imports
// nothing of the project, so any engine may use it without importing
// engines/agent's concrete types.
package view

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Limit is one cgroup limit to set on an agent: Key is its row in the
// agent engine's limits table (weight, cpumax, cpuperiod, cpus, memhigh,
// memmax, pidsmax) and Value its typed value, as the constructors below
// make it. The kernel gets exactly Value (no formatting on the way).
type Limit struct {
	Key   string
	Value any
}

func (l Limit) String() string { return fmt.Sprintf("%s=%v", l.Key, l.Value) }

// Weight is the cpu weight 1..10000.
func Weight(w uint64) Limit { return Limit{"weight", w} }

// CPUMax is the cpu bandwidth in cores (0: unlimited).
func CPUMax(cores float64) Limit { return Limit{"cpumax", cores} }

// CPUPeriod is the time slice CPUMax's quota refills over.
func CPUPeriod(d time.Duration) Limit { return Limit{"cpuperiod", d} }

// Cpus is a cpuset list, e.g. "0-1,3".
func Cpus(list string) Limit { return Limit{"cpus", list} }

// MemHigh is memory.high in bytes (-1: max).
func MemHigh(b int64) Limit { return Limit{"memhigh", b} }

// MemMax is the memory hard limit in bytes (-1: max).
func MemMax(b int64) Limit { return Limit{"memmax", b} }

// PidsMax is pids.max (0: not set).
func PidsMax(n int64) Limit { return Limit{"pidsmax", n} }

// Limits are an agent's cgroup limits as recorded (and persisted: the
// JSON names are the store's). The agent engine's Limits is this type.
type Limits struct {
	Weight    uint64        `json:"weight"`
	CPUMax    float64       `json:"cpumax"`
	CPUPeriod time.Duration `json:"cpuperiod,omitempty"` // the time slice CPUMax's quota refills over
	Cpus      string        `json:"cpus"`
	MemHigh   int64         `json:"memhigh"`
	MemMax    int64         `json:"memmax"`
	Pids      int64         `json:"pids,omitempty"` // pids.max; 0 not set
}

// DefaultCPUPeriod is the kernel's CFS period (cpu.max's default).
const DefaultCPUPeriod = 100 * time.Millisecond

// Period is the CFS period in force: CPUPeriod, or the kernel's default.
func (l Limits) Period() time.Duration {
	if l.CPUPeriod == 0 {
		return DefaultCPUPeriod
	}
	return l.CPUPeriod
}

// Agent states (Info.State).
const (
	StateNew     = "new"     // allocated by clone, no process yet
	StateRunning = "running" // its cgroup has processes
	StateFrozen  = "frozen"  // running, but frozen by the freezer
	StateExited  = "exited"  // its cgroup emptied; Exit says how
)

// Info is one agent as another engine sees it: a copy, cheap enough to
// take every tick (no process list, no paths: Procs and Cgroups).
type Info struct {
	ID       int
	Name     string
	State    string // StateNew, StateRunning, StateFrozen, StateExited
	Alive    bool   // running or frozen
	Uid, Gid uint32
	Spawned  bool // started by the daemon (it can be restarted), not adopted
	Prio     int
	CapAdd   []string
	Limits   Limits
	Restarts int
	// Dir is the agent's working directory (spawn's dir=; "" for an
	// adopted agent): the healing engine watches its filesystem's space.
	Dir string
}

// ErrEnded is matched (errors.Is) by what the registry's acts return for
// an agent that has ended or is ending: its cgroup is being removed or is
// gone, so there is nothing left to freeze, thaw or limit. An act that
// loses the race with the agent's end (the registry said running, the
// cgroup went before the kernel write) returns it too, instead of the
// kernel's ENOENT, so a caller can tell "nothing left to act on" from a
// failure without asking again.
var ErrEnded = errors.New("agent ended")

// Registry is the agent registry as every engine sees it, the one seam
// between engines and agents (the daemon hands it to each Device). What
// an engine does to an agent through it is what a root ctl write would
// do: the same checks, kernel writes, record and events, with reason in
// the event. Lifecycle (spawn, exit, restart, state changes) is not
// here: it is the bus's agent events, which engines subscribe to.
type Registry interface {
	IDs() []int
	// Info is agent id's record; an unknown id is ENOENT (fs error).
	Info(id int) (Info, error)
	// Procs are the processes in the agent's cgroup now.
	Procs(id int) ([]int, error)
	// Cgroups maps each hierarchy (cpu, memory, pids, freezer, unified,
	// ...) to the agent's directory in it.
	Cgroups(id int) (map[string]string, error)
	// Apply sets one limit, typed (see Limit).
	Apply(id int, l Limit, reason string) error
	// Freeze freezes (on) or thaws the agent: its state changes.
	Freeze(id int, on bool, reason string) error
	// Pause works the freezer without changing the agent's state (a
	// throttle's many freezes and thaws).
	Pause(id int, on bool) error
	// Signal sends sig to every process of the agent.
	Signal(id int, sig syscall.Signal, reason string) error
	// Restart ends every process and runs the agent's command again.
	Restart(id int, reason string) error
	// Hold puts (on) or lifts engine by's claim on the agent (a
	// quarantine): while held, only root changes it through its ctl and
	// other engines' acts are refused (EBUSY); the holder acts with a
	// reason of "by" or "by: ...".
	Hold(id int, by string, on bool) error
}
