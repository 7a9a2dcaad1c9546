package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/gdamore/tcell/v2"
)

// The scheduler's files as docs/sched.md shows them.
const (
	topStatus = `agent id=4 name=grow state=running pid=9819 pids=9819 uid=0 gid=0 prio=0 caps=- weight=- cpumax=0.245 cpuperiod=0.1 cpus=- memhigh=214061861 memmax=216310671 started=1795631721.683 ended=0 exit=- restarts=0 spawned=1
cmd argv="sh -c 'grow'"
`
	topStat  = "time=1795631723.655 cpu=0.041 cpu_seconds=0.067 rss=3317760 mem=173228032 threads=2 procs=2\n"
	topAlloc = `enforce=on mode=auto weight=100
limit=cpumax value=0.245 forecast=0.041 floor=0.245 share=0.245 reason=predicted-fall
limit=cpuperiod value=0.100 reason=slice-periodic
limit=memhigh value=214061861 forecast=175864200 floor=0 reason=predicted-fall
limit=memmax value=216310671 forecast=180287024 floor=0 reason=predicted-fall
`
	topPredict = `resource=cpu horizon=1.000 point=1.000 p90=1.010 p99=1.016 model=last weight=0.491
resource=cpu horizon=5.000 point=0.998 p90=0.050 p99=1.021 model=last weight=0.747
resource=cpu horizon=30.000 point=0.999 p90=0.999 p99=0.999 model=last weight=1.000
resource=mem horizon=5.000 point=1 p90=180287024 p99=2 model=last weight=1
resource=net horizon=5.000 point=1 p90=1 p99=2 model=last weight=1
`
	topPattern = `resource=cpu class=periodic period=0.600 confidence=0.664 typical=0.000 peak=0.146 slope=-0.001 samples=160 forecaster=auto
resource=mem class=growing period=0.000 confidence=0.993 typical=101666816.000 peak=173228032.000 slope=7273753.818 samples=160 forecaster=auto
`
	// The threat and healing engines' files as docs/threat.md §7 and
	// docs/heal.md §4 show them.
	topThreat = "score=0.971 type=ResourceExhaustion confidence=0.830 action=quarantine escalate=1 trend=rising source=ml top=procs@1s:0.410 warn=- time=1764795600.000\n"
	topHealth = `agent=4 score=0.120 trend=Critical state=backoff restart=on-failure starts=5 backoff=2.500 breaker=closed
failure=MemoryExhaustion p=0.930 eta=12.400 source=prior reason="mem 31457280 of 41943040 (75%), +1.049e+06/s, tau 0.98 over 16.0s"
component=agent:4 metric=mem value=31457280.000 baseline=20000000.000 limit=41943040.000 trend=Degrading score=0.500
`
)

func TestTopRow(t *testing.T) {
	a, ok := parseTopAgent(4, topStatus)
	if !ok {
		t.Fatal("status not parsed")
	}
	a.addStat(topStat)
	a.addSched(topAlloc, topPredict, topPattern)
	a.addThreat(topThreat)
	a.addHealth(topHealth)
	got := strings.Join(a.cells(), "|")
	want := "4|grow|running|0.04|0.24|0.24|17%|165MiB|206MiB|206MiB|80%|0.05c 172MiB @5s|periodic 600ms/growing|0.97 ResEx|0.12 backoff|sh -c 'grow'"
	if got != want {
		t.Errorf("row\n got %s\nwant %s", got, want)
	}
	if w := strings.Join(a.AllocWhy, ", "); w != "cpumax 0.24 (predicted-fall), cpuperiod 100ms (slice-periodic), memhigh 204MiB (predicted-fall), memmax 206MiB (predicted-fall)" {
		t.Errorf("alloc reasons %q", w)
	}
	if f := strings.Join(a.Forecasts, "; "); f != "cpu p90: 1s 1.01, 5s 0.05, 30s 1.00; mem p90: 5s 172MiB" {
		t.Errorf("forecasts %q", f)
	}
	if !a.threatActs() {
		t.Error("action=quarantine: threatActs false")
	}
	// Not sampled, no scheduler files, no limits, no assessment yet:
	// dashes, never NaN.
	b, _ := parseTopAgent(5, strings.Replace(topStatus, "cpumax=0.245", "cpumax=max", 1))
	b.addSched("", "", "")
	b.addThreat("-\n")
	b.addHealth("")
	for _, c := range b.cells() {
		if strings.Contains(c, "NaN") || strings.Contains(c, "Inf") {
			t.Errorf("unsampled row %q", b.cells())
		}
	}
	if c := b.cells(); c[3] != "-" || c[4] != "max" || c[6] != "-" || c[11] != "-" || c[12] != "-" || c[13] != "-" || c[14] != "-" || b.threatActs() {
		t.Errorf("unsampled row %q", c)
	}
}

