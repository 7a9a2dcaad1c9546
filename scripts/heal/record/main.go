// Command record runs the healing engine's fault-injection suite as real
// programs, each in a memory cgroup of its own under this process's
// memory cgroup, and records what the daemon's telemetry would see,
// every 0.5 s, with the lifecycle events and each injected failure's
// true time, into testdata/heal/runs.csv (format: scripts/heal/dataset).
//
// As root:  go run ./scripts/heal/record [-rounds 6] [-secs 20] [-out testdata/heal/runs.csv]
//
// -slow S stretches the failures S times (leak rates divided by S, the
// hang's onset multiplied by S, rounds up to 20·S s) so that a lead of
// minutes can be measured, as the "≥ 30 s ahead" needs; the crash
// looper is unchanged (its failure is 5 exits in 10 s) and the CPU hog is
// left out (it would spin both cores for minutes; CPU overload is a host
// condition the 20 s set measures):
//
//	go run ./scripts/heal/record -slow 10 -secs 200 -out testdata/heal/runs-slow.csv
//
// Bounded by construction: every agent runs under a 48 MiB memory limit,
// RLIMIT_NOFILE 256, the disk filler on a 16 MiB tmpfs the recorder
// mounts and unmounts; a round lasts -secs (≤ 20 s); all cgroups, mounts
// and processes it made are removed at the end of each round, also on an
// interrupt.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"aiosfs/scripts/heal/faults"
)

var (
	fault  = flag.String("fault", "", "internal: run this fault program")
	rate   = flag.Float64("rate", 1, "internal: the fault's rate")
	atF    = flag.Duration("at", 0, "internal: the fault's onset")
	hbF    = flag.String("hb", "", "internal: heartbeat file")
	dirF   = flag.String("dir", "", "internal: directory to fill")
	seedF  = flag.Uint64("seed", 1, "seed")
	nofile = flag.Uint64("nofile", 0, "internal: RLIMIT_NOFILE")
	rounds = flag.Int("rounds", 6, "rounds (every scenario once per round, all at once)")
	secs   = flag.Float64("secs", 20, "seconds per round (at most 20, or 20·slow)")
	slow   = flag.Float64("slow", 1, "stretch the failures this many times (≥ 1; see above)")
	out    = flag.String("out", "testdata/heal/runs.csv", "output CSV")
)

const (
	memLimit = 48 << 20
	fdLimit  = 256
	diskSize = 16 << 20
	interval = 500 * time.Millisecond
)

type scen struct {
	name  string
	rate  float64
	at    time.Duration
	kind  string // the failure kind injected, "" for healthy controls
	loops bool   // restarted on exit (the crash looper)
}

func scenarios(r int, rng *rand.Rand) []scen {
	u := func(lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }
	S := *slow
	ss := []scen{
		{name: "memleak", rate: u(2.5, 4) / S, kind: "MemoryExhaustion"},
		{name: "fdleak", rate: u(14, 20) / S, kind: "FDExhaustion"},
		{name: "diskfill", rate: u(1.0, 1.4) / S, kind: "DiskExhaustion"},
		{name: "crashloop", at: time.Duration(u(0.5, 1.5) * float64(time.Second)), kind: "CrashLoop", loops: true},
		{name: "hang", at: time.Duration(u(6, 9) * S * float64(time.Second)), kind: "Hang"},
		{name: "cpuhog", at: time.Duration(u(8, 10) * float64(time.Second)), kind: "CPUOverload"},
		{name: "steady"}, {name: "periodic"}, {name: "bursty"},
	}
	if S > 1 {
		ss = append(ss[:5], ss[6:]...) // no CPU hog in a stretched round
	}
	return ss
}

type agent struct {
	s       scen
	cg      string
	hb      string
	cmd     *exec.Cmd
	pid     int
	start   time.Time
	exits   []time.Time
	done    bool
	failed  bool
	lastCPU float64
	lastT   time.Time
	ooms    uint64
}

