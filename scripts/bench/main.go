// Command bench measures the aiosfs daemon against the kernel and against
// itself with its cost remedies off, in one run on one machine. As
// ARCHITECTURE.md §4 asks, every figure comes with a baseline measured in
// the same process on the same data, and nothing here asserts a time:
//
//  0. the daemon's CPU with no agent, the proc connector's socket filter
//     off and on (ABBA), with the host's own process events and then with
//     -churn threads a second started and ended by this process;
//  1. the daemon's own CPU per agent-second at -agents agents with every
//     engine on (the GPU engine on go-nvml's mock devices), idle agents
//     and then every agent busy, in windows that alternate the sampler's
//     remedies off, on but Tuning.ProcEvery 1, and on (telemetry.Tuning:
//     adaptive sampling, cgroup Counters, raw proc reads, the sock_diag
//     gate, process files every -procevery passes; and the proc
//     connector's filter; ABCCBA order, medians);
//  2. its RSS and heap in the steady state, and again once every agent
//     holds a full hour of history (-fill);
//  3. the latency of agents/N/stat: open-read-close through FUSE with the
//     adapter's remedies off (a second mount, fusefs.Options.Plain) and
//     on, a re-read of an open descriptor at offset 0 (the Plan 9 way of
//     polling), and 9P, against /proc/PID/stat of the agent's process
//     read the same ways; and `ls -l agents` through both mounts.
//
// The daemon is this binary run again with -child (see child.go): the
// daemon package in-process, plus pprof and the switches on a private
// unix socket. It runs with a private mount point, state directory and
// cgroup prefix; when the bench ends, fails or is interrupted it stops the
// daemon (SIGTERM), waits for it, checks that the cgroups and both mounts
// are gone and removes its temporary files. It needs root, /dev/fuse and
// perl (the agents are a small perl loop that is idle, or on SIGUSR1
// wakes every 100 ms to spin about half a millisecond), and runs in about
// 6 minutes with the defaults on the 2-core VM of docs/cost.md:
//
//	go run ./scripts/bench [-agents 200] [-window 10s] [-repeat 2]
//	    [-cpuprofile cpu.pprof] [-memprofile heap.pprof]
//	    [-adaptive=true] [-counters=true] [-rawproc=true] [-sockgate=true]
//	    [-procevery=5] [-connfilter=true] [-churn=1000]
//
// The remedy flags say which remedies the "on" windows have (all by
// default), so one remedy's share is a run with it alone false. Tables go
// to stdout (markdown, to paste into docs/cost.md); progress and the
// cleanup report go to stderr.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"aiosfs/fs/p9fs"
	"aiosfs/hal/spawn"
)

// userHZ is the unit of utime and stime in /proc/PID/stat. Linux fixes
// USER_HZ at 100 on every architecture Go supports, whatever CONFIG_HZ is.
const userHZ = 100

var (
	iters      = flag.Int("n", 2000, "timed reads per path")
	warmup     = flag.Int("warmup", 200, "untimed reads per path before timing")
	nAgents    = flag.Int("agents", 200, "agents to spawn for the load measurement")
	window     = flag.Duration("window", 10*time.Second, "CPU measuring window")
	repeat     = flag.Int("repeat", 2, "ABBA pairs of off/on windows per load")
	interval   = flag.Duration("interval", time.Second, "daemon sampling interval")
	limit      = flag.Duration("limit", 10*time.Minute, "abort (and clean up) if the run takes longer")
	gpuFlag    = flag.String("gpu", "mock:dgxa100", "the daemon's -gpu: every engine on, devices mocked")
	busyFlag   = flag.Bool("busy", true, "also measure with every agent busy")
	fill       = flag.Int("fill", 3600, "history samples to give every agent before the last RSS reading (0: none)")
	lsRuns     = flag.Int("ls", 20, "timed `ls -l agents` per mount")
	cpuProfile = flag.String("cpuprofile", "", "write the daemon's CPU profile of the first window of each load and setting to FILE.LOAD-SETTING")
	memProfile = flag.String("memprofile", "", "write the daemon's heap profile (after GC) at the end of the loaded windows to FILE, and after -fill to FILE.filled")
	adaptive   = flag.Bool("adaptive", true, "'on' windows hold idle agents' samples (telemetry.Tuning.Hold 10)")
	counters   = flag.Bool("counters", true, "'on' windows read cgroup Counters (4 files) instead of Stats")
	rawproc    = flag.Bool("rawproc", true, "'on' windows sample processes with raw reads instead of the procfs library")
	sockgate   = flag.Bool("sockgate", true, "'on' windows skip sock_diag when no agent holds a socket")
	procEvery  = flag.Int("procevery", 5, "'on' windows read a busy agent's process files every N-th full sample (telemetry.Tuning.ProcEvery; 1: every one)")
	keepOpen   = flag.Bool("keepopen", true, "'on' windows keep agents' cgroup counter files open and pread them (telemetry.Tuning.KeepOpen)")
	procsEvery = flag.Int("procsevery", 5, "'on' windows read a busy agent's cgroup.procs every N-th full sample or on the proc connector's word (telemetry.Tuning.ProcsEvery; 1: every one)")
	selfLite   = flag.Bool("selflite", true, "'on' windows measure the daemon's own CPU with getrusage and statm (telemetry.Tuning.SelfLite)")
	connFilter = flag.Bool("connfilter", true, "'on' windows drop thread and comm events in the proc connector's socket filter (procconn.Conn.SetFilter)")
	prefixFlag = flag.String("prefix", "aiosfs-bench", "the daemon's cgroup prefix, before \"-PID\" (helpers running benches side by side give their own)")
	memTune    = flag.Bool("memtune", true, "'on' windows take the memory engine's remedies (mem.Tuning Settle and SkipClear); 'off' windows none")
	memEvery   = flag.Int("memevery", 1, "'on' windows read a busy agent's smaps every N-th tick of the memory engine (mem.Tuning.Every; 1: every tick)")
	hooks      = flag.Bool("hooks", true, "'on' windows have the threat, healing and scheduling engines' pass remedies (threat/heal/sched.SetPassRemedies)")
	gcPercent  = flag.Int("gcpercent", 0, "the daemon's -gc-percent (daemon.Memory.GCPercent; 0: the runtime's, GOGC or 100)")
	memLimit   = flag.Int64("memlimit", 0, "the daemon's -memory-limit in bytes (daemon.Memory.MemoryLimit; 0: none)")
	memWindow  = flag.Duration("memwindow", 0, "the memory windows' length (at least 5 intervals, the default)")
	memRate    = flag.Int("memprofilerate", 0, "the daemon's runtime.MemProfileRate for -memprofile (0: the runtime's, one sample per 512 KiB; 4096 makes small holders exact at some CPU)")
	churn      = flag.Int("churn", 1000, "threads per second this process starts and ends (outside every agent) in the second pair of 0-agent windows, for the proc connector's filter (0: no such windows)")
)

