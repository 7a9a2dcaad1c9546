// Command demo is a one-minute unattended tour of aiosfs (`make demo`, as
// root). It starts its own daemon on a temporary mount point and state
// directory with a cgroup prefix of its own and mock GPUs, spawns four
// agents whose loads the engines can tell apart, turns the scheduler's
// enforcement on, and every few seconds prints what each engine is doing
// and which file says so:
//
//	steady     a quarter of a core, always            cpumax held just above it
//	periodic   a whole core for 1.25 s, idle 1.25 s     class periodic, period 2.5 s
//	growing    +1 MiB every quarter second to 128 MiB   class growing, memmax raised ahead of it
//	misbehave  a child that eats memory past memmax=48M  the kernel's OOM kill, then sched's oom-bump
//
// plus a memory region written and read through the tree (mem engine), a
// GPU reservation on go-nvml's mock DGX A100 (gpu engine), a fork bomb
// under pidsmax=64 that the threat engine's default policy quarantines
// (threat/quarantine, agents/N/threat, the kernel's freezer.state FROZEN;
// then root kills and releases it), and a crash looper supervised with
// restart=on-failure that the healing engine restarts, then backs off
// (agents/N/health, heal/status). Then it stops the daemon (SIGTERM: it
// stops its agents, removes its cgroups and unmounts) and checks that no
// agent process, cgroup, mount or BPF pin (/sys/fs/bpf/aiosfs/PREFIX-agent-N)
// is left, exiting 1 if one is.
//
//	go run ./scripts/demo [-aiosfs bin/aiosfs] [-duration 60s] [-dir DIR]
//
// The agents are this program run again with -work NAME.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"aiosfs/ctl"
	"aiosfs/fs/p9fs"
)

func main() {
	bin := flag.String("aiosfs", "bin/aiosfs", "the aiosfs binary")
	dur := flag.Duration("duration", 60*time.Second, "how long the tour lasts, start to stop (at least 30s)")
	dir := flag.String("dir", "", "where to make the mount point and state directory (default: a new temporary directory, removed at the end)")
	work := flag.String("work", "", "run one of the agents' loads (steady, periodic, growing, misbehave, hog) instead of the tour")
	flag.Parse()
	if *work != "" {
		runWork(*work)
		return
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: run as root (it mounts FUSE and makes cgroups)")
		os.Exit(1)
	}
	if *dur < 30*time.Second {
		*dur = 30 * time.Second
	}
	if err := tour(*bin, *dir, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// say prints one line of the tour, with the seconds since it began.
var t0 = time.Now()

func say(format string, args ...any) {
	fmt.Printf("[%4.1fs] %s\n", time.Since(t0).Seconds(), fmt.Sprintf(format, args...))
}

// show prints a command to run and what it prints now.
func (d *demo) show(rel string, filter func(string) bool) {
	b, err := os.ReadFile(filepath.Join(d.mount, rel))
	fmt.Printf("    $ cat %s\n", filepath.Join(d.mount, rel))
	if err != nil {
		fmt.Printf("      (%v)\n", err)
		return
	}
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if filter == nil || filter(l) {
			fmt.Printf("      %s\n", l)
		}
	}
}

type demo struct {
	bin, dir, mount, state, prefix string
	daemon                         *exec.Cmd
	exited                         chan error
	ids                            map[string]int
	pids                           map[int]bool // every process the agents ever had
	pidMu                          sync.Mutex
	closeEvents                    func() // ends the events stream
	extra                          []int  // the threat and heal steps' agents
}

func tour(bin, dir string, dur time.Duration) (err error) {
	bin, err = filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%v (make build first)", err)
	}
	temp := dir == ""
	if temp {
		if dir, err = os.MkdirTemp("", "aiosfs-demo-"); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	os.Chmod(dir, 0o755)
	d := &demo{bin: bin, dir: dir, mount: filepath.Join(dir, "aios"), state: filepath.Join(dir, "state"),
		prefix: fmt.Sprintf("aiosfs-demo-%d", os.Getpid()), ids: map[string]int{}, pids: map[int]bool{}}
	say("aiosfs demo: a daemon of its own at %s (state %s, cgroups under .../%s, mock GPUs)", d.mount, d.state, d.prefix)
	if err := d.start(); err != nil {
		return err
	}
	// Stop the daemon however the tour ends: at its end, on an error, on
	// Ctrl-C or SIGTERM.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	stopped := make(chan struct{})
	var stopOnce sync.Once
	stop := func() error {
		var err error
		stopOnce.Do(func() { err = d.stop(); close(stopped) })
		return err
	}
	go func() {
		select {
		case s := <-sig:
			say("%v: stopping", s)
			stop()
			os.Exit(1)
		case <-stopped:
		}
	}()
	runErr := d.run(dur)
	stopErr := stop()
	leftErr := d.leftBehind()
	if temp && leftErr == nil {
		os.RemoveAll(dir)
	}
	return errors.Join(runErr, stopErr, leftErr)
}

func (d *demo) start() error {
	d.daemon = exec.Command(d.bin, "serve", "-mount", d.mount, "-state", d.state, "-cgroup-prefix", d.prefix,
		"-interval", "250ms", "-grace", "1s", "-gpu", "mock:dgxa100")
	logf, err := os.Create(filepath.Join(d.dir, "daemon.log"))
	if err != nil {
		return err
	}
	d.daemon.Stdout, d.daemon.Stderr = logf, logf
	// If the demo dies, the daemon shuts down cleanly with it.
	d.daemon.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.daemon.Start(); err != nil {
		return err
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.daemon.Wait(); logf.Close() }()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(d.mount, "version")); err == nil {
			break
		}
		select {
		case err := <-d.exited:
			b, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log"))
			return fmt.Errorf("daemon exited: %v\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			d.daemon.Process.Kill()
			return errors.New("the daemon did not serve its tree in 15s")
		}
	}
	say("serving; its log is %s. In another shell, watch it live:", filepath.Join(d.dir, "daemon.log"))
	fmt.Printf("    $ %s top %s        # or: %s top unix!%s\n", d.bin, d.mount, d.bin, filepath.Join(d.state, "9p.sock"))
	return nil
}

