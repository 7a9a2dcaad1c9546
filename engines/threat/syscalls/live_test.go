package syscalls

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"aiosfs/hal/syscap"
	"aiosfs/internal/testutil"
)

// rmCgroup removes a test cgroup directory once its killed children
// have left it (the kernel may take a moment).
func rmCgroup(t *testing.T, dir string) {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("remove %s: %v", dir, err)
			return
		}
	}
}

func bashIn(t *testing.T, dir, script string) {
	t.Helper()
	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	cmd := exec.Command("/bin/bash", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// TestSignalLiveTrack: with the real capture, Sync tracks an agent's
// directory (its calls reach the agent's profile), tracks a directory
// made again under the same name afresh (a new cgroup id), and untracks
// what is no longer alive; the status line counts it all.
func TestSignalLiveTrack(t *testing.T) {
	testutil.RequireRoot(t, "loads a BPF program")
	testutil.RequireSupport(t, "a BPF syscall capture", syscap.Supported())
	s, err := New(Config{LearnCalls: 1 << 30, Capture: syscap.Config{Flush: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir := testutil.Cgroup2Dir(t, "syscalls-test")
	s.Sync(map[int]string{5: dir})
	if st := s.Status(); !strings.Contains(st, "capture=on") || !strings.Contains(st, "agents=1") {
		t.Fatalf("status %q", st)
	}
	wait := func(more int) int {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if ph, n := s.Phase(5); ph == "learning" && n > more {
				return n
			}
		}
		ph, n := s.Phase(5)
		t.Fatalf("agent 5: phase %q, %d calls, want more than %d; %s", ph, n, more, s.Status())
		return 0
	}
	bashIn(t, dir, "for i in 1 2 3; do read -r x < /proc/self/stat; done")
	n1 := wait(20)
	// the directory removed and made again: a new cgroup id
	rmCgroup(t, dir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.Sync(map[int]string{5: dir})
	bashIn(t, dir, "for i in 1 2 3; do read -r x < /proc/self/stat; done")
	wait(n1 + 20)
	time.Sleep(200 * time.Millisecond) // the rest of the ring drained
	_, n2 := s.Phase(5)
	t.Logf("calls: %d, then %d after the directory was made again; %s", n1, n2, s.Status())
	s.Sync(nil)
	if st := s.Status(); !strings.Contains(st, "agents=0") {
		t.Fatalf("after sync with nothing alive: %q", st)
	}
	bashIn(t, dir, "for i in 1 2 3; do read -r x < /proc/self/stat; done")
	time.Sleep(200 * time.Millisecond)
	if _, n3 := s.Phase(5); n3 != n2 {
		t.Fatalf("calls counted after untrack: %d -> %d", n2, n3)
	}
}