// The settings of the windows: every remedy off; every remedy on but
// Tuning.ProcEvery (1: process files every full sample, as in run 7), so
// that its share is measured in the same run; every remedy on.
const (
	setOff = "off"
	setPE1 = "on-pe1"
	setOn  = "on"
)

var settings = []string{setOff, setPE1, setOn}

// What this run owns. Cleanup reads it under mu, so it may run from the
// signal and watchdog goroutines too.
var (
	mu       sync.Mutex
	tmp      string        // temporary directory: mounts, state, daemon log, agent script
	mnt      string        // FUSE mount point, remedies on
	mntPlain string        // the same tree, fusefs.Options.Plain
	ctlSock  string        // the child's HTTP socket
	dmn      *exec.Cmd     // the daemon, once started
	exited   chan struct{} // closed when the daemon has been waited for
	exitErr  error         // its wait status
	client9  *p9fs.Client  // the 9P connection, once dialled
	prefix   string        // cgroup prefix given to the daemon
	cleanErr = map[string]string{}
	once     sync.Once
)

func init() {
	// The daemon gets Pdeathsig so that it shuts down cleanly if the
	// benchmark is killed outright. The kernel sends that signal when the
	// *thread* that forked it ends, so fork from a thread that lives as
	// long as the process: the main one, locked to the main goroutine.
	runtime.LockOSThread()
}

// agentScript is every agent: idle (blocked in select, no timer) until
// SIGUSR1, then busy (every 100 ms a short spin) until SIGUSR2.
const agentScript = `$SIG{USR1} = sub { $busy = 1 };
$SIG{USR2} = sub { $busy = 0 };
$SIG{TERM} = sub { exit 0 };
while (1) {
	if ($busy) { select(undef, undef, undef, 0.1); my $x = 0; $x += $_ for 1 .. 3000; }
	else { select(undef, undef, undef, undef); }
}
`

