package main

// The threat engine's response, tried live: a quarantined agent is frozen
// in the kernel's freezer, a process in its cgroup2 directory cannot
// connect to a loopback listener, its owner cannot lift any of it (from
// threat/ctl or its own ctl), root can, and the quarantine outlives a
// kill -9 of the daemon. A tampered model is refused at start and the
// engine scores with rules. Bad threat/ctl input changes nothing.

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventLines follows the daemon's events file (a blocking stream of the
// events from the open on) until stop is called (before the daemon
// stops: an open file keeps the mount busy) or the test ends. A cat
// reads it, not this process: a Go file blocked in read cannot be
// closed until the read returns, a killed cat's read is abandoned.
func (d *testDaemon) eventLines() (events <-chan string, stop func()) {
	d.t.Helper()
	cat := exec.Command("cat", filepath.Join(d.mount, "events.follow"))
	out, err := cat.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := cat.Start(); err != nil {
		d.t.Fatal(err)
	}
	ch := make(chan string, 256)
	go func() {
		defer close(ch)
		s := bufio.NewScanner(out)
		for s.Scan() {
			select {
			case ch <- s.Text():
			default:
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cat.Process.Kill(); cat.Wait() }) }
	d.t.Cleanup(stop)
	// The open is done once cat blocks in its first read.
	time.Sleep(100 * time.Millisecond)
	return ch, stop
}

// waitEvent returns the first event line holding every one of want.
func waitEvent(t *testing.T, ch <-chan string, want ...string) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("events ended before %q", want)
			}
			hit := true
			for _, w := range want {
				hit = hit && strings.Contains(l, w)
			}
			if hit {
				return l
			}
		case <-deadline:
			t.Fatalf("no event with %q in 10 s", want)
		}
	}
}

// loopbackServer listens on a free loopback port and hands each
// connection to serve (on its own goroutine) until the test ends.
func loopbackServer(t *testing.T, serve func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln
}

// dialFrom starts bash, puts it into the cgroup2 directory dir (a
// directory this daemon made for an agent; bash is this test's own
// process) and has it connect to addr. It reports bash's output and
// whether the connection was made.
func dialFrom(t *testing.T, dir, addr string) (string, bool) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	script := fmt.Sprintf(`echo $$ > %s/cgroup.procs && exec 3<>/dev/tcp/%s/%s && echo connected`, dir, host, port)
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	return string(out), err == nil && strings.Contains(string(out), "connected")
}

// restart starts the daemon again on the same mount, state and prefix
// (after a kill9 or a term) and stops it when the test ends.
func (d *testDaemon) restart() *testDaemon {
	d.t.Helper()
	n := startDaemon(d.t, d.mount, d.state, d.prefix)
	d.t.Cleanup(func() {
		if n.cmd.ProcessState == nil {
			n.term()
		}
	})
	return n
}

