package kfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadGrowsAndMissing(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("1234567\n", 3000) // 24000 bytes: several growths
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 { // the pooled buffer is reused
		var got string
		if err := Read(p, func(b []byte) error { got = string(b); return nil }); err != nil || got != big {
			t.Fatalf("Read: %d bytes, %v; want %d", len(got), err, len(big))
		}
	}
	err := Read(filepath.Join(dir, "nothere"), func([]byte) error { return nil })
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want ErrNotExist", err)
	}
}

func TestParse(t *testing.T) {
	if v, ok := Uint([]byte(" 42\n")); !ok || v != 42 {
		t.Errorf("Uint = %d %v", v, ok)
	}
	for _, bad := range []string{"", "x", "18446744073709551616", "-1"} {
		if _, ok := Uint([]byte(bad)); ok {
			t.Errorf("Uint(%q) ok", bad)
		}
	}
	kv := []byte("usage_usec 10\nnr_throttled 3\nnr_throttled_x 9\noom_kill 7")
	for k, want := range map[string]uint64{"usage_usec": 10, "nr_throttled": 3, "oom_kill": 7} {
		if v, ok := Keyed(kv, k); !ok || v != want {
			t.Errorf("Keyed %s = %d %v, want %d", k, v, ok, want)
		}
	}
	if _, ok := Keyed(kv, "nr"); ok {
		t.Error("Keyed matched a prefix")
	}
}

func TestReadProcSelf(t *testing.T) {
	var n int
	if err := Read("/proc/self/stat", func(b []byte) error { n = len(b); return nil }); err != nil || n == 0 {
		t.Fatalf("/proc/self/stat: %d bytes, %v", n, err)
	}
}

func BenchmarkRead(b *testing.B) {
	for b.Loop() {
		Read("/proc/self/stat", func([]byte) error { return nil })
	}
}

func BenchmarkOSReadFile(b *testing.B) {
	for b.Loop() {
		os.ReadFile("/proc/self/stat")
	}
}
