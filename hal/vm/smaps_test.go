package vm

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// parseSmapsScanner is the parser as it was before SmapsReader (a
// bufio.Scanner, strings.Fields per line), kept as the reference the
// in-place parser is held to and as the benchmark's "before".
func parseSmapsScanner(b []byte) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			var m Mapping
			lo, hi, _ := strings.Cut(f[0], "-")
			var e1, e2, e3, e4 error
			m.Start, e1 = strconv.ParseUint(lo, 16, 64)
			m.End, e2 = strconv.ParseUint(hi, 16, 64)
			m.Perms = f[1]
			m.Offset, e3 = strconv.ParseUint(f[2], 16, 64)
			m.Inode, e4 = strconv.ParseUint(f[4], 10, 64)
			if e1 != nil || e2 != nil || e3 != nil || e4 != nil {
				return nil, fmt.Errorf("smaps: %q", line)
			}
			if len(f) > 5 {
				i := 0
				for n := 5; n > 0; n-- {
					for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
						i++
					}
					for i < len(line) && line[i] != ' ' && line[i] != '\t' {
						i++
					}
				}
				m.Path = strings.TrimSpace(line[i:])
			}
			out = append(out, m)
			continue
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("smaps: field before any mapping: %q", line)
		}
		if len(f) < 2 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		var dst *uint64
		m := &out[len(out)-1]
		switch strings.TrimSuffix(f[0], ":") {
		case "Size":
			dst = &m.Size
		case "Rss":
			dst = &m.Rss
		case "Referenced":
			dst = &m.Referenced
		case "Anonymous":
			dst = &m.Anonymous
		case "Swap":
			dst = &m.Swap
		default:
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("smaps: %q: %w", line, err)
		}
		if len(f) > 2 && f[2] == "kB" {
			n *= 1024
		}
		*dst = n
	}
	return out, sc.Err()
}

// TestSmapsMatchesScanner holds the in-place parser (and the reader's
// interning and kept buffer, read twice) to the scanner's on the fixture
// and on the kernel's smaps of every process this test may read.
func TestSmapsMatchesScanner(t *testing.T) {
	check := func(name string, b []byte) {
		want, werr := parseSmapsScanner(b)
		got, gerr := ParseSmaps(b)
		if (werr != nil) != (gerr != nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: in place %d mappings (%v), scanner %d (%v)", name, len(got), gerr, len(want), werr)
		}
	}
	fix, err := os.ReadFile(filepath.Join(fixtures, "proc/4242/smaps"))
	if err != nil {
		t.Fatal(err)
	}
	check("fixture", fix)
	for _, s := range []string{"", "\n\n", "1000-2000 r--p 00000000 08:01 1311 /x y \r\nRss: 4 kB\r\nReferenced:\t8 kB\nVmFlags: rd mr\nfoo-bar x\nSwap: 3\n",
		"Rss: 4 kB\n", "a-b c d e\n", "1000-2000 r--p 0 08:01 1311\nRss: x kB\n", "1-2 p 0 d 1\nSize: 18446744073709551616 kB\n"} {
		check(fmt.Sprintf("%q", s), []byte(s))
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/smaps")
	r := FS("/proc").NewSmapsReader()
	var out []Mapping
	n := 0
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		check(p, b)
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		for range 2 {
			// A live process maps and unmaps between reads (a Go
			// program's heap arenas split and grow), and its Referenced
			// and Rss move: compare the layout only, and only when the
			// kernel's file read before and after the reader's agree on
			// it, so a change between reads is not blamed on the parser.
			before, _ := parseSmapsScanner(b)
			out, err = r.Smaps(pid, out)
			if err != nil {
				break
			}
			a, aerr := os.ReadFile(p)
			if aerr != nil {
				break
			}
			after, _ := parseSmapsScanner(a)
			if !sameLayout(before, after) {
				b = a
				continue
			}
			if !sameLayout(out, before) {
				t.Errorf("%s: reader's %d mappings differ from the kernel's %d, which held still", p, len(out), len(before))
				for i := range min(len(out), len(before)) {
					if !sameLayout(out[i:i+1], before[i:i+1]) {
						t.Errorf("%s: mapping %d: reader %+v, scanner %+v", p, i, out[i], before[i])
						break
					}
				}
			}
			b = a
		}
		n++
	}
	t.Logf("%d processes' smaps compared", n)
}

// sameLayout says whether two parses name the same mappings (start, end,
// permissions, inode, path), ignoring the counters that move by themselves.
func sameLayout(a, b []Mapping) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Start != b[i].Start || a[i].End != b[i].End || a[i].Path != b[i].Path || a[i].Perms != b[i].Perms || a[i].Inode != b[i].Inode {
			return false
		}
	}
	return true
}

// BenchmarkSmaps reads and parses a real process's smaps: this test
// binary's own (a Go program: about 30 mappings) and an idle perl loop's
// (the agents of scripts/bench), the old way (os.ReadFile, scanner and
// fields) and the new (a SmapsReader: kept buffer, in place, interned).
// cpu-ns/op is the thread's own CPU time (the steadier figure on a
// shared machine).
func BenchmarkSmaps(b *testing.B) {
	perl := exec.Command("perl", "-e", "select(undef,undef,undef,undef)")
	if err := perl.Start(); err != nil {
		b.Skip(err)
	}
	defer func() { perl.Process.Kill(); perl.Wait() }()
	time.Sleep(100 * time.Millisecond) // its interpreter mapped
	for _, tc := range []struct {
		name string
		pid  int
	}{{"self", os.Getpid()}, {"perl", perl.Process.Pid}} {
		b.Run(tc.name+"/scanner", func(b *testing.B) {
			path := fmt.Sprintf("/proc/%d/smaps", tc.pid)
			b.ReportAllocs()
			defer cpuPerOp(b)()
			for b.Loop() {
				c, err := os.ReadFile(path)
				if err != nil {
					b.Skip(err)
				}
				if _, err := parseSmapsScanner(c); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/reader", func(b *testing.B) {
			r := FS("/proc").NewSmapsReader()
			var out []Mapping
			var err error
			b.ReportAllocs()
			defer cpuPerOp(b)()
			for b.Loop() {
				if out, err = r.Smaps(tc.pid, out); err != nil {
					b.Skip(err)
				}
			}
			b.ReportMetric(float64(len(out)), "mappings")
		})
	}
}

// cpuPerOp locks the goroutine to its thread and, when the returned
// function runs, reports the thread's CPU time per op as cpu-ns/op.
func cpuPerOp(b *testing.B) func() {
	runtime.LockOSThread()
	t0 := threadCPU()
	return func() {
		if t := threadCPU() - t0; t > 0 && b.N > 0 {
			b.ReportMetric(float64(t)/float64(b.N), "cpu-ns/op")
		}
		runtime.UnlockOSThread()
	}
}

func threadCPU() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return ts.Nano()
}

func atoiDir(p string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
	return n
}

// BenchmarkClearRefs is one clear_refs write of this process: os.WriteFile
// before, open/write/close now.
func BenchmarkClearRefs(b *testing.B) {
	path := fmt.Sprintf("/proc/%d/clear_refs", os.Getpid())
	b.Run("oswritefile", func(b *testing.B) {
		defer cpuPerOp(b)()
		for b.Loop() {
			if err := os.WriteFile(path, []byte("1"), 0); err != nil {
				b.Skip(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		fs := FS("/proc")
		defer cpuPerOp(b)()
		for b.Loop() {
			if err := fs.ClearRefs(os.Getpid()); err != nil {
				b.Skip(err)
			}
		}
	})
}
