package daemon

import (
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// Bad settings are refused by Check and by Start before the runtime is
// touched.
func TestMemoryCheck(t *testing.T) {
	for _, c := range []struct {
		m    Memory
		want string // in the error; "" none
	}{
		{Memory{}, ""},
		{Memory{GCPercent: 50}, ""},
		{Memory{GCPercent: 100, MemoryLimit: 48 << 20}, ""},
		{Memory{GCPercent: -1, MemoryLimit: 64 << 20}, ""},
		{Memory{MemoryLimit: -1}, "negative"},
		{Memory{MemoryLimit: 1 << 20}, "below the minimum of 16 MiB"},
		{Memory{GCPercent: -1}, "needs a memory limit"},
	} {
		err := c.m.Check()
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: Check() = %v, want %q", c.m, err, c.want)
		}
	}
	before := Current()
	if _, err := Start(Config{StateDir: t.TempDir(), Memory: Memory{MemoryLimit: 1 << 20}}); err == nil {
		t.Fatal("Start took a 1 MiB memory limit")
	}
	if Current() != before {
		t.Errorf("a refused Start changed the runtime's settings: %+v, was %+v", Current(), before)
	}
}

// Apply sets what it is given and leaves what is zero; Restore puts back
// what Apply found.
func TestMemoryApplyRestore(t *testing.T) {
	before := Current()
	defer before.Restore()
	prev, err := Memory{GCPercent: 37, MemoryLimit: 123 << 20}.Apply()
	if err != nil {
		t.Fatal(err)
	}
	if prev != before {
		t.Errorf("Apply returned %+v, want what was in force, %+v", prev, before)
	}
	if got := Current(); got != (Memory{GCPercent: 37, MemoryLimit: 123 << 20}) {
		t.Errorf("after Apply the runtime has %+v", got)
	}
	if _, err := (Memory{}).Apply(); err != nil {
		t.Fatal(err)
	}
	if got := Current(); got != (Memory{GCPercent: 37, MemoryLimit: 123 << 20}) {
		t.Errorf("the zero Memory changed the runtime's settings to %+v", got)
	}
	prev.Restore()
	if got := Current(); got != before {
		t.Errorf("after Restore the runtime has %+v, want %+v", got, before)
	}
	if s := gcSettings(); !strings.Contains(s, "gc-percent=") || !strings.Contains(s, "memory-limit=") {
		t.Errorf("gcSettings() = %q", s)
	}
}

func TestLimitFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		limit       int64
		live, other uint64
		want        int64
	}{
		{48 * mib, 20 * mib, 8 * mib, 48 * mib},   // 20·1.25+8 = 33: the configured limit binds
		{48 * mib, 32 * mib, 8 * mib, 48 * mib},   // 48 exactly
		{48 * mib, 40 * mib, 8 * mib, 58 * mib},   // 50+8: raised, so the GC keeps a quarter of the live heap to work in
		{48 * mib, 400 * mib, 8 * mib, 508 * mib}, // 1,000 agents
		{48 * mib, 40*mib + 1, 8 * mib, 59 * mib}, // rounded up to whole MiB
	} {
		if got := limitFor(c.limit, c.live, c.other); got != c.want {
			t.Errorf("limitFor(%d MiB, live %d, other %d) = %d, want %d", c.limit>>20, c.live, c.other, got, c.want)
		}
	}
}

// With a live heap larger than the configured limit, the governor raises
// the runtime's limit above it (the GC would otherwise run without
// pause), says so, and puts it back once the heap is gone.
func TestGovernRaisesTheLimit(t *testing.T) {
	before := Current()
	defer before.Restore()
	m := Memory{MemoryLimit: 16 << 20}
	if _, err := m.Apply(); err != nil {
		t.Fatal(err)
	}
	hold := make([][]byte, 48)
	for i := range hold {
		hold[i] = make([]byte, 1<<20)
		hold[i][0] = 1
	}
	runtime.GC()
	lim, live := m.governStep()
	if live < 48<<20 || lim < int64(live)+int64(live)/4 || debug.SetMemoryLimit(-1) != lim {
		t.Errorf("live heap %d MiB: limit %d MiB (runtime's %d), want at least 1.25 times the live heap", live>>20, lim>>20, debug.SetMemoryLimit(-1)>>20)
	}
	runtime.KeepAlive(hold)
	hold = nil
	runtime.GC()
	runtime.GC()
	lim, live = m.governStep()
	if lim != m.MemoryLimit || debug.SetMemoryLimit(-1) != m.MemoryLimit {
		t.Errorf("live heap %d MiB after freeing: limit %d MiB, want the configured %d", live>>20, lim>>20, m.MemoryLimit>>20)
	}

	// The loop logs the change both ways, once each.
	hold = make([][]byte, 48)
	for i := range hold {
		hold[i] = make([]byte, 1<<20)
	}
	runtime.GC()
	var lines []string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.govern(ctx, 10*time.Millisecond, func(f string, a ...any) { lines = append(lines, f) })
	}()
	time.Sleep(50 * time.Millisecond)
	runtime.KeepAlive(hold)
	hold = nil
	runtime.GC()
	runtime.GC()
	for deadline := time.Now().Add(5 * time.Second); debug.SetMemoryLimit(-1) != m.MemoryLimit && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if len(lines) != 2 || !strings.Contains(lines[0], "raised") || !strings.Contains(lines[1], "back at") {
		t.Errorf("governor logged %q, want one raise and one return", lines)
	}
}
