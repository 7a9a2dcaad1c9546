package main

import (
	"aiosfs/internal/testutil"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A SIGTERM that arrives while the daemon is still starting (its first
// log line is out, the tree may not be mounted yet) shuts it down
// cleanly once start-up ends: exit 0, the mount gone, its cgroups gone.
// The daemon used to catch SIGTERM only after Start returned, and
// Start mounts the tree first, so a signal from someone who saw the
// mount could kill it by the default action and leave both behind.
func TestSigtermDuringStart(t *testing.T) {
	requireRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	top, err := os.MkdirTemp("", "aiosfs-sig-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	mount, prefix := filepath.Join(top, "aios"), fmt.Sprintf("aiosfs-sig-%d", os.Getpid())
	// A daemon killed in start-up leaves its (empty) cgroups; the test
	// fails on them and then removes them, deepest first.
	t.Cleanup(func() {
		for _, dir := range cgroupsLeft(prefix) {
			testutil.RmdirTree(t, dir)
		}
	})
	for round := 0; round < 3; round++ {
		out := &syncBuffer{}
		cmd := exec.Command(self, "serve", "-mount", mount, "-state", filepath.Join(top, "state"),
			"-cgroup-prefix", prefix, "-interval", "200ms", "-grace", "1s")
		cmd.Env = append(os.Environ(), beDaemon+"=1")
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Start writes its first lines (GPU probe, threat model) well
		// before it returns; the signal goes out on the first of them.
		for deadline := time.Now().Add(15 * time.Second); len(out.String()) == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("the daemon wrote nothing in 15 s")
			}
		}
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: SIGTERM during start: %v (want a clean exit)\n%s", round, err, out)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("round %d: the daemon did not stop on a SIGTERM sent during start:\n%s", round, out)
		}
		if !strings.Contains(out.String(), "shutting down") {
			t.Errorf("round %d: no shutdown logged:\n%s", round, out)
		}
		if b, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(b), mount) {
			t.Fatalf("round %d: the mount %s is left behind", round, mount)
		}
		if left := cgroupsLeft(prefix); len(left) > 0 {
			t.Fatalf("round %d: cgroups left behind: %v", round, left)
		}
	}
}