func main() {
	flag.Parse()
	if *fault != "" {
		if *nofile > 0 {
			faults.SetNofile(*nofile)
		}
		os.Exit(faults.Run(faults.Spec{Name: *fault, Rate: *rate, At: *atF, HB: *hbF, Dir: *dirF, Seed: *seedF, Settle: true}))
	}
	if *slow < 1 || *slow > 30 {
		fmt.Fprintln(os.Stderr, "heal record: -slow must be in [1, 30]")
		os.Exit(2)
	}
	if *secs > 20**slow {
		*secs = 20 * *slow
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "heal record: needs root (memory cgroups, tmpfs)")
		os.Exit(1)
	}
	parent, err := faults.OwnMemCgroup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "heal record:", err)
		os.Exit(1)
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, header)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	rng := rand.New(rand.NewPCG(*seedF, 77))
	for r := 0; r < *rounds; r++ {
		if interrupted := round(r, parent, scenarios(r, rng), w, stop); interrupted {
			break
		}
		fmt.Fprintf(os.Stderr, "heal record: round %d done\n", r)
	}
	w.Flush()
	f.Close()
}

const header = "round,scenario,t,mem,mem_max,fds,fd_max,disk_used,disk_size,cpu,cpu_s,procs,psi_cpu,hb_age,event"

func round(r int, parent string, ss []scen, w *bufio.Writer, stop chan os.Signal) bool {
	tmp, err := os.MkdirTemp("", "heal-rec-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return true
	}
	mnt := filepath.Join(tmp, "fs")
	os.Mkdir(mnt, 0o755)
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size="+strconv.Itoa(diskSize)); err != nil {
		fmt.Fprintln(os.Stderr, "heal record: tmpfs:", err)
		os.RemoveAll(tmp)
		return true
	}
	self, _ := os.Executable()
	var mu sync.Mutex
	var agents []*agent
	var rows []string
	t0 := time.Now()
	ev := func(a *agent, t time.Time, e string) {
		rows = append(rows, fmt.Sprintf("%d,%s,%.3f,,,,,,,,,,,,%s", r, a.s.name, t.Sub(t0).Seconds(), e))
	}
	var launch func(a *agent)
	launch = func(a *agent) {
		args := []string{"-fault", a.s.name, "-rate", fmt.Sprint(a.s.rate), "-at", a.s.at.String(), "-hb", a.hb,
			"-dir", mnt, "-seed", strconv.Itoa(r*100 + len(a.exits)), "-nofile", strconv.Itoa(fdLimit)}
		cmd := exec.Command(self, args...)
		cmd.Env = append(os.Environ(), "GOMAXPROCS=2", "GOGC=off")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return
		}
		os.WriteFile(filepath.Join(a.cg, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
		a.cmd, a.pid, a.start, a.lastCPU, a.lastT = cmd, cmd.Process.Pid, time.Now(), 0, time.Time{}
		ev(a, a.start, "start")
		go func(cmd *exec.Cmd) {
			err := cmd.Wait()
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			code := cmd.ProcessState.ExitCode()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = -int(ws.Signal())
			}
			_ = err
			a.exits = append(a.exits, now)
			ev(a, now, "exit:"+strconv.Itoa(code))
			if a.done {
				return
			}
			if oom := faults.OOMKills(a.cg); oom > a.ooms {
				a.ooms = oom
				ev(a, now, "oom")
			}
			switch {
			case code == 3 && !a.failed:
				a.failed = true
				ev(a, now, "fail:FDExhaustion")
			case code == 4 && !a.failed:
				a.failed = true
				ev(a, now, "fail:DiskExhaustion")
			case code == -9 && a.s.name == "memleak" && !a.failed:
				a.failed = true
				ev(a, now, "fail:MemoryExhaustion")
			}
			if a.s.loops {
				// systemd's start limit: the 5th exit within 10 s is the crash loop
				n := 0
				for _, t := range a.exits {
					if now.Sub(t) < 10*time.Second {
						n++
					}
				}
				if n >= 5 && !a.failed {
					a.failed = true
					ev(a, now, "fail:CrashLoop")
				}
				time.AfterFunc(100*time.Millisecond, func() { // RestartSec=100ms
					mu.Lock()
					defer mu.Unlock()
					if !a.done {
						launch(a)
					}
				})
			}
		}(cmd)
	}
	defer func() {
		mu.Lock()
		for _, a := range agents {
			a.done = true
			if a.cmd != nil && a.cmd.ProcessState == nil {
				a.cmd.Process.Kill()
			}
		}
		mu.Unlock()
		time.Sleep(300 * time.Millisecond)
		for _, a := range agents {
			for i := 0; i < 20; i++ {
				if err := os.Remove(a.cg); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			os.Remove(a.hb)
		}
		if err := syscall.Unmount(mnt, 0); err != nil {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
		os.RemoveAll(tmp)
	}()
	mu.Lock()
	for _, s := range ss {
		a := &agent{s: s, cg: filepath.Join(parent, fmt.Sprintf("heal-%d-%s", r, s.name)), hb: filepath.Join(tmp, s.name+".hb")}
		if err := os.Mkdir(a.cg, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "heal record:", err)
			mu.Unlock()
			return true
		}
		agents = append(agents, a)
		os.WriteFile(filepath.Join(a.cg, "memory.limit_in_bytes"), []byte(strconv.Itoa(memLimit)), 0o644)
		launch(a)
	}
	mu.Unlock()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	end := time.After(time.Duration(*secs * float64(time.Second)))
	for {
		select {
		case <-stop:
			return true
		case <-end:
			mu.Lock()
			for _, row := range rows {
				fmt.Fprintln(w, row)
			}
			mu.Unlock()
			return false
		case now := <-tick.C:
			psi := readPSI()
			var st syscall.Statfs_t
			syscall.Statfs(mnt, &st)
			used := int64(st.Blocks-st.Bfree) * st.Bsize
			mu.Lock()
			for _, a := range agents {
				row := sample(a, now, t0, used, psi)
				if row != "" {
					rows = append(rows, fmt.Sprintf("%d,%s,%s", r, a.s.name, row))
				}
				if a.s.name == "hang" && !a.failed && now.Sub(a.start) >= a.s.at {
					a.failed = true
					ev(a, a.start.Add(a.s.at), "fail:Hang")
				}
				if a.s.name == "cpuhog" && !a.failed && now.Sub(a.start) >= a.s.at {
					a.failed = true
					ev(a, a.start.Add(a.s.at), "fail:CPUOverload")
				}
			}
			mu.Unlock()
		}
	}
}

