package testutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Cgroup2Dir makes a cgroup2 directory for the test under this process's
// own cgroup2 path (the unified hierarchy of a hybrid host, or the one
// hierarchy of a v2 host), named after tag, and removes it when the test
// ends (waiting up to 5 s for killed children to leave it). It skips,
// saying why, only where the host has no cgroup2 hierarchy for this
// process.
func Cgroup2Dir(t testing.TB, tag string) string {
	t.Helper()
	mount := ""
	for _, m := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(m, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			mount = m
		}
	}
	if mount == "" {
		t.Skip("needs a cgroup2 mount (/sys/fs/cgroup or /sys/fs/cgroup/unified)")
	}
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	own := ""
	for _, line := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			own = p
		}
	}
	if own == "" {
		t.Skip("needs a cgroup2 line (0::) in /proc/self/cgroup")
	}
	dir := filepath.Join(mount, own, fmt.Sprintf("%s-%d-%d", tag, os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("remove test cgroup %s: %v", dir, err)
				return
			}
		}
	})
	return dir
}

// RmdirTree removes a tree of cgroup directories, deepest first (cgroup
// directories go with rmdir; their files cannot be unlinked), and fails
// the test on one that will not go.
func RmdirTree(t testing.TB, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			RmdirTree(t, filepath.Join(dir, e.Name()))
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rmdir %s: %v", dir, err)
	}
}