func TestThreatQuarantine(t *testing.T) {
	d, _ := adversaryDaemon(t, "thq")
	pinRoot := "/sys/fs/bpf/aiosfs"
	pin := filepath.Join(pinRoot, d.prefix+"-agent-1")
	t.Cleanup(func() {
		if _, err := os.Stat(pin); err == nil {
			t.Errorf("the cut's pin %s is left behind", pin)
			os.Remove(pin)
		}
	})

	ln := loopbackServer(t, func(c net.Conn) { c.Close() })

	ev, stop := d.eventLines()
	d.mustRun(`echo 'spawn suspect -- /bin/sleep 600' > ctl`, nobody)
	st := d.read("agents/1/status")
	freezer, unified := cgroupPath(st, "freezer"), cgroupPath(st, "unified")
	if freezer == "" || unified == "" {
		t.Fatalf("agent 1 has no freezer or cgroup2 directory:\n%s", st)
	}
	if out, ok := dialFrom(t, unified, ln.Addr().String()); !ok {
		t.Fatalf("before the quarantine a process in the agent's cgroup cannot connect: %s", out)
	}

	// Its owner asks for the quarantine (anyone may put their own agent
	// out of reach); only root takes it back.
	d.mustRun(`echo 'quarantine 1' > threat/ctl`, nobody)
	waitEvent(t, ev, "kind=quarantine", "agent=1", "net=cut")
	if got := kernel(t, freezer, "freezer.state"); got != "FROZEN" {
		t.Errorf("quarantined agent: freezer.state %s, want FROZEN", got)
	}
	if s := field(d.read("agents/1/status"), "state"); s != "frozen" {
		t.Errorf("agents/1/status state=%s, want frozen", s)
	}
	q := d.read("threat/quarantine")
	if field(q, "agent") != "1" || field(q, "net") != "cut" || field(q, "pin") != pin {
		t.Errorf("threat/quarantine: %q", q)
	}
	if _, err := os.Stat(pin); err != nil {
		t.Errorf("the cut is not pinned: %v", err)
	}
	if out, ok := dialFrom(t, unified, ln.Addr().String()); ok || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("a process in the quarantined agent's cgroup connected (or failed otherwise): %q", out)
	}

	// The owner cannot lift it by any door.
	d.mustFail(`echo 'release 1' > threat/ctl`, "Operation not permitted", nobody)
	d.mustFail(`echo thaw > agents/1/ctl`, "Operation not permitted", nobody)
	d.mustFail(`echo 'memmax 1G' > agents/1/ctl`, "Operation not permitted", nobody)
	d.mustFail(`echo 'kill 1' > threat/ctl`, "Operation not permitted", nobody)
	d.mustFail(`echo 'learn 1' > threat/ctl`, "Operation not permitted", nobody)
	if got := kernel(t, freezer, "freezer.state"); got != "FROZEN" {
		t.Errorf("after the owner's tries: freezer.state %s", got)
	}
	// Root asking twice is told so, and nothing changes.
	d.mustFail(`echo 'quarantine 1' > threat/ctl`, "already")

	// The quarantine outlives the daemon: kill -9 and start again.
	stop()
	d.kill9()
	d = d.restart()
	d.waitFor("the quarantine to be restored", func() bool {
		return field(d.read("threat/quarantine"), "net") == "cut"
	})
	if got := kernel(t, freezer, "freezer.state"); got != "FROZEN" {
		t.Errorf("after a restart: freezer.state %s, want FROZEN", got)
	}
	if out, ok := dialFrom(t, unified, ln.Addr().String()); ok {
		t.Errorf("after a restart a process in the quarantined agent's cgroup connected: %q", out)
	}
	d.mustFail(`echo 'release 1' > threat/ctl`, "Operation not permitted", nobody)
	d.mustFail(`echo thaw > agents/1/ctl`, "Operation not permitted", nobody)

	// A clean stop ends the agent and removes its cgroups: no pin may
	// outlive them. The next start resumes the agent and quarantines it
	// again before anyone can write to it.
	d.term()
	if _, err := os.Stat(pin); !os.IsNotExist(err) {
		t.Errorf("after a clean stop the cut's pin is still there: %v", err)
	}
	d = d.restart()
	d.waitFor("the quarantine to be put back", func() bool {
		return field(d.read("threat/quarantine"), "net") == "cut"
	})
	st = d.read("agents/1/status")
	freezer, unified = cgroupPath(st, "freezer"), cgroupPath(st, "unified")
	if got := kernel(t, freezer, "freezer.state"); got != "FROZEN" {
		t.Errorf("after a clean restart: freezer.state %s, want FROZEN\n%s", got, st)
	}
	if out, ok := dialFrom(t, unified, ln.Addr().String()); ok {
		t.Errorf("after a clean restart a process in the quarantined agent's cgroup connected: %q", out)
	}
	d.mustFail(`echo thaw > agents/1/ctl`, "Operation not permitted", nobody)

	ev, stop = d.eventLines()
	d.mustRun(`echo 'release 1' > threat/ctl`)
	waitEvent(t, ev, "kind=release", "agent=1")
	if got := kernel(t, freezer, "freezer.state"); got != "THAWED" {
		t.Errorf("released agent: freezer.state %s, want THAWED", got)
	}
	if out, ok := dialFrom(t, unified, ln.Addr().String()); !ok {
		t.Errorf("after the release a process in the agent's cgroup cannot connect: %s", out)
	}
	if _, err := os.Stat(pin); !os.IsNotExist(err) {
		t.Errorf("the cut's pin is still there after the release: %v", err)
	}
	if q := d.read("threat/quarantine"); q != "" {
		t.Errorf("threat/quarantine after the release: %q", q)
	}
	// The agent is its owner's again.
	d.mustRun(`echo 'memmax 1G' > agents/1/ctl`, nobody)
	d.mustFail(`echo 'release 1' > threat/ctl`, "No such file")
	stop()
	d.term()
}

