// Command syscap measures the system-call capture's cost (issue 13) in one
// run, on two workloads run in a cgroup2 directory this command makes (and
// removes):
//
//	read   a child process making -n one-byte reads of /dev/zero: the
//	       pathological case, a system call every ~1.5 µs and nothing else
//	build  `make -j2` of a small C project (-files files of generated
//	       functions, compiled with cc -O1) generated into a temp dir,
//	       cleaned before every run: a syscall-heavy ordinary job (forks,
//	       execs, opens, mmaps, reads, writes) with real work in between
//
// each timed in these modes:
//
//	none     no capture program loaded
//	empty    a program that only returns 0 attached to the same
//	         raw_syscalls:sys_enter tracepoint: the floor, the cost of the
//	         hook itself (and of the kernel's slow syscall-entry path that
//	         any sys_enter tracepoint turns on) that no filtering in the
//	         program can remove
//	cgid     (read only) a program that takes bpf_get_current_cgroup_id
//	         and returns 0: the floor plus the one helper call that
//	         every task pays before the capture's map lookup
//	off      the capture attached (another, empty cgroup tracked), the
//	         workload's cgroup not tracked: the cost every task on the
//	         host pays while any agent is tracked (a cgroup id and a hash
//	         lookup a call); with nothing tracked the program is detached
//	on       the cgroup tracked, every call a record, read by the threat
//	         engine's syscall signal (engines/threat/syscalls: learning,
//	         then scoring, as in the daemon)
//	on-cnt   (read only) as on, with syscap's WakeEvery 4096: the reader
//	         woken on every 4096th record of a CPU instead of asking the
//	         ring its fill on every record (one helper call fewer)
//	on-lim   (read only) as on with the default per-CPU rate limit
//
// in -rounds rounds of the modes in turn (forward, then backward: ABBA by
// rounds, so a drift of the host's load falls on every mode alike),
// medians reported (and the range of the CPU times, against none's
// median: the noise of the shared host), with the slowdown against none, the events written
// per second, the drops, and the program's own mean run time per call
// (BPF run-time statistics, enabled for the run through BPF_ENABLE_STATS
// and off again when it ends; it counts every call on the host while the
// program is attached, tracked or not). "on" runs with the rate limit out
// of the way and a 16 MiB ring, so its drops are those of the ring alone:
// events/s with drops=0 there is a rate sustained without loss. The load
// average is printed before and after: the host is shared. Another raw
// tracepoint program attached on the host (another daemon's capture)
// slows every mode, none included, so each run first waits up to
// -wait-clean for there to be none, and the runs that had one anyway are
// counted in the last column.
//
// The figure to read is the child's CPU time (user+sys of the workload
// and every process it waited for): the program runs inside the
// workload's system calls, so its cost is there, while wall time on a
// loaded host is mostly waiting for a CPU.
//
// Needs root; prints why and exits 0 when the capture cannot run here.
//
//	go run ./scripts/bench/syscap [-work read,build] [-n 1000000] [-files 24] [-rounds 5] [-wait-clean 30s]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"aiosfs/engines/threat/syscalls"
	"aiosfs/hal/syscap"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