func main() {
	// The daemon spawns agents through a shim that is its own binary run
	// again (hal/spawn): here, this one.
	spawn.MaybeShim()
	flag.Parse()
	if *childMode {
		runChild()
		return
	}
	if *iters < 100 || *nAgents < 1 || *window < 2**interval || *repeat < 1 {
		fail("need -n >= 100, -agents >= 1, -repeat >= 1 and -window >= 2 intervals")
	}
	if os.Geteuid() != 0 {
		fail("needs root: the daemon mounts FUSE directly and makes cgroups")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		fail("needs /dev/fuse: %v", err)
	}
	perl, err := exec.LookPath("perl")
	if err != nil {
		fail("needs perl for the agents: %v", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		progress("%v: stopping the daemon and cleaning up", s)
		cleanup()
		os.Exit(130)
	}()
	// A hung FUSE request or daemon must not hang the bench for ever.
	time.AfterFunc(*limit, func() { fail("still running after -limit %s", *limit) })

	load0 := loadavg()
	dir, err := os.MkdirTemp("", "aiosfs-bench-")
	if err != nil {
		fail("%v", err)
	}
	mu.Lock()
	tmp = dir
	mu.Unlock()
	script := filepath.Join(tmp, "agent.pl")
	if err := os.WriteFile(script, []byte(agentScript), 0o644); err != nil {
		fail("%v", err)
	}
	start()

	// 1. The daemon alone: after the start-up pass has settled, windows
	// with no agents at all, the proc connector's filter off and on
	// (ABBA). The filter-on median is the baseline for the per-agent
	// cost. Then the same with -churn threads a second started and ended
	// by this process, which the connector reports to the daemon.
	time.Sleep(2 * *interval)
	zero := map[string][]cost{}
	churns := []int{0}
	if *churn > 0 { // -churn 0: no churned windows (it used to skip the plain ones too)
		churns = append(churns, *churn)
	}
	for _, ch := range churns {
		var stop func() float64
		if ch > 0 {
			stop = threadChurn(ch)
		}
		for r := 0; r < *repeat; r++ {
			order := []string{setOff, setOn}
			if r%2 == 1 {
				order = []string{setOn, setOff}
			}
			for _, set := range order {
				setTuning(set)
				time.Sleep(*interval)
				key := fmt.Sprintf("%d-%s", ch, set)
				progress("0-agent window, filter %s, %d threads/s (%s, repeat %d of %d)", set, ch, *window, r+1, *repeat)
				zero[key] = append(zero[key], measure(*window))
			}
		}
		if stop != nil {
			churned = stop()
		}
	}
	setTuning(setOn)
	idle0 := zero["0-"+setOn][0]
	idle0.cores = median(coresOf(zero["0-"+setOn]))

	// 2. Spawn the agents through the global ctl, one write each, as an
	// operator would; each write returns once the process runs in its
	// cgroup, so its time is the whole spawn.
	progress("spawning %d agents", *nAgents)
	spawnTimes := make([]time.Duration, *nAgents)
	t0 := time.Now()
	for i := range spawnTimes {
		t := time.Now()
		if err := writeCtl(filepath.Join(mnt, "ctl"), fmt.Sprintf("spawn bench-%d -- %s %s\n", i+1, perl, script)); err != nil {
			fail("spawn %d: %v", i+1, err)
		}
		spawnTimes[i] = time.Since(t)
	}
	spawnTotal := time.Since(t0)
	ids := agentIDs()
	if len(ids) != *nAgents {
		fail("agents/ lists %d agents, spawned %d", len(ids), *nAgents)
	}
	last := filepath.Join(mnt, "agents", strconv.Itoa(ids[len(ids)-1]), "stat")
	waitFor(func() bool { b, _ := os.ReadFile(last); return len(b) > 0 }, 20*time.Second, "first sample of the last agent")
	time.Sleep(2 * *interval)
	pids := agentPids(ids)
	progress("%d agents, %d running", len(ids), len(pids))

	// 3. Windows, remedies off and on in ABBA order, idle then busy.
	loads := []string{"idle"}
	if *busyFlag {
		loads = append(loads, "busy")
	}
	res := map[string][]cost{}
	var heapLoaded []byte
	for _, load := range loads {
		if load == "busy" {
			signalAll(pids, syscall.SIGUSR1)
		}
		profiled := map[string]bool{}
		for r := 0; r < *repeat; r++ {
			order := slices.Clone(settings)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, set := range order {
				key := load + "-" + set
				setTuning(set)
				time.Sleep(2 * *interval) // the setting in force for whole passes
				progress("window %s (%s, repeat %d of %d)", key, *window, r+1, *repeat)
				var prof chan []byte
				if *cpuProfile != "" && !profiled[key] {
					profiled[key] = true
					prof = make(chan []byte, 1)
					go func() { prof <- getChild(fmt.Sprintf("/debug/pprof/profile?seconds=%d", int((*window).Seconds()))) }()
				}
				res[key] = append(res[key], measure(*window))
				if prof != nil {
					writeFileOrFail(*cpuProfile+"."+key, <-prof)
				}
			}
		}
		if load == "busy" {
			signalAll(pids, syscall.SIGUSR2)
			time.Sleep(2 * *interval)
		}
	}
	setTuning(setOn)
	if *memProfile != "" {
		heapLoaded = getChild("/debug/pprof/heap?gc=1")
		writeFileOrFail(*memProfile, heapLoaded)
	}

	// 4. Latency and ls, remedies on, agents idle.
	lat := latency(ids[0])
	ls := lsTimes()

	// 5. Memory: the steady state, then with every history full.
	time.Sleep(2 * *interval)
	progress("memory: %s window", max(*memWindow, 5**interval))
	memWin := max(*memWindow, 5**interval)
	ms0 := memstats()
	mem := []memRow{{"steady state, " + strconv.Itoa(len(ids)) + " agents", measure(memWin), memstats(), ms0}}
	if *fill > 0 {
		progress("filling every agent's history with %d samples", *fill)
		getChild(fmt.Sprintf("/fill?n=%d", *fill))
		time.Sleep(3 * *interval)
		ms0 := memstats()
		mem = append(mem, memRow{fmt.Sprintf("with %d samples of history per agent", *fill), measure(memWin), memstats(), ms0})
		if *memProfile != "" {
			writeFileOrFail(*memProfile+".filled", getChild("/debug/pprof/heap?gc=1"))
		}
	}

	mu.Lock()
	c := client9
	client9 = nil
	mu.Unlock()
	c.Close()

	report(load0, idle0, zero, res, loads, len(pids), spawnTimes, spawnTotal, lat, ls, mem)
	cleanup()
	if len(cleanErr) > 0 {
		os.Exit(1)
	}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// progress is a line on stderr, so stdout stays the pasteable report.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// fail reports, cleans up and exits; it may be called from any goroutine.
func fail(format string, args ...any) {
	progress("FAIL: "+format, args...)
	cleanup()
	os.Exit(1)
}

func writeFileOrFail(path string, b []byte) {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		fail("%v", err)
	}
	progress("wrote %s (%d bytes)", path, len(b))
}

// start runs the daemon (this binary with -child) and waits until its
// mounts, its 9P socket and its control socket answer.
func start() {
	self, err := os.Executable()
	if err != nil {
		fail("%v", err)
	}
	mu.Lock()
	mnt = filepath.Join(tmp, "mnt")
	mntPlain = filepath.Join(tmp, "mnt-plain")
	ctlSock = filepath.Join(tmp, "bench.sock")
	state := filepath.Join(tmp, "state")
	prefix = *prefixFlag + "-" + strconv.Itoa(os.Getpid())
	logf, err := os.Create(filepath.Join(tmp, "daemon.log"))
	if err != nil {
		mu.Unlock()
		fail("%v", err)
	}
	cmd := exec.Command(self, "-child", "-child-mount", mnt, "-child-plain", mntPlain, "-child-state", state,
		"-child-sock", ctlSock, "-child-prefix", prefix, "-interval", interval.String(), "-gpu", *gpuFlag,
		"-gcpercent", strconv.Itoa(*gcPercent), "-memlimit", strconv.FormatInt(*memLimit, 10), "-memprofilerate", strconv.Itoa(*memRate))
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a ^C at the terminal reaches only the bench,
	// which then stops the daemon itself, once and in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		mu.Unlock()
		fail("start daemon: %v", err)
	}
	dmn, exited = cmd, make(chan struct{})
	go func() {
		err := cmd.Wait()
		mu.Lock()
		exitErr = err
		mu.Unlock()
		close(exited)
		logf.Close()
	}()
	mu.Unlock()

	waitFor(func() bool { _, err := os.ReadFile(filepath.Join(mnt, "version")); return err == nil }, 30*time.Second, "the FUSE mount")
	waitFor(func() bool { _, err := os.ReadFile(filepath.Join(mntPlain, "version")); return err == nil }, 10*time.Second, "the plain FUSE mount")
	waitFor(func() bool { _, err := os.Stat(ctlSock); return err == nil }, 10*time.Second, "the control socket")
	c, err := p9fs.Dial("unix!" + filepath.Join(state, "9p.sock"))
	if err != nil {
		fail("9P dial: %v", err)
	}
	mu.Lock()
	client9 = c
	mu.Unlock()
}

