package main

// Saved system-call profiles, live (issue 13): an agent's learned profile
// survives a restart of the daemon (kill -9, the agent re-adopted): the
// restarted daemon scores it at once, without learning, and its signal
// still rises when the agent changes what it does. A profile changed on
// disk is refused at the next start: the log and threat/status say so and
// the agent learns again; `threat/ctl learn N` deletes the saved profile.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aiosfs/engines/ml"
	"aiosfs/hal/syscap"
	"aiosfs/internal/testutil"
)

// requireCapture fails the test when a kernel that can capture shows the
// capture off, and skips it on a kernel that cannot.
func requireCapture(t *testing.T, d *testDaemon) {
	t.Helper()
	st := d.syscallStatus()
	if st == "" {
		t.Fatalf("threat/status has no syscall signal line:\n%s", d.read("threat/status"))
	}
	if strings.Contains(st, "capture=off") {
		testutil.RequireSupport(t, "a BPF syscall capture", syscap.Supported())
		t.Fatalf("the capture is off on a kernel that supports it: %s", st)
	}
}

// killRestart kills the daemon with SIGKILL (its agents keep running)
// and starts it again on the same state with extra flags.
func (d *testDaemon) killRestart(extra ...string) *testDaemon {
	d.t.Helper()
	d.kill9()
	nd := startDaemon(d.t, d.mount, d.state, d.prefix, extra...)
	d.t.Cleanup(func() {
		if nd.cmd.ProcessState == nil {
			nd.term()
		}
	})
	return nd
}

func TestSyscallProfileSurvivesRestart(t *testing.T) {
	args := []string{"-syscall-learn", "3000"}
	d, top := adversaryDaemon(t, "sysprof", args...)
	requireCapture(t, d)
	d.alertOnly()
	script, trigger := writeLoop(t, top)
	d.mustRun(`echo 'spawn changer -- /bin/bash `+script+` `+trigger+`' > ctl`, nobody)
	d.waitLong("the profile to be learned, calibrated and saved", 60*time.Second, func() bool {
		st := d.syscallStatus()
		return statusNum(st, "scoring") == 1 && statusNum(st, "saved") == 1
	})
	pdir := filepath.Join(d.state, "threat", "syscall", "agent-1")
	for _, f := range []string{"profile.json", ml.ManifestName, ml.SigName} {
		if _, err := os.Stat(filepath.Join(pdir, f)); err != nil {
			t.Fatalf("saved profile: %v", err)
		}
	}

	// kill -9 and start again: the profile is loaded, the agent is scored
	// without learning anything.
	d = d.killRestart(args...)
	st := d.syscallStatus()
	t.Logf("after restart: %s", st)
	if statusNum(st, "loaded") != 1 || statusNum(st, "scoring") != 1 || statusNum(st, "learning") != 0 || statusNum(st, "refused") != 0 {
		t.Fatalf("after restart: %q, want loaded=1 scoring=1 learning=0 refused=0\n%s", st, d.out)
	}
	d.alertOnly()
	d.waitLong("a verdict from the loaded profile", 20*time.Second, func() bool {
		v, _ := d.syscallScore(1)
		return v >= 0
	})
	var before float64
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if v, _ := d.syscallScore(1); v > before {
			before = v
		}
	}
	if err := os.WriteFile(trigger, nil, 0644); err != nil {
		t.Fatal(err)
	}
	var high float64
	var ev string
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end) && high < 0.5; time.Sleep(200 * time.Millisecond) {
		if v, e := d.syscallScore(1); v > high {
			high, ev = v, e
		}
	}
	t.Logf("loaded profile: steady max %.3f, changed %.3f (%s)", before, high, ev)
	if before >= 0.5 {
		t.Errorf("with the loaded profile the steady agent scores %.3f", before)
	}
	if high < 0.5 {
		t.Errorf("with the loaded profile the changed agent scores only %.3f", high)
	}
	if statusNum(d.syscallStatus(), "learning") != 0 {
		t.Errorf("the restarted daemon learns again: %s", d.syscallStatus())
	}

	// One byte of the saved profile changed: refused at the next start.
	os.Remove(trigger)
	p := filepath.Join(pdir, "profile.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(`"base":`)) + len(`"base":`)
	b[i] ^= 1 // a digit to another: a quieter base, still a valid file
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d = d.killRestart(args...)
	st = d.syscallStatus()
	t.Logf("after tampering: %s", st)
	if statusNum(st, "loaded") != 0 || statusNum(st, "refused") != 1 || !strings.Contains(st, "profile of agent 1") || !strings.Contains(st, "digest does not match") {
		t.Errorf("threat/status after tampering: %q, want loaded=0 refused=1 and why", st)
	}
	if !strings.Contains(d.out.String(), "syscall profile of agent 1 refused") {
		t.Errorf("the log does not say the profile was refused:\n%s", d.out)
	}
	d.waitLong("agent 1 to learn again", 20*time.Second, func() bool {
		return statusNum(d.syscallStatus(), "learning") == 1
	})
	if v, _ := d.syscallScore(1); v != -1 {
		t.Errorf("a verdict from a refused profile: %v", v)
	}
	// learn N deletes the saved profile.
	d.mustRun(`echo 'learn 1' > threat/ctl`)
	if _, err := os.Stat(pdir); !os.IsNotExist(err) {
		t.Errorf("after learn 1 the saved profile is still there: %v", err)
	}
	d.term()
}