func main() {
	works := flag.String("work", "read,build", "workloads, comma-separated: read, build")
	n := flag.Int("n", 1000000, "one-byte reads of /dev/zero per read run")
	files := flag.Int("files", 24, "C files of the build workload")
	rounds := flag.Int("rounds", 5, "rounds of every mode")
	flag.DurationVar(&waitClean, "wait-clean", waitClean, "before each run, wait up to this long for other raw tracepoint links (another daemon's capture) to go")
	child := flag.Bool("child", false, "be the read workload (internal)")
	flag.Parse()
	if *child {
		work(*n)
		return
	}
	if os.Geteuid() != 0 {
		fmt.Println("syscap bench skipped: needs root")
		return
	}
	if err := syscap.Supported(); err != nil {
		fmt.Println("syscap bench skipped:", err)
		return
	}
	dir, err := makeCgroup("work")
	if err != nil {
		fmt.Println("syscap bench skipped:", err)
		return
	}
	defer removeCgroup(dir)
	idle, err := makeCgroup("idle")
	if err != nil {
		fmt.Println("syscap bench skipped:", err)
		return
	}
	defer removeCgroup(idle)
	// An interrupt ends the workload (cgroup.kill) and removes what this
	// run made; the BPF programs go with the process.
	var proj string
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		removeCgroup(dir)
		removeCgroup(idle)
		if proj != "" {
			os.RemoveAll(proj)
		}
		fmt.Fprintln(os.Stderr, "syscap bench: interrupted")
		os.Exit(1)
	}()
	// the kernel counts programs' run time while this is held
	if st, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err == nil {
		defer st.Close()
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "syscap bench:", err)
		removeCgroup(dir)
		removeCgroup(idle)
		os.Exit(1)
	}
	for _, w := range strings.Split(*works, ",") {
		var wl workload
		switch w {
		case "read":
			wl = readWork{n: *n}
		case "build":
			var err error
			proj, err = os.MkdirTemp("", "syscap-bench-build-")
			if err != nil {
				fail(err)
			}
			defer os.RemoveAll(proj)
			if err := genProject(proj, *files); err != nil {
				fail(err)
			}
			wl = buildWork{dir: proj, files: *files}
		default:
			fail(fmt.Errorf("-work %q: want read or build", w))
		}
		if err := run(dir, idle, wl, *rounds); err != nil {
			fail(err)
		}
	}
}

// work makes n one-byte reads of /dev/zero.
func work(n int) {
	fd, err := unix.Open("/dev/zero", unix.O_RDONLY, 0)
	if err != nil {
		os.Exit(2)
	}
	var b [1]byte
	for i := 0; i < n; i++ {
		if _, err := unix.Read(fd, b[:]); err != nil {
			os.Exit(3)
		}
	}
}

// A workload is timed in the cgroup2 directory dir.
type workload interface {
	name() string
	describe() string
	modes() []string
	// once runs the workload in dir; it returns the child's wall time
	// and CPU time (user+sys, its own and every child's it waited for:
	// the capture program runs in their system calls, so its cost is
	// there).
	once(dir string) (wall, cpu time.Duration, err error)
}

type readWork struct{ n int }

func (w readWork) name() string { return "read" }
func (w readWork) describe() string {
	return fmt.Sprintf("%d one-byte reads of /dev/zero per run", w.n)
}
func (w readWork) modes() []string {
	return []string{"none", "empty", "cgid", "off", "on", "on-cnt", "on-lim"}
}
func (w readWork) once(dir string) (time.Duration, time.Duration, error) {
	self, _ := os.Executable()
	return runIn(dir, nil, self, "-child", "-n", strconv.Itoa(w.n))
}

type buildWork struct {
	dir   string
	files int
}

func (w buildWork) name() string { return "build" }
func (w buildWork) describe() string {
	return fmt.Sprintf("make -j2 of %d generated C files (cc -O1), cleaned before each run", w.files)
}
func (w buildWork) modes() []string { return []string{"none", "empty", "off", "on"} }
func (w buildWork) once(dir string) (time.Duration, time.Duration, error) {
	// the clean is outside the timing and the cgroup
	if out, err := exec.Command("make", "-s", "-C", w.dir, "clean").CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("make clean: %v %s", err, out)
	}
	return runIn(dir, nil, "make", "-s", "-j2", "-C", w.dir)
}

// genProject writes files C files of small functions, a main and a
// Makefile into dir: enough for a few seconds of cc.
func genProject(dir string, files int) error {
	var mk strings.Builder
	var objs []string
	var decl, calls strings.Builder
	for i := 0; i < files; i++ {
		var c strings.Builder
		c.WriteString("#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>\n")
		for f := 0; f < 12; f++ {
			fmt.Fprintf(&c, `
int f%d_%d(int n) {
	char buf[64]; int s = 0;
	for (int i = 0; i < n; i++) { snprintf(buf, sizeof buf, "%%d-%%d", i, n); s += (int)strlen(buf) * (i %% 7); }
	struct { int a, b; } v[8]; memset(v, 0, sizeof v);
	for (int i = 0; i < 8; i++) { v[i].a = s + i; v[i].b = v[i].a * %d; s ^= v[i].b; }
	return s;
}
`, i, f, f+1)
			fmt.Fprintf(&decl, "int f%d_%d(int);\n", i, f)
			fmt.Fprintf(&calls, "\ts += f%d_%d(3);\n", i, f)
		}
		name := fmt.Sprintf("u%02d.c", i)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(c.String()), 0o644); err != nil {
			return err
		}
		objs = append(objs, fmt.Sprintf("u%02d.o", i))
	}
	main := "#include <stdio.h>\n" + decl.String() + "int main(void) {\n\tint s = 0;\n" + calls.String() + "\tprintf(\"%d\\n\", s);\n\treturn 0;\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.c"), []byte(main), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(&mk, "CFLAGS = -O1\nOBJS = main.o %s\nprog: $(OBJS)\n\tcc -o $@ $(OBJS)\n%%.o: %%.c\n\tcc $(CFLAGS) -c -o $@ $<\nclean:\n\trm -f prog *.o\n", strings.Join(objs, " "))
	return os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk.String()), 0o644)
}

