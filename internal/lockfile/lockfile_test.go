package lockfile

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the other daemon: with LOCKFILE_HOLD=DIR it
// takes DIR's lock, says "locked" and waits to be killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("LOCKFILE_HOLD"); dir != "" {
		l, err := Lock(dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
		l.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holder starts a process that holds dir's lock.
func holder(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LOCKFILE_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // our own child, by pid
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("holder: %q", line)
	}
	return cmd
}

// A second daemon on the same state directory is refused at once, told
// who has it; when the holder is killed (no clean-up of its own) the
// kernel releases the lock and the directory can be taken.
func TestLockHeldByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	h := holder(t, dir)
	start := time.Now()
	l, err := Lock(dir)
	if err == nil {
		l.Close()
		t.Fatal("second Lock succeeded while another process holds it")
	}
	if time.Since(start) > time.Second {
		t.Errorf("Lock waited %v; it must fail at once", time.Since(start))
	}
	want := fmt.Sprintf("another aiosfs (pid %d) is using %s", h.Process.Pid, dir)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	var held *HeldError
	if !errors.As(err, &held) || held.Pid != h.Process.Pid || !errors.Is(err, ErrLocked) {
		t.Errorf("error %#v is not a HeldError for pid %d", err, h.Process.Pid)
	}

	h.Process.Signal(unix.SIGKILL)
	h.Wait()
	l, err = Lock(dir)
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	defer l.Close()
	b, _ := os.ReadFile(l.Path())
	if strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("lock file holds %q, want our pid %d", b, os.Getpid())
	}
}

// Within one process too (flock locks belong to the open file), and
// Close gives the lock back.
func TestLockCloseReleases(t *testing.T) {
	dir := t.TempDir()
	l, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("(pid %d)", os.Getpid())) {
		t.Fatalf("second Lock: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := Lock(dir)
	if err != nil {
		t.Fatalf("Lock after Close: %v", err)
	}
	l2.Close()
}

// The lock's descriptor must not leak into processes the daemon starts:
// an agent outliving the daemon would keep the directory locked.
func TestLockNotInherited(t *testing.T) {
	dir := t.TempDir()
	l, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	flags, err := unix.FcntlInt(l.f.Fd(), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Fatal("lock descriptor is not close-on-exec")
	}
}

// A directory that cannot hold the file fails with the reason.
func TestLockMissingDir(t *testing.T) {
	_, err := Lock("/nonexistent/aiosfs-state")
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Lock on a missing directory: %v", err)
	}
}
