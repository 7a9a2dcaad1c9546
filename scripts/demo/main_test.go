package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMakeDemo runs `make demo` as a user would, unattended, and checks
// that it ends in time, cleanly, with no agent, cgroup, mount or BPF pin
// left.
func TestMakeDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the demo mounts FUSE and makes cgroups")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("needs /dev/fuse")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("needs make")
	}
	if testing.Short() {
		t.Skip("a minute long")
	}
	root, _ := filepath.Abs("../..")
	cmd := exec.Command("make", "-s", "-C", root, "demo")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(115 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // the demo stops its daemon
		<-done
		t.Fatalf("make demo still running after 115s:\n%s", out.String())
	}
	took := time.Since(start)
	text := out.String()
	if err != nil {
		t.Fatalf("make demo: %v after %v:\n%s", err, took, text)
	}
	t.Logf("make demo: %v, %d lines", took.Round(time.Second), strings.Count(text, "\n"))
	m := regexp.MustCompile(`a daemon of its own at (\S+)/aios \(state \S+, cgroups under \.\.\./(\S+),`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no mount point and prefix in the first line:\n%s", text)
	}
	dir, prefix := m[1], m[2]
	// Each engine acted, and the tour said where to look.
	for _, want := range []string{
		"class=periodic period=", "class=growing", // sched's patterns (the period, 2.5 s, is not checked: a loaded machine moves it)
		`reason="sched: oom-bump"`, "source=telemetry kind=oom", // the kernel's OOM kill, and sched's answer
		"reason=predicted-", "enforce=on", // allocations enforced
		"source=gpu kind=grant", "hit_ratio=", // the GPU and memory engines
		"source=threat kind=quarantine", "type=ResourceExhaustion", "FROZEN", // the threat engine's quarantine
		"heal restart=on-failure", "state=backoff", "restart=on-failure", // the healing engine's back-off
		"top " + dir + "/aios", "clean: no agent process", "no BPF pin",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the tour never shows %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	}
	// Checked here again, not only by the demo itself.
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mounts, []byte(dir)) {
		t.Errorf("a mount under %s is left", dir)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("%s is left", dir)
	}
	filepath.WalkDir("/sys/fs/cgroup", func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() && e.Name() == prefix {
			t.Errorf("cgroup %s is left", p)
			return filepath.SkipDir
		}
		return nil
	})
	if pins, _ := filepath.Glob("/sys/fs/bpf/aiosfs/" + prefix + "-agent-*"); len(pins) > 0 {
		t.Errorf("BPF pins are left: %v", pins)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte("\x00-work\x00")) && bytes.Contains(b, []byte("/demo\x00")) {
			t.Errorf("an agent is left: %s %q", p, b)
		}
	}
}