func TestTopSortAndEvents(t *testing.T) {
	nan := math.NaN()
	as := []topAgent{{ID: 1, CPU: 0.1, Mem: 9, Threat: 0.2, Health: 1}, {ID: 2, CPU: nan, Mem: nan, Threat: nan, Health: nan},
		{ID: 3, CPU: 0.9, Mem: 1, Threat: 0.05, Health: 0.3}, {ID: 4, CPU: 0.1, Mem: 5, Threat: 0.97, Health: 0.9}}
	ids := func() (s []int) {
		for _, a := range as {
			s = append(s, a.ID)
		}
		return
	}
	sortAgents(as, "cpu")
	if fmt.Sprint(ids()) != "[3 1 4 2]" {
		t.Errorf("by cpu: %v", ids())
	}
	sortAgents(as, "mem")
	if fmt.Sprint(ids()) != "[1 4 3 2]" {
		t.Errorf("by mem: %v", ids())
	}
	sortAgents(as, "threat") // the highest score first
	if fmt.Sprint(ids()) != "[4 1 3 2]" {
		t.Errorf("by threat: %v", ids())
	}
	sortAgents(as, "health") // the lowest score (the sickest) first
	if fmt.Sprint(ids()) != "[3 4 1 2]" {
		t.Errorf("by health: %v", ids())
	}
	want := time.Unix(1795630043, 0).Format("15:04:05") + " source=agent kind=freeze agent=1"
	if got, ok := eventLine("time=1795630043.931 seq=189 source=agent kind=freeze agent=1"); got != want || !ok {
		t.Errorf("eventLine: %q %v, want %q", got, ok, want)
	}
	if _, ok := eventLine("time=1795630043.946 seq=191 source=proc kind=exit agent=1 pid=26107 status=0"); ok {
		t.Errorf("eventLine shows a process's exit")
	}
}

// ansi matches the terminal control sequences tcell writes.
var ansi = regexp.MustCompile(`\x1b(\[[0-9;?<=>]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78cDEHM])`)

// screenText is what was written to the terminal with the control
// sequences and blanks taken out: tcell skips cells that did not change,
// blanks among them, so words on the screen are joined.
func screenText(raw string) string {
	s := ansi.ReplaceAllString(raw, "")
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\r' || r == '\n' || r < 0x20 {
			return -1
		}
		return r
	}, s)
}

