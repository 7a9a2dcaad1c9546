package telemetry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
	"aiosfs/hal/sockdiag"
)

// fakeProc is a procfs of made-up processes.
type fakeProc struct {
	mu    sync.Mutex
	procs map[int]proc.Sample
}

func newFakeProc() *fakeProc { return &fakeProc{procs: map[int]proc.Sample{}} }

func (f *fakeProc) Sample(pid int) (proc.Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.procs[pid]
	if !ok {
		return proc.Sample{}, fmt.Errorf("fake: pid %d: %w", pid, os.ErrNotExist)
	}
	return p, nil
}

func (f *fakeProc) set(p proc.Sample) {
	f.mu.Lock()
	f.procs[p.Pid] = p
	f.mu.Unlock()
}

func (f *fakeProc) update(pid int, fn func(*proc.Sample)) {
	f.mu.Lock()
	p := f.procs[pid]
	fn(&p)
	f.procs[pid] = p
	f.mu.Unlock()
}

func (f *fakeProc) kill(pid int) {
	f.mu.Lock()
	delete(f.procs, pid)
	f.mu.Unlock()
}

// fakeGroup is a cgroup listing some pids with settable counters.
type fakeGroup struct {
	mu    sync.Mutex
	pids  []int
	stats cgroup.Stats
	err   error
}

func (g *fakeGroup) Procs() ([]int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return nil, g.err
	}
	return append([]int(nil), g.pids...), nil
}

func (g *fakeGroup) Stats() (cgroup.Stats, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats, g.err
}

func (g *fakeGroup) setPids(p ...int) {
	g.mu.Lock()
	g.pids = p
	g.mu.Unlock()
}

func (g *fakeGroup) setStats(fn func(*cgroup.Stats)) {
	g.mu.Lock()
	fn(&g.stats)
	g.mu.Unlock()
}

