package telemetry

import (
	"os"
	"sync/atomic"
	"testing"

	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
	"aiosfs/hal/sockdiag"
)

// countingProc is a fakeProc that counts the samples of agents'
// processes (not the sampler's own, after each pass).
type countingProc struct {
	*fakeProc
	n atomic.Int32
}

func (c *countingProc) Sample(pid int) (proc.Sample, error) {
	if pid != os.Getpid() {
		c.n.Add(1)
	}
	return c.fakeProc.Sample(pid)
}

// A busy agent's processes are read every ProcEvery-th full sample; in
// between, the cgroup's figures are this pass's and the per-process ones
// repeat the last scan, with its I/O rates averaged over the span since
// the scan before. A changed pid set, a Wake and a socket new to the dump
// each make the next sample a scan; a pass in which the agent ran nothing
// has rates 0 and makes the next busy pass a scan.
func TestProcEvery(t *testing.T) {
	g := &counterGroup{fakeGroup: fakeGroup{pids: []int{10}, stats: cgroup.Stats{CPUUsageNs: 5e9, MemCurrent: 1 << 20}}}
	fp := &countingProc{fakeProc: newFakeProc()}
	fp.set(process(10, 5, 0, 0))
	tcp := &fakeTCP{}
	tun := Tuning{Counters: true, RawProc: true, ProcEvery: 3}
	s := New(Config{Proc: fp, Tuning: &tun, TCPBytes: tcp.dump}, func() []Target { return []Target{{ID: 1, Group: g}} })
	// Each pass: 0.5 s of CPU, 1000 bytes read, 1 MiB more memory in
	// the cgroup, 4 KiB more RSS.
	incs := 0 // passes that ran
	run := func(i int) Sample {
		t.Helper()
		if i > 0 {
			incs++
			g.setStats(func(st *cgroup.Stats) { st.CPUUsageNs += 5e8; st.MemCurrent += 1 << 20 })
			fp.update(10, func(p *proc.Sample) { p.ReadBytes += 1000; p.RSS += 4096 })
		}
		s.Tick(at(i))
		l, _ := s.Latest(1)
		return l
	}
	want := func(i int, l Sample, scans int32, rss, ioRead int64, rate float64) {
		t.Helper()
		if fp.n.Load() != scans {
			t.Fatalf("pass %d: %d process samples, want %d", i, fp.n.Load(), scans)
		}
		if l.RSS != rss || l.IORead != ioRead || !near(l.IOReadRate, rate) {
			t.Fatalf("pass %d: rss %d io_read %d io_read_rate %v; want %d %d %v", i, l.RSS, l.IORead, l.IOReadRate, rss, ioRead, rate)
		}
		if i > 0 && (!near(l.CPU, 0.5) || l.Mem != int64(1+incs)<<20 || !near(l.CPUSeconds, 5+0.5*float64(incs))) {
			t.Fatalf("pass %d: the cgroup's figures are not this pass's: %+v", i, l)
		}
		if l.Procs != 1 || l.Threads != 2 || l.FDs != 4 || l.Sockets != 1 {
			t.Fatalf("pass %d: counts %+v", i, l)
		}
	}
	want(0, run(0), 1, 1<<20, 0, 0)
	want(1, run(1), 1, 1<<20, 0, 0) // the first scan had no span: rate 0
	want(2, run(2), 1, 1<<20, 0, 0)
	want(3, run(3), 2, 1<<20+3*4096, 3000, 1000) // 3000 bytes over 3 s
	want(4, run(4), 2, 1<<20+3*4096, 3000, 1000)

	// Nothing ran: rates 0, and the scan's counters are still current.
	s.Tick(at(5))
	if l, _ := s.Latest(1); l.CPU != 0 || l.IOReadRate != 0 || fp.n.Load() != 2 {
		t.Fatalf("idle pass: %+v, %d samples", l, fp.n.Load())
	}
	// The next scan's rate covers only the time since the idle pass.
	// 2000 bytes since the scan at pass 3, over 3 s: pass 4 ran after
	// that scan, so the idle pass 5 did not move the span's start.
	l := run(6)
	want(6, l, 3, 1<<20+5*4096, 5000, 2000.0/3)

	// A new process: a scan at once.
	p := process(11, 0, 0, 0)
	p.Start = at(6).Add(500e6)
	fp.set(p)
	g.setPids(10, 11)
	if run(7); fp.n.Load() != 5 {
		t.Fatalf("a new pid did not make a scan: %d samples", fp.n.Load())
	}
	g.setPids(10)
	fp.kill(11)
	run(8) // the pid set changed again: scan
	if run(9); fp.n.Load() != 6 {
		t.Fatalf("after the pid set changed back: %d samples, want 6 (scan, light)", fp.n.Load())
	}
	s.Wake(1)
	if run(10); fp.n.Load() != 7 {
		t.Fatalf("Wake did not make a scan: %d samples", fp.n.Load())
	}
	// A socket the host did not have: a scan (it may be the agent's).
	run(11) // light
	tcp.mu.Lock()
	tcp.socks = map[uint64]sockdiag.Bytes{99: {Sent: 10, Received: 10}}
	tcp.mu.Unlock()
	if run(12); fp.n.Load() != 8 {
		t.Fatalf("a new socket in the dump did not make a scan: %d samples", fp.n.Load())
	}

	// ProcEvery 1 (and 0): every full sample reads the processes.
	tun.ProcEvery = 1
	s.SetTuning(tun)
	n := fp.n.Load()
	run(13)
	run(14)
	if fp.n.Load() != n+2 {
		t.Fatalf("ProcEvery 1: %d samples in 2 passes", fp.n.Load()-n)
	}

	// After a pass in which it ran nothing, the next busy pass reads the
	// processes: the last scan's rates are of a span before it idled.
	tun.ProcEvery = 5
	s.SetTuning(tun)
	n = fp.n.Load()
	run(15) // light
	s.Tick(at(16))
	if fp.n.Load() != n {
		t.Fatalf("light and idle passes read %d process samples", fp.n.Load()-n)
	}
	// 2000 bytes since the scan at pass 14, over 3 s: pass 15 ran, so the
	// idle pass 16 did not move the span's start.
	if l := run(17); fp.n.Load() != n+1 || !near(l.IOReadRate, 2000.0/3) {
		t.Fatalf("the pass after an idle one: %d samples, io_read_rate %v; want 1 and 666.667", fp.n.Load()-n, l.IOReadRate)
	}
	// Idle right after a scan: the span starts at the idle pass.
	s.Tick(at(18))
	if l := run(19); fp.n.Load() != n+2 || !near(l.IOReadRate, 1000) {
		t.Fatalf("after a scan and an idle pass: %d samples, io_read_rate %v; want 2 and 1000 (over 1 s)", fp.n.Load()-n, l.IOReadRate)
	}
}