// runIn runs name args in the cgroup2 directory dir.
func runIn(dir string, env []string, name string, args ...string) (wall, cpu time.Duration, err error) {
	cg, err := os.Open(dir)
	if err != nil {
		return 0, 0, err
	}
	defer cg.Close()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("workload %s: %v %s", name, err, out)
	}
	wall = time.Since(start)
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

type result struct {
	times  []time.Duration
	cpu    []time.Duration
	self   []time.Duration // this process's CPU (the ring's reader and the signal)
	runs   uint64          // program runs (every call on the host while attached)
	runNs  time.Duration   // their total run time
	events uint64
	drops  uint64
	secs   float64
	others int // runs during which another raw tracepoint link was attached
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func run(dir, idle string, wl workload, rounds int) error {
	modes := wl.modes()
	res := map[string]*result{}
	for _, m := range modes {
		res[m] = &result{}
	}
	load0 := loadavg()
	if _, _, err := wl.once(dir); err != nil { // warm the caches, untimed
		return err
	}
	for r := 0; r < rounds; r++ {
		order := modes
		if r%2 == 1 {
			order = reversed(modes)
		}
		for _, m := range order {
			if err := runMode(dir, idle, wl, m, res[m]); err != nil {
				return err
			}
		}
	}
	base, cbase := median(res["none"].times), median(res["none"].cpu)
	fmt.Printf("syscap bench %s: %s, %d rounds; medians of the child's wall and CPU time, and of this process's CPU (the ring reader and the signal); load average %s before, %s after\n",
		wl.name(), wl.describe(), rounds, load0, loadavg())
	fmt.Printf("%-7s %9s %8s %9s %8s %15s %10s %10s %10s %10s %9s\n", "mode", "wall", "vs none", "cpu", "vs none", "cpu min..max", "reader cpu", "events", "events/s", "dropped", "prog ns")
	for _, m := range modes {
		r := res[m]
		md, mc := median(r.times), median(r.cpu)
		ev, dr, rate := "-", "-", "-"
		if strings.HasPrefix(m, "on") {
			ev = strconv.FormatUint(r.events/uint64(rounds), 10)
			dr = strconv.FormatUint(r.drops/uint64(rounds), 10)
			rate = fmt.Sprintf("%.0f", float64(r.events)/r.secs)
		}
		pns := "-"
		if r.runs > 0 {
			pns = fmt.Sprintf("%.0f", float64(r.runNs.Nanoseconds())/float64(r.runs))
		}
		lo, hi := spread(r.cpu)
		if r.others > 0 {
			pns += fmt.Sprintf(" (another raw tracepoint attached in %d of %d runs)", r.others, len(r.cpu))
		}
		fmt.Printf("%-7s %9s %7.2fx %9s %7.2fx %15s %10s %10s %10s %10s %9s\n", m, md.Round(time.Millisecond), float64(md)/float64(base),
			mc.Round(time.Millisecond), float64(mc)/float64(cbase), fmt.Sprintf("%.2f..%.2fx", float64(lo)/float64(cbase), float64(hi)/float64(cbase)),
			median(r.self).Round(time.Millisecond), ev, rate, dr, pns)
	}
	return nil
}

// rawTracepointLinks counts the raw tracepoint links attached on the
// host: another daemon's capture (or any other sys_enter program)
// attached during a run slows every mode, "none" included.
func rawTracepointLinks() int {
	n := 0
	it := new(link.Iterator)
	for it.Next() {
		if info, err := it.Link.Info(); err == nil && info.Type == link.RawTracepointType {
			n++
		}
	}
	return n
}

// spread is the smallest and largest of d.
func spread(d []time.Duration) (lo, hi time.Duration) {
	lo, hi = d[0], d[0]
	for _, v := range d {
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// emptyProgram is the floor: a raw tracepoint program that returns 0
// (cgid: that takes the cgroup id first, the one helper call every
// untracked task pays before the map lookup).
func emptyProgram(cgid bool) (*ebpf.Program, link.Link, error) {
	ins := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	if cgid {
		ins = append(asm.Instructions{asm.FnGetCurrentCgroupId.Call()}, ins...)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "aiosfs_scempty", Type: ebpf.RawTracepoint, License: "GPL",
		Instructions: ins})
	if err != nil {
		return nil, nil, fmt.Errorf("empty program: %w", err)
	}
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: prog})
	if err != nil {
		prog.Close()
		return nil, nil, fmt.Errorf("empty program: attach: %w", err)
	}
	return prog, l, nil
}

