package daemon

import (
	"fmt"
	"math"
	"runtime/debug"
	rtmetrics "runtime/metrics"
)

// Memory is what the daemon asks of the Go runtime's garbage collector
// (issue 17's RSS target; docs/cost.md, "Memory"). The daemon's resident
// size follows the GC's heap goal, not the live heap: with GOGC=100 the
// goal is twice the live heap, so 30 MiB live is about 60 MiB of heap
// before any stack, runtime structure or binary text.
//
// GCPercent is debug.SetGCPercent: the heap may grow by this percentage
// of the live heap between collections. 0 leaves the runtime's (GOGC in
// the environment, else 100); negative turns proportional collection
// off, which is allowed only with a MemoryLimit.
//
// MemoryLimit is debug.SetMemoryLimit in bytes, a soft limit on all the
// memory the runtime manages (heap, stacks, its own structures; not the
// binary's text). Near it the GC runs more often than GCPercent asks and
// the scavenger returns freed pages to the kernel at once. 0 leaves the
// runtime's (GOMEMLIMIT, else none). A limit below the live heap makes
// the GC run continuously (the runtime caps that at about half the CPU),
// which is why GCPercent stays on: past the limit the heap still grows
// by GCPercent rather than thrashing for ever.
type Memory struct {
	GCPercent   int
	MemoryLimit int64
}

// MinMemoryLimit is the smallest MemoryLimit accepted: below it the
// daemon's own runtime structures and stacks alone would be over the
// limit and the GC would run without pause.
const MinMemoryLimit = 16 << 20

// Check says what is wrong with m, or nil.
func (m Memory) Check() error {
	if m.MemoryLimit < 0 {
		return fmt.Errorf("memory limit %d: negative", m.MemoryLimit)
	}
	if m.MemoryLimit > 0 && m.MemoryLimit < MinMemoryLimit {
		return fmt.Errorf("memory limit %d bytes: below the minimum of %d MiB", m.MemoryLimit, MinMemoryLimit>>20)
	}
	if m.GCPercent < 0 && m.MemoryLimit == 0 {
		return fmt.Errorf("gc percent %d (off) needs a memory limit, else the heap grows without bound", m.GCPercent)
	}
	return nil
}

// Apply sets m in the runtime and returns what was there, so a test (or
// a second daemon in one process) can put it back with Restore.
func (m Memory) Apply() (prev Memory, err error) {
	if err := m.Check(); err != nil {
		return Memory{}, err
	}
	prev = Current()
	// The limit first: GCPercent -1 is refused above without one.
	if m.MemoryLimit > 0 {
		debug.SetMemoryLimit(m.MemoryLimit)
	}
	if m.GCPercent != 0 {
		debug.SetGCPercent(m.GCPercent)
	}
	return prev, nil
}

// Current is the runtime's settings in force, read without changing
// them (runtime/metrics); no limit is NoMemoryLimit.
func Current() Memory {
	s := []rtmetrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	rtmetrics.Read(s)
	m := Memory{GCPercent: int(s[0].Value.Uint64()), MemoryLimit: int64(s[1].Value.Uint64())}
	if m.GCPercent == 0 { // off reads as 0
		m.GCPercent = -1
	}
	return m
}

// Restore puts back what Apply returned (a Current), NoMemoryLimit
// included; GCPercent first, so that no moment has GC off and no limit.
func (m Memory) Restore() {
	debug.SetGCPercent(m.GCPercent)
	debug.SetMemoryLimit(m.MemoryLimit)
}

// NoMemoryLimit is the runtime's value for "no limit".
const NoMemoryLimit = math.MaxInt64

// gcSettings is the runtime's settings in force, for the start-up line.
func gcSettings() string {
	cur := Current()
	pct, lim := cur.GCPercent, cur.MemoryLimit
	l := "none"
	if lim != NoMemoryLimit {
		l = fmt.Sprintf("%dMiB", lim>>20)
		if lim%(1<<20) != 0 {
			l = fmt.Sprintf("%dB", lim)
		}
	}
	return fmt.Sprintf("gc-percent=%d memory-limit=%s", pct, l)
}

// DefaultMemory is `aiosfs serve`'s default (-gc-percent, -memory-limit).
var DefaultMemory = Memory{GCPercent: 100, MemoryLimit: 0}
