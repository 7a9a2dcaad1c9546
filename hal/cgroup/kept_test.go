package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"
	"time"

	"aiosfs/internal/testutil"

	"golang.org/x/sys/unix"
)

// TestKeptCountersFresh checks, on the host's own cgroups (v1 and v2),
// that a kept descriptor re-read at offset 0 gives what a new open gives
// after the group's counters moved (an exec in the group charges it CPU
// and memory), that only the files asked for are kept, and that a removed
// group reads as gone and gives its descriptors back.
func TestKeptCountersFresh(t *testing.T) {
	requireRoot(t)
	t.Run("v1", func(t *testing.T) {
		requireV1(t, "cpu", "cpuacct", "memory")
		keptFresh(t, Config{Version: "v1", Prefix: testPrefix()}, 4)
	})
	t.Run("v2", func(t *testing.T) {
		keptFresh(t, Config{Root: cgroup2Mount(t), Version: "v2", Prefix: testPrefix()}, 3) // 1 where memory is not delegated
	})
}

func keptFresh(t *testing.T, cfg Config, files int) {
	m := newTestManager(t, cfg)
	g, err := m.Create("agent1")
	if err != nil {
		t.Fatal(err)
	}
	cleanupGroup(t, g)
	s := startSleeper(t)
	if err := g.Add(s.pid); err != nil {
		t.Fatal(err)
	}
	cr := g.(CounterReader)
	k := KeepCounters(g)
	if k == nil {
		t.Fatalf("KeepCounters(%T) = nil", g)
	}
	t.Cleanup(func() { k.Close() })
	before := KeptOpen()
	u0, err := k.CPUUsage()
	if err != nil {
		t.Fatal(err)
	}
	if n := k.Open(); n != 1 {
		t.Errorf("after CPUUsage: %d descriptors kept, want 1", n)
	}
	if d := KeptOpen() - before; d != 1 {
		t.Errorf("KeptOpen grew by %d, want 1", d)
	}

	s.execSleep(t) // the exec runs in the group: its CPU usage moves
	// The kernel may charge the exec's last CPU a moment after comm
	// changes (v2 flushes its counters lazily): wait until a new open
	// reads a figure above u0 that stays put (sleep uses none).
	fresh := uint64(0)
	for deadline := time.Now().Add(5 * time.Second); ; {
		a, err1 := cr.CPUUsage()
		time.Sleep(20 * time.Millisecond)
		b, err2 := cr.CPUUsage()
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if a == b && a > u0 {
			fresh = a
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group's CPU usage did not settle above %d after an exec: %d, %d", u0, a, b)
		}
	}
	u1, err := k.CPUUsage()
	if err != nil {
		t.Fatal(err)
	}
	if u1 != fresh {
		t.Errorf("kept CPUUsage %d → %d after an exec, a new open reads %d: the kept file was not read afresh", u0, u1, fresh)
	}
	kc, err := k.Counters()
	if err != nil {
		t.Fatal(err)
	}
	fc, err := cr.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if kc.CPUUsageNs != fc.CPUUsageNs || kc.NrThrottled != fc.NrThrottled || kc.OOMKills != fc.OOMKills {
		t.Errorf("kept Counters %+v, a new open reads %+v", kc, fc)
	}
	if _, err := os.Stat(g.Paths()["unified"] + "/memory.current"); cfg.Version == "v2" && err != nil {
		files = 1 // no memory controller here: cpu.stat alone
	}
	if n := k.Open(); n != files {
		t.Errorf("after Counters: %d descriptors kept, want %d", n, files)
	}
	again, err := k.Counters()
	if err != nil || again.CPUUsageNs != kc.CPUUsageNs {
		t.Errorf("second kept Counters %+v, %v; want CPU %d (the sleeper is idle)", again, err, kc.CPUUsageNs)
	}

	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := k.CPUUsage(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CPUUsage of a removed group: %v, want fs.ErrNotExist", err)
	}
	if _, err := k.Counters(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Counters of a removed group: %v, want fs.ErrNotExist", err)
	}
	if n := k.Open(); n != 0 {
		t.Errorf("removed group: %d descriptors still kept", n)
	}
	if d := KeptOpen() - before; d != 0 {
		t.Errorf("KeptOpen is %d above its start after the group went", d)
	}
}

// TestKeptCountersBound checks that past KeptMax nothing more is kept and
// the figures are still read (by path).
func TestKeptCountersBound(t *testing.T) {
	requireRoot(t)
	requireV1(t, "cpu", "cpuacct", "memory")
	m := newTestManager(t, Config{Version: "v1", Prefix: testPrefix()})
	g, err := m.Create("agent1")
	if err != nil {
		t.Fatal(err)
	}
	cleanupGroup(t, g)
	old := KeptMax
	KeptMax = KeptOpen() + 2
	t.Cleanup(func() { KeptMax = old })
	k := KeepCounters(g)
	defer k.Close()
	want, err := g.(CounterReader).Counters()
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.Counters()
	if err != nil || got.CPUUsageNs != want.CPUUsageNs || got.NrThrottled != want.NrThrottled {
		t.Errorf("Counters past the bound: %+v, %v; want %+v", got, err, want)
	}
	if n := k.Open(); n != 2 {
		t.Errorf("%d descriptors kept with room for 2", n)
	}
	if KeptOpen() > KeptMax {
		t.Errorf("KeptOpen %d above KeptMax %d", KeptOpen(), KeptMax)
	}
	k.Close()
	if n := k.Open(); n != 0 {
		t.Errorf("after Close: %d kept", n)
	}
}

// TestKeepCountersFake: a Group of another package gets no KeptCounters.
func TestKeepCountersFake(t *testing.T) {
	if k := KeepCounters(fileGroup{}); k != nil {
		t.Errorf("KeepCounters(fake) = %v, want nil", k)
	}
}

// BenchmarkCounterReads reads one real v1 group's counters the two ways:
// "path" is Counters and CPUUsage of the group (open, read, read, close
// per file), "kept" the same through KeptCounters (one pread per file).
// cpu-ns/op is the process's CPU time per read (getrusage), which a
// loaded machine disturbs less than the wall time.
func BenchmarkCounterReads(b *testing.B) {
	testutil.RequireRoot(b, "creating a cgroup")
	testutil.RequireFiles(b, DefaultRoot+"/cpuacct/cpuacct.usage", DefaultRoot+"/memory/memory.usage_in_bytes")
	m, err := New(Config{Version: "v1", Prefix: fmt.Sprintf("aiosfs-tel-bench-%d", os.Getpid())})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	g, err := m.Create("agent1")
	if err != nil {
		b.Fatal(err)
	}
	defer g.Delete()
	cr := g.(CounterReader)
	k := KeepCounters(g)
	defer k.Close()
	run := func(name string, f func() error) {
		b.Run(name, func(b *testing.B) {
			c0 := cpuTime()
			for range b.N {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
	run("CPUUsage/path", func() error { _, err := cr.CPUUsage(); return err })
	run("CPUUsage/kept", func() error { _, err := k.CPUUsage(); return err })
	run("Counters/path", func() error { _, err := cr.Counters(); return err })
	run("Counters/kept", func() error { _, err := k.Counters(); return err })
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
