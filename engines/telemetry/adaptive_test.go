package telemetry

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"aiosfs/engines/bus"
	"aiosfs/hal/cgroup"
	"aiosfs/hal/procconn"
)

// counterGroup is a fakeGroup that is also a cgroup.CounterReader, so the
// sampler may hold its samples; it counts the calls of each kind.
type counterGroup struct {
	fakeGroup
	procs, counters, usage atomic.Int32
}

func (g *counterGroup) Procs() ([]int, error) {
	g.procs.Add(1)
	return g.fakeGroup.Procs()
}

func (g *counterGroup) Counters() (cgroup.Counters, error) {
	g.counters.Add(1)
	st, err := g.fakeGroup.Stats()
	return cgroup.Counters{CPUUsageNs: st.CPUUsageNs, NrThrottled: st.NrThrottled, MemCurrent: st.MemCurrent, OOMKills: st.OOMKills}, err
}

func (g *counterGroup) CPUUsage() (uint64, error) {
	g.usage.Add(1)
	st, err := g.fakeGroup.Stats()
	return st.CPUUsageNs, err
}

// An idle agent (cgroup usage unchanged) gets held samples: one file read
// instead of procs, counters and the processes; the history keeps one
// sample per pass; at most Hold passes in a row; CPU use ends a hold at
// once, and the first full sample's rate covers only the time since the
// last held pass.
func TestHoldIdleAgent(t *testing.T) {
	g := &counterGroup{fakeGroup: fakeGroup{pids: []int{10}, stats: cgroup.Stats{CPUUsageNs: 5e9, MemCurrent: 1 << 20}}}
	fp := newFakeProc()
	fp.set(process(10, 5, 0, 0))
	tun := Tuning{Hold: 3, Counters: true, RawProc: true}
	s := New(Config{Proc: fp, Tuning: &tun}, func() []Target { return []Target{{ID: 1, Group: g}} })
	s.Tick(at(0))
	for i := 1; i <= 3; i++ {
		s.Tick(at(i))
	}
	if g.procs.Load() != 1 || g.usage.Load() != 3 {
		t.Fatalf("3 idle passes: %d Procs, %d CPUUsage; want 1 and 3", g.procs.Load(), g.usage.Load())
	}
	l, _ := s.Latest(1)
	if !l.Time.Equal(at(3)) || l.CPU != 0 || l.Procs != 1 || l.Mem != 1<<20 {
		t.Fatalf("held sample %+v", l)
	}
	if pids, when, ok := s.Procs(1); !ok || !slices.Equal(pids, []int{10}) || !when.Equal(at(3)) {
		t.Fatalf("Procs = %v %v %v", pids, when, ok)
	}
	if s.AgentOf(10) != 1 {
		t.Fatal("a held agent's pid left the pid table")
	}
	s.Tick(at(4)) // Hold 3 reached: full
	if g.procs.Load() != 2 {
		t.Fatalf("after 3 held passes: %d Procs calls, want 2", g.procs.Load())
	}
	if h := s.History(1); len(h) != 5 {
		t.Fatalf("history holds %d samples after 5 passes", len(h))
	}
	s.Tick(at(5)) // held again
	// It runs: 0.5 s of CPU between pass 5 and pass 6.
	g.setStats(func(st *cgroup.Stats) { st.CPUUsageNs += 5e8 })
	s.Tick(at(6))
	if g.procs.Load() != 3 {
		t.Fatalf("busy pass was held")
	}
	if l, _ := s.Latest(1); !near(l.CPU, 0.5) {
		t.Fatalf("first full sample after a hold: cpu %v, want 0.5 (over the last pass only)", l.CPU)
	}

	// After a busy sample the next is full without the test; then idle
	// again, held.
	tests := g.usage.Load()
	s.Tick(at(7))
	s.Tick(at(8))
	if g.procs.Load() != 4 || g.usage.Load() != tests+1 {
		t.Fatalf("after a busy sample: %d Procs, %d CPUUsage calls; want 4 and %d", g.procs.Load(), g.usage.Load(), tests+1)
	}

	// Off: every pass is full.
	tun.Hold = 0
	s.SetTuning(tun)
	s.Tick(at(9))
	s.Tick(at(10))
	if g.procs.Load() != 6 {
		t.Fatalf("Hold 0: %d Procs calls, want 6", g.procs.Load())
	}
}

// A proc connector event of an agent's process wakes it: the next pass is
// full even though its CPU usage did not move.
func TestWakeOnProcEvent(t *testing.T) {
	g := &counterGroup{fakeGroup: fakeGroup{pids: []int{10}, stats: cgroup.Stats{CPUUsageNs: 1}}}
	fp := newFakeProc()
	fp.set(process(10, 0, 0, 0))
	s := New(Config{Proc: fp, Bus: bus.New(16)}, func() []Target { return []Target{{ID: 1, Group: g}} })
	s.Tick(at(0))
	s.Tick(at(1))
	s.Tick(at(2))
	before := g.procs.Load()
	s.procEvent(&procconn.Event{Kind: procconn.Exec, Pid: 10, Tgid: 10, Time: at(2)})
	s.Tick(at(3))
	if g.procs.Load() != before+1 {
		t.Fatalf("an exec did not wake the agent")
	}
	s.Tick(at(4))
	if g.procs.Load() != before+1 {
		t.Fatalf("the wake lasted more than one pass")
	}
}

// An agent with its own interval: 250 ms among 1 s agents is sampled by
// FastTick between passes; 3 s is sampled every third pass. Neither is
// held.
func TestAgentInterval(t *testing.T) {
	mk := func(pid int) *counterGroup {
		return &counterGroup{fakeGroup: fakeGroup{pids: []int{pid}, stats: cgroup.Stats{CPUUsageNs: 1}}}
	}
	g1, g2, g3 := mk(10), mk(20), mk(30)
	fp := newFakeProc()
	for _, p := range []int{10, 20, 30} {
		fp.set(process(p, 0, 0, 0))
	}
	tun := Tuning{Counters: true, RawProc: true} // no holds, to count passes
	s := New(Config{Proc: fp, Tuning: &tun}, func() []Target {
		return []Target{{ID: 1, Group: g1}, {ID: 2, Group: g2}, {ID: 3, Group: g3}}
	})
	s.SetAgentInterval(2, 250*time.Millisecond)
	s.SetAgentInterval(3, 3*time.Second)
	if s.step() != 250*time.Millisecond || s.AgentInterval(2) != 250*time.Millisecond {
		t.Fatalf("step %v, want 250ms", s.step())
	}
	for ms := 0; ms <= 6000; ms += 250 {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		if ms%1000 == 0 {
			s.Tick(now)
		} else {
			s.FastTick(now)
		}
	}
	if n1, n2, n3 := g1.procs.Load(), g2.procs.Load(), g3.procs.Load(); n1 != 7 || n2 != 25 || n3 != 3 {
		t.Fatalf("samples: 1 s agent %d, 250 ms agent %d, 3 s agent %d; want 7, 25, 3", n1, n2, n3)
	}
	h := s.History(2)
	for i := 1; i < len(h); i++ {
		if d := h[i].Time.Sub(h[i-1].Time); d != 250*time.Millisecond {
			t.Fatalf("250 ms agent's history step %v at %d", d, i)
		}
	}
	s.SetAgentInterval(2, 0)
	if s.step() != time.Second {
		t.Fatalf("step %v after the fast agent went back, want 1s", s.step())
	}
}
