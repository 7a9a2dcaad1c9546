package telemetry

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
	"aiosfs/internal/testutil"
)

// TestLiveKeepOpen samples a real agent (a shell in a real cgroup of this
// test's own prefix) with Tuning.KeepOpen: an idle agent is held through
// its kept cgroup file, and when it runs again the kept file shows it at
// once (a full sample whose CPU seconds are what a new open of the
// group's files reads); the files are closed when the switch goes off
// and when the agent leaves the targets.
func TestLiveKeepOpen(t *testing.T) {
	testutil.RequireRoot(t, "creating a cgroup and moving a process into it")
	pfs, err := proc.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	m, err := cgroup.New(cgroup.Config{Prefix: fmt.Sprintf("aiosfs-tel-live-%d", os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("cgroup manager Close: %v", err)
		}
	})
	g, err := m.Create("agent1")
	if err != nil {
		t.Fatal(err)
	}
	dirs := g.Paths()
	t.Cleanup(func() {
		g.Kill()
		if err := g.Delete(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("delete group: %v", err)
		}
		for _, d := range dirs {
			if _, err := os.Stat(d); err == nil {
				t.Errorf("cgroup left behind: %s", d)
			}
		}
	})
	// Each line on its stdin makes it spin a moment, then it idles.
	cmd := exec.Command("bash", "-c", `while read x; do i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo done; done`)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	spin := func() {
		t.Helper()
		if _, err := io.WriteString(in, "go\n"); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(out, buf); err != nil {
			t.Fatal(err)
		}
	}
	spin()

	alive := true
	tun := DefaultTuning
	tun.KeepOpen = true
	s := New(Config{Proc: pfs, Tuning: &tun, TCPBytes: noSockets}, func() []Target {
		if !alive {
			return nil
		}
		return []Target{{ID: 1, Group: g}}
	})
	before := cgroup.KeptOpen()
	now := time.Now()
	tick := func() Sample {
		t.Helper()
		now = now.Add(time.Second)
		s.Tick(now)
		smp, ok := s.Latest(1)
		if !ok {
			t.Fatal("no sample")
		}
		return smp
	}
	files := 1 // v1 cpuacct.usage and cpu.stat, memory files where there
	if _, ok := dirs["cpuacct"]; ok {
		files = 0
		for _, f := range []string{"cpuacct/cpuacct.usage", "cpu/cpu.stat", "memory/memory.usage_in_bytes", "memory/memory.oom_control"} {
			c, name := filepath.Split(f)
			if d, ok := dirs[filepath.Clean(c)]; ok {
				if _, err := os.Stat(filepath.Join(d, name)); err == nil {
					files++
				}
			}
		}
	} else if _, err := os.Stat(filepath.Join(dirs["unified"], "memory.current")); err == nil {
		files = 3
	}
	tick()
	if n := s.KeptFiles(); n != files {
		t.Errorf("after a full sample: %d files kept, want %d", n, files)
	}
	// Idle: held (the sample repeats, CPU 0) through the kept file.
	var held Sample
	for range 3 {
		held = tick()
	}
	h := s.History(1)
	if len(h) < 4 || held.CPU != 0 || h[len(h)-1].CPUSeconds != h[len(h)-2].CPUSeconds {
		t.Fatalf("idle agent not held: %+v", h)
	}
	spin()
	ran := tick()
	fresh, err := g.(cgroup.CounterReader).CPUUsage()
	if err != nil {
		t.Fatal(err)
	}
	if ran.CPU <= 0 || ran.CPUSeconds != float64(fresh)/1e9 {
		t.Errorf("after it ran: cpu %v cpu_seconds %v, the group's file reads %v s: the kept file was stale",
			ran.CPU, ran.CPUSeconds, float64(fresh)/1e9)
	}

	tun.KeepOpen = false
	s.SetTuning(tun)
	tick()
	if n := s.KeptFiles(); n != 0 {
		t.Errorf("KeepOpen off: %d files still kept", n)
	}
	tun.KeepOpen = true
	s.SetTuning(tun)
	tick()
	if n := s.KeptFiles(); n == 0 {
		t.Error("KeepOpen on again: no file kept")
	}
	alive = false
	now = now.Add(time.Second)
	s.Tick(now)
	if n := s.KeptFiles(); n != 0 {
		t.Errorf("agent gone from the targets: %d files still kept", n)
	}
	if d := cgroup.KeptOpen() - before; d != 0 {
		t.Errorf("%d descriptors kept in the process after the agent went", d)
	}
}

// BenchmarkCgroupPass is one pass over 20 one-process agents in real
// cgroups (this test's own prefix), idle (sleep), with Tuning.KeepOpen off
// and on: "held" with the default Hold (most passes read the hold test's
// one file per agent), "full" with Hold 0 (every pass reads Counters and
// cgroup.procs per agent, and the process files every ProcEvery-th).
// cpu-ns/op is the process's CPU time per pass (getrusage).
func BenchmarkCgroupPass(b *testing.B) {
	testutil.RequireRoot(b, "creating cgroups and moving processes into them")
	pfs, err := proc.NewFS("/proc")
	if err != nil {
		b.Fatal(err)
	}
	m, err := cgroup.New(cgroup.Config{Prefix: fmt.Sprintf("aiosfs-tel-bench-%d", os.Getpid())})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	var targets []Target
	for i := range 20 {
		g, err := m.Create(fmt.Sprintf("a%d", i))
		if err != nil {
			b.Fatal(err)
		}
		// It execs sleep once in its group, so the group has used CPU
		// (a group at 0 is never held).
		cmd := exec.Command("bash", "-c", "read x; exec sleep 600")
		in, _ := cmd.StdinPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait(); g.Delete() }()
		if err := g.Add(cmd.Process.Pid); err != nil {
			b.Fatal(err)
		}
		io.WriteString(in, "\n")
		targets = append(targets, Target{ID: i + 1, Group: g})
	}
	time.Sleep(100 * time.Millisecond) // the execs
	for _, mode := range []string{"held", "full"} {
		for _, keep := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/keepopen=%v", mode, keep), func(b *testing.B) {
				tun := DefaultTuning
				tun.KeepOpen = keep
				if mode == "full" {
					tun.Hold = 0
				}
				s := New(Config{Proc: pfs, Tuning: &tun, TCPBytes: noSockets}, func() []Target { return targets })
				defer s.closeKept()
				benchTicks(b, s)
			})
		}
	}
}
