// Command recover is the healing engine's live recovery evaluation: the
// same faults, as real programs, supervised at once by a real aiosfs
// daemon (`heal restart=on-failure` and the engine's shipped defaults)
// and by a systemd-style supervisor written here at systemd's default
// operating point, with and without a watchdog; it reports, per fault
// and supervisor, how often the service was running at the end, the
// failures the kernel or the program saw, every outage (time to recover)
// and the availability.
//
// As root (cgroups, FUSE):  go run ./scripts/heal/recover [-rounds 3] [-secs 30]
//
// Nothing is tuned here: the daemon runs with `aiosfs serve`'s defaults
// and the baseline with systemd's, so every round is held out. Format of
// the report, and what each column means: docs/heal.md §9.
//
// Bounded: each program runs under a 48 MiB memory limit and
// RLIMIT_NOFILE 256, a round lasts -secs (≤ 60 s), and every process,
// cgroup and mount it made is removed at the end, also on an interrupt.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"aiosfs/ctl"
	"aiosfs/hal/spawn"
	"aiosfs/scripts/heal/faults"
)

var (
	rounds  = flag.Int("rounds", 3, "rounds (every fault under every supervisor once per round, all at once)")
	secs    = flag.Float64("secs", 30, "seconds per round (10..60)")
	verbose = flag.Bool("v", false, "print each run's story (starts, failures, outages)")

	// The fault program, this binary run again (scripts/heal/faults).
	fault   = flag.String("fault", "", "internal: run this fault program")
	rate    = flag.Float64("rate", 1, "internal")
	atF     = flag.Duration("at", 0, "internal")
	hbF     = flag.String("hb", "", "internal")
	dirF    = flag.String("dir", "", "internal")
	logF    = flag.String("log", "", "internal")
	plateau = flag.Float64("plateau", 0, "internal")
	cgF     = flag.String("cgroup", "", "internal")
	nofile  = flag.Uint64("nofile", 0, "internal")

	// The daemon under test, this binary run again (child.go).
	child      = flag.Bool("child", false, "internal: run as the daemon")
	childMount = flag.String("child-mount", "", "internal")
	childState = flag.String("child-state", "", "internal")
	childPfx   = flag.String("child-prefix", "", "internal")
)

const (
	memLimit = 48 << 20
	fdLimit  = 256
	// A systemd unit at its defaults (systemd.service(5), systemd.unit(5),
	// systemd-system.conf(5)): Restart=on-failure (the unit's choice; the
	// default is no), RestartSec=100ms, StartLimitIntervalSec=10s,
	// StartLimitBurst=5, no watchdog (WatchdogSec=0). The watchdog variant
	// sets WatchdogSec to three heartbeat intervals, the same allowance as
	// the healing engine's hang rule (engines/heal/predict.go).
	restartSec  = 100 * time.Millisecond
	startPeriod = 10 * time.Second
	startBurst  = 5
	watchdogSec = 1500 * time.Millisecond
	// A gap between two signs of progress longer than this is an outage
	// even with no restart (a hang); a restart's gap is always one.
	stall = time.Second
)

// A scenario is one fault, as its program runs it.
type scenario struct {
	name, prog string
	rate, plat float64
	at         time.Duration // the onset, or (crashloop) when its dependency comes up
	what       string
}

var scenarios = []scenario{
	{name: "crash", prog: "crashonce", at: 3 * time.Second, what: "crashes once 3 s in; runs fine once restarted"},
	{name: "crashloop", prog: "crashuntil", at: 12 * time.Second, what: "crashes 1 s after each start until its dependency is up, 12 s into the round"},
	{name: "memleak", prog: "memleak", rate: 3, plat: 60, what: "grows 3 MiB/s to a 60 MiB working set, over its 48 MiB limit"},
	{name: "fdleak", prog: "fdleak", rate: 20, what: "leaks 20 fds/s towards RLIMIT_NOFILE 256, exits on EMFILE"},
	{name: "hang", prog: "hangonce", at: 5 * time.Second, what: "blocks for good 5 s in (no CPU, no beats); runs fine once restarted"},
}

var supervisors = []string{"aiosfs", "systemd", "systemd+wd"}

// A run is one fault under one supervisor in one round.
type run struct {
	sup   string
	sc    scenario
	dir   string // markers, log, heartbeat file (the baselines')
	id    int    // aiosfs agent id
	memcg string
	unit  *unit
	oom   uint64
	end   time.Time
	res   result
}

func (r *run) log() string { return filepath.Join(r.dir, "log") }