func sample(a *agent, now, t0 time.Time, diskUsed int64, psi float64) string {
	if a.cmd == nil || a.cmd.ProcessState != nil {
		return ""
	}
	mem := readInt(filepath.Join(a.cg, "memory.usage_in_bytes"))
	fds := 0
	if d, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", a.pid)); err == nil {
		fds = len(d)
	}
	cpuS := readCPU(a.pid)
	cpu := 0.0
	if !a.lastT.IsZero() {
		cpu = (cpuS - a.lastCPU) / now.Sub(a.lastT).Seconds()
	}
	a.lastCPU, a.lastT = cpuS, now
	hbAge := -1.0
	if fi, err := os.Stat(a.hb); err == nil {
		hbAge = now.Sub(fi.ModTime()).Seconds()
	}
	du, ds := int64(0), int64(0)
	if a.s.name == "diskfill" {
		du, ds = diskUsed, diskSize
	}
	return fmt.Sprintf("%.3f,%d,%d,%d,%d,%d,%d,%.3f,%.3f,1,%.2f,%.3f,-", now.Sub(t0).Seconds(), mem, memLimit, fds, fdLimit, du, ds, cpu, cpuS, psi, hbAge)
}

func readInt(p string) int64 {
	b, _ := os.ReadFile(p)
	v, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return v
}

func readCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100
}

func readPSI() float64 {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return -1
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "avg10="); ok {
			x, _ := strconv.ParseFloat(v, 64)
			return x
		}
		if f == "full" {
			break
		}
	}
	return -1
}
