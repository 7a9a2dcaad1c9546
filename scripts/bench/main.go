// Command bench measures the aiosfs daemon against the kernel, in one run
// on one machine. As ARCHITECTURE.md §4 asks, every figure comes with a
// baseline measured in the same process on the same data, and nothing here
// asserts a time:
//
//  1. the latency of reading agents/N/stat (open, read to EOF, close)
//     through FUSE and through 9P, against reading /proc/PID/stat of the
//     same process directly (the kernel's own synthetic file);
//  2. the daemon's own CPU share and memory managing 0 agents and then
//     200 `sleep` agents at 1 s sampling, the cost per agent, and the time
//     the 200 spawns took.
//
// It builds the daemon into a temporary directory, runs it as a child with
// a private mount point, state directory and cgroup prefix, and when it
// ends, fails or is interrupted it stops the daemon (SIGTERM), waits for
// it, checks that the cgroups and the mount are gone and removes its
// temporary files. It needs root and /dev/fuse, and runs in about 1.5
// minutes with the defaults:
//
//	go run ./scripts/bench [-n 2000] [-agents 200] [-window 20s]
//
// Tables go to stdout (markdown, to paste into the README); progress and
// the cleanup report go to stderr.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
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
	"syscall"
	"time"
	"unicode/utf8"

	"aiosfs/fs/p9fs"
)

// userHZ is the unit of utime and stime in /proc/PID/stat. Linux fixes
// USER_HZ at 100 on every architecture Go supports, whatever CONFIG_HZ is.
const userHZ = 100

var (
	iters    = flag.Int("n", 2000, "timed reads per path")
	warmup   = flag.Int("warmup", 200, "untimed reads per path before timing")
	nAgents  = flag.Int("agents", 200, "agents to spawn for the load measurement")
	window   = flag.Duration("window", 20*time.Second, "CPU/RSS measuring window, idle and loaded")
	interval = flag.Duration("interval", time.Second, "daemon sampling interval")
	binFlag  = flag.String("bin", "", "daemon binary to run (default: go build ./cmd/aiosfs into a temp dir)")
	limit    = flag.Duration("limit", 5*time.Minute, "abort (and clean up) if the run takes longer")
)

