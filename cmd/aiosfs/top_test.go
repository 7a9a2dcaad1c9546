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
)

// The scheduler's files as docs/sched.md shows them.
const (
	topStatus = `agent id=4 name=grow state=running pid=9819 pids=9819 uid=0 gid=0 prio=0 caps=- weight=- cpumax=0.245 cpuperiod=0.1 cpus=- memhigh=214061861 memmax=216310671 started=1795631721.683 ended=0 exit=- restarts=0 spawned=1
cmd argv="sh -c 'grow'"
`
	topStat    = "time=1795631723.655 cpu=0.041 cpu_seconds=0.067 rss=3317760 mem=173228032 threads=2 procs=2\n"
	topAlloc   = `enforce=on mode=auto weight=100
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
