// Command syscap measures the system-call capture's cost (issue 13) in one
// run: a child process making -n one-byte reads of /dev/zero, run in a
// cgroup2 directory this command makes (and removes), timed
//
//	none     no capture program loaded
//	off      the program attached (another, empty cgroup tracked), the
//	         workload's cgroup not tracked: the cost every task on the
//	         host pays while any agent is tracked (a cgroup id and a hash
//	         lookup a call); with nothing tracked the program is detached
//	on       the cgroup tracked, every call a record, read by the threat
//	         engine's syscall signal (engines/threat/syscalls: learning,
//	         then scoring, as in the daemon)
//	on-lim   as on with the default per-CPU rate limit (syscap's default)
//
// in -rounds rounds of the modes in turn (none, off, on, on-lim; ABAB by
// rounds), medians reported, with the slowdown against none, the events
// written per second, the drops, and the program's own mean run time per
// call (BPF run-time statistics, enabled for the run through
// BPF_ENABLE_STATS and off again when it ends; it counts every call on
// the host while the program is attached, tracked or not). "on" runs with the rate limit out of
// the way and a 16 MiB ring, so its drops are those of the ring alone:
// events/s with drops=0 there is a rate sustained without loss.
//
// Needs root; prints why and exits 0 when the capture cannot run here.
//
//	go run ./scripts/bench/syscap [-n 1000000] [-rounds 5]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"aiosfs/engines/threat/syscalls"
	"aiosfs/hal/syscap"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func main() {
	n := flag.Int("n", 1000000, "one-byte reads of /dev/zero per run")
	rounds := flag.Int("rounds", 5, "rounds of every mode")
	child := flag.Bool("child", false, "be the workload (internal)")
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
	// the kernel counts programs' run time while this is held
	if st, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err == nil {
		defer st.Close()
	}
	if err := run(dir, idle, *n, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "syscap bench:", err)
		removeCgroup(dir)
		removeCgroup(idle)
		os.Exit(1)
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

// once runs the workload in dir; it returns the child's wall time and
// CPU time (user+sys: the capture program runs in the child's system
// calls, so its cost is there).
func once(dir string, n int) (wall, cpu time.Duration, err error) {
	cg, err := os.Open(dir)
	if err != nil {
		return 0, 0, err
	}
	defer cg.Close()
	self, _ := os.Executable()
	cmd := exec.Command(self, "-child", "-n", strconv.Itoa(n))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("workload: %v %s", err, out)
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
}

func run(dir, idle string, n, rounds int) error {
	modes := []string{"none", "off", "on", "on-lim"}
	res := map[string]*result{}
	for _, m := range modes {
		res[m] = &result{}
	}
	for r := 0; r < rounds; r++ {
		order := modes
		if r%2 == 1 {
			order = []string{"on-lim", "on", "off", "none"}
		}
		for _, m := range order {
			if err := runMode(dir, idle, n, m, res[m]); err != nil {
				return err
			}
		}
	}
	base, cbase := median(res["none"].times), median(res["none"].cpu)
	fmt.Printf("syscap bench: %d one-byte reads of /dev/zero per run, %d rounds; medians of the child's wall and CPU time, and of this process's CPU (the ring reader and the signal)\n", n, rounds)
	fmt.Printf("%-7s %9s %8s %9s %8s %10s %10s %10s %10s %9s\n", "mode", "wall", "vs none", "cpu", "vs none", "reader cpu", "events", "events/s", "dropped", "prog ns")
	for _, m := range modes {
		r := res[m]
		md, mc := median(r.times), median(r.cpu)
		ev, dr, rate := "-", "-", "-"
		if m == "on" || m == "on-lim" {
			ev = strconv.FormatUint(r.events/uint64(rounds), 10)
			dr = strconv.FormatUint(r.drops/uint64(rounds), 10)
			rate = fmt.Sprintf("%.0f", float64(r.events)/r.secs)
		}
		pns := "-"
		if r.runs > 0 {
			pns = fmt.Sprintf("%.0f", float64(r.runNs.Nanoseconds())/float64(r.runs))
		}
		fmt.Printf("%-7s %9s %7.2fx %9s %7.2fx %10s %10s %10s %10s %9s\n", m, md.Round(time.Millisecond), float64(md)/float64(base),
			mc.Round(time.Millisecond), float64(mc)/float64(cbase), median(r.self).Round(time.Millisecond), ev, rate, dr, pns)
	}
	return nil
}

func runMode(dir, idle string, n int, mode string, r *result) error {
	var c *syscap.Capture
	var sig *syscalls.Signal
	if mode != "none" {
		cfg := syscap.Config{}
		if mode == "on" || mode == "off" {
			cfg.RatePerCPU = 1<<31 - 1
			cfg.RingBytes = 16 << 20
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
	before := selfCPU()
	d, cpu, err := once(dir, n)
	if err != nil {
		return err
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
