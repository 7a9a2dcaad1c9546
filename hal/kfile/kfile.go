// Package kfile reads the small files of procfs, sysfs and cgroupfs with
// plain open, read and close system calls into a reused buffer.
//
// Why not os.ReadFile: an *os.File registers every descriptor with the
// runtime's poller. For a kernfs file (cgroupfs, sysfs) that is
// fcntl(O_NONBLOCK) twice and epoll_ctl ADD and DEL; for a procfs file the
// ADD fails with EPERM and Go puts blocking mode back (two more fcntl);
// ReadFile also fstats for the size and allocates a buffer sized from it.
// That is about ten system calls for a file the kernel renders in one read,
// and 25 µs against 8.6 µs for a cgroup counter on the VM profiled in
// docs/cost.md. These files never block (the kernel renders them on read),
// so the poller adds nothing. The sampler reads several per agent per
// second, so the difference is most of what it costs.
package kfile

import (
	"errors"
	"io/fs"
	"sync"

	"golang.org/x/sys/unix"
)

// initial is the first buffer size: every counter file and /proc/PID/stat,
// status and io fit; a larger file grows the buffer, which is kept.
const initial = 4096

// maxKeep is the largest buffer returned to the pool; a rare big file
// (a long cgroup.procs) does not pin its buffer for ever.
const maxKeep = 1 << 20

var pool = sync.Pool{New: func() any { b := make([]byte, initial); return &b }}

// Read reads the whole file at path and hands its bytes to use, which must
// not keep them: the buffer goes back to a pool when use returns. Errors
// are *fs.PathError around the errno (so errors.Is(err, fs.ErrNotExist)
// holds for ENOENT), or whatever use returns.
func Read(path string, use func(b []byte) error) error {
	bp := pool.Get().(*[]byte)
	b, err := ReadInto(path, *bp)
	if cap(b) <= maxKeep {
		*bp = b[:cap(b)]
		defer pool.Put(bp)
	}
	if err != nil {
		return err
	}
	return use(b)
}

// ReadInto reads the whole file at path into buf (grown when too small) and
// returns the filled part of it, for callers that keep their own buffer.
func ReadInto(path string, buf []byte) ([]byte, error) {
	if cap(buf) == 0 {
		buf = make([]byte, initial)
	}
	buf = buf[:cap(buf)]
	fd, err := openRetry(path)
	if err != nil {
		return buf[:0], &fs.PathError{Op: "open", Path: path, Err: err}
	}
	n := 0
	for {
		if n == len(buf) {
			nb := make([]byte, 2*len(buf))
			copy(nb, buf)
			buf = nb
		}
		k, err := unix.Read(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return buf[:0], &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if k <= 0 {
			break
		}
		n += k
	}
	unix.Close(fd)
	return buf[:n], nil
}

func openRetry(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// Nlink returns the link count of path (lstat): on cgroupfs, 2 plus the
// number of subdirectories, so 2 means a cgroup has no children and its
// directory need not be read.
func Nlink(path string) (uint64, error) {
	var st unix.Stat_t
	for {
		err := unix.Lstat(path, &st)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, &fs.PathError{Op: "lstat", Path: path, Err: err}
		}
		return uint64(st.Nlink), nil
	}
}

// Uint parses b as one unsigned decimal, ignoring surrounding spaces and
// newlines ("123\n").
func Uint(b []byte) (uint64, bool) {
	b = trim(b)
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// Keyed finds key in a flat keyed file ("key value" lines: cpu.stat,
// memory.events, memory.oom_control) and parses its value.
func Keyed(b []byte, key string) (uint64, bool) {
	for len(b) > 0 {
		line := b
		if i := indexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) > len(key) && string(line[:len(key)]) == key && (line[len(key)] == ' ' || line[len(key)] == '\t') {
			return Uint(line[len(key)+1:])
		}
	}
	return 0, false
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func trim(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}

// KeyedColon finds key in a "key: value" file (/proc/PID/io) and parses
// its value.
func KeyedColon(b []byte, key string) (uint64, bool) {
	for len(b) > 0 {
		line := b
		if i := indexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) > len(key) && string(line[:len(key)]) == key && line[len(key)] == ':' {
			return Uint(line[len(key)+1:])
		}
	}
	return 0, false
}
