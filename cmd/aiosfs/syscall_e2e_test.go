package main

// The system-call signal, live (issue 13): two agents run the same
// steady loop, each learns its profile from its own captured calls (one
// learns again after `threat/ctl learn N`), then one of them changes what
// it does (reads /etc/shadow, lists /etc, connects a socket, runs id) and
// its syscall signal in agents/N/threat rises while the other's stays low;
// threat/status counts the events captured and dropped.

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var sigLine = regexp.MustCompile(`(?m)^signal name=syscall score=([0-9.]+) type=\S+ evidence=(.*)$`)

// syscallScore is agent id's syscall signal score in agents/N/threat (-1:
// no verdict yet) and its evidence.
func (d *testDaemon) syscallScore(id int) (float64, string) {
	b, err := os.ReadFile(filepath.Join(d.mount, "agents", strconv.Itoa(id), "threat"))
	if err != nil {
		return -1, ""
	}
	m := sigLine.FindStringSubmatch(string(b))
	if m == nil {
		return -1, ""
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v, m[2]
}

// syscallStatus is the syscall signal's line in threat/status.
func (d *testDaemon) syscallStatus() string {
	for _, l := range strings.Split(d.read("threat/status"), "\n") {
		if strings.Contains(l, "signal=syscall") {
			return l
		}
	}
	return ""
}

// statusNum is key=N in the syscall status line (quoted inside status=).
func statusNum(line, key string) int {
	m := regexp.MustCompile(`\b` + key + `=(\d+)`).FindStringSubmatch(line)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func (d *testDaemon) waitLong(what string, limit time.Duration, ok func() bool) {
	d.t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
		if ok() {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out (%s) waiting for %s; threat/status:\n%s\ndaemon said:\n%s", limit, what, d.read("threat/status"), d.out)
		}
	}
}

// alertOnly sets a threat policy of nothing but an alert: the agents
// are to be watched, not stopped.
func (d *testDaemon) alertOnly() {
	d.t.Helper()
	d.mustRun(`echo 'policy alert 0.5; throttle off; quarantine off; kill off; escalate off' > threat/ctl`)
}

// writeLoop writes loopScript under top and gives its path and the
// trigger file whose existence switches it to its other mix.
func writeLoop(t *testing.T, top string) (script, trigger string) {
	t.Helper()
	script = filepath.Join(top, "loop.sh")
	if err := os.WriteFile(script, []byte(loopScript), 0755); err != nil {
		t.Fatal(err)
	}
	return script, filepath.Join(top, "go")
}

const loopScript = `#!/bin/bash
# a steady benign loop; once the trigger file exists, a different mix
while :; do
  if [ -e "$1" ]; then
    cat /etc/shadow >/dev/null 2>&1
    ls -la /etc >/dev/null 2>&1
    (exec 3<>/dev/tcp/127.0.0.1/1) 2>/dev/null
    id >/dev/null
  else
    cat /proc/loadavg >/dev/null
  fi
  sleep 0.05
done
`

func TestSyscallSignalLive(t *testing.T) {
	d, top := adversaryDaemon(t, "sys", "-syscall-learn", "8000")
	// A host without BPF skips (the kernel's own answer); here the
	// capture must be on, or the test fails.
	requireCapture(t, d)
	d.alertOnly()
	script, trigger := writeLoop(t, top)
	d.mustRun(`echo 'spawn steady -- /bin/bash `+script+` `+filepath.Join(top, "never")+`' > ctl`, nobody)
	d.mustRun(`echo 'spawn changer -- /bin/bash `+script+` `+trigger+`' > ctl`, nobody)
	for _, id := range []string{"1", "2"} {
		if cgroupPath(d.read("agents/"+id+"/status"), "unified") == "" {
			t.Fatalf("agent %s has no cgroup2 directory:\n%s", id, d.read("agents/"+id+"/status"))
		}
	}
	d.waitLong("both profiles to be learned and calibrated", 60*time.Second, func() bool {
		return statusNum(d.syscallStatus(), "scoring") == 2
	})
	t.Logf("learned: %s", d.syscallStatus())

	// learn N starts agent 2's profile over from its next calls.
	d.mustRun(`echo 'learn 2' > threat/ctl`)
	if n := statusNum(d.syscallStatus(), "scoring"); n != 1 {
		t.Errorf("after learn 2: scoring=%d, want 1: %s", n, d.syscallStatus())
	}
	d.waitLong("agent 2's profile to be learned again", 60*time.Second, func() bool {
		return statusNum(d.syscallStatus(), "scoring") == 2
	})

	// Both steady: neither scores high.
	var steadyMax, changerBefore float64
	var steadyEv, changerEv string
	watch := func() {
		if a, ev := d.syscallScore(1); a > steadyMax {
			steadyMax, steadyEv = a, ev
		}
	}
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		watch()
		if b, ev := d.syscallScore(2); b > changerBefore {
			changerBefore, changerEv = b, ev
		}
	}
	t.Logf("steady phase: agent 1 max %.3f (%s), agent 2 max %.3f (%s)", steadyMax, steadyEv, changerBefore, changerEv)
	if changerBefore >= 0.5 {
		t.Errorf("agent 2 scores %.3f before changing anything", changerBefore)
	}

	// Agent 2 changes behaviour.
	if err := os.WriteFile(trigger, nil, 0644); err != nil {
		t.Fatal(err)
	}
	var high float64
	var evidence string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && high < 0.5 {
		time.Sleep(200 * time.Millisecond)
		watch()
		if b, ev := d.syscallScore(2); b > high {
			high, evidence = b, ev
		}
	}
	// keep watching the control a little longer while agent 2 misbehaves
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		watch()
	}
	t.Logf("changed: agent 2 score %.3f evidence %s; agent 1 max %.3f all along (%s)", high, evidence, steadyMax, steadyEv)
	if high < 0.5 {
		t.Errorf("agent 2 changed behaviour but its syscall signal stayed at %.3f\n%s", high, d.read("agents/2/threat"))
	}
	if evidence == "" || evidence == "-" {
		t.Errorf("agent 2's signal has no evidence: %q", evidence)
	}
	if steadyMax >= 0.5 {
		t.Errorf("the steady agent's syscall signal reached %.3f", steadyMax)
	}
	st := d.syscallStatus()
	t.Logf("threat/status: %s", st)
	if statusNum(st, "events") <= 0 || statusNum(st, "dropped") < 0 || !strings.Contains(st, "capture=on") || statusNum(st, "agents") != 2 {
		t.Errorf("threat/status syscall line: %q, want capture=on, events counted, dropped=N, agents=2", st)
	}
	if !strings.Contains(d.read("agents/2/threat"), "signal name=syscall") {
		t.Errorf("agents/2/threat has no syscall signal line:\n%s", d.read("agents/2/threat"))
	}

	// An agent that ends is untracked.
	d.mustRun(`echo kill > agents/1/ctl`)
	d.waitLong("agent 1 to be untracked", 15*time.Second, func() bool {
		return statusNum(d.syscallStatus(), "agents") == 1
	})
	d.term()
}

