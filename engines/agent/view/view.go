// Package view is the agent registry as the other engines see it: typed
// limits to apply, with no text round trip through ctl syntax. It imports
// nothing of the project, so any engine may use it without importing
// engines/agent's concrete types.
package view

import (
	"fmt"
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
