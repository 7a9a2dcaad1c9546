// Package vm is the host side of the memory manager: per-mapping working
// sets from /proc/PID/clear_refs and /proc/PID/smaps, memory pressure from
// PSI and cgroup counters, and process_madvise on a pidfd.
//
// Every root (procfs, a cgroup directory) is a parameter so the parsers run
// against testdata/vm and the real code against /proc.
//
// Kernel behaviour this package relies on:
//   - Writing "1" to clear_refs clears the accessed bit of every page of
//     the process (and its "Referenced" count in smaps); reading smaps
//     afterwards gives, per mapping, the bytes touched since. This is the
//     working-set probe where idle-page tracking (/sys/kernel/mm/page_idle)
//     is not compiled in, as on these hosts. (A test program must use
//     what it reads: a Go loop whose loaded values are dead is compiled
//     away and touches nothing.)
//   - process_madvise(2) (Linux 5.10, syscall 440 on amd64) has no wrapper
//     in golang.org/x/sys, so it is called raw with a pidfd from
//     pidfd_open(2). MADV_COLD and MADV_PAGEOUT are accepted from another
//     process since 5.10; MADV_WILLNEED since 5.10 as well (6.x kernels).
//     MADV_PAGEOUT of anonymous memory does nothing without swap; of
//     clean file pages it drops them from the process and the page cache.
package vm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FS is a procfs root, "/proc" on a real host.
type FS string

func (f FS) path(p ...string) string { return filepath.Join(append([]string{string(f)}, p...)...) }

// Mapping is one VMA of /proc/PID/smaps. Sizes are bytes.
type Mapping struct {
	Start, End uint64
	Perms      string
	Offset     uint64
	Inode      uint64
	Path       string // "" anonymous, "[heap]", "[stack]", or a file
	Size       uint64
	Rss        uint64
	Referenced uint64
	Anonymous  uint64
	Swap       uint64
}

// FileBacked reports whether the mapping maps a file (so MADV_PAGEOUT of
// it frees memory even without swap).
func (m Mapping) FileBacked() bool { return m.Inode != 0 && strings.HasPrefix(m.Path, "/") }

// Len is the mapping's length in bytes.
func (m Mapping) Len() uint64 { return m.End - m.Start }

// Smaps parses /proc/PID/smaps. A caller that reads often keeps a
// SmapsReader instead.
func (f FS) Smaps(pid int) ([]Mapping, error) {
	return f.NewSmapsReader().Smaps(pid, nil)
}

// ParseSmaps parses the text of an smaps file. A header line is
// "start-end perms offset dev inode [path]"; the lines after it until the
// next header are "Key:   N kB" fields (VmFlags has words, not a size).
func ParseSmaps(b []byte) ([]Mapping, error) {
	return parseSmaps(b, nil, nil)
}

// ClearRefs clears the referenced bits of every page of pid ("1": all
// pages, anonymous and file-backed).
// It is an open, a one-byte write and a close: no *os.File (see
// hal/kfile for why).
func (f FS) ClearRefs(pid int) error {
	path := string(f) + "/" + strconv.Itoa(pid) + "/clear_refs"
	fd, err := openRetry(path, unix.O_WRONLY)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	for {
		_, err = unix.Write(fd, one)
		if err != unix.EINTR {
			break
		}
	}
	unix.Close(fd)
	if err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

var one = []byte("1")

func openRetry(path string, mode int) (int, error) {
	for {
		fd, err := unix.Open(path, mode|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// Pressure is one line of a PSI file: the share of time (0..1) some task
// stalled on memory over the last 10, 60 and 300 seconds.
type Pressure struct {
	Avg10, Avg60, Avg300 float64
}

// MemPressure reads "some" from <procfs>/pressure/memory. Kernels built
// without PSI (or booted with psi=0) have no such file: the error wraps
// os.ErrNotExist.
func (f FS) MemPressure() (Pressure, error) {
	b, err := os.ReadFile(f.path("pressure", "memory"))
	if err != nil {
		return Pressure{}, err
	}
	return ParsePressure(b)
}

// ParsePressure parses a PSI file's "some" line.
func ParsePressure(b []byte) (Pressure, error) {
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "some" {
			continue
		}
		var p Pressure
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return p, fmt.Errorf("pressure: %q: %w", kv, err)
			}
			switch k {
			case "avg10":
				p.Avg10 = x / 100
			case "avg60":
				p.Avg60 = x / 100
			case "avg300":
				p.Avg300 = x / 100
			}
		}
		return p, nil
	}
	return Pressure{}, errors.New("pressure: no \"some\" line")
}

// Unlimited is a cgroup memory limit that is not set.
const Unlimited = -1

// CgroupMemory reads a memory cgroup directory's usage and hard limit in
// bytes: v2 memory.current and memory.max ("max" = Unlimited), else v1
// memory.usage_in_bytes and memory.limit_in_bytes (where "no limit" is a
// huge page-rounded number, reported as Unlimited above 1<<62).
func CgroupMemory(dir string) (usage, limit int64, err error) {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(b)), err
	}
	parse := func(s string) (int64, error) {
		if s == "max" {
			return Unlimited, nil
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, err
		}
		if n >= 1<<62 {
			return Unlimited, nil
		}
		return int64(n), nil
	}
	u, err := read("memory.current")
	l, lerr := read("memory.max")
	if err != nil || lerr != nil {
		if u, err = read("memory.usage_in_bytes"); err != nil {
			return 0, 0, err
		}
		if l, err = read("memory.limit_in_bytes"); err != nil {
			return 0, 0, err
		}
	}
	if usage, err = parse(u); err != nil {
		return 0, 0, fmt.Errorf("cgroup memory usage %q: %w", u, err)
	}
	if limit, err = parse(l); err != nil {
		return 0, 0, fmt.Errorf("cgroup memory limit %q: %w", l, err)
	}
	return usage, limit, nil
}

// ErrNoReclaim: the memory cgroup has no memory.reclaim (cgroup v1, or a
// kernel before 5.19).
var ErrNoReclaim = errors.New("no memory.reclaim here (cgroup v1, or a kernel before 5.19)")

// ReclaimCgroup asks the kernel to reclaim n bytes from the cgroup v2
// memory group dir by writing n to its memory.reclaim (Linux 5.19): the
// kernel reclaims from the group as if it were at its limit, proactively,
// before any allocation stalls. The kernel answers EAGAIN when it got back
// less than asked; that is returned as is. The file is opened without
// O_CREAT, so on v1 (where it does not exist) nothing is written.
func ReclaimCgroup(dir string, n int64) error {
	if n <= 0 {
		return fmt.Errorf("memory.reclaim: %d bytes", n)
	}
	f, err := os.OpenFile(filepath.Join(dir, "memory.reclaim"), os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return ErrNoReclaim
	}
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(strconv.FormatInt(n, 10)))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}
