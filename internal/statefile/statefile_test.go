package statefile

import (
	"os"
	"path/filepath"
	"testing"
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
