// Package statefiletest gives tests a state directory that fails the way
// a real one does: a small tmpfs that can be filled (ENOSPC) or remounted
// read-only (EROFS). The kernel's own errors, not an injected fake, so a
// test shows what a writer of a ctl file would see. Everything it mounts
// is unmounted in the test's cleanup.
package statefiletest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of size bytes on a new temporary directory and
// returns it; it skips the test where mounting is not allowed (not
// root). The mount goes at the end of the test.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	return TmpfsOpts(t, "size="+strconv.FormatInt(size, 10))
}

// TmpfsOpts is Tmpfs with tmpfs's own mount options, e.g.
// "size=4m,nr_inodes=64" for a filesystem whose inodes run out.
func TmpfsOpts(t testing.TB, opts string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs as a small state directory")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts+",mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			// Something still holds it open: detach, never leave it.
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// Fill writes filler files under dir until the filesystem has no block
// left, and returns a function that removes them again.
func Fill(t testing.TB, dir string) (unfill func()) {
	t.Helper()
	var made []string
	chunk := bytes.Repeat([]byte{0xa5}, 64<<10)
	for i := 0; ; i++ {
		p := filepath.Join(dir, "filler"+strconv.Itoa(i))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0600)
		if err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatalf("fill %s: %v", dir, err)
		}
		made = append(made, p)
		full := false
		for {
			if _, err := f.Write(chunk[:4096]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill %s: %v", p, err)
				}
				full = true
				break
			}
		}
		f.Close()
		if full {
			break
		}
	}
	return func() {
		for _, p := range made {
			os.Remove(p)
		}
	}
}

// ReadOnly remounts the tmpfs at dir read-only and returns a function
// that makes it writable again (also run at cleanup).
func ReadOnly(t testing.TB, dir string) (writable func()) {
	t.Helper()
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
	done := false
	w := func() {
		if done {
			return
		}
		done = true
		if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT, ""); err != nil {
			t.Errorf("remount %s read-write: %v", dir, err)
		}
	}
	t.Cleanup(w)
	return w
}