// ctl writes one line to a ctl, as echo does.
func (d *demo) ctl(rel, line string) error {
	q := "'" // the line as a shell would take it (the fork bomb's has ')
	if strings.Contains(line, "'") {
		q = `"`
	}
	fmt.Printf("    $ echo %s%s%s > %s\n", q, line, q, filepath.Join(d.mount, rel))
	f, err := os.OpenFile(filepath.Join(d.mount, rel), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(line + "\n"))
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("%s: %q: %w", rel, line, err)
	}
	return nil
}

func (d *demo) read(rel string) string {
	b, _ := os.ReadFile(filepath.Join(d.mount, rel))
	return string(b)
}

// field is key's value in the first line of text that has it.
// field is the value of key in text's records (ctl.Field).
func field(text, key string) string {
	v, _ := ctl.Field(text, key)
	return v
}

var agentNames = []string{"steady", "periodic", "growing", "misbehave"}

// run is the tour proper, from the first spawn to just before the stop.
func (d *demo) run(dur time.Duration) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	end := t0.Add(dur - 5*time.Second) // the stop takes a few seconds
	at := func(frac float64) {         // sleep to a point of the tour
		time.Sleep(time.Until(t0.Add(time.Duration(frac * float64(dur-5*time.Second)))))
	}

	say("1. the agents: four loads the scheduler should tell apart")
	limits := map[string]string{"misbehave": " memmax=48M"}
	for _, name := range agentNames {
		if err := d.ctl("ctl", fmt.Sprintf("spawn %s%s -- %s -work %s", name, limits[name], self, name)); err != nil {
			return err
		}
	}
	ids, _ := os.ReadDir(filepath.Join(d.mount, "agents"))
	for _, e := range ids {
		id, err := strconv.Atoi(e.Name())
		if err != nil { // agents/README
			continue
		}
		d.ids[field(d.read("agents/"+e.Name()+"/status"), "name")] = id
	}
	if len(d.ids) != len(agentNames) {
		return fmt.Errorf("spawned %d agents, found %v", len(agentNames), d.ids)
	}
	go d.watchPids(end)
	d.events(end) // opens the stream now, reads it in a goroutine
	steady := fmt.Sprintf("agents/%d/", d.ids["steady"])
	say("each agent is a directory; its status names its cgroups (the kernel's own files):")
	d.show(steady+"status", func(l string) bool {
		return strings.HasPrefix(l, "agent ") || strings.Contains(l, "controller=memory") || strings.Contains(l, "controller=cpu ")
	})

	say("2. the scheduler: decide every second, trust new agents after 24 samples (6 s), and enforce")
	for _, line := range []string{"interval 1s", "warmup 24", "enforce on"} {
		if err := d.ctl("sched/ctl", line); err != nil {
			return err
		}
	}

	say("3. the memory engine: a region served as a file, behind its own page cache")
	if err := d.memRegion(); err != nil {
		return err
	}
	say("4. the GPU scheduler (mock DGX A100): reserve 8 GiB and half a device for the steady agent")
	if err := d.ctl(steady+"ctl", "gpu 8G share=0.5"); err != nil {
		return err
	}
	d.show(steady+"gpu", nil)
	d.show("gpu/status", nil)

	if err := d.threatStep(); err != nil {
		return err
	}
	if err := d.healStep(); err != nil {
		return err
	}

	at(0.45)
	say("7. what the scheduler has learned: each agent's pattern (class, period, slope)")
	for _, name := range agentNames {
		fmt.Printf("  %s:\n", name)
		d.show(fmt.Sprintf("agents/%d/pattern", d.ids[name]), func(l string) bool {
			return strings.HasPrefix(l, "resource=cpu") || strings.HasPrefix(l, "resource=mem")
		})
	}
	at(0.6)
	say("8. its forecasts (point, p90, p99 per horizon) for the growing agent's memory")
	d.show(fmt.Sprintf("agents/%d/predict", d.ids["growing"]), func(l string) bool { return strings.HasPrefix(l, "resource=mem") })
	at(0.75)
	say("9. the limits it has set, and why (alloc), for every agent; the kernel holds the same numbers")
	for _, name := range agentNames {
		fmt.Printf("  %s:\n", name)
		d.show(fmt.Sprintf("agents/%d/alloc", d.ids[name]), func(l string) bool {
			return strings.HasPrefix(l, "limit=cpumax") || strings.HasPrefix(l, "limit=memmax") || strings.HasPrefix(l, "limit=cpuperiod")
		})
	}
	grow := d.read(fmt.Sprintf("agents/%d/status", d.ids["growing"]))
	if m := regexp.MustCompile(`(?m)^cgroup controller=memory path=(\S+)$`).FindStringSubmatch(grow); m != nil {
		b, _ := os.ReadFile(filepath.Join(m[1], "memory.limit_in_bytes"))
		fmt.Printf("    $ cat %s/memory.limit_in_bytes\n      %s", m[1], b)
	}
	at(0.87)
	say("10. the misbehaving agent: its child went past memmax and the kernel killed it")
	mis := fmt.Sprintf("agents/%d/", d.ids["misbehave"])
	d.show(mis+"stat", nil)
	say("   the memory engine's view of an agent: working set against resident, locality (and one line per mapping)")
	d.show(fmt.Sprintf("agents/%d/mem/pattern", d.ids["growing"]), func(l string) bool { return strings.HasPrefix(l, "samples=") })
	at(0.95)
	say("11. the scheduler's totals: decisions made and limits written")
	d.show("sched/status", func(l string) bool { return strings.HasPrefix(l, "enforce=") })
	d.show("mem/status", nil)
	time.Sleep(time.Until(end))
	return nil
}

