// Package faults holds the healing engine's fault programs: the
// fault-injection suite's real agents, run as a separate process by the
// recorder (scripts/heal/record) and the live recovery evaluation
// (scripts/heal/recover), each of which re-executes its own binary with
// -fault NAME. Each program ticks every 100 ms; while it makes progress it
// touches its probe file every tick and writes its heartbeat every 500 ms,
// and it exits with a code that names its failure: 3 EMFILE, 4 ENOSPC,
// 1 a crash; a memory leaker is OOM-killed.
package faults

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Spec is one fault program's settings.
type Spec struct {
	Name string        // the program: see Run
	Rate float64       // its rate: MiB/s (memleak, diskfill), fds/s (fdleak)
	At   time.Duration // its onset (crashloop, hang, cpuhog, crashonce, hangonce), or when a crashuntil's dependency is due
	HB   string        // heartbeat file, written "beat" every 500 ms; "{agent}" is replaced with $AIOS_AGENT
	Dir  string        // diskfill: the directory to fill; crashonce, hangonce, crashuntil: where their marker files are
	Seed uint64
	// Plateau (MiB): a memory leaker stops growing here and holds, as a
	// service whose working set is larger than its limit does.
	Plateau float64
	// Cgroups are cgroup directories the program moves itself into first,
	// before any work (writing 0 to cgroup.procs moves the whole process).
	Cgroups []string
	// Log, when set, is a file the program appends its own story to, one
	// line each: "start T" when it starts, "tick T" for each tick that
	// made progress, "fail KIND T" (crash, emfile, enospc, hang) as it
	// fails; T in Unix nanoseconds. It is what an evaluator reads to see
	// service, whoever supervises. A kernel OOM kill the program cannot
	// tell: that is the memory cgroup's oom_kill count.
	Log string
	// Settle: wait 150 ms first, for a recorder that moves the process
	// into its cgroup from outside.
	Settle bool
}

var sink [][]byte

// heartbeat writes a beat, as an agent does to agents/N/heartbeat (the
// line declares the interval too); for a plain file its mtime is the beat.
func heartbeat(path string) {
	if path == "" {
		return
	}
	os.WriteFile(path, []byte("beat every=500ms\n"), 0o644)
}

// marker reports whether name exists in dir, and creates it when asked.
func marker(dir, name string, create bool) bool {
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err == nil {
		return true
	}
	if create {
		os.WriteFile(p, nil, 0o644)
	}
	return false
}

func spin(d time.Duration) {
	end := time.Now().Add(d)
	x := 1.0
	for time.Now().Before(end) {
		for i := 0; i < 1000; i++ {
			x = x*1.0000001 + 1e-9
		}
	}
	_ = x
}

func touch(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	return b
}