// TestTop drives `aiosfs top` in a real pseudo-terminal against a real
// daemon, through its FUSE mount and over 9P: the screen shows a spawned
// agent with the threat engine's and the healing engine's columns, f
// freezes it (the kernel's freezer.state says FROZEN), t thaws it, Q and y
// quarantine it through threat/ctl (FROZEN again, threat/quarantine names
// it; root releases it), a refused limit from the l prompt shows the
// daemon's reason, q quits.
func TestTop(t *testing.T) {
	requireRoot(t)
	dir, err := os.MkdirTemp("", "aiosfs-top-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	mount, state := filepath.Join(dir, "aios"), filepath.Join(dir, "state")
	prefix := fmt.Sprintf("aiosfs-top-%d", os.Getpid())
	d := startDaemon(t, mount, state, prefix)
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.term()
		}
		if left := cgroupsLeft(prefix); len(left) > 0 {
			t.Errorf("cgroups left behind: %v", left)
		}
	})
	if out, rc := d.sh(`echo 'spawn toptest memmax=64M -- sh -c "while :; do sleep 0.2; done"' > ctl`); rc != 0 {
		t.Fatalf("spawn: %q\n%s", out, d.out)
	}
	d.waitFor("the agent sampled", func() bool { return strings.Contains(d.read("agents/1/stat"), "procs=") })
	freezer := cgroupPath(d.read("agents/1/status"), "freezer")
	if freezer == "" {
		t.Skip("no v1 freezer path in status (cgroup v2 host)")
	}
	self, _ := os.Executable()
	for i, where := range []string{mount, "unix!" + filepath.Join(state, "9p.sock")} {
		limitMiB := 80 + 16*i
		t.Run(map[bool]string{true: "fuse", false: "9p"}[where == mount], func(t *testing.T) {
			cmd := exec.Command(self, "top", "-i", "300ms", where)
			cmd.Env = append(os.Environ(), beDaemon+"=1", "TERM=xterm-256color", "LANG=C.UTF-8")
			tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 200})
			if err != nil {
				t.Fatal(err)
			}
			defer tty.Close()
			screen := &syncBuffer{}
			go func() {
				b := make([]byte, 32<<10)
				for {
					n, err := tty.Read(b)
					screen.Write(b[:n])
					if err != nil {
						return
					}
				}
			}()
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				if cmd.ProcessState == nil {
					cmd.Process.Signal(syscall.SIGKILL)
					<-exited
				}
			})
			wait := func(what string, ok func() bool) {
				t.Helper()
				for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("timed out waiting for %s; screen (the end):\n%q", what, tail(screenText(screen.String()), 3000))
					}
				}
			}
			onScreen := func(s string) func() bool {
				return func() bool { return strings.Contains(screenText(screen.String()), s) }
			}
			wait("the header and the agent on screen", func() bool {
				s := screenText(screen.String())
				return strings.Contains(s, "aiosfstop") && strings.Contains(s, "toptest") && strings.Contains(s, "sh-c'while")
			})
			tty.Write([]byte("f"))
			wait("freezer.state FROZEN", func() bool { return kernel(t, freezer, "freezer.state") == "FROZEN" })
			wait("the frozen state on screen", onScreen("frozen"))
			tty.Write([]byte("t"))
			wait("freezer.state THAWED", func() bool { return kernel(t, freezer, "freezer.state") == "THAWED" })
			// THREAT and HEALTH: the engines' assessments of the agent.
			wait("the THREAT and HEALTH columns with the agent's values", func() bool {
				s := screenText(screen.String())
				return strings.Contains(s, "PATTERNTHREATHEALTHCMD") && threatCellRE.MatchString(s) && healthCellRE.MatchString(s)
			})
			s := screenText(screen.String())
			t.Logf("agents/1/threat: %sagents/1/health: %s on screen: %q %q", d.read("agents/1/threat"),
				strings.SplitN(d.read("agents/1/health"), "\n", 2)[0], threatCellRE.FindString(s), healthCellRE.FindString(s))
			// Q asks, n cancels; Q and y quarantine it: the kernel's freezer
			// says FROZEN, threat/quarantine names it (why: root's ctl).
			tty.Write([]byte("Q"))
			wait("the quarantine question", onScreen("quarantineagent1(toptest):"))
			tty.Write([]byte("n"))
			wait("cancelled", onScreen("cancelled"))
			if q := d.read("threat/quarantine"); strings.Contains(q, "agent=1 ") {
				t.Fatalf("quarantined after n: %s", q)
			}
			tty.Write([]byte("Q"))
			time.Sleep(200 * time.Millisecond)
			tty.Write([]byte("y"))
			wait("freezer.state FROZEN by the quarantine", func() bool { return kernel(t, freezer, "freezer.state") == "FROZEN" })
			wait("threat/quarantine to name agent 1", func() bool { return strings.Contains(d.read("threat/quarantine"), "agent=1 ") })
			wait("the quarantine done on screen", onScreen(`/threat/ctl:"quarantine1"done`))
			q := d.read("threat/quarantine")
			t.Logf("threat/quarantine: %s", q)
			if out, rc := d.sh(`echo 'release 1' > threat/ctl`); rc != 0 {
				t.Fatalf("release: %q", out)
			}
			wait("freezer.state THAWED after the release", func() bool { return kernel(t, freezer, "freezer.state") == "THAWED" })
			if pin := field(q, "pin"); strings.HasPrefix(pin, "/sys/fs/bpf/") {
				if _, err := os.Stat(pin); !os.IsNotExist(err) {
					t.Errorf("the network cut's pin %s is left after the release: %v", pin, err)
				}
			}
			// A limit through the prompt, then a refused one with its reason.
			tty.Write([]byte("l"))
			wait("the prompt", onScreen("agents/1/ctl>"))
			fmt.Fprintf(tty, "memmax %dM\r", limitMiB)
			wait("the new memmax applied", func() bool { return field(d.read("agents/1/status"), "memmax") == fmt.Sprint(limitMiB<<20) })
			wait("the new limit on screen", onScreen(fmt.Sprintf("%dMiB", limitMiB)))
			tty.Write([]byte("l"))
			time.Sleep(200 * time.Millisecond)
			tty.Write([]byte("memmax 12Q\r"))
			wait("the refusal's reason", onScreen(`invalidargument(errno22):badsize"12Q"`))
			tty.Write([]byte("q"))
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("top exit: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("top did not quit on q; screen (the end):\n%q", tail(screenText(screen.String()), 3000))
			}
		})
	}
}