// agentID is the number of the agent named name, from its status.
func (d *demo) agentID(name string) (int, error) {
	ids, _ := os.ReadDir(filepath.Join(d.mount, "agents"))
	for _, e := range ids {
		id, err := strconv.Atoi(e.Name())
		if err == nil && field(d.read("agents/"+e.Name()+"/status"), "name") == name {
			return id, nil
		}
	}
	return 0, fmt.Errorf("no agent named %s", name)
}

// waitFor polls ok every 50 ms until it holds or d passes.
func waitFor(d time.Duration, ok func() bool) bool {
	for deadline := time.Now().Add(d); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// cgroupPath is the directory of the agent's cgroup for controller, from
// its status ("" if it has none).
func cgroupPath(status, controller string) string {
	m := regexp.MustCompile(`(?m)^cgroup controller=` + regexp.QuoteMeta(controller) + ` path=(\S+)$`).FindStringSubmatch(status)
	if m == nil {
		return ""
	}
	return m[1]
}

// threatStep spawns a fork bomb under pidsmax=64, waits for the default
// policy to quarantine it (frozen, held, its network cut), shows where
// that is said, then kills and releases it as root.
func (d *demo) threatStep() error {
	say("5. the threat engine: a fork bomb under pidsmax=64; the default policy quarantines it, no operator")
	start := time.Now()
	if err := d.ctl("ctl", "spawn forkbomb pidsmax=64 -- /bin/bash -c 'f(){ f | f & }; f; wait'"); err != nil {
		return err
	}
	id, err := d.agentID("forkbomb")
	if err != nil {
		return err
	}
	d.extra = append(d.extra, id)
	dir := fmt.Sprintf("agents/%d/", id)
	if !waitFor(10*time.Second, func() bool {
		return strings.Contains(d.read("threat/quarantine"), fmt.Sprintf("agent=%d ", id))
	}) {
		d.show(dir+"threat", nil)
		return fmt.Errorf("the fork bomb (agent %d) was not quarantined in 10s", id)
	}
	say("quarantined %.1fs after the spawn: frozen, held (its ctl is root's alone), network cut", time.Since(start).Seconds())
	d.show("threat/quarantine", nil)
	d.show(dir+"threat", nil)
	if fz := cgroupPath(d.read(dir+"status"), "freezer"); fz != "" {
		b, _ := os.ReadFile(filepath.Join(fz, "freezer.state"))
		fmt.Printf("    $ cat %s/freezer.state\n      %s", fz, b)
		if p := cgroupPath(d.read(dir+"status"), "pids"); p != "" {
			b, _ := os.ReadFile(filepath.Join(p, "pids.current"))
			fmt.Printf("    $ cat %s/pids.current\n      %s", p, b)
		}
	}
	say("only root lifts it: kill (delivered when it thaws), then release")
	if field(d.read(dir+"status"), "state") != "exited" {
		// Its leader may have ended already, refused a fork: then there
		// is nothing to kill, and the release still lifts the cut.
		if err := d.ctl("threat/ctl", fmt.Sprintf("kill %d", id)); err != nil && field(d.read(dir+"status"), "state") != "exited" {
			return err
		}
	}
	if err := d.ctl("threat/ctl", fmt.Sprintf("release %d", id)); err != nil {
		return err
	}
	if !waitFor(10*time.Second, func() bool { return field(d.read(dir+"status"), "state") == "exited" }) {
		return fmt.Errorf("the fork bomb (agent %d) did not end in 10s after kill and release", id)
	}
	d.show(dir+"status", func(l string) bool { return strings.HasPrefix(l, "agent ") })
	d.show("threat/status", nil)
	return nil
}

// healStep spawns a crash looper, opts it in to supervision with
// restart=on-failure and a short back-off, and shows its restarts and
// the back-off once the restart intensity (5 starts in 10 s) is spent.
func (d *demo) healStep() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	say("6. the healing engine: a crash looper (up 0.3 s, exit 1), supervised with restart=on-failure")
	if err := d.ctl("ctl", fmt.Sprintf("spawn crashloop -- %s -work crash", self)); err != nil {
		return err
	}
	id, err := d.agentID("crashloop")
	if err != nil {
		return err
	}
	d.extra = append(d.extra, id)
	dir := fmt.Sprintf("agents/%d/", id)
	if err := d.ctl(dir+"ctl", "heal restart=on-failure backoff=3s..6s"); err != nil {
		return err
	}
	if !waitFor(15*time.Second, func() bool { return field(d.read(dir+"health"), "state") == "backoff" }) {
		d.show(dir+"health", nil)
		return fmt.Errorf("the crash looper (agent %d) was not backed off in 15s", id)
	}
	say("restarted at once %s times (its intensity: 5 starts in 10 s), then held back: state=backoff, backoff= seconds to the next start",
		field(d.read(dir+"status"), "restarts"))
	d.show(dir+"health", func(l string) bool { return strings.HasPrefix(l, "agent=") })
	d.show(dir+"status", func(l string) bool { return strings.HasPrefix(l, "agent ") })
	d.show("heal/status", nil)
	d.show("heal/failures", func(l string) bool { return strings.Contains(l, fmt.Sprintf("agent=%d ", id)) })
	say("supervision off again: it stays down")
	return d.ctl(dir+"ctl", "heal off")
}