// TestSyscallSignalOff: with the capture turned off the syscall signal
// says so in threat/status, has no verdict for any agent, and the daemon
// runs its agents as ever (what a host without BPF gets, with its reason).
func TestSyscallSignalOff(t *testing.T) {
	d, _ := adversaryDaemon(t, "sysoff", "-syscall-learn", "-1")
	st := d.syscallStatus()
	if !strings.Contains(st, "capture=off") || !strings.Contains(st, "turned off (-syscall-learn -1)") || !strings.Contains(st, "agents=0") {
		t.Fatalf("threat/status syscall line: %q", st)
	}
	// paced: a tight fork-exec loop looks like a fork storm to the
	// threat engine, which may quarantine it (a frozen agent here)
	d.mustRun(`echo 'spawn quiet -- /bin/bash -c "while :; do cat /proc/loadavg >/dev/null; sleep 0.05; done"' > ctl`, nobody)
	d.waitFor("agent 1 to be scored", func() bool { return field(d.read("agents/1/threat"), "score") != "" })
	time.Sleep(time.Second)
	if v, _ := d.syscallScore(1); v != -1 {
		t.Errorf("a verdict from a signal with no capture: %v", v)
	}
	if s := field(d.read("agents/1/status"), "state"); s != "running" {
		t.Errorf("agent 1: state=%s", s)
	}
	d.term()
}