func (r *run) args(self string) []string {
	hb := filepath.Join(r.dir, "hb")
	if r.sup == "aiosfs" {
		hb = filepath.Join(mnt, "agents", "{agent}", "heartbeat")
	}
	return []string{self, "-fault", r.sc.prog, "-rate", strconv.FormatFloat(r.sc.rate, 'g', -1, 64), "-at", r.sc.at.String(),
		"-plateau", strconv.FormatFloat(r.sc.plat, 'g', -1, 64), "-hb", hb, "-dir", r.dir, "-log", r.log(), "-nofile", strconv.Itoa(fdLimit)}
}

var (
	tmp, mnt, prefix, sdParent string
	daemonCmd                  *exec.Cmd
	daemonDone                 = make(chan error, 1)
	cleanOnce                  sync.Once
	units                      []*unit
	unitsMu                    sync.Mutex
)

func main() {
	// Agents are started through this binary as their shim (hal/spawn):
	// the daemon here is this program.
	spawn.MaybeShim()
	flag.Parse()
	switch {
	case *fault != "":
		if *nofile > 0 {
			faults.SetNofile(*nofile)
		}
		var cgs []string
		if *cgF != "" {
			cgs = []string{*cgF}
		}
		os.Exit(faults.Run(faults.Spec{Name: *fault, Rate: *rate, At: *atF, HB: *hbF, Dir: *dirF, Log: *logF, Plateau: *plateau, Cgroups: cgs}))
	case *child:
		runChild()
		return
	}
	if *secs < 10 || *secs > 60 || *rounds < 1 || *rounds > 20 {
		fmt.Fprintln(os.Stderr, "heal recover: -secs must be in [10, 60] and -rounds in [1, 20]")
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		// make eval runs unprivileged too: the rest of it is offline.
		fmt.Println("heal recover: skipped, needs root (a FUSE mount, agents' cgroups, memory limits)")
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "heal recover: interrupted; cleaning up")
		cleanup()
		os.Exit(1)
	}()
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "heal recover:", err)
		cleanup()
		os.Exit(1)
	}
	var all []*run
	for r := 0; r < *rounds; r++ {
		rs, err := round(r)
		all = append(all, rs...)
		if err != nil {
			fmt.Fprintln(os.Stderr, "heal recover:", err)
			cleanup()
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "heal recover: round %d done\n", r)
	}
	logTail := daemonLogTail()
	if err := cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, "heal recover: cleanup:", err)
		fmt.Fprintln(os.Stderr, logTail)
		os.Exit(1)
	}
	report(all)
}

// setup starts the daemon and makes the baselines' parent memory cgroup.
func setup() error {
	var err error
	if tmp, err = os.MkdirTemp("", "heal-recover-"); err != nil {
		return err
	}
	os.Chmod(tmp, 0o755) // agents run as root, but the mount point's parent must be searchable
	mnt = filepath.Join(tmp, "mnt")
	state := filepath.Join(tmp, "state")
	prefix = "aiosfs-recover-" + strconv.Itoa(os.Getpid())
	own, err := faults.OwnMemCgroup()
	if err != nil {
		return err
	}
	sdParent = filepath.Join(own, prefix+"-sd")
	if err := os.Mkdir(sdParent, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(tmp, "daemon.log"))
	if err != nil {
		return err
	}
	daemonCmd = exec.Command(self, "-child", "-child-mount", mnt, "-child-state", state, "-child-prefix", prefix)
	daemonCmd.Stdout, daemonCmd.Stderr = logf, logf
	daemonCmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := daemonCmd.Start(); err != nil {
		return err
	}
	go func() { daemonDone <- daemonCmd.Wait(); logf.Close() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.ReadFile(filepath.Join(mnt, "version")); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon's mount did not appear in 30 s:\n%s", daemonLogTail())
		}
	}
}

// round runs every scenario under every supervisor at once for -secs.
func round(r int) ([]*run, error) {
	self, _ := os.Executable()
	var rs []*run
	for _, sc := range scenarios {
		for _, sup := range supervisors {
			dir := filepath.Join(tmp, fmt.Sprintf("r%d-%s-%s", r, sc.name, sup))
			if err := os.Mkdir(dir, 0o755); err != nil {
				return rs, err
			}
			rs = append(rs, &run{sup: sup, sc: sc, dir: dir})
		}
	}
	t0 := time.Now()
	for _, x := range rs {
		var err error
		if x.sup == "aiosfs" {
			err = spawnAgent(r, x, self)
		} else {
			wd := time.Duration(0)
			if x.sup == "systemd+wd" {
				wd = watchdogSec
			}
			x.unit, err = startUnit(x, self, filepath.Join(sdParent, fmt.Sprintf("r%d-%s-%s", r, x.sc.name, x.sup)), wd)
		}
		if err != nil {
			return rs, fmt.Errorf("%s under %s: %v", x.sc.name, x.sup, err)
		}
	}
	// The crash looper's dependency comes up at its time, for all at once.
	for _, x := range rs {
		if x.sc.prog == "crashuntil" {
			time.AfterFunc(time.Until(t0.Add(x.sc.at)), func() { os.WriteFile(filepath.Join(x.dir, "ready"), nil, 0o644) })
		}
	}
	time.Sleep(time.Until(t0.Add(time.Duration(*secs * float64(time.Second)))))
	end := time.Now()
	for _, x := range rs {
		x.end = end
		if x.sup == "aiosfs" {
			x.oom = faults.OOMKills(x.memcg)
		} else {
			x.oom = faults.OOMKills(x.unit.cg)
		}
	}
	// Stop everything: the daemon's agents with restart=never first, so
	// the end is no failure to repair; the units by their own stop.
	var errs []error
	for _, x := range rs {
		if x.sup == "aiosfs" {
			errs = append(errs, writeCtl(fmt.Sprintf("agents/%d/ctl", x.id), "heal restart=never"))
			// EBUSY: no process to signal (a crash looper backing off).
			if err := writeCtl(fmt.Sprintf("agents/%d/ctl", x.id), "kill"); !errors.Is(err, syscall.EBUSY) {
				errs = append(errs, err)
			}
		} else {
			errs = append(errs, x.unit.stop())
		}
	}
	for _, x := range rs {
		x.res = analyse(x, t0)
	}
	return rs, errors.Join(errs...)
}