// process makes a fake process started long before t0.
func process(pid int, cpu float64, rd, wr int64) proc.Sample {
	return proc.Sample{Pid: pid, Comm: "w", State: "S", Threads: 2, StartTicks: uint64(pid) * 7,
		Start: t0.Add(-time.Hour), CPUSeconds: cpu, RSS: 1 << 20, MajFaults: 1,
		ReadBytes: rd, WriteBytes: wr, FDs: 4, Sockets: 1}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func newTest(history int, targets ...Target) (*Sampler, *fakeProc) {
	fp := newFakeProc()
	s := New(Config{Proc: fp, Interval: time.Second, History: history}, func() []Target { return targets })
	return s, fp
}

func TestTickRatesFromProcesses(t *testing.T) {
	g := &fakeGroup{pids: []int{10, 11}}
	s, fp := newTest(0, Target{ID: 1, Group: g})
	fp.set(process(10, 5, 1000, 0))
	fp.set(process(11, 2, 0, -1)) // write_bytes unreadable

	s.Tick(at(0))
	first, ok := s.Latest(1)
	if !ok {
		t.Fatal("no sample after a pass")
	}
	if first.CPU != 0 || first.IOReadRate != 0 || first.Procs != 2 || first.Threads != 4 ||
		first.CPUSeconds != 7 || first.RSS != 2<<20 || first.IORead != 1000 || first.IOWrite != 0 ||
		first.FDs != 8 || first.Sockets != 2 || first.MajFaults != 2 || !first.Time.Equal(at(0)) {
		t.Fatalf("first sample %+v", first)
	}

	fp.update(10, func(p *proc.Sample) { p.CPUSeconds += 1.0; p.ReadBytes += 8192 })
	fp.update(11, func(p *proc.Sample) { p.CPUSeconds += 0.5 })
	s.Tick(at(2))
	got, _ := s.Latest(1)
	if !near(got.CPU, 0.75) || !near(got.IOReadRate, 4096) || got.IOWriteRate != 0 || !near(got.CPUSeconds, 8.5) {
		t.Fatalf("after 2 s with 1.5 cpu-s and 8 KiB read: cpu %v read rate %v write rate %v cpu_seconds %v",
			got.CPU, got.IOReadRate, got.IOWriteRate, got.CPUSeconds)
	}
	if s.Interval() != time.Second {
		t.Fatalf("Interval %v", s.Interval())
	}
}

func TestTickPrefersCgroupCPU(t *testing.T) {
	g := &fakeGroup{pids: []int{10}}
	g.stats = cgroup.Stats{CPUUsageNs: 1e9, MemCurrent: 3 << 20, NrThrottled: 4, OOMKills: 0}
	s, fp := newTest(0, Target{ID: 1, Group: g})
	fp.set(process(10, 5, 0, 0))
	s.Tick(at(0))
	// The process shows 0.1 s, but the cgroup saw 3 s (children that came
	// and went between passes): the cgroup wins.
	fp.update(10, func(p *proc.Sample) { p.CPUSeconds += 0.1 })
	g.setStats(func(st *cgroup.Stats) { st.CPUUsageNs += 3e9; st.NrThrottled = 9 })
	s.Tick(at(2))
	got, _ := s.Latest(1)
	if !near(got.CPU, 1.5) || !near(got.CPUSeconds, 4) || got.Mem != 3<<20 || got.Throttled != 9 {
		t.Fatalf("cgroup figures not used: %+v", got)
	}
}

func TestProcessesComingAndGoing(t *testing.T) {
	g := &fakeGroup{pids: []int{10, 11}}
	s, fp := newTest(0, Target{ID: 1, Group: g})
	fp.set(process(10, 1, 0, 0))
	fp.set(process(11, 100, 1<<30, 1<<30))
	s.Tick(at(0))

	// 11 leaves with most of the cumulative counters; 10 does a little.
	fp.kill(11)
	fp.update(10, func(p *proc.Sample) { p.CPUSeconds += 0.25; p.WriteBytes += 100 })
	s.Tick(at(1))
	got, _ := s.Latest(1)
	if got.CPU < 0 || got.IOReadRate < 0 || got.IOWriteRate < 0 {
		t.Fatalf("a process leaving made a rate negative: %+v", got)
	}
	if !near(got.CPU, 0.25) || got.IOWriteRate != 100 || got.IOReadRate != 0 || got.Procs != 1 || got.IORead != 0 {
		t.Fatalf("after 11 left: %+v", got)
	}

	// Pid 10 is reused by a new process with smaller counters: no
	// negative delta, and its own work since it started counts.
	p := process(10, 0.125, 0, 50)
	p.StartTicks++
	p.Start = at(1).Add(500 * time.Millisecond)
	fp.set(p)
	// A process that joined the group now but is old (adopted): its past
	// CPU is not this interval's.
	g.setPids(10, 12)
	fp.set(process(12, 1000, 1<<20, 1<<20))
	s.Tick(at(2))
	got, _ = s.Latest(1)
	if !near(got.CPU, 0.125) || got.IOWriteRate != 50 || got.IOReadRate != 0 {
		t.Fatalf("pid reuse / adoption: cpu %v write rate %v read rate %v", got.CPU, got.IOWriteRate, got.IOReadRate)
	}
	// From now on the adopted process counts.
	fp.update(12, func(p *proc.Sample) { p.CPUSeconds += 2; p.ReadBytes += 10 })
	s.Tick(at(4))
	got, _ = s.Latest(1)
	if !near(got.CPU, 1) || got.IOReadRate != 5 {
		t.Fatalf("adopted process: cpu %v read rate %v", got.CPU, got.IOReadRate)
	}

	// A pass at the same instant (or a clock step back) gives no rates.
	s.Tick(at(4))
	got, _ = s.Latest(1)
	if got.CPU != 0 || got.IOReadRate != 0 || got.IOWriteRate != 0 {
		t.Fatalf("zero interval gave rates %+v", got)
	}

	// A cgroup counter going backwards (the group was recreated) gives 0.
	g.setStats(func(st *cgroup.Stats) { st.CPUUsageNs = 5e9 })
	s.Tick(at(5))
	g.setStats(func(st *cgroup.Stats) { st.CPUUsageNs = 1e9 })
	s.Tick(at(6))
	if got, _ = s.Latest(1); got.CPU != 0 {
		t.Fatalf("usage going back gave cpu %v", got.CPU)
	}
}

func TestHistoryGrowsAndIsBounded(t *testing.T) {
	g := &fakeGroup{pids: []int{10}}
	s, fp := newTest(5, Target{ID: 1, Group: g})
	fp.set(process(10, 0, 0, 0))
	if h := s.History(1); h != nil {
		t.Fatalf("history before any pass: %v", h)
	}
	for i := 0; i < 12; i++ {
		s.Tick(at(i))
		h := s.History(1)
		if len(h) != min(i+1, 5) {
			t.Fatalf("after %d passes history has %d samples", i+1, len(h))
		}
		for k := range h {
			if want := at(i + 1 - len(h) + k); !h[k].Time.Equal(want) {
				t.Fatalf("history[%d] at %v, want %v", k, h[k].Time, want)
			}
		}
	}
	if got := s.Since(1, at(10)); len(got) != 2 {
		t.Fatalf("Since: %d samples", len(got))
	}
	s.Forget(1)
	if _, ok := s.Latest(1); ok || s.History(1) != nil {
		t.Fatal("Forget kept the agent")
	}
	s.Tick(at(20))
	if h := s.History(1); len(h) != 1 {
		t.Fatalf("a forgotten agent still sampled starts afresh, got %d samples", len(h))
	}
}

func TestGroupErrors(t *testing.T) {
	bad := &fakeGroup{err: os.ErrNotExist}
	g := &fakeGroup{pids: []int{10, 99}} // 99 does not exist
	s, fp := newTest(0, Target{ID: 1, Group: bad}, Target{ID: 2, Group: g}, Target{ID: 3})
	fp.set(process(10, 0, 0, 0))
	s.Tick(at(0))
	if _, ok := s.Latest(1); ok {
		t.Fatal("a group that cannot list its processes produced a sample")
	}
	if _, ok := s.Latest(3); ok {
		t.Fatal("a target without a group produced a sample")
	}
	if got, ok := s.Latest(2); !ok || got.Procs != 1 {
		t.Fatalf("vanished pid counted: %+v", got)
	}
}

func TestOnTickAndAgentOf(t *testing.T) {
	g1 := &fakeGroup{pids: []int{10, 11}}
	g2 := &fakeGroup{pids: []int{20}}
	s, fp := newTest(0, Target{ID: 1, Group: g1}, Target{ID: 2, Group: g2})
	for _, pid := range []int{10, 11, 20} {
		fp.set(process(pid, 1, 0, 0))
	}
	var calls []map[int]Sample
	var times []time.Time
	s.OnTick(func(now time.Time, latest map[int]Sample) {
		// Called outside the locks: the Sampler is usable from a hook.
		if _, ok := s.Latest(1); !ok {
			t.Error("hook ran before the sample was stored")
		}
		calls = append(calls, latest)
		times = append(times, now)
	})
	s.Tick(at(0))
	s.Tick(at(1))
	if len(calls) != 2 || !times[1].Equal(at(1)) {
		t.Fatalf("hook calls %d, times %v", len(calls), times)
	}
	m := calls[1]
	l1, _ := s.Latest(1)
	l2, _ := s.Latest(2)
	if len(m) != 2 || m[1] != l1 || m[2] != l2 || m[1].Procs != 2 {
		t.Fatalf("hook got %+v, latest %+v %+v", m, l1, l2)
	}

	for pid, want := range map[int]int{10: 1, 11: 1, 20: 2, 30: 0} {
		if got := s.AgentOf(pid); got != want {
			t.Errorf("AgentOf(%d) = %d, want %d", pid, got, want)
		}
	}
	// 11 moves to agent 2.
	g1.setPids(10)
	g2.setPids(20, 11)
	s.Tick(at(2))
	if got := s.AgentOf(11); got != 2 {
		t.Errorf("after a move AgentOf(11) = %d", got)
	}
	// 20 leaves: forgotten after two passes without it.
	g2.setPids(11)
	s.Tick(at(3))
	s.Tick(at(4))
	if got := s.AgentOf(20); got != 0 {
		t.Errorf("AgentOf(20) = %d after it left", got)
	}
	s.Forget(1)
	if got := s.AgentOf(10); got != 0 {
		t.Errorf("AgentOf(10) = %d after Forget", got)
	}
}

func TestRunAndSetInterval(t *testing.T) {
	g := &fakeGroup{pids: []int{10}}
	s, fp := newTest(0, Target{ID: 1, Group: g})
	fp.set(process(10, 0, 0, 0))
	s.SetInterval(time.Hour)
	ticks := make(chan time.Time, 100)
	s.OnTick(func(now time.Time, _ map[int]Sample) { ticks <- now })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	<-ticks // the first pass is immediate
	s.SetInterval(5 * time.Millisecond)
	for i := 0; i < 3; i++ {
		select {
		case <-ticks:
		case <-time.After(10 * time.Second):
			t.Fatal("SetInterval did not reach Run")
		}
	}
	cancel()
	<-done
	if s.Interval() != 5*time.Millisecond {
		t.Fatalf("Interval %v", s.Interval())
	}
	s.SetInterval(0)
	if s.Interval() != DefaultInterval {
		t.Fatalf("SetInterval(0) gave %v", s.Interval())
	}
}

func TestSelfFromFake(t *testing.T) {
	fp := newFakeProc()
	s := New(Config{Proc: fp}, nil)
	me := os.Getpid()
	p := process(me, 10, 0, 0)
	p.Start = time.Now().Add(-20 * time.Second)
	p.RSS = 5 << 20
	fp.set(p)
	share, rss := s.Self()
	if rss != 5<<20 || share < 0.45 || share > 0.55 {
		t.Fatalf("first Self: share %v (want about 10 s / 20 s) rss %d", share, rss)
	}
	// Within the window: the same share, no division by a tiny span.
	fp.update(me, func(p *proc.Sample) { p.CPUSeconds += 0.01 })
	if again, _ := s.Self(); again != share {
		t.Fatalf("Self within 100 ms: %v, want %v", again, share)
	}
	time.Sleep(150 * time.Millisecond)
	if later, _ := s.Self(); later <= 0 || later > 0.2 {
		t.Fatalf("Self after 10 ms of cpu in >150 ms: %v", later)
	}
}

// benchSampler builds n agents of 5 processes each.
func benchSampler(n int) *Sampler {
	fp := newFakeProc()
	targets := make([]Target, n)
	pid := 100
	for i := range targets {
		g := &fakeGroup{stats: cgroup.Stats{CPUUsageNs: 1, MemCurrent: 1 << 20}}
		for k := 0; k < 5; k++ {
			fp.set(process(pid, 1, 0, 0))
			g.pids = append(g.pids, pid)
			pid++
		}
		targets[i] = Target{ID: i + 1, Group: g}
	}
	return New(Config{Proc: fp}, func() []Target { return targets })
}

func benchTick(b *testing.B, n int) {
	s := benchSampler(n)
	now := t0
	s.Tick(now)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Second)
		s.Tick(now)
	}
}

