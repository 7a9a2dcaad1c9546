package fusefs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"aiosfs/fs"
	"aiosfs/fs/fstest"
)

// mountWith is mountTree with options.
func mountWith(t *testing.T, root fs.Dir, opts Options) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	opts.AllowOther, opts.Name = true, testName
	srv, err := Mount(dir, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return dir
}

// The conformance suite passes with the remedies off too (Plain), so the
// bench's "before" mount serves the same tree.
func TestConformancePlain(t *testing.T) {
	requireRoot(t)
	fstest.Run(t, func(t *testing.T, root fs.Dir, as fs.Caller) fstest.Client {
		dir := mountWith(t, root, Options{Plain: true})
		r, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return &client{root: r, as: as}
	})
}

// With entries cached (a long timeout, so they cannot expire during the
// test), a removed object is gone at once for open, stat and readdir, and
// a new one under the same name is found.
func TestRemovalWithCachedEntries(t *testing.T) {
	requireRoot(t)
	tr := fstest.NewTree()
	dir := mountWith(t, tr.Root, Options{EntryTimeout: 3600e9})
	ctl := filepath.Join(dir, "ctl")
	status := filepath.Join(dir, "dyn/a/status")
	if err := os.WriteFile(ctl, []byte("mk a\n"), 0); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second walk uses the cached entries
		if b, err := os.ReadFile(status); err != nil || string(b) != "name=a\n" {
			t.Fatalf("status = %q, %v", b, err)
		}
	}
	if err := os.WriteFile(ctl, []byte("rm a\n"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(status); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("open of a removed object's file: %v, want ENOENT", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dyn/a")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat of a removed object: %v, want ENOENT", err)
	}
	if _, err := os.ReadDir(filepath.Join(dir, "dyn/a")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("readdir of a removed object: %v, want ENOENT", err)
	}
	if err := os.WriteFile(ctl, []byte("mk a\n"), 0); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(status); err != nil || string(b) != "name=a\n" {
		t.Fatalf("status after mk again = %q, %v", b, err)
	}
}

// A read at offset 0 of an open text file that has been read renders it
// again (Plan 9 polling); Plain keeps the snapshot of the open. A read at
// another offset never re-renders, so a file read in pieces is one
// rendering.
func TestRereadAtZero(t *testing.T) {
	requireRoot(t)
	for _, plain := range []bool{false, true} {
		tr := fstest.NewTree()
		dir := mountWith(t, tr.Root, Options{Plain: plain})
		ctl := filepath.Join(dir, "ctl")
		if err := os.WriteFile(ctl, []byte("echo one\n"), 0); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(dir, "value"))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := f.ReadAt(buf[:2], 0)
		if err != nil || string(buf[:n]) != "on" {
			t.Fatalf("first read %q, %v", buf[:n], err)
		}
		if err := os.WriteFile(ctl, []byte("echo two!\n"), 0); err != nil {
			t.Fatal(err)
		}
		n, _ = f.ReadAt(buf, 2)
		if string(buf[:n]) != "e\n" {
			t.Fatalf("plain=%v: read at 2 = %q, want the open's rendering %q", plain, buf[:n], "e\n")
		}
		n, _ = f.ReadAt(buf, 0)
		want := "two!\n"
		if plain {
			want = "one\n"
		}
		if string(buf[:n]) != want {
			t.Fatalf("plain=%v: re-read at 0 = %q, want %q", plain, buf[:n], want)
		}
		f.Close()
	}
}

// GETXATTR is ENOSYS, which the kernel turns into EOPNOTSUPP for the
// caller and remembers; Plain answers ENODATA as go-fuse does.
func TestXattrNotSupported(t *testing.T) {
	requireRoot(t)
	for plain, want := range map[bool]error{false: unix.EOPNOTSUPP, true: unix.ENODATA} {
		dir := mountWith(t, fstest.NewTree().Root, Options{Plain: plain})
		for range 2 {
			_, err := unix.Lgetxattr(filepath.Join(dir, "value"), "security.selinux", make([]byte, 64))
			if !errors.Is(err, want) {
				t.Errorf("plain=%v: getxattr: %v, want %v", plain, err, want)
			}
		}
	}
}