// getChild is a GET on the child's control socket.
func getChild(path string) []byte {
	hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", ctlSock)
	}}}
	resp, err := hc.Get("http://bench" + path)
	if err != nil {
		fail("daemon control %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		fail("daemon control %s: %s %v", path, resp.Status, err)
	}
	return b
}

// setTuning switches the sampler's remedies and the proc connector's
// filter: all off, or those the flags name (setPE1: with ProcEvery 1).
func setTuning(set string) {
	on := set != setOff
	b := func(v bool) int {
		if v && on {
			return 1
		}
		return 0
	}
	hold, every, procs := 0, 1, 1
	if *adaptive && on {
		hold = 10
	}
	if set == setOn {
		every = *procEvery
	}
	if on {
		procs = *procsEvery
	}
	memEv := 1
	if on {
		memEv = *memEvery
	}
	getChild(fmt.Sprintf("/tuning?hold=%d&counters=%d&rawproc=%d&sockgate=%d&procevery=%d&connfilter=%d&keepopen=%d&selflite=%d&procsevery=%d&mem=%d&memevery=%d&hooks=%d",
		hold, b(*counters), b(*rawproc), b(*sockgate), every, b(*connFilter), b(*keepOpen), b(*selfLite), procs, b(*memTune), memEv, b(*hooks)))
}

// churned is the thread rate threadChurn measured (threads a second).
var churned float64

// threadChurn starts and ends about rate threads a second in this
// process until the returned function is called, which reports the rate
// reached. A goroutine that ends locked to its thread ends the thread;
// the runtime starts another for the next one. Each thread is a fork and
// an exit event of the proc connector with pid ≠ tgid, which the
// daemon's filter drops.
func threadChurn(rate int) (stop func() float64) {
	done := make(chan struct{})
	var n atomic.Int64
	t0 := time.Now()
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		per := max(rate/100, 1)
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			for range per {
				ch := make(chan struct{})
				go func() {
					runtime.LockOSThread()
					close(ch)
				}()
				<-ch
				n.Add(1)
			}
		}
	}()
	return func() float64 {
		close(done)
		return float64(n.Load()) / time.Since(t0).Seconds()
	}
}

func coresOf(cs []cost) []float64 {
	var x []float64
	for _, c := range cs {
		x = append(x, c.cores)
	}
	return x
}

// agentPids reads each agent's pid from its status.
func agentPids(ids []int) []int {
	var pids []int
	re := regexp.MustCompile(`\bpid=(\d+)`)
	for _, id := range ids {
		b, _ := os.ReadFile(filepath.Join(mnt, "agents", strconv.Itoa(id), "status"))
		if !bytes.Contains(b, []byte(" state=running ")) {
			continue
		}
		if m := re.FindSubmatch(b); m != nil {
			if p, err := strconv.Atoi(string(m[1])); err == nil {
				pids = append(pids, p)
			}
		}
	}
	return pids
}

// signalAll tells every agent to be busy (SIGUSR1) or idle (SIGUSR2). The
// pids are the agents' own processes, started by this run's daemon.
func signalAll(pids []int, s syscall.Signal) {
	for _, p := range pids {
		syscall.Kill(p, s)
	}
}

// memRow is the daemon's memory at one point.
type memRow struct {
	name    string
	c       cost
	ms, ms0 map[string]uint64 // at the end and the start of the window
}

func memstats() map[string]uint64 {
	var m map[string]uint64
	if err := json.Unmarshal(getChild("/memstats"), &m); err != nil {
		fail("memstats: %v", err)
	}
	return m
}

