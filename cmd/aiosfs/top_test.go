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
)

func TestTopRow(t *testing.T) {
	a, ok := parseTopAgent(4, topStatus)
	if !ok {
		t.Fatal("status not parsed")
	}
	a.addStat(topStat)
	a.addSched(topAlloc, topPredict, topPattern)
	got := strings.Join(a.cells(), "|")
	want := "4|grow|running|0.04|0.24|0.24|17%|165MiB|206MiB|206MiB|80%|0.05c 172MiB @5s|periodic 600ms/growing|sh -c 'grow'"
	if got != want {
		t.Errorf("row\n got %s\nwant %s", got, want)
	}
	if w := strings.Join(a.AllocWhy, ", "); w != "cpumax 0.24 (predicted-fall), cpuperiod 100ms (slice-periodic), memhigh 204MiB (predicted-fall), memmax 206MiB (predicted-fall)" {
		t.Errorf("alloc reasons %q", w)
	}
	if f := strings.Join(a.Forecasts, "; "); f != "cpu p90: 1s 1.01, 5s 0.05, 30s 1.00; mem p90: 5s 172MiB" {
		t.Errorf("forecasts %q", f)
	}
	// Not sampled, no scheduler files, no limits: dashes, never NaN.
	b, _ := parseTopAgent(5, strings.Replace(topStatus, "cpumax=0.245", "cpumax=max", 1))
	b.addSched("", "", "")
	for _, c := range b.cells() {
		if strings.Contains(c, "NaN") || strings.Contains(c, "Inf") {
			t.Errorf("unsampled row %q", b.cells())
		}
	}
	if c := b.cells(); c[3] != "-" || c[4] != "max" || c[6] != "-" || c[11] != "-" || c[12] != "-" {
		t.Errorf("unsampled row %q", c)
	}
}

func TestTopSortAndEvents(t *testing.T) {
	nan := math.NaN()
	as := []topAgent{{ID: 1, CPU: 0.1, Mem: 9}, {ID: 2, CPU: nan, Mem: nan}, {ID: 3, CPU: 0.9, Mem: 1}, {ID: 4, CPU: 0.1, Mem: 5}}
	ids := func() (s []int) {
		for _, a := range as {
			s = append(s, a.ID)
		}
		return
	}
	sortAgents(as, false)
	if fmt.Sprint(ids()) != "[3 1 4 2]" {
		t.Errorf("by cpu: %v", ids())
	}
	sortAgents(as, true)
	if fmt.Sprint(ids()) != "[1 4 3 2]" {
		t.Errorf("by mem: %v", ids())
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
// agent, f freezes it (the kernel's freezer.state says FROZEN), t thaws
// it, a refused limit from the l prompt shows the daemon's reason, q quits.
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
	if r := rowRE(s, "4"); strings.Join(r[:11], " ") != "4 grow running 0.04 0.24 0.24 17% 165MiB 206MiB 206MiB 80%" {
		t.Errorf("agent 4's row %q", r)
	}
	if r := rowRE(s, "5"); strings.Join(r[:11], " ") != "5 busy running 0.98 1.50 - 65% 700MiB max - -" {
		t.Errorf("agent 5's row %q", r)
	}
	if !strings.Contains(s, "sched enforce=on capacity=2.00 cores") || !strings.Contains(s, "agents 3 running, 0 frozen") {
		t.Errorf("header:\n%s", s)
	}
	// m sorts by memory: busy, grow, web; the selection stays on busy.
	sim.InjectKey(tcell.KeyRune, 'm', tcell.ModNone)
	waitScreen("sort=mem", func(s string) bool { return strings.Contains(s, "sort=mem") })
	// Down to grow: its allocations and forecasts in the detail pane.
	sim.InjectKey(tcell.KeyDown, 0, tcell.ModNone)
	waitScreen("grow's detail", func(s string) bool {
		return strings.Contains(s, "agent 4 grow: alloc cpumax 0.24 (predicted-fall), cpuperiod 100ms (slice-periodic)") &&
			strings.Contains(s, "cpu p90: 1s 1.01, 5s 0.05, 30s 1.00")
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