func BenchmarkTick200(b *testing.B)  { benchTick(b, 200) }
func BenchmarkTick1000(b *testing.B) { benchTick(b, 1000) }

// TestConcurrentReaders runs passes while readers and proc events hit the
// Sampler (for the race detector).
func TestConcurrentReaders(t *testing.T) {
	s := benchSampler(20)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := i%20 + 1
				s.Latest(id)
				s.History(id)
				s.AgentOf(100 + i%100)
				s.Self()
				if i%50 == 0 {
					s.Forget(id)
				}
			}
		}()
	}
	now := t0
	for i := 0; i < 200; i++ {
		now = now.Add(time.Second)
		s.Tick(now)
	}
	close(stop)
	wg.Wait()
}

// fakeTCP is a settable sock_diag dump that counts its calls.
type fakeTCP struct {
	mu    sync.Mutex
	socks map[uint64]sockdiag.Bytes
	err   error
	calls int
}

func (f *fakeTCP) dump() (map[uint64]sockdiag.Bytes, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return maps.Clone(f.socks), nil
}

func TestTickNetBytes(t *testing.T) {
	g1 := &fakeGroup{pids: []int{10, 11}}
	g2 := &fakeGroup{pids: []int{20}}
	fp := newFakeProc()
	ft := &fakeTCP{socks: map[uint64]sockdiag.Bytes{
		100: {Sent: 1000, Received: 500},
		101: {Sent: 10, Received: 20},
		200: {Sent: 7, Received: 0},
		999: {Sent: 1 << 30, Received: 1 << 30}, // nobody's
	}}
	s := New(Config{Proc: fp, TCPBytes: ft.dump}, func() []Target {
		return []Target{{ID: 1, Group: g1}, {ID: 2, Group: g2}}
	})
	p10 := process(10, 0, 0, 0)
	p10.SocketInodes = []uint64{100, 101, 555} // 555: not TCP (unix, udp)
	p11 := process(11, 0, 0, 0)
	p11.SocketInodes = []uint64{100} // inherited from 10: counts once
	p20 := process(20, 0, 0, 0)
	p20.SocketInodes = []uint64{200}
	fp.set(p10)
	fp.set(p11)
	fp.set(p20)

	s.Tick(at(0))
	if ft.calls != 1 {
		t.Fatalf("%d dumps in one pass over two agents, want 1", ft.calls)
	}
	a1, _ := s.Latest(1)
	if a1.NetSent != 1010 || a1.NetRecv != 520 || a1.NetRate != 0 {
		t.Fatalf("first pass: sent %d recv %d rate %v", a1.NetSent, a1.NetRecv, a1.NetRate)
	}

	// 2 s later: socket 100 moved 3000+1000 bytes, 101 closed (its bytes
	// leave the sum but the rate stays >= 0), 102 opened with 600 bytes.
	ft.mu.Lock()
	ft.socks[100] = sockdiag.Bytes{Sent: 4000, Received: 1500}
	delete(ft.socks, 101)
	ft.socks[102] = sockdiag.Bytes{Sent: 600}
	ft.mu.Unlock()
	fp.update(10, func(p *proc.Sample) { p.SocketInodes = []uint64{100, 102} })
	s.Tick(at(2))
	a1, _ = s.Latest(1)
	if a1.NetSent != 4600 || a1.NetRecv != 1500 || !near(a1.NetRate, (3000+1000+600)/2.0) {
		t.Fatalf("second pass: sent %d recv %d rate %v", a1.NetSent, a1.NetRecv, a1.NetRate)
	}
	if a2, _ := s.Latest(2); a2.NetSent != 7 || a2.NetRate != 0 {
		t.Fatalf("agent 2: %+v", a2)
	}

	// Everything closes: cumulative drops, the rate is 0, not negative.
	fp.update(10, func(p *proc.Sample) { p.SocketInodes = nil })
	fp.update(11, func(p *proc.Sample) { p.SocketInodes = nil })
	s.Tick(at(3))
	if a1, _ = s.Latest(1); a1.NetSent != 0 || a1.NetRecv != 0 || a1.NetRate != 0 {
		t.Fatalf("after close: %+v", a1)
	}
	if h := s.History(1); len(h) != 3 || h[1].NetSent != 4600 || !near(h[1].NetRate, 2300) {
		t.Fatalf("history %+v", h)
	}

	// A failed dump leaves the net fields 0 and does not fail the pass;
	// the pass after it has no previous dump, so no rate yet.
	fp.update(10, func(p *proc.Sample) { p.SocketInodes = []uint64{100} })
	ft.mu.Lock()
	ft.err = errors.New("sock_diag: EPERM")
	ft.mu.Unlock()
	s.Tick(at(4))
	if a1, ok := s.Latest(1); !ok || !a1.Time.Equal(at(4)) || a1.NetSent != 0 || a1.NetRate != 0 || a1.Procs != 2 {
		t.Fatalf("failed dump: %+v %v", a1, ok)
	}
	ft.mu.Lock()
	ft.err = nil
	ft.mu.Unlock()
	s.Tick(at(5))
	if a1, _ = s.Latest(1); a1.NetSent != 4000 || a1.NetRate != 0 {
		t.Fatalf("after failed dump: %+v", a1)
	}
	s.Tick(at(6))
	if a1, _ = s.Latest(1); a1.NetRate != 0 {
		t.Fatalf("idle socket: rate %v", a1.NetRate)
	}
}
