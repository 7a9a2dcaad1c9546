package main

// Operator experience (issue 16), tried on the real daemon: tree walkers
// over the mount do not hang on the event streams while a follower of
// events.follow still blocks and gets new events, over FUSE and over 9P.

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"aiosfs/fs/p9fs"
)

// follower is `cat PATH` running until the test ends; out is what it has
// printed so far.
type follower struct {
	cmd *exec.Cmd
	out *syncBuffer
}

func (d *testDaemon) follow(p string) *follower {
	d.t.Helper()
	f := &follower{cmd: exec.Command("cat", filepath.Join(d.mount, p)), out: &syncBuffer{}}
	f.cmd.Stdout, f.cmd.Stderr = f.out, f.out
	f.cmd.WaitDelay = 5 * time.Second
	if err := f.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	// Stopped before the daemon (registered later, so run earlier): an
	// open file keeps the mount busy.
	d.t.Cleanup(func() { f.cmd.Process.Kill(); f.cmd.Wait() })
	return f
}

// running reports whether the follower has not ended.
func (f *follower) running() bool {
	return syscall.Kill(f.cmd.Process.Pid, 0) == nil && !zombie(f.cmd.Process.Pid)
}

func TestTreeWalkersAndFollowers(t *testing.T) {
	d, _ := adversaryDaemon(t, "walk")
	d.mustRun(`echo 'spawn web -- sleep 600' > ctl && echo 'spawn nob user=nobody -- sleep 600' > ctl`)

	// Followers first: they see only what happens after their open.
	all := d.follow("events.follow")
	one := d.follow("agents/1/events.follow")
	alerts := d.follow("threat/alerts.follow")
	time.Sleep(300 * time.Millisecond)

	// The walkers, each with a timeout: 124 is a hang.
	for _, script := range []string{
		`timeout 10 grep -r zzz-not-there .`,
		`timeout 20 find . -type f -exec cat {} + >/dev/null`,
		`timeout 10 tail agents/*/* >/dev/null`,
		`timeout 10 tar cf /dev/null .`,
		`timeout 10 cat events agents/1/events threat/alerts >/dev/null`,
	} {
		for _, uid := range []int{0, nobody} {
			out, rc := d.sh(script, uid)
			if rc == 124 || rc == 137 {
				t.Errorf("%s (uid %d) hung on the tree: rc %d\n%.2000s", script, uid, rc, out)
			}
			if uid == 0 && script == `timeout 10 grep -r zzz-not-there .` && rc != 1 {
				t.Errorf("%s: rc %d, want 1 (no match, every file read)\n%.2000s", script, rc, out)
			}
		}
	}
	// No walker saw a follow file: they are not listed.
	if out := d.mustRun(`find . -name '*.follow' | wc -l`); strings.TrimSpace(out) != "0" {
		t.Errorf("find lists follow files: %q", out)
	}
	// ... but they are there for whoever names them.
	if out := d.mustRun(`ls -l events.follow agents/1/events.follow threat/alerts.follow`); strings.Count(out, "-r--r--r--") != 3 {
		t.Errorf("ls -l of the follow files:\n%s", out)
	}

	// The snapshot is the backlog: the spawns happened before this open.
	if out := d.mustRun(`cat events`); !strings.Contains(out, "kind=spawn agent=1") || !strings.Contains(out, "kind=spawn agent=2") {
		t.Errorf("events snapshot lacks the spawns:\n%s", out)
	}
	if out := d.mustRun(`cat agents/1/events`); !strings.Contains(out, "agent=1") || strings.Contains(out, "agent=2") {
		t.Errorf("agents/1/events snapshot:\n%s", out)
	}

	// The followers are still blocked, not at EOF, and have seen nothing
	// of the walkers' reads.
	for name, f := range map[string]*follower{"events.follow": all, "agents/1/events.follow": one, "threat/alerts.follow": alerts} {
		if !f.running() {
			t.Fatalf("cat %s ended: %q", name, f.out)
		}
	}
	if s := one.out.String(); strings.Contains(s, "kind=spawn") {
		t.Errorf("agents/1/events.follow shows events from before its open:\n%s", s)
	}

	// A 9P follower of the same stream.
	c, err := p9fs.Dial("unix!" + filepath.Join(d.state, "9p.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nine, err := c.Open("/agents/1/events.follow", false)
	if err != nil {
		t.Fatal(err)
	}
	ninep := make(chan string, 16)
	go func() {
		buf := make([]byte, 8192)
		for {
			n, err := nine.Read(buf)
			if err != nil || n == 0 {
				close(ninep)
				return
			}
			ninep <- string(buf[:n])
		}
	}()
	// The 9P snapshot ends too.
	if b, err := c.ReadFile("/events"); err != nil || !strings.Contains(string(b), "kind=spawn agent=1") {
		t.Errorf("events snapshot over 9P: %v %q", err, b)
	}
	time.Sleep(200 * time.Millisecond)
	select {
	case s, ok := <-ninep:
		t.Fatalf("9P follower returned before any event: %q %v", s, ok)
	default:
	}

	d.mustRun(`echo freeze > agents/1/ctl && echo thaw > agents/1/ctl`)
	d.waitFor("the followers to get freeze and thaw", func() bool {
		return strings.Contains(all.out.String(), "kind=thaw agent=1") && strings.Contains(one.out.String(), "kind=thaw agent=1")
	})
	var got string
	for deadline := time.After(10 * time.Second); !strings.Contains(got, "kind=thaw agent=1"); {
		select {
		case s, ok := <-ninep:
			if !ok {
				t.Fatalf("9P follower ended after %q", got)
			}
			got += s
		case <-deadline:
			t.Fatalf("9P follower did not get the thaw in 10s: %q", got)
		}
	}
	if !strings.Contains(got, "kind=freeze agent=1") {
		t.Errorf("9P follower missed the freeze: %q", got)
	}
	if !all.running() || !one.running() {
		t.Error("a follower ended after its events: it must keep following")
	}
}

// TestErrstr: a refused write over 9P says why, though 9P's Rlerror
// carries only the errno: aiosfs write and aiosfs ctl read the reason
// from errstr, the connection's own last refusal, which no other
// connection sees. Through the mount errstr is the uid's.
func TestErrstr(t *testing.T) {
	d, _ := adversaryDaemon(t, "err")
	d.mustRun(`echo 'spawn web -- sleep 600' > ctl`)
	sock := filepath.Join(d.state, "9p.sock")
	reason := `bad size "lots"`

	out, rc := aiosfs(t, -1, "write", sock, "/agents/1/ctl", "memmax", "lots")
	if rc == 0 || !strings.Contains(out, "errno 22") || !strings.Contains(out, reason) {
		t.Errorf("aiosfs write of a bad size over 9P: rc=%d %q, want errno 22 and %q", rc, out, reason)
	}
	out, rc = aiosfs(t, -1, "ctl", "-t", "unix!"+sock, "1", "memmax", "lots")
	if rc == 0 || !strings.Contains(out, "errno 22") || !strings.Contains(out, reason) {
		t.Errorf("aiosfs ctl of a bad size over 9P: rc=%d %q, want errno 22 and %q", rc, out, reason)
	}
	out, rc = aiosfs(t, -1, "write", sock, "/ctl", "bogus")
	if rc == 0 || !strings.Contains(out, "unknown control message") {
		t.Errorf("aiosfs write of a bad verb over 9P: rc=%d %q", rc, out)
	}

	// errstr is per connection: A's refusal is A's alone.
	a, err := p9fs.Dial("unix!" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := p9fs.Dial("unix!" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, err := a.ReadFile("/errstr"); err != nil || len(got) != 0 {
		t.Errorf("errstr of a new connection: %q, %v; want empty", got, err)
	}
	if err := a.WriteFile("/agents/1/ctl", []byte("cpumax 7x\n")); err == nil {
		t.Fatal("cpumax 7x accepted")
	}
	got, err := a.ReadFile("/errstr")
	if err != nil || !strings.HasPrefix(string(got), `/agents/1/ctl: refused "cpumax 7x": `) || !strings.HasSuffix(string(got), "\n") {
		t.Errorf("errstr after a refusal: %q, %v", got, err)
	}
	if got, err := b.ReadFile("/errstr"); err != nil || len(got) != 0 {
		t.Errorf("another connection's errstr: %q, %v; want empty", got, err)
	}

	// Through the mount: the uid's last refusal, not another uid's.
	out, _ = d.sh(`echo 'weight 0' > agents/1/ctl; cat errstr`)
	if !strings.Contains(out, `/agents/1/ctl: refused "weight 0": `) {
		t.Errorf("errstr through the mount after a refusal:\n%s", out)
	}
	if out := d.mustRun(`cat errstr`, nobody); strings.Contains(out, "agents/1") {
		t.Errorf("nobody's errstr shows root's refusal: %q", out)
	}
	out, _ = d.sh(`echo kill > agents/1/ctl; cat errstr`, nobody)
	if !strings.Contains(out, `/agents/1/ctl: refused "open": permission denied`) {
		t.Errorf("nobody's errstr after its own refusal:\n%s", out)
	}

	// The events snapshot keeps the follower's privacy rule: a user's
	// refusals are theirs and root's.
	if out := d.mustRun(`cat events`, nobody); strings.Contains(out, `cmd="weight 0"`) || !strings.Contains(out, "kind=refused") {
		t.Errorf("nobody's events snapshot shows root's refusal, or lacks its own:\n%s", out)
	}
	if out := d.mustRun(`cat events`); !strings.Contains(out, `cmd="weight 0"`) {
		t.Errorf("root's events snapshot lacks root's refusal:\n%s", out)
	}
}

// TestReadmeEverywhere: every directory of the served tree (the root,
// agents/, agents/N and the engines' directories under it, sched/, mem/,
// threat/, ...) has a README, read through the mount, that names every
// entry ls shows there, each on a line of its own with its format.
func TestReadmeEverywhere(t *testing.T) {
	d, _ := adversaryDaemon(t, "readme")
	d.mustRun(`echo 'spawn web -- sleep 600' > ctl`)
	dirs := strings.Fields(d.mustRun(`find . -type d`))
	if len(dirs) < 8 {
		t.Fatalf("find lists only %d directories: %v", len(dirs), dirs)
	}
	for _, dir := range dirs {
		readme, rc := d.sh(`cat ` + dir + `/README`)
		if rc != 0 {
			t.Errorf("%s has no README: rc %d %q", dir, rc, readme)
			continue
		}
		lines := map[string]string{}
		for _, l := range strings.Split(readme, "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				lines[strings.TrimSuffix(f[0], "/")] = l
			}
		}
		for _, name := range strings.Fields(d.mustRun(`ls -A ` + dir)) {
			l, ok := lines[name]
			if !ok {
				t.Errorf("%s/README does not name %s:\n%s", dir, name, readme)
				continue
			}
			if len(strings.Fields(l)) < 3 {
				t.Errorf("%s/README: the line of %s says nothing of it: %q", dir, name, l)
			}
		}
	}
	// The formats come from the tables: agents/N's rows' Doc lines.
	readme := d.mustRun(`cat agents/1/README`)
	for _, want := range []string{"status ", "Agent.Status", "events ", "events.follow (not listed) blocks", "ctl "} {
		if !strings.Contains(readme, want) {
			t.Errorf("agents/1/README lacks %q:\n%s", want, readme)
		}
	}
	if root := d.mustRun(`cat README`); !strings.Contains(root, "errstr ") || !strings.Contains(root, "version= go= cgroup= protocols=") {
		t.Errorf("the root README:\n%s", root)
	}
}

// TestLimitsHistory: agents/N/limits, read through the mount, says who
// changed each limit (the writer's uid, or the engine and its reason)
// and from what to what, and it survives a kill -9 of the daemon.
func TestLimitsHistory(t *testing.T) {
	d, _ := adversaryDaemon(t, "lim")
	d.mustRun(`echo 'spawn nob user=nobody memmax=64M -- sleep 600' > ctl`)
	d.mustRun(`echo 'memhigh 16M' > agents/1/ctl`, nobody)
	d.mustRun(`echo 'memmax 80M' > agents/1/ctl`)
	d.mustFail(`echo 'memmax 12Q' > agents/1/ctl`, "Invalid argument")
	want := []string{
		" limit=memhigh old=max new=16777216 by=uid:65534\n",
		" limit=memmax old=67108864 new=83886080 by=uid:0\n",
	}
	check := func(when string) {
		t.Helper()
		got := d.mustRun(`cat agents/1/limits`, nobody)
		lines := strings.SplitAfter(got, "\n")
		if len(lines) != 3 || lines[2] != "" {
			t.Fatalf("%s: agents/1/limits:\n%s", when, got)
		}
		for i, w := range want {
			if !strings.HasPrefix(lines[i], "time=") || !strings.HasSuffix(lines[i], w) {
				t.Errorf("%s: line %d of agents/1/limits = %q, want …%q", when, i+1, lines[i], w)
			}
		}
	}
	check("now")
	d.kill9()
	d = d.restart()
	check("after kill -9 and a restart")
	d.mustRun(`echo kill > agents/1/ctl`)
}
