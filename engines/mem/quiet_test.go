package mem

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aiosfs/hal/vm"
)

// quietFixture is an engine over a procfs of one process (the smaps
// fixture as pid 4242, with a clear_refs file that records writes) and
// one agent whose telemetry sample the test sets. clear_refs is a
// plain file: a write of "1" shows that smaps was read.
func quietFixture(t *testing.T) (*Engine, fakeAgents, string) {
	t.Helper()
	proc := t.TempDir()
	dir := filepath.Join(proc, "4242")
	if err := os.MkdirAll(dir, 0755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../testdata/vm/proc/4242/smaps")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "smaps"), b, 0644); err != nil {
		t.Fatal(err)
	}
	agents := fakeAgents{1: {Alive: true, Pids: []int{4242}, MemLimit: vm.Unlimited}}
	e, err := New(Config{StateDir: t.TempDir(), Agents: agents, Proc: vm.FS(proc), Seed: 1, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, agents, dir
}

// TestQuietAgentSkipsSmaps: an agent whose telemetry shows no CPU since
// the last period (a held sample) is not read: its period repeats the
// last one with nothing referenced (wss 0, the same rss), clear_refs is
// not written; CPU, a new pid, a stale sample or maxQuiet periods in a
// row read smaps again.
func TestQuietAgentSkipsSmaps(t *testing.T) {
	e, agents, dir := quietFixture(t)
	smaps := filepath.Join(dir, "smaps")
	clear := filepath.Join(dir, "clear_refs")
	t0 := time.Unix(1000, 0)
	set := func(at time.Time, cpu, secs float64, pids ...int) {
		a := agents[1]
		a.Sampled = &Sampled{Time: at, CPU: cpu, CPUSeconds: secs}
		if len(pids) > 0 {
			a.Pids = pids
		}
		agents[1] = a
	}
	// period runs one period and says whether smaps was read (clear_refs
	// written), with the period's wss and rss.
	period := func(at time.Time) (read bool, wss, rss int64) {
		os.WriteFile(clear, nil, 0644)
		e.sampleAgents(at)
		b, _ := os.ReadFile(clear)
		e.mu.Lock()
		defer e.mu.Unlock()
		pm := e.procs[1]
		return string(b) == "1", pm.wss, pm.rss
	}
	const fixtureRss = (160 + 8 + 16384 + 12) << 10
	set(t0, 0.5, 10)
	if read, _, rss := period(t0); !read || rss != fixtureRss {
		t.Fatalf("first period: read %v rss %d", read, rss)
	}
	// The file changes (Rss doubles): a quiet period does not see it.
	b, _ := os.ReadFile(smaps)
	os.WriteFile(smaps, []byte(strings.ReplaceAll(string(b), "Rss:                 160 kB", "Rss:                 320 kB")), 0644)
	set(t0.Add(2*time.Second), 0.5, 11) // it ran: read
	if read, wss, _ := period(t0.Add(2 * time.Second)); !read || wss == 0 {
		t.Fatalf("busy period: read %v wss %d", read, wss)
	}
	for i := 1; i <= maxQuiet; i++ {
		at := t0.Add(time.Duration(2+2*i) * time.Second)
		set(at, 0, 11)
		if read, wss, rss := period(at); read || wss != 0 || rss != fixtureRss+160<<10 {
			t.Fatalf("quiet period %d: read %v wss %d rss %d", i, read, wss, rss)
		}
	}
	at := t0.Add(time.Duration(4+2*maxQuiet) * time.Second)
	set(at, 0, 11)
	if read, _, _ := period(at); !read {
		t.Errorf("period after %d quiet ones not read", maxQuiet)
	}
	// A stale sample (not newer than the last period's) is not quiet.
	if read, _, _ := period(at.Add(2 * time.Second)); !read {
		t.Errorf("stale sample: not read")
	}
	at = at.Add(4 * time.Second)
	set(at, 0, 11)
	if read, _, _ := period(at); read {
		t.Errorf("quiet again: read")
	}
	// A new pid (the set changed) is read.
	at = at.Add(2 * time.Second)
	set(at, 0, 11, 4242, 4243)
	if read, _, _ := period(at); !read {
		t.Errorf("new pid: not read")
	}
	// Without a telemetry sample (nil), every period is read.
	a := agents[1]
	a.Sampled = nil
	agents[1] = a
	if read, _, _ := period(at.Add(2 * time.Second)); !read {
		t.Errorf("no sample: not read")
	}
	e.mu.Lock()
	q := e.quietPeriods
	e.mu.Unlock()
	if q != maxQuiet+1 {
		t.Errorf("quiet periods %d, want %d", q, maxQuiet+1)
	}
}

// TestPressureFromTelemetry: the limit test takes the usage from the
// telemetry sample and the limit from the record, with no cgroup files.
func TestPressureFromTelemetry(t *testing.T) {
	e, _, _ := quietFixture(t)
	for _, tc := range []struct {
		mem, limit int64
		want       string
	}{
		{950, 1000, "limit"},
		{800, 1000, ""},
		{950, vm.Unlimited, ""},
		{0, 1000, ""}, // usage unknown, no MemDir to read: no verdict
	} {
		a := AgentInfo{Alive: true, MemLimit: tc.limit, Sampled: &Sampled{Mem: tc.mem}}
		if got := e.pressured(a); got != tc.want {
			t.Errorf("mem %d limit %d: %q, want %q", tc.mem, tc.limit, got, tc.want)
		}
	}
}

// BenchmarkSampleQuiet is BenchmarkSampleAgent's period for an agent whose
// telemetry sample was held (no CPU since the last period): maxQuiet of
// every maxQuiet+1 periods skip smaps and clear_refs, as an idle agent's
// do in the daemon (the once-a-period PSI read is left out, as it is from
// BenchmarkSampleAgent). Compare BenchmarkSampleAgent (every period read).
// Sub-benchmarks: the remedies of Tuning off, each alone, and both
// (Settle: no per-mapping work in a quiet period; SkipClear: no
// clear_refs at the refresh, which finds nothing referenced).
func BenchmarkSampleQuiet(b *testing.B) {
	perl := idlePerl(b)
	for _, c := range []struct {
		name string
		tun  Tuning
	}{
		{"off", Tuning{Every: 1}},
		{"settle", Tuning{Settle: true, Every: 1}},
		{"skipclear", Tuning{SkipClear: true, Every: 1}},
		{"on", Tuning{Settle: true, SkipClear: true, Every: 1}},
	} {
		b.Run(c.name, func(b *testing.B) {
			agents := fakeAgents{1: {Alive: true, Pids: []int{perl.Process.Pid}, MemLimit: vm.Unlimited}}
			e, err := New(Config{StateDir: b.TempDir(), Agents: agents, Proc: "/proc", Seed: 1, Interval: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			e.SetTuning(c.tun)
			now := time.Now()
			a := agents[1]
			a.Sampled = &Sampled{Time: now, CPUSeconds: 1}
			agents[1] = a
			e.sampleAgents(now)
			b.ReportAllocs()
			runtimeLock()
			t0 := threadCPU()
			for b.Loop() {
				now = now.Add(2 * time.Second)
				e.sample(1, a.Pids, now, &Sampled{Time: now, CPUSeconds: 1}, false)
			}
			if t := threadCPU() - t0; t > 0 {
				b.ReportMetric(float64(t)/float64(b.N), "cpu-ns/op")
			}
			runtimeUnlock()
		})
	}
}

// TestHoldSave: an agent whose periods since its last save were all
// quiet is not written again a minute later (Tuning.HoldSave), but ten
// minutes later, at once without HoldSave, after a period that read
// smaps, and at a clean stop.
func TestHoldSave(t *testing.T) {
	e, agents, _ := quietFixture(t)
	hold := e.Tuning()
	hold.HoldSave = true // off by default (DefaultTuning)
	e.SetTuning(hold)
	file := e.procFile(1)
	periods := func() int {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var s savedProc
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		return s.N
	}
	age := func(d time.Duration) {
		e.mu.Lock()
		e.procs[1].savedAt = time.Now().Add(-d)
		e.mu.Unlock()
	}
	t0 := time.Unix(1000, 0)
	n := 0
	period := func(cpu, secs float64) {
		n++
		at := t0.Add(time.Duration(n) * 2 * time.Second)
		a := agents[1]
		a.Sampled = &Sampled{Time: at, CPU: cpu, CPUSeconds: secs}
		agents[1] = a
		e.sampleAgents(at)
	}
	period(0.5, 10) // the first period is saved (never saved before)
	if p := periods(); p != 1 {
		t.Fatalf("after the first period the file has %d periods", p)
	}
	period(0, 10) // quiet
	age(2 * time.Minute)
	period(0, 10) // quiet, its last save 2 minutes old: held
	if p := periods(); p != 1 {
		t.Errorf("quiet agent saved after a minute with HoldSave: %d periods", p)
	}
	age(11 * time.Minute)
	period(0, 10) // quiet, 11 minutes: saved
	if p := periods(); p != 4 {
		t.Errorf("quiet agent not saved after ten minutes: %d periods, want 4", p)
	}
	tun := e.Tuning()
	tun.HoldSave = false
	e.SetTuning(tun)
	age(2 * time.Minute)
	period(0, 10)
	if p := periods(); p != 5 {
		t.Errorf("without HoldSave: %d periods, want 5", p)
	}
	tun.HoldSave = true
	e.SetTuning(tun)
	period(0.5, 11) // it ran
	age(2 * time.Minute)
	period(0, 11)
	if p := periods(); p != 7 {
		t.Errorf("after a period that read smaps: %d periods, want 7", p)
	}
	period(0, 11)
	e.Close()
	if p := periods(); p != 8 {
		t.Errorf("at a clean stop: %d periods, want 8", p)
	}
}