// memRegion makes a region, writes 4 MiB through its data file and reads
// it back twice, then shows the cache's counters.
func (d *demo) memRegion() error {
	if err := d.ctl("mem/ctl", "alloc demo 8M cache=1M"); err != nil {
		return err
	}
	data := filepath.Join(d.mount, "mem/regions/demo/data")
	fmt.Printf("    $ dd if=/dev/urandom of=%s bs=64k count=64; cat %s > /dev/null  (twice)\n", data, data)
	f, err := os.OpenFile(data, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for off := int64(0); off < 4<<20; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf, off); err != nil {
			return err
		}
	}
	for pass := 0; pass < 2; pass++ {
		for off := int64(0); off < 4<<20; off += int64(len(buf)) {
			if _, err := f.ReadAt(buf, off); err != nil {
				return err
			}
		}
	}
	d.show("mem/regions/demo/info", nil)
	d.show("mem/status", nil)
	return nil
}

// events prints the scheduler's and the kernel's notable events as they
// come: each limit change once per agent, limit and reason, OOM kills,
// and any engine's error.
//
// It reads over 9P: a read blocked in FUSE would hold the mount busy, and
// closing a 9P file ends its read at once.
func (d *demo) events(end time.Time) {
	c, err := p9fs.Dial("unix!" + filepath.Join(d.state, "9p.sock"))
	if err != nil {
		say("events: %v", err)
		return
	}
	f, err := c.Open("/events.follow", false)
	if err != nil {
		c.Close()
		say("events: %v", err)
		return
	}
	var once sync.Once
	d.closeEvents = func() { once.Do(func() { f.Close(); c.Close() }) }
	go d.printEvents(f, end)
}