func TestThreatModelRefused(t *testing.T) {
	d, _ := adversaryDaemon(t, "thm")
	if m := field(d.read("threat/status"), "mode"); m != "ml" {
		t.Fatalf("first start: mode=%s, want ml (a model trained and signed at first start)\n%s", m, d.read("threat/status"))
	}
	d.term()

	// One changed byte in the model's weights.
	model := filepath.Join(d.state, "threat", "model", "threat-model.json")
	b, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.IndexAny(string(b), "123456789")
	b[i] = '0' + (b[i]-'0')%9 + 1
	if err := os.WriteFile(model, b, 0600); err != nil {
		t.Fatal(err)
	}
	d = d.restart()
	st := d.read("threat/status")
	if field(st, "mode") != "rules" || field(st, "model_error") == "-" {
		t.Errorf("a tampered model: threat/status %q, want mode=rules and the reason", st)
	}
	if !strings.Contains(d.read("log"), "threat") {
		t.Errorf("the refusal is not in the log:\n%s", d.read("log"))
	}
	// The engine still scores every agent, with rules.
	d.mustRun(`echo 'spawn plain -- /bin/sleep 600' > ctl`)
	d.waitFor("agent 1 to be scored", func() bool {
		return field(d.read("agents/1/threat"), "source") == "rules"
	})
	// Reloading the tampered model: refused again, still rules.
	d.mustFail(`echo 'model reload' > threat/ctl`, "Invalid argument")
	if m := field(d.read("threat/status"), "mode"); m != "rules" {
		t.Errorf("after a refused reload: mode=%s", m)
	}
	// Root trains and signs a fresh one: ML again.
	d.mustRun(`echo train > threat/ctl`)
	st = d.read("threat/status")
	if field(st, "mode") != "ml" || field(st, "model_error") != "-" {
		t.Errorf("after train: %q", st)
	}
	id := field(st, "model")
	// A manifest that is not JSON: refused with the reason, and the
	// model in force stays.
	os.WriteFile(filepath.Join(d.state, "threat", "model", "manifest.json"), []byte("{not json"), 0600)
	d.mustFail(`echo 'model reload' > threat/ctl`, "Invalid argument")
	if out := d.mustRun(`grep 'refused "model reload"' log | tail -1`); !strings.Contains(out, "manifest") {
		t.Errorf("the refusal does not say what is wrong: %q", out)
	}
	st = d.read("threat/status")
	if field(st, "mode") != "ml" || field(st, "model") != id || field(st, "model_error") == "-" {
		t.Errorf("a refused reload changed the model in force or hid the refusal: %q (had %s)", st, id)
	}
	if l := d.read("log"); !strings.Contains(l, "keeping model "+id[:16]) {
		t.Errorf("the refusal is not logged:\n%s", l)
	}
	d.mustFail(`echo train > threat/ctl`, "Operation not permitted", nobody)
	d.mustFail(`echo 'model reload' > threat/ctl`, "Operation not permitted", nobody)
	d.term()
}

func TestThreatCtlBadInput(t *testing.T) {
	d, _ := adversaryDaemon(t, "thc")
	before := d.read("threat/ctl")
	for _, c := range []struct{ line, err string }{
		{"policy alert 1.5", "Invalid argument"},
		{"policy alert -0.1", "Invalid argument"},
		{"policy frobnicate 0.5", "Invalid argument"},
		{"policy quarantine 0.6 NoSuchType", "Invalid argument"},
		{"policy alert 0.5; alert 0.6", "Invalid argument"},
		{"hook relative/path", "Invalid argument"},
		{"hook /nonexistent/page", "Invalid argument"},
		{"model frob", "Invalid argument"},
		{"quarantine 99", "No such file"},
		{"quarantine x", "Invalid argument"},
		{"release 1", "No such file"},
		{"frob", "Invalid argument"},
		{"train now", "Invalid argument"},
	} {
		d.mustFail("echo '"+c.line+"' > threat/ctl", c.err)
	}
	d.mustFail(`echo 'policy default' > threat/ctl`, "Operation not permitted", nobody)
	d.mustFail(`echo 'hook /bin/true' > threat/ctl`, "Operation not permitted", nobody)
	if after := d.read("threat/ctl"); after != before {
		t.Errorf("refused lines changed threat/ctl:\n%s\nto\n%s", before, after)
	}
	if l := d.read("log"); !strings.Contains(l, `refused "policy alert 1.5"`) {
		t.Errorf("a refused line is not logged:\n%s", l)
	}

	// A good policy is in force at once and kept across a restart.
	d.mustRun(`echo 'policy alert 0.4; throttle off; quarantine 0.9; kill off; escalate off' > threat/ctl`)
	d.term()
	d = d.restart()
	ctlText := d.read("threat/ctl")
	for _, want := range []string{"alert 0.4", "throttle off", "quarantine 0.9", "escalate off"} {
		if !strings.Contains(ctlText, want) {
			t.Errorf("after a restart the policy lacks %q:\n%s", want, ctlText)
		}
	}
	d.term()
}