// waitClean is how long a run waits for other raw tracepoint links to go
// before it starts anyway (and is counted as disturbed).
var waitClean = 30 * time.Second

func runMode(dir, idle string, wl workload, mode string, r *result) error {
	for end := time.Now().Add(waitClean); rawTracepointLinks() > 0 && time.Now().Before(end); {
		time.Sleep(250 * time.Millisecond)
	}
	var c *syscap.Capture
	var sig *syscalls.Signal
	var empty *ebpf.Program
	switch mode {
	case "none":
	case "empty", "cgid":
		prog, l, err := emptyProgram(mode == "cgid")
		if err != nil {
			return err
		}
		defer prog.Close()
		defer l.Close()
		empty = prog
	default:
		cfg := syscap.Config{}
		if mode == "on" || mode == "on-cnt" || mode == "off" {
			cfg.RatePerCPU = 1<<31 - 1
			cfg.RingBytes = 16 << 20
		}
		if mode == "on-cnt" {
			cfg.WakeEvery = 4096
		}
		sig = syscalls.NewOffline(syscalls.Config{})
		cfg.Handler = sig.Handle
		var err error
		if c, err = syscap.New(cfg); err != nil {
			return err
		}
		defer c.Close()
		track := dir
		if mode == "off" {
			track = idle
		}
		id, err := c.Track(track)
		if err != nil {
			return err
		}
		sig.Map(1, id)
	}
	own := 0
	if mode != "none" {
		own = 1
	}
	busy := rawTracepointLinks() > own
	before := selfCPU()
	d, cpu, err := wl.once(dir)
	if err != nil {
		return err
	}
	if busy || rawTracepointLinks() > own {
		r.others++
	}
	if c != nil {
		time.Sleep(2 * syscap.DefaultFlush) // the reader drains the rest
	}
	r.times = append(r.times, d)
	r.cpu = append(r.cpu, cpu)
	r.self = append(r.self, selfCPU()-before)
	if c != nil {
		if runs, rt, ok := c.ProgramStats(); ok {
			r.runs += runs
			r.runNs += rt
		}
	}
	if empty != nil {
		if info, err := empty.Info(); err == nil {
			runs, ok1 := info.RunCount()
			rt, ok2 := info.Runtime()
			if ok1 && ok2 {
				r.runs += runs
				r.runNs += rt
			}
		}
	}
	if c != nil && mode != "off" {
		st, err := c.Stats()
		if err != nil {
			return err
		}
		r.events += st.Events
		r.drops += st.Dropped()
		r.secs += d.Seconds()
	}
	return nil
}

func selfCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// makeCgroup makes a cgroup2 directory under this process's own.
func makeCgroup(tag string) (string, error) {
	mount := ""
	for _, m := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(m, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			mount = m
			break
		}
	}
	if mount == "" {
		return "", errors.New("no cgroup2 mount")
	}
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	own := ""
	for _, l := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			own = p
		}
	}
	if own == "" {
		return "", errors.New("no cgroup2 line in /proc/self/cgroup")
	}
	dir := filepath.Join(mount, own, fmt.Sprintf("syscap-bench-%s-%d", tag, os.Getpid()))
	return dir, os.Mkdir(dir, 0o755)
}

func removeCgroup(dir string) {
	for i := 0; i < 100; i++ {
		if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "syscap bench: could not remove", dir)
}