// spawnAgent starts x's program as an aiosfs agent with a 48 MiB limit
// and restart=on-failure; everything else is the daemon's default.
func spawnAgent(r int, x *run, self string) error {
	name := fmt.Sprintf("r%d-%s", r, x.sc.name)
	if err := writeCtl("ctl", "spawn "+name+" memmax=48M -- "+strings.Join(x.args(self), " ")); err != nil {
		return err
	}
	ents, err := os.ReadDir(filepath.Join(mnt, "agents"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		id, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join(mnt, "agents", e.Name(), "status"))
		if v, _ := ctl.Field(string(st), "name"); err == nil && v == name {
			x.id = id
			for _, l := range strings.Split(string(st), "\n") {
				if p, ok := strings.CutPrefix(l, "cgroup controller=memory path="); ok {
					x.memcg = p
				}
			}
			if x.memcg == "" { // its OOM kills would go uncounted, in its favour
				return fmt.Errorf("agent %d has no v1 memory cgroup in its status", id)
			}
			return writeCtl(fmt.Sprintf("agents/%d/ctl", id), "heal restart=on-failure")
		}
	}
	return fmt.Errorf("agent %s not listed after its spawn", name)
}

// writeCtl writes one line to a file of the daemon's tree.
func writeCtl(path, line string) error {
	f, err := os.OpenFile(filepath.Join(mnt, path), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%q > %s: %w", line, path, err)
	}
	return nil
}

// cleanup stops the units and the daemon (which ends its agents and
// removes their cgroups) and removes what this run made.
func cleanup() error {
	var errs []error
	cleanOnce.Do(func() {
		unitsMu.Lock()
		us := slices.Clone(units)
		unitsMu.Unlock()
		for _, u := range us {
			u.stop()
		}
		if daemonCmd != nil && daemonCmd.Process != nil {
			daemonCmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-daemonDone:
				if err != nil {
					errs = append(errs, fmt.Errorf("daemon: %v", err))
				}
			case <-time.After(60 * time.Second):
				daemonCmd.Process.Kill()
				<-daemonDone
				errs = append(errs, errors.New("daemon: did not stop in 60 s of SIGTERM; killed"))
			}
		}
		if sdParent != "" {
			errs = append(errs, removeTree(sdParent))
		}
		// Whatever the daemon left under its prefix (it should leave none).
		filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() && d.Name() == prefix {
				errs = append(errs, fmt.Errorf("the daemon left %s", p), removeTree(p))
				return filepath.SkipDir
			}
			return nil
		})
		if mnt != "" {
			if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), " "+mnt+" ") {
				errs = append(errs, fmt.Errorf("%s still mounted; detached", mnt))
				syscall.Unmount(mnt, syscall.MNT_DETACH)
			}
		}
		if tmp != "" {
			errs = append(errs, os.RemoveAll(tmp))
		}
	})
	return errors.Join(errs...)
}

// removeTree kills what is left in a cgroup tree this run made (its own
// programs) and removes the groups, deepest first.
func removeTree(top string) error {
	var dirs []string
	filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for _, d := range dirs {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var last error
	for _, d := range dirs {
		for try := 0; try < 100; try++ {
			if last = syscall.Rmdir(d); last == nil || errors.Is(last, syscall.ENOENT) {
				last = nil
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if last != nil {
			return fmt.Errorf("rmdir %s: %v", d, last)
		}
	}
	return nil
}

func daemonLogTail() string {
	f, err := os.Open(filepath.Join(tmp, "daemon.log"))
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, "daemon log: "+sc.Text())
	}
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}