// TestThreatPolicyActs: nobody's fork bomb (the recorded forkstorm
// scenario) is quarantined by the default policy with no operator, the
// escalation hook gets the alert, and a quiet agent beside it is left
// alone.
func TestThreatPolicyActs(t *testing.T) {
	d, top := adversaryDaemon(t, "thp")
	hookOut := filepath.Join(top, "alerts.txt")
	hook := filepath.Join(top, "page.sh")
	if err := os.WriteFile(hook, []byte("#!/bin/bash\necho \"$AIOS_TYPE $AIOS_ACTION $AIOS_ALERT\" >> "+hookOut+"\n"), 0755); err != nil {
		t.Fatal(err)
	}
	d.mustRun(`echo 'hook ` + hook + `' > threat/ctl`)
	d.mustRun(`echo 'spawn quiet -- /bin/bash -c "while :; do sleep 0.2; done"' > ctl`, nobody)
	ev, stop := d.eventLines()
	defer stop()
	d.mustRun(`echo "spawn storm pidsmax=64 -- /bin/bash -c 'f(){ f | f & }; f; wait'" > ctl`, nobody)

	q := waitEvent(t, ev, "kind=quarantine", "agent=2")
	if field(q, "why") != "policy" || field(q, "type") != "ResourceExhaustion" {
		t.Errorf("quarantine event: %q, want why=policy type=ResourceExhaustion", q)
	}
	st := d.read("agents/2/status")
	if got := kernel(t, cgroupPath(st, "freezer"), "freezer.state"); got != "FROZEN" {
		t.Errorf("the fork bomb: freezer.state %s, want FROZEN", got)
	}
	if n, _ := strconv.Atoi(kernel(t, cgroupPath(st, "pids"), "pids.current")); n > 64 {
		t.Errorf("the fork bomb has %d processes past its pidsmax 64", n)
	}
	d.waitFor("the escalation hook to run", func() bool {
		b, _ := os.ReadFile(hookOut)
		return strings.Contains(string(b), "agent=2")
	})
	b, _ := os.ReadFile(hookOut)
	if !strings.HasPrefix(string(b), "ResourceExhaustion ") {
		t.Errorf("the hook's environment: %q", b)
	}
	if r := d.read("threat/status"); !strings.Contains(r, "quarantine:1") || strings.Contains(r, "hook_runs=0") {
		t.Errorf("threat/status does not count the act and the hook run: %q", r)
	}
	if a := field(d.read("agents/1/threat"), "action"); a != "none" {
		t.Errorf("the quiet agent beside it: action=%s, want none\n%s", a, d.read("agents/1/threat"))
	}
	if s := field(d.read("agents/1/status"), "state"); s != "running" {
		t.Errorf("the quiet agent: state=%s", s)
	}

	// Root ends it: the kill is delivered when the release thaws it. (Its
	// leader may have ended already, refused a fork; then there is
	// nothing to kill, and the release still lifts the cut.)
	if field(d.read("agents/2/status"), "state") != "exited" {
		if out, rc := d.sh(`echo 'kill 2' > threat/ctl`); rc != 0 && field(d.read("agents/2/status"), "state") != "exited" {
			t.Errorf("root's kill of the quarantined fork bomb: %s", out)
		}
	}
	d.mustRun(`echo 'release 2' > threat/ctl`)
	d.waitFor("the fork bomb to end", func() bool {
		return field(d.read("agents/2/status"), "state") == "exited"
	})
	stop()
	d.term()
}