// waitFor polls ok every 20 ms; the daemon dying or timeout is a failure.
func waitFor(ok func() bool, timeout time.Duration, what string) {
	deadline := time.Now().Add(timeout)
	for !ok() {
		select {
		case <-exited:
			fail("daemon exited (%v) while waiting for %s", exitErr, what)
		default:
		}
		if time.Now().After(deadline) {
			fail("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeCtl writes one command as `echo cmd > ctl` does, but without
// O_TRUNC's extra SETATTR, and returns the command's error, which comes
// from the write or, for an unfinished line, from close.
func writeCtl(path, cmd string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(cmd)
	return errors.Join(werr, f.Close())
}

// agentIDs lists agents/ in numeric order.
func agentIDs() []int {
	ents, err := os.ReadDir(filepath.Join(mnt, "agents"))
	if err != nil {
		fail("list agents: %v", err)
	}
	var ids []int
	for _, e := range ents {
		if id, err := strconv.Atoi(e.Name()); err == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// ---- daemon cost ----

// procSnap is what the kernel says of a process at one moment.
type procSnap struct {
	t        time.Time
	ticks    uint64 // utime+stime, all threads, in 1/userHZ s
	rss, hwm int64  // VmRSS, VmHWM in bytes
	anon     int64  // RssAnon: VmRSS less the binary's and libraries' pages (RssFile) and shared memory
	threads  int
}

// snapshot reads /proc/PID/stat and /proc/PID/status of the daemon.
func snapshot() procSnap {
	pid := dmn.Process.Pid
	s := procSnap{t: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		fail("daemon stat: %v", err)
	}
	// The command name may hold spaces and parentheses; fields are counted
	// from the last ')'. utime and stime are fields 14 and 15 of stat(5),
	// the 12th and 13th after the name.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	s.ticks = ut + st
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		fail("daemon status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.rss = n << 10
		case "VmHWM":
			s.hwm = n << 10
		case "RssAnon":
			s.anon = n << 10
		case "Threads":
			s.threads = int(n)
		}
	}
	return s
}

// cost is the daemon over one window.
type cost struct {
	cores         float64 // CPU share, cores
	rssMean, rss  int64   // VmRSS mean over the window and at its end
	hwm           int64   // VmHWM at the end
	anon          int64   // RssAnon at the end
	threads       int
	seconds       float64
	ticks, passes int
	threat        float64 // seconds the threat engine spent in its passes
}

// threatSeconds is aiosfs_threat_tick_seconds_total from the mount's
// metrics file: the time the threat engine spent scoring and responding.
func threatSeconds() float64 {
	b, err := os.ReadFile(filepath.Join(mnt, "metrics"))
	if err != nil {
		fail("metrics: %v", err)
	}
	m := regexp.MustCompile(`(?m)^aiosfs_threat_tick_seconds_total (\S+)$`).FindSubmatch(b)
	if m == nil {
		fail("metrics has no aiosfs_threat_tick_seconds_total")
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// measure takes the daemon's CPU over d, sampling VmRSS each second.
func measure(d time.Duration) cost {
	th := threatSeconds()
	a := snapshot()
	var sum, n int64
	for end := a.t.Add(d); time.Until(end) > 0; {
		time.Sleep(min(time.Second, time.Until(end)))
		sum += snapshot().rss
		n++
	}
	b := snapshot()
	sec := b.t.Sub(a.t).Seconds()
	return cost{
		cores:   float64(b.ticks-a.ticks) / userHZ / sec,
		rssMean: sum / n, rss: b.rss, hwm: b.hwm, anon: b.anon, threads: b.threads,
		seconds: sec, ticks: int(b.ticks - a.ticks), passes: int(sec / interval.Seconds()),
		threat: threatSeconds() - th,
	}
}

// ---- latency ----

type latRow struct {
	name  string
	read  func() (int, error) // one timed operation; bytes read, -1 for a walk
	bytes int
	d     []time.Duration
}

// latency times reads of the agent's stat every way a reader would, and
// the same of /proc/PID/stat of its process. All are interleaved,
// rotating which goes first, so that the sampler's passes, GC and
// frequency changes fall on all of them alike.
func latency(id int) []latRow {
	b, err := os.ReadFile(filepath.Join(mnt, "agents", strconv.Itoa(id), "status"))
	if err != nil {
		fail("agent %d status: %v", id, err)
	}
	m := regexp.MustCompile(`\bpid=(\d+)`).FindSubmatch(b)
	if m == nil {
		fail("agent %d status has no pid: %q", id, b)
	}
	procPath := "/proc/" + string(m[1]) + "/stat"
	rel := filepath.Join("agents", strconv.Itoa(id), "stat")
	fusePath := filepath.Join(mnt, rel)
	plainPath := filepath.Join(mntPlain, rel)
	p9Path := "agents/" + strconv.Itoa(id) + "/stat"
	mu.Lock()
	c := client9
	mu.Unlock()
	// Kept-open descriptors for the re-read rows: pread at offset 0, one
	// system call (os.File.ReadAt would read again for EOF).
	procFD, err := os.Open(procPath)
	if err != nil {
		fail("%v", err)
	}
	defer procFD.Close()
	fuseFD, err := os.Open(fusePath)
	if err != nil {
		fail("%v", err)
	}
	defer fuseFD.Close()
	buf := make([]byte, 4096)
	pread := func(f *os.File) func() (int, error) {
		return func() (int, error) { return syscall.Pread(int(f.Fd()), buf, 0) }
	}
	n := func(b []byte, err error) (int, error) { return len(b), err }
	rows := []latRow{
		{name: "kernel /proc/PID/stat, open-read-close", read: func() (int, error) { return n(os.ReadFile(procPath)) }},
		{name: "kernel /proc/PID/stat, pread at 0 of an open fd", read: pread(procFD)},
		{name: "FUSE, remedies off: open-read-close", read: func() (int, error) { return n(os.ReadFile(plainPath)) }},
		{name: "FUSE, remedies on: open-read-close", read: func() (int, error) { return n(os.ReadFile(fusePath)) }},
		{name: "FUSE, remedies on: pread at 0 of an open fd (renders afresh)", read: pread(fuseFD)},
		{name: "9P: walk, open, read, read, clunk", read: func() (int, error) { return n(c.ReadFile(p9Path)) }},
		// stat(2) makes the kernel LOOKUP each uncached component, then
		// GETATTR; the 9P client walks all three names in one Twalk, then
		// Tgetattr.
		{name: "FUSE, remedies off: stat(2), the walk", read: func() (int, error) { _, err := os.Stat(plainPath); return -1, err }},
		{name: "FUSE, remedies on: stat(2), the walk", read: func() (int, error) { _, err := os.Stat(fusePath); return -1, err }},
		{name: "9P: walk+getattr", read: func() (int, error) { _, err := c.Stat(p9Path); return -1, err }},
	}
	progress("latency: %d warm-up + %d timed operations each, %d ways", *warmup, *iters, len(rows))
	do := func(r *latRow) time.Duration {
		t := time.Now()
		got, err := r.read()
		d := time.Since(t)
		if err != nil || got == 0 {
			fail("%s: %d bytes, %v", r.name, got, err)
		}
		r.bytes = got
		return d
	}
	for i := range rows {
		rows[i].d = make([]time.Duration, 0, *iters)
		for range *warmup {
			do(&rows[i])
		}
	}
	runtime.GC()
	for it := range *iters {
		for k := range rows {
			r := &rows[(it+k)%len(rows)]
			r.d = append(r.d, do(r))
		}
	}
	return rows
}

// lsTimes runs GNU `ls -l` of agents/ through each mount, interleaved.
func lsTimes() [][]time.Duration {
	out := make([][]time.Duration, 2)
	if *lsRuns <= 0 {
		return out
	}
	progress("ls -l agents: %d runs per mount", *lsRuns)
	dirs := []string{filepath.Join(mntPlain, "agents"), filepath.Join(mnt, "agents")}
	for i := 0; i < *lsRuns+2; i++ {
		for k := range dirs {
			k = (k + i) % 2
			cmd := exec.Command("ls", "-l", dirs[k])
			cmd.Stdout = io.Discard
			t := time.Now()
			if err := cmd.Run(); err != nil {
				fail("ls -l %s: %v", dirs[k], err)
			}
			if i >= 2 { // two warm-up runs
				out[k] = append(out[k], time.Since(t))
			}
		}
	}
	return out
}

// stats returns mean, p50, p99 and max in microseconds (nearest rank).
func stats(d []time.Duration) (mean, p50, p99, hi float64) {
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	us := func(x time.Duration) float64 { return float64(x) / 1e3 }
	rank := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))+0.5)-1)] }
	return us(sum) / float64(len(s)), us(rank(0.50)), us(rank(0.99)), us(s[len(s)-1])
}

// ---- report ----

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func report(load0 string, idle0 cost, zero, res map[string][]cost, loads []string, running int, spawn []time.Duration, spawnTotal time.Duration, lat []latRow, ls [][]time.Duration, mem []memRow) {
	w := os.Stdout
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	ver, _ := os.ReadFile(filepath.Join(mnt, "version"))
	cg := regexp.MustCompile(`cgroup=(\S+)`).FindSubmatch(ver)
	cgv := "?"
	if cg != nil {
		cgv = string(cg[1])
	}
	// The load average tells a reader whether others shared the machine.
	fmt.Fprintf(w, "machine: nproc=%d kernel=%s cpu=%q %s/%s %s cgroup=%s loadavg=%s (start) %s (end) %s\n",
		runtime.NumCPU(), strings.TrimSpace(string(kernel)), cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.Version(),
		cgv, load0, loadavg(), time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "command: go run ./scripts/bench -agents %d -window %s -repeat %d -interval %s -gpu %s -n %d -fill %d -adaptive=%v -counters=%v -rawproc=%v -sockgate=%v -procevery=%d -connfilter=%v -keepopen=%v -selflite=%v -procsevery=%d -churn=%d -memtune=%v -memevery=%d -hooks=%v   (as root; `make bench` runs it with the defaults)\n\n",
		*nAgents, *window, *repeat, *interval, *gpuFlag, *iters, *fill, *adaptive, *counters, *rawproc, *sockgate, *procEvery, *connFilter, *keepOpen, *selfLite, *procsEvery, *churn, *memTune, *memEvery, *hooks)

	fmt.Fprintf(w, "The daemon with 0 agents, the proc connector's socket filter (and every other remedy) off and on, %s windows (ABBA, %d of each), median [min–max]; first with the host's own process events, then with this bench starting and ending %.0f threads a second outside every agent:\n\n",
		*window, *repeat, churned)
	var rows [][]string
	churns := []int{0}
	if *churn > 0 { // -churn 0: no churned windows (it used to skip the plain ones too)
		churns = append(churns, *churn)
	}
	for _, ch := range churns {
		var med [2]float64
		for i, set := range []string{setOff, setOn} {
			ms := coresOf(zero[fmt.Sprintf("%d-%s", ch, set)])
			for j := range ms {
				ms[j] *= 1000
			}
			med[i] = median(ms)
			rows = append(rows, []string{strconv.Itoa(ch), set, fmt.Sprintf("%.1f [%.1f–%.1f]", med[i], slices.Min(ms), slices.Max(ms))})
		}
		rows = append(rows, []string{strconv.Itoa(ch), "on − off", fmt.Sprintf("%+.1f", med[1]-med[0])})
	}
	table(w, []string{"bench threads/s", "filter", ">ms CPU per s"}, rows)
	fmt.Fprintln(w)

	fmt.Fprintf(w, "The daemon's CPU at %d agents with every engine on, %s sampling: utime+stime from /proc/PID/stat over %s windows, remedies off, on but Tuning.ProcEvery 1 (on-pe1) and on, alternating (ABCCBA, %d of each), median [min–max]; per agent-second is above the 0-agent daemon with the filter on (%.1f ms/s):\n\n",
		running, *interval, *window, *repeat, idle0.cores*1000)
	rows = nil
	for _, load := range loads {
		per := make([]float64, len(settings))
		for i, set := range settings {
			cs := res[load+"-"+set]
			var ms []float64
			for _, c := range cs {
				ms = append(ms, c.cores*1000)
			}
			med := median(ms)
			per[i] = (med - idle0.cores*1000) * 1000 / float64(running)
			var share []float64
			for _, c := range cs {
				share = append(share, 100*c.threat/(float64(c.ticks)/userHZ))
			}
			rows = append(rows, []string{load, set,
				fmt.Sprintf("%.1f [%.1f–%.1f]", med, slices.Min(ms), slices.Max(ms)),
				fmt.Sprintf("%.0f", per[i]),
				fmt.Sprintf("%.2f%%", med/10/float64(runtime.NumCPU())),
				fmt.Sprintf("%.1f%%", median(share))})
		}
		rows = append(rows, []string{load, "on ÷ off", "", fmt.Sprintf("%.2f", per[2]/per[0]), "", ""})
		rows = append(rows, []string{load, "on ÷ on-pe1", "", fmt.Sprintf("%.2f", per[2]/per[1]), "", ""})
	}
	table(w, []string{"agents", "remedies", ">ms CPU per s", ">µs per agent-s", ">of the machine", ">threat engine's share"}, rows)
	fmt.Fprintf(w, "\nThe threat engine's share is the time its passes took (aiosfs_threat_tick_seconds_total: scoring every agent's window and responding; the proc connector's events it counts between passes are not in it) over the daemon's utime+stime in the same window, median.\n")

	fmt.Fprintf(w, "\nMemory (VmRSS mean over the window and VmHWM from /proc/PID/status; the Go heap from runtime.MemStats; gc-percent %d, memory-limit %d; CPU over the same %s, all of the daemon's less its 0-agent baseline, and the GC's alone from runtime/metrics /cpu/classes/gc/total):\n\n", *gcPercent, *memLimit, max(*memWindow, 5**interval))
	rows = nil
	for _, m := range mem {
		rows = append(rows, []string{m.name, mib(m.c.rssMean), mib(m.c.hwm), mib(int64(m.ms["HeapAlloc"])), mib(int64(m.ms["HeapInuse"])), mib(int64(m.ms["NextGC"])), mib(int64(m.ms["Sys"])),
			fmt.Sprintf("%.0f", (m.c.cores-idle0.cores)*1e6/float64(running)),
			fmt.Sprintf("%.1f", float64(m.ms["GCCPUNanos"]-m.ms0["GCCPUNanos"])/1e3/m.c.seconds/float64(running)),
			strconv.FormatUint(m.ms["NumGC"]-m.ms0["NumGC"], 10),
			fmt.Sprintf("%.2f", float64(m.ms["TotalAlloc"]-m.ms0["TotalAlloc"])/(1<<20)/m.c.seconds)})
	}
	table(w, []string{"state", ">VmRSS", ">VmHWM", ">HeapAlloc", ">HeapInuse", ">NextGC", ">Sys", ">µs per agent-s", ">of it GC", ">GCs", ">allocated MiB/s"}, rows)
	fmt.Fprintf(w, "\nWhat the runtime holds besides the heap in use (runtime.MemStats; HeapIdle-HeapReleased is heap the scavenger has not yet returned):\n\n")
	rows = nil
	for _, m := range mem {
		rows = append(rows, []string{m.name, mib(m.c.anon), mib(int64(m.ms["HeapInuse"])), mib(int64(m.ms["HeapIdle"] - m.ms["HeapReleased"])), mib(int64(m.ms["StackInuse"])),
			mib(int64(m.ms["MSpanInuse"] + m.ms["MCacheInuse"])), mib(int64(m.ms["GCSys"])), mib(int64(m.ms["OtherSys"] + m.ms["BuckHashSys"])), strconv.FormatUint(m.ms["NumGC"], 10)})
	}
	table(w, []string{"state", ">RssAnon", ">HeapInuse", ">idle, not returned", ">StackInuse", ">MSpan+MCache", ">GCSys", ">Other+BuckHash", ">NumGC"}, rows)

	fmt.Fprintf(w, "\nReading an agent's stat, %d times each after %d warm-up runs, interleaved, while the daemon manages %d idle agents (remedies on) at %s sampling:\n\n", *iters, *warmup, running, *interval)
	rows = nil
	_, ref50, _, _ := stats(lat[0].d)
	_, pre50, _, _ := stats(lat[1].d)
	for _, r := range lat {
		mean, p50, p99, hi := stats(r.d)
		nb := strconv.Itoa(r.bytes)
		if r.bytes < 0 {
			nb = "-"
		}
		rows = append(rows, []string{r.name, nb, f1(mean), f1(p50), f1(p99), f1(hi),
			fmt.Sprintf("%.1f", p50/ref50), fmt.Sprintf("%.1f", p50/pre50)})
	}
	table(w, []string{"operation", ">bytes", ">mean µs", ">p50 µs", ">p99 µs", ">max µs", ">p50 ÷ kernel open-read-close", ">p50 ÷ kernel pread"}, rows)

	if len(ls[0]) > 0 {
		fmt.Fprintf(w, "\n`ls -l agents` (%d entries, exec of ls, %d runs each, interleaved):\n\n", running, len(ls[0]))
		rows = nil
		for i, name := range []string{"FUSE, remedies off", "FUSE, remedies on"} {
			_, p50, p99, hi := stats(ls[i])
			rows = append(rows, []string{name, f2(p50 / 1e3), f2(p99 / 1e3), f2(hi / 1e3)})
		}
		table(w, []string{"mount", ">p50 ms", ">p99 ms", ">max ms"}, rows)
	}

	mean, p50, p99, hi := stats(spawn)
	fmt.Fprintf(w, "\nSpawning %d agents (`spawn bench-K -- perl agent.pl` written to ctl through FUSE, one at a time):\n\n", len(spawn))
	table(w, []string{">total s", ">per second", ">mean ms", ">p50 ms", ">p99 ms", ">max ms"}, [][]string{{
		fmt.Sprintf("%.2f", spawnTotal.Seconds()), fmt.Sprintf("%.0f", float64(len(spawn))/spawnTotal.Seconds()),
		f2(mean / 1e3), f2(p50 / 1e3), f2(p99 / 1e3), f2(hi / 1e3)}})
}

func f1(x float64) string  { return fmt.Sprintf("%.1f", x) }
func f2(x float64) string  { return fmt.Sprintf("%.2f", x) }
func mib(b int64) string   { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }

// loadavg is the 1-minute load average.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// table prints a markdown table with padded columns; a header starting
// with '>' marks a right-aligned (numeric) column.
func table(w io.Writer, head []string, rows [][]string) {
	right := make([]bool, len(head))
	width := make([]int, len(head))
	for i, h := range head {
		right[i] = strings.HasPrefix(h, ">")
		head[i] = strings.TrimPrefix(h, ">")
	}
	for _, r := range append([][]string{head}, rows...) {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c), 3)
		}
	}
	pad := func(s string, i int) string {
		gap := strings.Repeat(" ", width[i]-utf8.RuneCountInString(s))
		if right[i] {
			return gap + s
		}
		return s + gap
	}
	line := func(r []string) {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = pad(c, i)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	line(head)
	sep := make([]string, len(head))
	for i := range head {
		sep[i] = strings.Repeat("-", width[i])
		if right[i] {
			sep[i] = sep[i][1:] + ":"
		}
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(sep, " | "))
	for _, r := range rows {
		line(r)
	}
}