// What this run owns. Cleanup reads it under mu, so it may run from the
// signal and watchdog goroutines too.
var (
	mu       sync.Mutex
	tmp      string        // temporary directory: binary, mount, state, daemon log
	mnt      string        // FUSE mount point
	daemon   *exec.Cmd     // the daemon, once started
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

func main() {
	flag.Parse()
	if *iters < 100 || *nAgents < 1 || *window < 2**interval {
		fail("need -n >= 100, -agents >= 1 and -window >= 2 intervals")
	}
	if os.Geteuid() != 0 {
		fail("needs root: the daemon mounts FUSE directly and makes cgroups")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		fail("needs /dev/fuse: %v", err)
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
	bin := *binFlag
	if bin == "" {
		bin = filepath.Join(tmp, "aiosfs")
		progress("building the daemon")
		if err := build(bin); err != nil {
			fail("build: %v", err)
		}
	}
	start(bin)

	// 1. The daemon alone: after the start-up pass has settled, a window
	// with no agents at all is the baseline for the per-agent cost.
	time.Sleep(2 * *interval)
	progress("idle window (%s, 0 agents)", *window)
	idle := measure(*window)

	// 2. Spawn the agents through the global ctl, one write each, as an
	// operator would; each write returns once the process runs in its
	// cgroup, so its time is the whole spawn.
	progress("spawning %d agents", *nAgents)
	spawnTimes := make([]time.Duration, *nAgents)
	t0 := time.Now()
	for i := range spawnTimes {
		t := time.Now()
		if err := writeCtl(filepath.Join(mnt, "ctl"), fmt.Sprintf("spawn bench-%d -- sleep 3600\n", i+1)); err != nil {
			fail("spawn %d: %v", i+1, err)
		}
		spawnTimes[i] = time.Since(t)
	}
	spawnTotal := time.Since(t0)
	ids := agentIDs()
	if len(ids) != *nAgents {
		fail("agents/ lists %d agents, spawned %d", len(ids), *nAgents)
	}
	// Every agent's stat is filled by the first pass that sees it; wait
	// for the last one, then two more passes so the window holds only
	// steady-state work.
	last := filepath.Join(mnt, "agents", strconv.Itoa(ids[len(ids)-1]), "stat")
	waitFor(func() bool { b, _ := os.ReadFile(last); return len(b) > 0 }, 10*time.Second, "first sample of the last agent")
	time.Sleep(2 * *interval)
	running := 0
	for _, id := range ids {
		b, _ := os.ReadFile(filepath.Join(mnt, "agents", strconv.Itoa(id), "status"))
		if bytes.Contains(b, []byte(" state=running ")) {
			running++
		}
	}
	progress("loaded window (%s, %d agents, %d running)", *window, len(ids), running)
	loaded := measure(*window)

	// 3. Latency, on the first agent while the daemon manages all of them.
	lat := latency(ids[0])

	mu.Lock()
	c := client9
	client9 = nil
	mu.Unlock()
	c.Close()

	report(load0, idle, loaded, running, spawnTimes, spawnTotal, lat)
	cleanup()
	if len(cleanErr) > 0 {
		os.Exit(1)
	}
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

// build compiles ./cmd/aiosfs of the module the bench is run in.
func build(out string) error {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(gomod)) == 0 {
		return fmt.Errorf("cannot find the module (run from the repository, or pass -bin): %v", err)
	}
	cmd := exec.Command("go", "build", "-o", out, "./cmd/aiosfs")
	cmd.Dir = filepath.Dir(string(bytes.TrimSpace(gomod)))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// start runs the daemon and waits until both its mount and its 9P socket
// answer.
func start(bin string) {
	mu.Lock()
	mnt = filepath.Join(tmp, "mnt")
	state := filepath.Join(tmp, "state")
	prefix = "aiosfs-bench-" + strconv.Itoa(os.Getpid())
	logf, err := os.Create(filepath.Join(tmp, "daemon.log"))
	if err != nil {
		mu.Unlock()
		fail("%v", err)
	}
	cmd := exec.Command(bin, "serve", "-mount", mnt, "-state", state, "-cgroup-prefix", prefix, "-interval", interval.String())
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a ^C at the terminal reaches only the bench,
	// which then stops the daemon itself, once and in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		mu.Unlock()
		fail("start daemon: %v", err)
	}
	daemon, exited = cmd, make(chan struct{})
	go func() {
		err := cmd.Wait()
		mu.Lock()
		exitErr = err
		mu.Unlock()
		close(exited)
		logf.Close()
	}()
	mu.Unlock()

	waitFor(func() bool { _, err := os.ReadFile(filepath.Join(mnt, "version")); return err == nil }, 15*time.Second, "the FUSE mount")
	c, err := p9fs.Dial("unix!" + filepath.Join(state, "9p.sock"))
	if err != nil {
		fail("9P dial: %v", err)
	}
	mu.Lock()
	client9 = c
	mu.Unlock()
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
	threads  int
}

// snapshot reads /proc/PID/stat and /proc/PID/status of the daemon.
func snapshot() procSnap {
	pid := daemon.Process.Pid
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
	threads       int
	seconds       float64
	ticks, passes int
}

// measure takes the daemon's CPU over d, sampling VmRSS each second.
func measure(d time.Duration) cost {
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
		rssMean: sum / n, rss: b.rss, hwm: b.hwm, threads: b.threads,
		seconds: sec, ticks: int(b.ticks - a.ticks), passes: int(sec / interval.Seconds()),
	}
}

// ---- latency ----

type latRow struct {
	name  string
	read  func() (int, error) // one timed operation; bytes read, -1 for a walk
	bytes int
	d     []time.Duration
}

// latency times open-read-close of the agent's stat three ways, and, to
// show where the time goes, the path walk alone (agents, N, stat) through
// each protocol. All are interleaved, rotating which goes first, so that
// the sampler's passes, GC and frequency changes fall on all of them alike.
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
	fusePath := filepath.Join(mnt, "agents", strconv.Itoa(id), "stat")
	p9Path := "agents/" + strconv.Itoa(id) + "/stat"
	mu.Lock()
	c := client9
	mu.Unlock()
	n := func(b []byte, err error) (int, error) { return len(b), err }
	rows := []latRow{
		{name: procPath + " (kernel)", read: func() (int, error) { return n(os.ReadFile(procPath)) }},
		{name: "FUSE  " + p9Path, read: func() (int, error) { return n(os.ReadFile(fusePath)) }},
		{name: "9P    " + p9Path, read: func() (int, error) { return n(c.ReadFile(p9Path)) }},
		// stat(2) makes the kernel LOOKUP each component, then GETATTR;
		// the 9P client walks all three names in one Twalk, then Tgetattr.
		{name: "FUSE  stat(2) only: the walk", read: func() (int, error) { _, err := os.Stat(fusePath); return -1, err }},
		{name: "9P    walk+getattr only", read: func() (int, error) { _, err := c.Stat(p9Path); return -1, err }},
	}
	progress("latency: %d warm-up + %d timed operations each on %s, %s and 9P %s", *warmup, *iters, procPath, fusePath, p9Path)
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

func report(load0 string, idle, loaded cost, running int, spawn []time.Duration, spawnTotal time.Duration, lat []latRow) {
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
	bin := ""
	if *binFlag != "" {
		bin = " -bin " + *binFlag
	}
	fmt.Fprintf(w, "command: go run ./scripts/bench -n %d -warmup %d -agents %d -window %s -interval %s%s   (as root; `make bench` runs it with these defaults)\n\n",
		*iters, *warmup, *nAgents, *window, *interval, bin)

	fmt.Fprintf(w, "Reading an agent's stat (open, read to EOF, close; one persistent 9P connection), and the path walk alone, %d times each after %d warm-up runs, interleaved, while the daemon manages %d agents at %s sampling:\n\n", *iters, *warmup, running, *interval)
	var rows [][]string
	ref, ref50, _, _ := stats(lat[0].d)
	p50s := make([]float64, len(lat))
	for i, r := range lat {
		mean, p50, p99, hi := stats(r.d)
		p50s[i] = p50
		nb := strconv.Itoa(r.bytes)
		if r.bytes < 0 {
			nb = "-"
		}
		rows = append(rows, []string{r.name, nb, f1(mean), f1(p50), f1(p99), f1(hi),
			fmt.Sprintf("%.1f", mean/ref), fmt.Sprintf("%.1f", p50/ref50)})
	}
	table(w, []string{"operation", ">bytes", ">mean µs", ">p50 µs", ">p99 µs", ">max µs", ">mean ÷ /proc", ">p50 ÷ /proc"}, rows)
	fmt.Fprintf(w, "\nThe walk to agents/N/stat alone is %.0f%% of a FUSE read and %.0f%% of a 9P read (p50).\n",
		100*p50s[3]/p50s[1], 100*p50s[4]/p50s[2])

	fmt.Fprintf(w, "\nThe daemon's own cost at %s sampling: CPU from utime+stime in /proc/PID/stat over a %s window, VmRSS (mean of per-second samples, and at the end) and VmHWM from /proc/PID/status:\n\n", *interval, *window)
	row := func(name string, c cost) []string {
		return []string{name, fmt.Sprintf("%.4f", c.cores), fmt.Sprintf("%.1f", c.cores*1000), mib(c.rssMean), mib(c.rss), mib(c.hwm), strconv.Itoa(c.threads)}
	}
	rows = [][]string{row("0 (idle)", idle), row(strconv.Itoa(running), loaded)}
	n := float64(running)
	rows = append(rows, []string{"per agent", fmt.Sprintf("%.6f", (loaded.cores-idle.cores)/n), fmt.Sprintf("%.3f", (loaded.cores-idle.cores)*1000/n),
		kib(float64(loaded.rssMean-idle.rssMean) / n), kib(float64(loaded.rss-idle.rss) / n), "", ""})
	table(w, []string{"agents", ">CPU cores", ">CPU ms/s", ">VmRSS mean", ">VmRSS end", ">VmHWM", ">threads"}, rows)
	fmt.Fprintf(w, "\n(%d and %d clock ticks of %d ms over %.1f s and %.1f s; a window holds about %d sampling passes, give or take one.)\n",
		idle.ticks, loaded.ticks, 1000/userHZ, idle.seconds, loaded.seconds, loaded.passes)

	mean, p50, p99, hi := stats(spawn)
	fmt.Fprintf(w, "\nSpawning %d agents (`spawn bench-K -- sleep 3600` written to ctl through FUSE, one at a time):\n\n", len(spawn))
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
		c, cmd, done := client9, daemon, exited
		client9 = nil
		tmp, mnt, prefix := tmp, mnt, prefix
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
		if mnt != "" && mounted(mnt) {
			// Left by a daemon that died or failed to unmount: detach it
			// lazily so nothing can hang on it.
			cleanErr["mount"] = "still mounted after the daemon exited; detached"
			if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
				cleanErr["mount"] = "still mounted, and umount failed: " + err.Error()
			}
		}
		if tmp != "" && (mnt == "" || !mounted(mnt)) {
			if err := os.RemoveAll(tmp); err != nil {
				cleanErr["tmp"] = err.Error()
			}
		} else if tmp != "" {
			cleanErr["tmp"] = "left " + tmp + " (mount still there)"
		}
		if len(cleanErr) == 0 {
			progress("cleanup: daemon stopped, no %s cgroups left, mount gone, %s removed", prefix, tmp)
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
