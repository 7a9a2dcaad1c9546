package mem

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"aiosfs/fs"
	"aiosfs/hal/vm"
)

// unusedPid is a pid no process on this host has now, so that paging in
// a test over a fixture procfs cannot advise a real process.
func unusedPid(t *testing.T) int {
	t.Helper()
	for pid := 4194000; pid > 4190000; pid-- {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			return pid
		}
	}
	t.Fatal("no unused pid found")
	return 0
}

// TestEveryReadsBusyAgentEveryK: with Tuning.Every 3, a busy agent (CPU
// in every sample) has its smaps read and its bits cleared at its first
// tick and then every third tick, and its period count and wss history
// grow only then; an operator's sample, memory pressure (PSI) and a
// pageout waiting for its outcome each read at once.
func TestEveryReadsBusyAgentEveryK(t *testing.T) {
	pid := unusedPid(t)
	proc := t.TempDir()
	b, err := os.ReadFile("../../testdata/vm/proc/4242/smaps")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(proc, fmt.Sprint(pid))
	os.MkdirAll(dir, 0755)
	os.WriteFile(filepath.Join(dir, "smaps"), b, 0644)
	clear := filepath.Join(dir, "clear_refs")
	psi := filepath.Join(proc, "pressure", "memory")
	os.MkdirAll(filepath.Dir(psi), 0755)
	calm := "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
	os.WriteFile(psi, []byte(calm), 0644)
	agents := fakeAgents{1: {Alive: true, Pids: []int{pid}, MemLimit: vm.Unlimited}}
	e, err := New(Config{StateDir: t.TempDir(), NS: &fs.NS{}, Agents: agents, Proc: vm.FS(proc), Seed: 1, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tun := DefaultTuning
	tun.Every = 3
	e.SetTuning(tun)
	t0 := time.Unix(1000, 0)
	secs := 1.0
	// tick runs one busy tick and says whether smaps was read.
	tick := func(i int) bool {
		os.WriteFile(clear, nil, 0644)
		at := t0.Add(time.Duration(i) * 2 * time.Second)
		secs++
		a := agents[1]
		a.Sampled = &Sampled{Time: at, CPU: 0.5, CPUSeconds: secs}
		agents[1] = a
		e.sampleAgents(at)
		b, _ := os.ReadFile(clear)
		return string(b) == "1"
	}
	var read []int
	for i := range 10 {
		if tick(i) {
			read = append(read, i)
		}
	}
	if want := []int{0, 3, 6, 9}; !slices.Equal(read, want) {
		t.Fatalf("read at ticks %v, want %v", read, want)
	}
	e.mu.Lock()
	n, hist := e.procs[1].n, len(e.procs[1].hist)
	e.mu.Unlock()
	if n != 4 || hist != 3 {
		t.Errorf("periods %d, wss history %d: want 4 and 3", n, hist)
	}
	// An operator's sample reads at once.
	os.WriteFile(clear, nil, 0644)
	e.SampleAgent(1, []int{pid}, t0.Add(21*time.Second))
	if b, _ := os.ReadFile(clear); string(b) != "1" {
		t.Errorf("sample verb: smaps not read")
	}
	// Pressure: every tick is a period.
	os.WriteFile(psi, []byte("some avg10=50.00 avg60=10.00 avg300=1.00 total=1\n"), 0644)
	for i := 11; i < 14; i++ {
		if !tick(i) {
			t.Errorf("tick %d under pressure: smaps not read", i)
		}
	}
	os.WriteFile(psi, []byte(calm), 0644)
	// A pageout waiting for its outcome: read at once too.
	tick(14)
	e.mu.Lock()
	pm := e.procs[1]
	pm.decisions = append(pm.decisions, Decision{Pid: pid, Advice: vm.PageOut, Outcome: "pending", RssAfter: -1, Back: -1, at: pm.n})
	e.mu.Unlock()
	if !tick(15) {
		t.Errorf("pending pageout: smaps not read")
	}
}

// TestEvalSampling: on a trace of one mapping touched every tick and one
// touched only at the start, the analyzer never picks the first and
// finds the second cold, at one tick a period and at three.
func TestEvalSampling(t *testing.T) {
	tr := RefTrace{Name: "two", Pages: []int{4, 8}}
	for i := range 60 {
		refs := []PageRef{{0, int32(i % 4)}}
		if i < 2 {
			refs = append(refs, PageRef{1, 0}, PageRef{1, 1})
		}
		tr.Ticks = append(tr.Ticks, refs)
	}
	for _, k := range []int{1, 3} {
		r := EvalSampling(tr, k, 5, 12, 60)
		if r.Periods == 0 || r.PickTouched != 0 || r.ColdWrong != 0 || r.ColdFound != 1 {
			t.Errorf("every %d: %+v, want periods > 0, nothing touched picked, the start-up mapping found", k, r)
		}
		if want := float64(k) * PageSize; r.WSS != want {
			t.Errorf("every %d: wss %v, want %v (one page a tick, distinct over %d ticks)", k, r.WSS, want, k)
		}
	}
}

// BenchmarkTickBusy is one engine tick of an agent of one perl loop whose
// telemetry shows CPU at every tick (a busy agent: never quiet), so
// smaps is read and clear_refs written at each of its periods; with
// Tuning.Every 3, at every third tick. cpu-ns/op is the thread's CPU
// time per tick. The PSI file is read once a tick, as in the daemon.
func BenchmarkTickBusy(b *testing.B) {
	perl := idlePerl(b)
	for _, c := range []struct {
		name string
		tun  Tuning
	}{
		{"every1", Tuning{Settle: true, SkipClear: true, Every: 1}},
		{"every3", Tuning{Settle: true, SkipClear: true, Every: 3}},
	} {
		b.Run(c.name, func(b *testing.B) {
			agents := fakeAgents{1: {Alive: true, Pids: []int{perl.Process.Pid}, MemLimit: vm.Unlimited}}
			e, err := New(Config{StateDir: b.TempDir(), Agents: agents, Proc: "/proc", Seed: 1, Interval: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			e.SetTuning(c.tun)
			e.mu.Lock()
			e.paging = false // never page the bench's perl
			e.mu.Unlock()
			now := time.Now()
			secs := 1.0
			b.ReportAllocs()
			runtimeLock()
			t0 := threadCPU()
			for b.Loop() {
				now = now.Add(2 * time.Second)
				secs++
				a := agents[1]
				a.Sampled = &Sampled{Time: now, CPU: 0.5, CPUSeconds: secs}
				agents[1] = a
				e.sampleAgents(now)
			}
			if t := threadCPU() - t0; t > 0 {
				b.ReportMetric(float64(t)/float64(b.N), "cpu-ns/op")
			}
			runtimeUnlock()
		})
	}
}