func (d *demo) printEvents(f io.Reader, end time.Time) {
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() && time.Now().Before(end) {
		l := sc.Text()
		src, kind := field(l, "source"), field(l, "kind")
		if src == "proc" {
			continue
		}
		key := src + " " + kind + " " + field(l, "agent")
		if r := regexp.MustCompile(`reason="?([^" ]+(?: [^" ]+)?)`).FindStringSubmatch(l); r != nil {
			key += " " + field(l, "limit") + r[1]
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		say("event: %s", l)
	}
}

// watchPids records every process the agents have, to check at the end
// that none is left.
func (d *demo) watchPids(end time.Time) {
	for time.Now().Before(end) {
		for _, id := range d.ids {
			for _, p := range strings.Split(field(d.read(fmt.Sprintf("agents/%d/status", id)), "pids"), ",") {
				if n, err := strconv.Atoi(p); err == nil {
					d.pidMu.Lock()
					d.pids[n] = true
					d.pidMu.Unlock()
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (d *demo) stop() error {
	if d.closeEvents != nil {
		d.closeEvents()
	}
	say("stopping the daemon (SIGTERM): it stops its agents, removes its cgroups and unmounts")
	d.daemon.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		if err != nil {
			return fmt.Errorf("daemon exit: %v (log: %s)", err, filepath.Join(d.dir, "daemon.log"))
		}
		return nil
	case <-time.After(20 * time.Second):
		d.daemon.Process.Kill()
		<-d.exited
		return errors.New("the daemon did not stop in 20s; killed it")
	}
}

// bpfPins is where the daemon pins its network cuts (hal/netcut).
const bpfPins = "/sys/fs/bpf/aiosfs"

// leftBehind checks that no agent process, cgroup, mount or BPF pin is left.
func (d *demo) leftBehind() error {
	var left []string
	self, _ := os.Executable()
	d.pidMu.Lock()
	pids := make([]int, 0, len(d.pids))
	for p := range d.pids {
		pids = append(pids, p)
	}
	d.pidMu.Unlock()
	sort.Ints(pids)
	for _, p := range pids {
		// A pid that lives on is an agent's only if it still runs our load.
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if err == nil && strings.HasPrefix(string(b), self+"\x00-work\x00") {
			left = append(left, fmt.Sprintf("process %d", p))
		}
	}
	filepath.WalkDir("/sys/fs/cgroup", func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		if strings.HasPrefix(e.Name(), d.prefix) {
			left = append(left, "cgroup "+p)
			return filepath.SkipDir
		}
		return nil
	})
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], d.dir) {
				left = append(left, "mount "+f[4])
			}
		}
	}
	// The threat engine's network cuts: pinned BPF programs, one
	// directory per quarantined agent (PREFIX-agent-N).
	pins, _ := filepath.Glob(filepath.Join(bpfPins, d.prefix+"-agent-*"))
	for _, p := range pins {
		left = append(left, "BPF pin "+p)
	}
	if len(left) > 0 {
		return fmt.Errorf("left behind: %s", strings.Join(left, ", "))
	}
	say("clean: no agent process (%d seen), no cgroup under %s, no mount under %s, no BPF pin %s/%s-agent-*", len(pids), d.prefix, d.dir, bpfPins, d.prefix)
	return nil
}
