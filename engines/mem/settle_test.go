package mem

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"aiosfs/fs"
	"aiosfs/hal/vm"
)

// fakeMapping is one mapping of a generated smaps file.
type fakeMapping struct {
	start, end uint64
	path       string
	rss, ref   uint64 // bytes
}

// writeSmaps writes <proc>/PID/smaps with maps (the fields the parser
// reads, in the kernel's layout) and an empty clear_refs.
func writeSmaps(t testing.TB, proc string, pid int, maps []fakeMapping) {
	t.Helper()
	dir := filepath.Join(proc, fmt.Sprint(pid))
	if err := os.MkdirAll(dir, 0755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, m := range maps {
		perm, dev, ino, anon := "r--p", "08:01", "1311", uint64(0)
		if m.path == "" {
			perm, dev, ino, anon = "rw-p", "00:00", "0", m.rss
		}
		fmt.Fprintf(&b, "%x-%x %s 00000000 %s %s %s\n", m.start, m.end, perm, dev, ino, m.path)
		fmt.Fprintf(&b, "Size: %d kB\nKernelPageSize: 4 kB\nMMUPageSize: 4 kB\nRss: %d kB\nPss: %d kB\n", (m.end-m.start)>>10, m.rss>>10, m.rss>>10)
		fmt.Fprintf(&b, "Referenced: %d kB\nAnonymous: %d kB\nSwap: 0 kB\nVmFlags: rd mr mw me\n", m.ref>>10, anon>>10)
	}
	if err := os.WriteFile(filepath.Join(dir, "smaps"), []byte(b.String()), 0644); err != nil {
		t.Fatal(err)
	}
}

// TestSettleSameOutputs runs two engines side by side over the same
// generated procfs, Tuning.Settle on in one and off in the other, through
// busy periods, runs of quiet ones (some past maxQuiet, whose refresh
// reads smaps), an Rss the kernel took while the agent was quiet, and a
// new pid; at checkpoints, some right after quiet runs (mappings not
// yet settled), every file of agents/1/mem, mem/status and the saved
// state file must be the same in both, and the settled one must have
// skipped quiet periods' work (its lag was above 0 before the reads).
func TestSettleSameOutputs(t *testing.T) {
	proc := t.TempDir()
	rng := rand.New(rand.NewSource(3))
	maps := map[int][]fakeMapping{}
	for _, pid := range []int{4242, 4243} {
		for i := range 8 {
			m := fakeMapping{start: uint64(0x10000000*(pid-4241)) + uint64(i)<<24, path: fmt.Sprintf("/lib/f%d.so", i)}
			if i%3 == 0 {
				m.path = ""
			}
			m.end = m.start + 8<<20
			m.rss = uint64(1+rng.Intn(2000)) << 12
			maps[pid] = append(maps[pid], m)
		}
	}
	touch := func(pid int, frac float64) {
		for i := range maps[pid] {
			m := &maps[pid][i]
			m.ref = 0
			if rng.Float64() < frac {
				m.ref = uint64(1+rng.Intn(int(m.rss>>12))) << 12
			}
		}
		writeSmaps(t, proc, pid, maps[pid])
	}
	touch(4242, 0.7)
	touch(4243, 0.7)

	agents := [2]fakeAgents{}
	var fx [2]*fixture
	for i, settle := range []bool{true, false} {
		agents[i] = fakeAgents{1: {Alive: true, Uid: 0, Pids: []int{4242}, MemLimit: vm.Unlimited}}
		ns := &fs.NS{Boot: time.Unix(0, 0)}
		e, err := New(Config{StateDir: t.TempDir(), NS: ns, Agents: agents[i], Proc: vm.FS(proc), Seed: 1, Interval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		tun := DefaultTuning
		tun.Settle = settle
		e.SetTuning(tun)
		fx[i] = &fixture{t: t, e: e, dir: e.cfg.StateDir, root: ns.StaticDir("/", 0555, fs.Owner{}, e.Nodes()...)}
		withAgents(fx[i], agents[i])
	}
	t0 := time.Unix(1_000_000, 0)
	cpuSecs := 1.0
	lagged := 0
	checkpoint := func(when string) {
		t.Helper()
		fx[0].e.mu.Lock()
		if fx[0].e.procs[1].lag > 0 {
			lagged++
		}
		fx[0].e.mu.Unlock()
		for _, f := range []string{"wss", "pattern", "hot", "policy", "decisions"} {
			a, b := fx[0].read("/agents/1/mem/"+f), fx[1].read("/agents/1/mem/"+f)
			if a != b {
				t.Fatalf("%s: agents/1/mem/%s differs with Settle:\n%s\nwithout:\n%s", when, f, a, b)
			}
		}
		if a, b := fx[0].read("/mem/status"), fx[1].read("/mem/status"); a != b {
			t.Fatalf("%s: mem/status differs: %q, %q", when, a, b)
		}
		var saved [2]string
		for i := range fx {
			fx[i].e.saveProcs()
			saved[i] = normSaved(t, filepath.Join(fx[i].e.procDir(), "1.json"))
		}
		if saved[0] != saved[1] {
			t.Fatalf("%s: the saved state differs with Settle:\n%s\nwithout:\n%s", when, saved[0], saved[1])
		}
	}
	period := func(i int, cpu float64, pids ...int) {
		at := t0.Add(time.Duration(i) * 2 * time.Second)
		for k := range agents {
			a := agents[k][1]
			a.Pids = pids
			a.Sampled = &Sampled{Time: at, CPU: cpu, CPUSeconds: cpuSecs}
			agents[k][1] = a
			fx[k].e.sampleAgents(at)
		}
	}
	i := 0
	for round := range 12 {
		pids := []int{4242}
		if round >= 6 {
			pids = []int{4242, 4243} // a new process from round 6
		}
		// Busy periods: new references each.
		for range 1 + rng.Intn(3) {
			cpuSecs += 0.5
			for _, pid := range pids {
				touch(pid, 0.5)
			}
			period(i, 0.25, pids...)
			i++
		}
		if round%4 == 1 {
			checkpoint(fmt.Sprintf("round %d, after busy periods", round))
		}
		// Quiet: nothing referenced since (the refresh after maxQuiet
		// reads these files); in round 3 the kernel took Rss meanwhile.
		for _, pid := range pids {
			touch(pid, 0)
		}
		if round == 3 {
			maps[4242][2].rss /= 2
			writeSmaps(t, proc, 4242, maps[4242])
		}
		for range 1 + rng.Intn(2*maxQuiet) {
			period(i, 0, pids...)
			i++
		}
		if round%2 == 0 {
			checkpoint(fmt.Sprintf("round %d, after quiet periods", round))
		}
	}
	checkpoint("end")
	if lagged < 3 {
		t.Errorf("only %d checkpoints found quiet periods unsettled: the test does not exercise Settle", lagged)
	}
	fx[0].e.mu.Lock()
	q0, q1 := fx[0].e.quietPeriods, fx[1].e.quietPeriods
	fx[0].e.mu.Unlock()
	if q0 == 0 || q0 != q1 {
		t.Errorf("quiet periods %d with Settle, %d without", q0, q1)
	}
}

// normSaved is an agent's state file with its unordered lists (seen
// pids, last period's hot mappings: written in map order) sorted.
func normSaved(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s savedProc
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	slices.Sort(s.Seen)
	slices.SortFunc(s.PrevHot, func(a, b savedKey) int {
		return cmpKey(a.Pid, b.Pid, a.Start, b.Start)
	})
	out, _ := json.MarshalIndent(s, "", " ")
	return string(out)
}

func cmpKey(p1, p2 int, s1, s2 uint64) int {
	switch {
	case p1 != p2:
		return p1 - p2
	case s1 < s2:
		return -1
	case s1 > s2:
		return 1
	}
	return 0
}

// TestColdTop: the picks found in one pass are the first of the sorted
// cold list, for every ranking, with ties of score, Rss and address
// (two pids mapping the same address) among them.
func TestColdTop(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for trial := range 300 {
		pm := newProcMem(1)
		pm.n = 10 + rng.Intn(20)
		for i := range rng.Intn(40) {
			st := &mapState{pid: 1 + rng.Intn(2), samples: 1 + rng.Intn(6), idle: rng.Intn(5),
				freq: float64(rng.Intn(4)) / 4, lastRef: rng.Intn(pm.n+1) - 1, gap: float64(rng.Intn(4))}
			st.m.Start = uint64(rng.Intn(8)) << 20
			st.m.End = st.m.Start + 1<<20
			st.m.Rss = uint64(rng.Intn(3)) << 12
			pm.maps[mapKey{st.pid, st.m.Start, st.m.End + uint64(i)}] = st
		}
		for _, r := range rankings {
			for _, n := range []int{1, 4, 9} {
				want, got := topKeys(pm.cold(r), n), pm.coldTop(r, n)
				if !slices.Equal(want, got) {
					t.Fatalf("trial %d, %s, n %d: %v, want %v", trial, r, n, got, want)
				}
			}
		}
	}
}

// BenchmarkPicks is one period's picks (the 4 coldest mappings by each of
// the three rankings) of an agent of 40 mappings, all cold: by sorting
// every cold mapping (topKeys of cold, as before) and by one pass
// (coldTop, what update does now).
func BenchmarkPicks(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	pm := newProcMem(1)
	pm.n = 100
	for i := range 40 {
		st := &mapState{pid: 1, samples: 50, idle: 2 + rng.Intn(50), freq: rng.Float64(), lastRef: rng.Intn(50), gap: float64(1 + rng.Intn(9))}
		st.m.Start = uint64(i) << 20
		st.m.End = st.m.Start + 1<<20
		st.m.Rss = uint64(1+rng.Intn(200)) << 12
		pm.maps[mapKey{1, st.m.Start, st.m.End}] = st
	}
	b.Run("sort", func(b *testing.B) {
		for b.Loop() {
			for _, r := range rankings {
				pm.picks[r] = topKeys(pm.cold(r), 4)
			}
		}
	})
	b.Run("onepass", func(b *testing.B) {
		for b.Loop() {
			for _, r := range rankings {
				pm.picks[r] = pm.coldTop(r, 4)
			}
		}
	})
}