// ---- cleanup ----

// cleanup runs once, from whichever of main, fail or the signal handler
// gets there first (the others wait for it): SIGTERM to the daemon, which
// stops its agents, unmounts and removes its cgroups; then checks that it
// did, and clears whatever it left (only this run's cgroups, mount and
// files); then removes the temporary directory.
func cleanup() {
	once.Do(func() {
		mu.Lock()
		c, cmd, done := client9, dmn, exited
		client9 = nil
		tmp, mnt, mntPlain, prefix := tmp, mnt, mntPlain, prefix
		mu.Unlock()
		if c != nil {
			c.Close()
		}
		if cmd != nil {
			stopDaemon(cmd, done)
		}
		if prefix != "" {
			clearCgroups()
		}
		for _, m := range []string{mnt, mntPlain} {
			if m != "" && mounted(m) {
				// Left by a daemon that died or failed to unmount: detach it
				// lazily so nothing can hang on it.
				cleanErr["mount "+m] = "still mounted after the daemon exited; detached"
				if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
					cleanErr["mount "+m] = "still mounted, and umount failed: " + err.Error()
				}
			}
		}
		if tmp != "" && (mnt == "" || !mounted(mnt)) && (mntPlain == "" || !mounted(mntPlain)) {
			if err := os.RemoveAll(tmp); err != nil {
				cleanErr["tmp"] = err.Error()
			}
		} else if tmp != "" {
			cleanErr["tmp"] = "left " + tmp + " (mount still there)"
		}
		if len(cleanErr) == 0 {
			progress("cleanup: daemon stopped, no %s cgroups left, both mounts gone, %s removed", prefix, tmp)
		}
		for _, k := range slices.Sorted(maps.Keys(cleanErr)) {
			progress("cleanup: %s: %s", k, cleanErr[k])
		}
	})
}

