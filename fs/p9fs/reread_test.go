package p9fs

import (
	"testing"

	"aiosfs/fs/fstest"
)

// A Tread at offset 0 of an open text file that has been read renders it
// again (Plan 9 polling, as fusefs does); Plain keeps the snapshot of the
// open. A read at another offset never re-renders, so a file read in
// pieces is one rendering.
func TestRereadAtZero(t *testing.T) {
	for _, plain := range []bool{false, true} {
		tr := fstest.NewTree()
		c, err := Dial("unix!" + serve(t, tr.Root, Options{Plain: plain}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.WriteFile("ctl", []byte("echo one\n")); err != nil {
			t.Fatal(err)
		}
		f, err := c.Open("value", false)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		if n, err := f.f.ReadAt(buf[:2], 0); err != nil || string(buf[:n]) != "on" {
			t.Fatalf("first read %q, %v", buf[:n], err)
		}
		if err := c.WriteFile("ctl", []byte("echo two!\n")); err != nil {
			t.Fatal(err)
		}
		if n, _ := f.f.ReadAt(buf, 2); string(buf[:n]) != "e\n" {
			t.Fatalf("plain=%v: read at 2 = %q, want the open's rendering %q", plain, buf[:n], "e\n")
		}
		want := "two!\n"
		if plain {
			want = "one\n"
		}
		if n, _ := f.f.ReadAt(buf, 0); string(buf[:n]) != want {
			t.Fatalf("plain=%v: re-read at 0 = %q, want %q", plain, buf[:n], want)
		}
		// The new rendering is what later offsets continue.
		if n, _ := f.f.ReadAt(buf, 3); !plain && string(buf[:n]) != "!\n" {
			t.Fatalf("read at 3 after the re-read = %q, want %q", buf[:n], "!\n")
		}
		f.Close()
	}
}