// Run runs the fault program s.Name and returns its exit code:
//
//	memleak    keeps and touches Rate MiB/s (to Plateau MiB, if set)
//	fdleak     opens Rate fds/s, never closed; exits 3 on EMFILE
//	diskfill   appends Rate MiB/s to Dir/fill; exits 4 on ENOSPC
//	crashloop  crashes (exit 1) At after it starts, every start
//	crashonce  crashes At after it starts, unless it crashed before (Dir/crashed)
//	crashuntil crashes 1 s after it starts until its dependency is up:
//	           Dir/ready, which the caller creates At after the run began
//	hang       blocks for good At after it starts (no CPU, no beats)
//	hangonce   hangs At after it starts, unless it hung before (Dir/hung)
//	cpuhog     from At spins every core beside a main loop that still beats
//	steady, periodic, bursty   healthy controls
func Run(s Spec) int {
	name, rate, at, dir := s.Name, s.Rate, s.At, s.Dir
	hb := strings.ReplaceAll(s.HB, "{agent}", os.Getenv("AIOS_AGENT"))
	for _, cg := range s.Cgroups {
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte("0"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "fault:", err)
			return 1
		}
	}
	if s.Settle {
		time.Sleep(150 * time.Millisecond) // let the recorder move us into the cgroup
	}
	var logf *os.File // kept open: a tick must cost no fd (the fd leaker)
	if s.Log != "" {
		f, err := os.OpenFile(s.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fault:", err)
			return 1
		}
		logf = f
	}
	note := func(line string) {
		if logf != nil { // one write(2) with O_APPEND: whole lines
			logf.WriteString(line + " " + strconv.FormatInt(time.Now().UnixNano(), 10) + "\n")
		}
	}
	fail := func(kind string, code int) int { note("fail " + kind); return code }
	note("start")
	heartbeat(hb)
	rng := rand.New(rand.NewPCG(s.Seed, 9))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var fds []*os.File
	n := 0
	hogging := false
	for range tick.C {
		n++
		el := time.Since(start)
		switch name {
		case "memleak": // rate MiB/s, kept and touched
			if s.Plateau <= 0 || float64(len(sink))*rate/10 < s.Plateau {
				sink = append(sink, touch(int(rate*(1<<20)/10)))
			}
			spin(5 * time.Millisecond)
		case "fdleak": // rate fds/s, never closed
			for i := 0; i < int(rate/10+rng.Float64()); i++ {
				f, err := os.Open("/dev/null")
				if err != nil {
					if errors.Is(err, syscall.EMFILE) {
						fmt.Fprintln(os.Stderr, "fdleak:", err)
						return fail("emfile", 3)
					}
					return 1
				}
				fds = append(fds, f)
			}
			spin(5 * time.Millisecond)
		case "diskfill": // rate MiB/s into dir, a size-limited tmpfs
			f, err := os.OpenFile(filepath.Join(dir, "fill"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return 1
			}
			_, err = f.Write(make([]byte, int(rate*(1<<20)/10)))
			f.Close()
			if err != nil {
				if errors.Is(err, syscall.ENOSPC) {
					fmt.Fprintln(os.Stderr, "diskfill:", err)
					return fail("enospc", 4)
				}
				return 1
			}
		case "crashloop": // runs `at`, then crashes
			spin(10 * time.Millisecond)
			if el >= at {
				return fail("crash", 1)
			}
		case "crashonce":
			spin(10 * time.Millisecond)
			if el >= at && !marker(dir, "crashed", true) {
				return fail("crash", 1)
			}
		case "crashuntil":
			spin(10 * time.Millisecond)
			if el >= time.Second && !marker(dir, "ready", false) {
				return fail("crash", 1)
			}
		case "hangonce":
			if el >= at && !marker(dir, "hung", true) {
				note("fail hang")
				for {
					time.Sleep(time.Hour)
				}
			}
			spin(20 * time.Millisecond)
		case "hang": // works, then blocks forever at `at` (no CPU, no heartbeat)
			if el >= at {
				note("fail hang")
				for {
					time.Sleep(time.Hour) // blocked: no CPU, no heartbeat
				}
			}
			spin(20 * time.Millisecond)
		case "cpuhog": // from `at`, spins every core it can
			if el >= at && !hogging { // spinners beside a main loop that still heartbeats
				hogging = true
				for i := 0; i < runtime.NumCPU(); i++ {
					go spin(time.Hour)
				}
			}
			spin(5 * time.Millisecond)
		case "steady": // 16 MiB held, 16 fds, light CPU
			if len(sink) == 0 {
				sink = append(sink, touch(16<<20))
				for i := 0; i < 16; i++ {
					f, _ := os.Open("/dev/null")
					fds = append(fds, f)
				}
			}
			spin(10 * time.Millisecond)
		case "periodic": // a sawtooth: grows 3 MiB/s for 3 s, frees, again
			if n%30 == 0 {
				sink = nil
				debug.FreeOSMemory()
			} else {
				sink = append(sink, touch(300<<10))
			}
			spin(15 * time.Millisecond)
		case "bursty": // random bursts of CPU, memory and fds
			if rng.Float64() < 0.1 {
				sink = append(sink, touch((2+rng.IntN(6))<<20))
				for i := 0; i < rng.IntN(40); i++ {
					f, err := os.Open("/dev/null")
					if err == nil {
						fds = append(fds, f)
					}
				}
				spin(time.Duration(rng.IntN(80)) * time.Millisecond)
			}
			if rng.Float64() < 0.15 {
				sink = nil
				for _, f := range fds {
					f.Close()
				}
				fds = nil
				debug.FreeOSMemory()
			}
		default:
			fmt.Fprintln(os.Stderr, "fault: no program", strconv.Quote(name))
			return 2
		}
		note("tick") // a program that blocks or exits above does not get here
		if n%5 == 0 {
			heartbeat(hb)
		}
	}
	return 0
}

// SetNofile sets RLIMIT_NOFILE, soft and hard, as a unit's LimitNOFILE=.
func SetNofile(n uint64) {
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n})
}

// OwnMemCgroup is this process's v1 memory cgroup directory, under which
// the recorder and the recovery evaluation make their programs' groups.
// Its error wraps errors.ErrUnsupported where the host has no v1 memory
// controller (a pure cgroup v2 host).
func OwnMemCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		p := strings.SplitN(l, ":", 3)
		if len(p) == 3 && (p[1] == "memory" || strings.Contains(p[1], ",memory")) {
			return filepath.Join("/sys/fs/cgroup/memory", p[2]), nil
		}
	}
	return "", fmt.Errorf("no v1 memory cgroup for this process (the fault programs' limits need the v1 memory controller): %w", errors.ErrUnsupported)
}

// OOMKills is a v1 memory cgroup's kernel OOM kill count
// (memory.oom_control's oom_kill); 0 when the file cannot be read.
func OOMKills(cg string) uint64 {
	b, _ := os.ReadFile(filepath.Join(cg, "memory.oom_control"))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	return 0
}
