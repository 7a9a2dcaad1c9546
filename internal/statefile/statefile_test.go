package statefile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"aiosfs/internal/statefile/statefiletest"
)

// Write replaces the file whole with mode 0600 and leaves no temporary
// file; a directory that is not there is an error that writes nothing.
func TestWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.json")
	for _, want := range []string{`{"a":1}`, `{"b":2}`} {
		if err := Write(p, []byte(want)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	if err := Write(filepath.Join(t.TempDir(), "no", "such", "dir"), []byte("x")); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// On a full filesystem Write fails with ENOSPC as the kernel said it,
// leaves the old file whole and no temporary behind; on a read-only one
// with EROFS.
func TestWriteFullAndReadOnly(t *testing.T) {
	dir := statefiletest.Tmpfs(t, 256<<10)
	p := filepath.Join(dir, "s.json")
	if err := Write(p, []byte("old")); err != nil {
		t.Fatal(err)
	}
	unfill := statefiletest.Fill(t, dir)
	err := Write(p, bytes.Repeat([]byte("n"), 64<<10))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write to a full filesystem: %v, want ENOSPC", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Fatalf("old file now %q", got)
	}
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	unfill()
	statefiletest.ReadOnly(t, dir)
	if err := Write(p, []byte("new")); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write to a read-only filesystem: %v, want EROFS", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Fatalf("old file now %q", got)
	}
}
