package fusefs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"aiosfs/fs"
	"aiosfs/fs/fstest"
)

// testName is the file system name of every test mount, so that TestMain
// can find any the tests left behind.
const testName = "aiosfstest"

// childEnv, when set to a directory, turns the test binary into a daemon
// that mounts the test tree there and serves until it is killed (the stale
// mount test needs a daemon it can crash).
const childEnv = "AIOSFS_FUSEFS_TEST_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		serveChild(dir)
		return
	}
	code := m.Run()
	if left := testMounts(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "fusefs tests left mounts behind: %s\n", strings.Join(left, " "))
		code = 1
	}
	os.Exit(code)
}

func serveChild(dir string) {
	srv, err := Mount(dir, fstest.NewTree().Root, Options{AllowOther: true, Name: testName})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("ready")
	srv.Wait()
	os.Exit(0)
}

// testMounts lists the mount points of live or stale test mounts.
func testMounts() []string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 2 && fields[2] == "fuse."+testName {
			out = append(out, fields[1])
		}
	}
	return out
}

func mounted(dir string) bool {
	for _, m := range testMounts() {
		if m == dir {
			return true
		}
	}
	return false
}

// requireRoot skips tests that mount: as root, go-fuse calls mount(2)
// itself, and the suite acts as other users through setfsuid.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts FUSE with mount(2) and acts as other users")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("needs /dev/fuse: %v", err)
	}
}

// mountTree serves root at a fresh directory, unmounted when the test
// ends. The directory does not exist yet: Mount creates it.
func mountTree(t *testing.T, root fs.Dir) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	srv, err := Mount(dir, root, Options{AllowOther: true, Name: testName})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		if mounted(dir) {
			t.Errorf("%s still mounted after Unmount", dir)
		}
	})
	return dir
}

func TestClearStaleLeavesOthersAlone(t *testing.T) {
	dir := t.TempDir()
	if err := ClearStale(dir); err != nil {
		t.Errorf("plain directory: %v", err)
	}
	if err := ClearStale(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("missing directory: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("ClearStale touched a plain directory: %v", err)
	}
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	errors.As(err, &e)
	return e
}
