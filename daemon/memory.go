package daemon

import (
	"context"
	"fmt"
	"math"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
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

// LimitFloorPercent is the least headroom the memory limit leaves the
// heap above its live part, as a percentage of the live heap: with the
// limit alone, a live heap near it makes the runtime collect without
// pause (up to half the CPU; the review measured 0.9 cores at a 48 MiB
// GOMEMLIMIT). The governor (Memory.govern) raises the runtime's limit
// to keep this much room, so the limit trims the heap's growth only
// while that growth is cheap, and a larger live heap (more agents, more
// history) costs at most the GC of GOGC=LimitFloorPercent, not thrash.
const LimitFloorPercent = 25

// memMetrics are the runtime/metrics the governor reads.
var memMetrics = []string{
	"/gc/heap/live:bytes",                 // live heap as of the last GC's mark
	"/memory/classes/total:bytes",         // all the runtime has mapped
	"/memory/classes/heap/released:bytes", // returned to the kernel
	"/memory/classes/heap/objects:bytes",  // live and dead objects
	"/memory/classes/heap/free:bytes",     // free, not returned
}

// limitFor is the runtime memory limit for a configured limit, given the
// live heap and the rest of what counts against the limit (the runtime's
// memory but heap objects and free heap: stacks, GC metadata, span
// fragmentation): the configured limit, or enough for the live heap to
// grow by LimitFloorPercent if that is more.
func limitFor(limit int64, live, other uint64) int64 {
	floor := int64(other + live + live*LimitFloorPercent/100)
	floor = (floor + 1<<20 - 1) &^ (1<<20 - 1) // whole MiB: fewer changes
	return max(limit, floor)
}

// govern keeps the runtime's memory limit at limitFor of what the
// runtime holds now, every tick until ctx ends. logf says when the
// limit is raised above the configured one and when it comes back.
func (m Memory) govern(ctx context.Context, every time.Duration, logf func(string, ...any)) {
	t := time.NewTicker(every)
	defer t.Stop()
	raised := false
	for {
		lim, live := m.governStep()
		if up := lim > m.MemoryLimit; up != raised {
			raised = up
			if up {
				logf("memory: live heap %d MiB: memory limit raised to %d MiB (-memory-limit %d MiB would leave the collector less than %d%% of the live heap to work in)", live>>20, lim>>20, m.MemoryLimit>>20, LimitFloorPercent)
			} else {
				logf("memory: live heap %d MiB: memory limit back at %d MiB", live>>20, m.MemoryLimit>>20)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// governStep sets the runtime's limit once and returns it with the live
// heap it was computed from.
func (m Memory) governStep() (limit int64, live uint64) {
	s := make([]rtmetrics.Sample, len(memMetrics))
	for i, n := range memMetrics {
		s[i].Name = n
	}
	rtmetrics.Read(s)
	live = s[0].Value.Uint64()
	total, released, objects, free := s[1].Value.Uint64(), s[2].Value.Uint64(), s[3].Value.Uint64(), s[4].Value.Uint64()
	other := total - released - objects - free
	limit = limitFor(m.MemoryLimit, live, other)
	if cur := debug.SetMemoryLimit(-1); cur != limit {
		debug.SetMemoryLimit(limit)
	}
	return limit, live
}
