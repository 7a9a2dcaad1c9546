package fanwatch

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"aiosfs/internal/testutil"
)

func newWatcher(t *testing.T) *Watcher {
	t.Helper()
	testutil.RequireCap(t, unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN", "fanotify marks a filesystem")
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestOpens: opens by other processes of a marked file and of a file in
// a marked directory are reported with the opener's pid and the path;
// this process's own opens, and opens of unmarked files, are not; Close
// ends Read.
func TestOpens(t *testing.T) {
	w := newWatcher(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	keys := filepath.Join(dir, "keys")
	other := filepath.Join(dir, "other")
	os.Mkdir(keys, 0o700)
	for _, p := range []string{secret, other, filepath.Join(keys, "id_rsa")} {
		if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{secret, keys, secret} { // the second secret is a no-op
		if err := w.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	if w.Marked() != 2 {
		t.Errorf("Marked() = %d, want 2", w.Marked())
	}
	if err := w.Add(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Add(missing) = %v, want ErrNotExist", err)
	}
	got := make(chan Open, 64)
	done := make(chan error, 1)
	go func() { done <- w.Read(func(o Open) { got <- o }) }()

	os.ReadFile(secret) // ours: not reported
	run := func(p string) int {
		c := exec.Command("cat", p)
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		return c.Process.Pid
	}
	runOther := run(other)
	want := map[int]string{run(secret): secret, run(filepath.Join(keys, "id_rsa")): filepath.Join(keys, "id_rsa")}
	deadline := time.After(5 * time.Second)
	for len(want) > 0 {
		select {
		case o := <-got:
			if o.Pid == os.Getpid() || o.Pid == runOther {
				t.Errorf("reported %+v", o)
				continue
			}
			if p, ok := want[o.Pid]; ok {
				if o.Path != p {
					t.Errorf("pid %d opened %q, reported %q", o.Pid, p, o.Path)
				}
				delete(want, o.Pid)
			}
		case <-deadline:
			t.Fatalf("not reported: %v", want)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not end at Close")
	}
}