// stopDaemon sends SIGTERM and waits; the daemon's clean stop ends its
// agents one by one (TERM, then KILL after its grace), so give it time
// before SIGKILL.
func stopDaemon(cmd *exec.Cmd, done chan struct{}) {
	t := time.Now()
	select {
	case <-done:
		cleanErr["daemon"] = fmt.Sprintf("had exited by itself: %v", exitErr)
		printLog()
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		progress("daemon stopped in %.1f s after SIGTERM (%v)", time.Since(t).Seconds(), orOK(exitErr))
		if exitErr != nil {
			cleanErr["daemon"] = fmt.Sprintf("exit after SIGTERM: %v", exitErr)
			printLog()
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		cleanErr["daemon"] = "did not stop within 60 s of SIGTERM; killed"
		printLog()
	}
}

func orOK(err error) any {
	if err == nil {
		return "exit 0"
	}
	return err
}

// printLog shows the end of the daemon's log when something went wrong.
func printLog() {
	b, _ := os.ReadFile(filepath.Join(tmp, "daemon.log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for _, l := range lines[max(0, len(lines)-20):] {
		progress("daemon log: %s", l)
	}
}

// clearCgroups finds this run's prefix in every hierarchy. A clean stop
// leaves none; otherwise the processes still in them are agents this run's
// daemon started, so they are killed by pid and the groups removed, the
// deepest first.
func clearCgroups() {
	var found []string
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == prefix {
			found = append(found, p)
			return filepath.SkipDir
		}
		return nil
	})
	if len(found) == 0 {
		return
	}
	cleanErr["cgroups"] = fmt.Sprintf("%d left by the daemon (%s ...); removed", len(found), found[0])
	var dirs []string
	for _, top := range found {
		filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	for _, dir := range dirs {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
	for _, dir := range dirs {
		for try := 0; ; try++ {
			err := syscall.Rmdir(dir)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			if try == 50 { // the killed tasks take a moment to leave
				cleanErr["cgroups"] += fmt.Sprintf("; rmdir %s: %v", dir, err)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// mounted reports whether dir is a mount point now.
func mounted(dir string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}