// The THREAT and HEALTH cells as screenText has them (blanks taken out).
var (
	threatCellRE = regexp.MustCompile(`[01]\.\d\d(Benign|ResEx|UnAuth|Exfil|DoS|PrivEsc|Unknown)`)
	healthCellRE = regexp.MustCompile(`[01-]\.?\d*(running|exited|backoff|failed|unknown)sh-c'while`)
)

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// memTree is a tree in memory: files by path; directories listed from them.
type memTree struct {
	files  map[string]string
	writes chan string
}

func (m memTree) ReadFile(p string) ([]byte, error) {
	if s, ok := m.files[p]; ok {
		return []byte(s), nil
	}
	return nil, syscall.ENOENT
}

func (m memTree) List(p string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for f := range m.files {
		if rest, ok := strings.CutPrefix(f, p+"/"); ok {
			n, _, _ := strings.Cut(rest, "/")
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out, nil
}

func (m memTree) WriteFile(p string, data []byte) error {
	m.writes <- p + " " + string(data)
	if strings.Contains(string(data), "12Q") {
		return syscall.EINVAL
	}
	return nil
}
func (m memTree) Close() error   { return nil }
func (m memTree) String() string { return "/aios" }

// TestTopScreen draws top on tcell's simulation screen from a tree in
// memory (the formats' documented samples): the table in human units,
// the selected agent's allocations and forecasts, the sort key, the keys'
// writes, and a refusal with its errno.
func TestTopScreen(t *testing.T) {
	st := func(id, name, cpu, mem, extra string) string {
		return fmt.Sprintf("agent id=%s name=%s state=running pid=1%s pids=1%s uid=0 gid=0 prio=0 caps=- weight=- cpumax=%s cpuperiod=0.1 cpus=- memhigh=max memmax=%s started=1795631721.683 ended=0 exit=- restarts=0 spawned=1\ncmd argv=%q\n", id, name, id, id, cpu, mem, extra)
	}
	files := map[string]string{
		"/version":         "version=0.1.0\n",
		"/sched/status":    "enforce=on buffer=0.150 fall=0.450 interval=1.000 horizons=1,5,30,60 capacity=2.000 slice=0.100 warmup=256 agents=3 ticks=164 decisions=29 changes=54\nagent=1 mode=auto\n",
		"/agents/1/status": st("1", "web", "max", "268435456", "nginx -g 'daemon off;'"),
		"/agents/1/stat":   "time=1795631723.655 cpu=0.024 cpu_seconds=0.067 rss=3317760 mem=598016 threads=2 procs=2\n",
		"/agents/4/status": topStatus,
		"/agents/4/stat":   topStat,
		"/agents/4/alloc":  topAlloc, "/agents/4/predict": topPredict, "/agents/4/pattern": topPattern,
		"/agents/4/threat": topThreat, "/agents/4/health": topHealth,
		"/agents/1/threat": "score=0.020 type=Benign confidence=0.950 action=none escalate=0 trend=steady source=ml top=- warn=- time=1764795600.000\n",
		"/agents/1/health": "agent=1 score=1.000 trend=Stable state=running restart=off starts=1 backoff=0.000 breaker=closed\n",
		"/agents/5/status": st("5", "busy", "1.5", "max", "python3 train.py"),
		"/agents/5/stat":   "time=1795631723.655 cpu=0.981 cpu_seconds=9.1 rss=734003200 mem=734003200 threads=9 procs=1\n",
		"/agents/6/status": strings.Replace(st("6", "done", "max", "max", "true"), "state=running", "state=exited", 1),
	}
	tr := memTree{files: files, writes: make(chan string, 10)}
	sim := tcell.NewSimulationScreen("UTF-8")
	if err := sim.Init(); err != nil {
		t.Fatal(err)
	}
	u := newTopUI(tr, 100*time.Millisecond, false)
	u.app.SetScreen(sim)
	sim.SetSize(150, 30)
	done := make(chan error, 1)
	go func() { done <- u.run() }()
	screen := func() string {
		cells, w, h := sim.GetContents()
		var b strings.Builder
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				if r := cells[y*w+x].Runes; len(r) > 0 {
					b.WriteRune(r[0])
				} else {
					b.WriteByte(' ')
				}
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	waitScreen := func(what string, ok func(string) bool) string {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var s string
			ch := make(chan string, 1)
			u.app.QueueUpdate(func() { ch <- screen() })
			s = <-ch
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; screen:\n%s", what, s)
			}
		}
	}
	rowRE := func(s, id string) []string {
		for _, l := range strings.Split(s, "\n") {
			if f := strings.Fields(l); len(f) > 3 && f[0] == id {
				return f
			}
		}
		return nil
	}
	s := waitScreen("the agents", func(s string) bool { return strings.Contains(s, "grow") && strings.Contains(s, "sort=cpu") })
	if os.Getenv("TOP_SCREEN") != "" {
		fmt.Print(s)
	}
	// Sorted by CPU: busy (0.98), grow (0.04), web (0.02); exited left out.
	order := ""
	for _, l := range strings.Split(s, "\n") {
		if f := strings.Fields(l); len(f) > 3 && (f[0] == "1" || f[0] == "4" || f[0] == "5" || f[0] == "6") {
			order += f[0]
		}
	}
	if order != "541" {
		t.Errorf("rows in order %q, want 541 (by CPU, exited left out):\n%s", order, s)
	}
	if r := rowRE(s, "4"); strings.Join(r[:11], " ") != "4 grow running 0.04 0.24 0.24 17% 165MiB 206MiB 206MiB 80%" ||
		!strings.Contains(strings.Join(r, " "), "growing 0.97 ResEx 0.12 backoff sh -c 'grow'") {
		t.Errorf("agent 4's row %q", r)
	}
	if r := rowRE(s, "1"); !strings.Contains(strings.Join(r, " "), "- 0.02 Benign 1.00 running nginx") {
		t.Errorf("agent 1's row %q", r)
	}
	if r := rowRE(s, "5"); !strings.Contains(strings.Join(r, " "), "- - - - python3") {
		t.Errorf("agent 5's row (no threat, no health) %q", r)
	}
	if !strings.Contains(strings.Join(strings.Fields(s), " "), "FORECAST PATTERN THREAT HEALTH CMD") {
		t.Errorf("header:\n%s", s)
	}
	if r := rowRE(s, "5"); strings.Join(r[:11], " ") != "5 busy running 0.98 1.50 - 65% 700MiB max - -" {
		t.Errorf("agent 5's row %q", r)
	}
	if !strings.Contains(s, "sched enforce=on capacity=2.00 cores") || !strings.Contains(s, "agents 3 running, 0 frozen") {
		t.Errorf("header:\n%s", s)
	}
	// s cycles: mem, threat (grow 0.97 first, web, busy: none), health
	// (grow 0.12 first, web 1.00, busy: none), back to cpu.
	rowOrder := func(s string) (order string) {
		for _, l := range strings.Split(s, "\n") {
			if f := strings.Fields(l); len(f) > 3 && (f[0] == "1" || f[0] == "4" || f[0] == "5") {
				order += f[0]
			}
		}
		return
	}
	for _, want := range []struct{ by, order string }{{"mem", "541"}, {"threat", "415"}, {"health", "415"}, {"cpu", "541"}} {
		sim.InjectKey(tcell.KeyRune, 's', tcell.ModNone)
		s := waitScreen("sort="+want.by, func(s string) bool { return strings.Contains(s, "sort="+want.by) })
		if o := rowOrder(s); o != want.order {
			t.Errorf("sort=%s: rows %s, want %s:\n%s", want.by, o, want.order, s)
		}
	}
	// m sorts by memory: busy, grow, web; the selection stays on busy.
	sim.InjectKey(tcell.KeyRune, 'm', tcell.ModNone)
	waitScreen("sort=mem", func(s string) bool { return strings.Contains(s, "sort=mem") })
	// Down to grow: its allocations and forecasts in the detail pane.
	sim.InjectKey(tcell.KeyDown, 0, tcell.ModNone)
	waitScreen("grow's detail", func(s string) bool {
		return strings.Contains(s, "agent 4 grow: alloc cpumax 0.24 (predicted-fall), cpuperiod 100ms (slice-periodic)") &&
			strings.Contains(s, "cpu p90: 1s 1.01, 5s 0.05, 30s 1.00") &&
			strings.Contains(s, "threat 0.971 ResourceExhaustion action=quarantine top=procs@1s:0.410; health 0.120 Critical state=backoff restart=on-failure starts=5 backoff=2.500")
	})
	sim.InjectKey(tcell.KeyRune, 'f', tcell.ModNone)
	if w := <-tr.writes; w != "/agents/4/ctl freeze\n" {
		t.Errorf("f wrote %q", w)
	}
	waitScreen("freeze done", func(s string) bool { return strings.Contains(s, `/agents/4/ctl: "freeze" done`) })
	sim.InjectKey(tcell.KeyRune, 'k', tcell.ModNone)
	waitScreen("the kill question", func(s string) bool { return strings.Contains(s, "kill agent 4 (grow)? y/n") })
	sim.InjectKey(tcell.KeyRune, 'n', tcell.ModNone)
	waitScreen("cancelled", func(s string) bool { return strings.Contains(s, "cancelled") })
	sim.InjectKey(tcell.KeyRune, 'k', tcell.ModNone)
	sim.InjectKey(tcell.KeyRune, 'y', tcell.ModNone)
	if w := <-tr.writes; w != "/agents/4/ctl kill\n" {
		t.Errorf("k y wrote %q", w)
	}
	// Q quarantines through threat/ctl, after a y.
	sim.InjectKey(tcell.KeyRune, 'Q', tcell.ModNone)
	waitScreen("the quarantine question", func(s string) bool {
		return strings.Contains(s, "quarantine agent 4 (grow):") && strings.Contains(s, "y/n")
	})
	sim.InjectKey(tcell.KeyRune, 'n', tcell.ModNone)
	waitScreen("cancelled", func(s string) bool { return strings.Contains(s, "cancelled") })
	sim.InjectKey(tcell.KeyRune, 'Q', tcell.ModNone)
	sim.InjectKey(tcell.KeyRune, 'y', tcell.ModNone)
	if w := <-tr.writes; w != "/threat/ctl quarantine 4\n" {
		t.Errorf("Q y wrote %q", w)
	}
	waitScreen("quarantine done", func(s string) bool { return strings.Contains(s, `/threat/ctl: "quarantine 4" done`) })
	sim.InjectKey(tcell.KeyRune, 'l', tcell.ModNone)
	waitScreen("the prompt", func(s string) bool { return strings.Contains(s, "agents/4/ctl>") })
	for _, r := range "memmax 12Q" {
		sim.InjectKey(tcell.KeyRune, r, tcell.ModNone)
	}
	sim.InjectKey(tcell.KeyEnter, 0, tcell.ModNone)
	if w := <-tr.writes; w != "/agents/4/ctl memmax 12Q\n" {
		t.Errorf("the prompt wrote %q", w)
	}
	waitScreen("the refusal", func(s string) bool {
		return strings.Contains(s, `/agents/4/ctl: "memmax 12Q": invalid argument (errno 22)`)
	})
	sim.InjectKey(tcell.KeyRune, 'q', tcell.ModNone)
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("q did not quit")
	}
}
