package cgroup

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"aiosfs/internal/testutil"
	"time"

	"golang.org/x/sys/unix"
)

var prefixSeq atomic.Int64

// testPrefix is a Prefix no other test run uses, so that parallel runs
// never share (or remove) each other's cgroups.
func testPrefix() string {
	return fmt.Sprintf("aiosfs-test-%d-%d", os.Getpid(), prefixSeq.Add(1))
}

func requireRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "creating cgroups and moving processes")
}

// cgroup2Mount finds a cgroup2 mount: /sys/fs/cgroup on a unified host,
// /sys/fs/cgroup/unified on a hybrid one.
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	for _, d := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(d, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return d
		}
	}
	t.Skip("host has no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	return ""
}

// requireV1 skips unless the host has the v1 hierarchies the test uses.
func requireV1(t *testing.T, ctls ...string) {
	t.Helper()
	var st unix.Statfs_t
	if unix.Statfs(DefaultRoot, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		t.Skip("host is cgroup v2 only (unified): no v1 hierarchies")
	}
	for _, c := range ctls {
		if !isCgroupDir(filepath.Join(DefaultRoot, c)) {
			t.Skipf("host has no cgroup v1 %s hierarchy at %s/%s", c, DefaultRoot, c)
		}
	}
}

// newTestManager makes a Manager and, at cleanup, closes it and checks
// that nothing of its Prefix is left in any hierarchy (removing leftovers
// so a failed test does not leak cgroups).
func newTestManager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		for _, h := range m.hierarchies() {
			top := filepath.Join(h.mount, h.own, strings.Split(m.prefix, "/")[0])
			if exists(top) {
				t.Errorf("cgroup left behind: %s", top)
				testutil.RmdirTree(t, top)
			}
		}
	})
	return m
}

// cleanupGroup kills and deletes g at the end of the test.
func cleanupGroup(t *testing.T, g Group) {
	t.Cleanup(func() {
		if err := g.Kill(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Logf("cleanup kill %s: %v", g.Name(), err)
		}
		if err := g.Delete(); err != nil {
			t.Errorf("cleanup delete %s: %v", g.Name(), err)
		}
	})
}

// sleeper is `sh -c 'read _; exec sleep 60'`: a process this test starts,
// which becomes sleep 60 (same pid) when told to, so that the exec (and
// the memory it charges) can happen after the process has been moved.
type sleeper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
	pid   int
}

func startSleeper(t *testing.T) *sleeper {
	t.Helper()
	cmd := exec.Command("sh", "-c", "read _; exec sleep 60")
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sleeper{cmd: cmd, stdin: w, done: make(chan struct{}), pid: cmd.Process.Pid}
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill() // our own child, by pid; an error means it is gone
		w.Close()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Errorf("sleeper %d did not end", s.pid)
		}
	})
	return s
}

// execSleep lets the shell exec sleep and waits until it has.
func (s *sleeper) execSleep(t *testing.T) {
	t.Helper()
	if _, err := s.stdin.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	err := pollUntil(5*time.Second, func() (bool, error) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", s.pid))
		return err == nil && strings.TrimSpace(string(b)) == "sleep", nil
	})
	if err != nil {
		t.Fatalf("pid %d did not exec sleep", s.pid)
	}
}

// waitGone waits for the sleeper to end and returns how it ended.
func (s *sleeper) waitGone(t *testing.T) string {
	t.Helper()
	select {
	case <-s.done:
		return s.cmd.ProcessState.String()
	case <-time.After(10 * time.Second):
		t.Fatalf("pid %d still running", s.pid)
		return ""
	}
}

// procState is the State line of /proc/PID/status.
func procState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "State:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no State in /proc/%d/status", pid)
	return ""
}

// procCgroup is the cgroup path of pid in the hierarchy with the given
// controller list ("memory", "" for cgroup2), as /proc/PID/cgroup has it.
func procCgroup(t *testing.T, pid int, ctl string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == ctl {
				return f[2]
			}
		}
	}
	t.Fatalf("/proc/%d/cgroup has no %q line", pid, ctl)
	return ""
}

// readTrim reads a file and trims white space; the test fails on error.
func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// wantFile checks a kernel (or fixture) file's content.
func wantFile(t *testing.T, path, want string) {
	t.Helper()
	if got := readTrim(t, path); got != want {
		t.Errorf("%s = %q, want %q", path, got, want)
	}
}

// containsPid says whether a cgroup.procs file lists pid.
func containsPid(t *testing.T, procsFile string, pid int) bool {
	t.Helper()
	pids, err := parsePids(readTrim(t, procsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
