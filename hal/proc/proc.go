// Package proc samples processes from a procfs root for the telemetry
// engine: one Sample per process per tick, the process tree below an
// agent, and a (pid, start time) identity that survives pid reuse.
//
// It is a thin layer over github.com/prometheus/procfs, which parses the
// files; this package decides what a sample is, which failures mean "the
// process is gone" and which only mean "this field is unreadable", and
// works around the kernel quirks noted beside each function.
//
// The root is always a parameter ("/proc" in the daemon, "testdata/proc"
// in tests); nothing here names /proc itself.
//
// Files read, per process (layout: Documentation/filesystems/proc.rst and
// fs/proc/array.c in the kernel):
//
//	PID/stat            one line, 52 fields; comm is in parentheses and may
//	                    itself contain spaces and ')'
//	PID/status          "Key:\tvalue" lines (Uid has four tab-separated ids)
//	PID/io              needs ptrace-read access (own uid or root)
//	PID/fd/N            symlinks: "socket:[INODE]", "pipe:[INODE]", paths
//	PID/cmdline         NUL-separated argv
//	PID/task/TID/children  pids forked by thread TID, "P1 P2 " (CONFIG_PROC_CHILDREN)
//	stat                btime, the cpu lines
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"aiosfs/hal/kfile"
)

// userHZ is the unit of every tick count in stat files (utime, stime,
// starttime and the cpu lines of /proc/stat). It is USER_HZ, not the
// kernel's CONFIG_HZ: the kernel converts with jiffies_to_clock_t before
// printing, and USER_HZ is 100 on every architecture Go supports (alpha,
// the exception, is not one). procfs hardcodes the same value.
const userHZ = 100

// FS is a procfs root.
type FS struct {
	root string
	fs   procfs.FS
	boot *bootCache
}

// bootCache keeps btime so that Sample does not re-read and re-parse
// /proc/stat (a line per cpu plus a long intr line) for every process.
type bootCache struct {
	mu sync.Mutex
	t  time.Time
}

// NewFS opens the procfs mounted (or fixtured) at root.
func NewFS(root string) (FS, error) {
	pfs, err := procfs.NewFS(root)
	if err != nil {
		return FS{}, fmt.Errorf("proc: %w", err)
	}
	return FS{root: root, fs: pfs, boot: &bootCache{}}, nil
}

// Root returns the root the FS was opened with.
func (fs FS) Root() string { return fs.root }

func (fs FS) path(p ...string) string {
	return filepath.Join(append([]string{fs.root}, p...)...)
}

// Sample is one observation of one process. Sizes are bytes, times are
// seconds or instants; -1 marks a field the caller may not read.
type Sample struct {
	Pid, PPid  int
	Comm       string // task comm, at most 15 bytes (TASK_COMM_LEN-1), settable by the process
	State      string // one letter: R S D Z T t X I ...
	Uid, Euid  uint32 // real and effective
	Threads    int
	StartTicks uint64    // field 22 of stat, USER_HZ ticks after boot: (Pid, StartTicks) is the identity
	Start      time.Time // boot time + StartTicks; zero when /proc/stat is unreadable
	CPUSeconds float64   // utime+stime, this process only (not waited-for children)
	RSS        int64     // VmRSS from status
	VSize      int64     // vsize from stat
	MajFaults  uint64
	MinFaults  uint64
	ReadBytes  int64 // io read_bytes (storage layer); -1 when unreadable
	WriteBytes int64 // io write_bytes; -1 when unreadable
	FDs        int   // open descriptors; -1 when unreadable
	Sockets    int   // descriptors that are sockets; -1 when unreadable
	// SocketInodes are the inodes of those sockets, ascending and
	// distinct (a dup'ed socket is one inode): the key by which
	// hal/sockdiag's per-socket byte counters are attributed to a
	// process. nil when the fd table is unreadable or holds no socket.
	SocketInodes []uint64
	// StdinSocket is true when descriptor 0 is a socket: a process
	// reading its input from the network (a shell fed by a peer). Read in
	// the same scan of the fd table, at no extra cost.
	StdinSocket bool
}

// goneError reports a process that no longer exists. It matches
// os.ErrNotExist for errors.Is whichever way the kernel said so.
type goneError struct {
	pid int
	err error
}

func (e *goneError) Error() string {
	return fmt.Sprintf("proc: pid %d: no such process (%v)", e.pid, e.err)
}
func (e *goneError) Unwrap() error        { return e.err }
func (e *goneError) Is(target error) bool { return target == os.ErrNotExist }

// wrap classifies an error met while reading pid's files.
//
// A process that exits between open and read does not give ENOENT: the
// directory entry was already resolved, so the read itself fails with
// ESRCH (proc_single_show and friends cannot find the task any more). Both
// mean the same thing to a caller: the process is gone.
func wrap(pid int, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return &goneError{pid: pid, err: err}
	}
	return fmt.Errorf("proc: pid %d: %w", pid, err)
}

// Sample reads pid's stat, status, io and fd table. It fails, with an
// error matching os.ErrNotExist, only when the process is gone; io and
// the fd table are optional (they need ptrace-read access, i.e. the same
// uid or root), and read as -1 when refused.
//
// Counting sockets costs one readlink per descriptor, so a process with
// a very large fd table makes its sample proportionally dearer.
//
// A zombie is sampled like any other process: State "Z", no memory
// (status has no Vm lines once the mm is released), no descriptors.
//
// The sampler calls this for every process of every agent every pass, so
// the files are read with plain system calls into pooled buffers (package
// kfile: 4 system calls a file instead of about 10 through os.File) and
// parsed in place, and the fd table is read with getdents and readlinkat
// on the directory's descriptor; the parsers follow procfs's (stat's comm
// runs from the first '(' to the last ')'). Allocation: the Comm and State
// strings and the socket inodes.
func (fs FS) Sample(pid int) (Sample, error) {
	dir := fs.path(strconv.Itoa(pid))
	s := Sample{Pid: pid, ReadBytes: -1, WriteBytes: -1, FDs: -1, Sockets: -1}
	var st statFields
	if err := kfile.Read(dir+"/stat", func(b []byte) error { return parseStat(b, &st) }); err != nil {
		return Sample{}, wrap(pid, err)
	}
	var uids [2]uint32
	var rssKB uint64
	if err := kfile.Read(dir+"/status", func(b []byte) error { return parseStatus(b, &uids, &rssKB) }); err != nil {
		return Sample{}, wrap(pid, err)
	}
	s.PPid, s.Comm, s.State = st.ppid, st.comm, st.state
	s.Uid, s.Euid = uids[0], uids[1]
	s.Threads = st.threads
	s.StartTicks = st.start
	s.CPUSeconds = float64(st.utime+st.stime) / userHZ
	// VmRSS (kB) rather than stat's rss (pages): the same counter
	// (get_mm_counter: anon+file+shmem), but in a unit that does not
	// depend on the page size of the machine reading a fixture. Both
	// are approximate: the kernel keeps RSS in per-cpu counters and
	// reads them without summing every cpu.
	s.RSS = int64(rssKB * 1024)
	s.VSize = int64(st.vsize)
	s.MajFaults, s.MinFaults = st.majflt, st.minflt
	if bt, err := fs.bootTime(); err == nil {
		s.Start = ticksAfter(bt, st.start)
	}
	// /proc/PID/io is absent without CONFIG_TASK_IO_ACCOUNTING and EACCES
	// for other users' processes. read_bytes/write_bytes count what
	// reached the block layer (page cache hits and tmpfs are invisible),
	// unlike rchar/wchar.
	_ = kfile.Read(dir+"/io", func(b []byte) error {
		rd, ok1 := kfile.KeyedColon(b, "read_bytes")
		wr, ok2 := kfile.KeyedColon(b, "write_bytes")
		if ok1 && ok2 {
			s.ReadBytes, s.WriteBytes = int64(rd), int64(wr)
		}
		return nil
	})
	// A descriptor whose readlink fails was closed between getdents and
	// readlink, so it is not counted.
	if fds, nsock, socks, stdin, err := scanFDs(dir+"/fd", pid == os.Getpid(), s.SocketInodes); err == nil {
		s.FDs, s.Sockets, s.SocketInodes, s.StdinSocket = fds, nsock, socks, stdin
		if len(socks) > 1 {
			slices.Sort(s.SocketInodes)
			s.SocketInodes = slices.Compact(s.SocketInodes)
		}
	}
	return s, nil
}

// statFields are the fields of /proc/PID/stat that Sample uses.
type statFields struct {
	comm, state                  string
	ppid, threads                int
	minflt, majflt, utime, stime uint64
	start, vsize                 uint64
}

// parseStat parses /proc/PID/stat (proc(5)): "pid (comm) state ppid ...".
// comm may hold spaces and parentheses, so it ends at the last ')'; the
// fields after it are counted from state, which is field 3.
func parseStat(b []byte, st *statFields) error {
	l, r := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if l < 0 || r < l {
		return fmt.Errorf("proc: bad stat %q", b)
	}
	st.comm = string(b[l+1 : r])
	rest := b[r+1:]
	field := 3
	for len(rest) > 0 && field <= 23 {
		for len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		end := bytes.IndexAny(rest, " \n")
		if end < 0 {
			end = len(rest)
		}
		f := rest[:end]
		rest = rest[end:]
		if field == 3 {
			st.state = string(f)
		} else {
			v, ok := parseInt(f)
			if !ok {
				return fmt.Errorf("proc: bad stat field %d %q", field, f)
			}
			switch field {
			case 4:
				st.ppid = int(v)
			case 10:
				st.minflt = uint64(v)
			case 12:
				st.majflt = uint64(v)
			case 14:
				st.utime = uint64(v)
			case 15:
				st.stime = uint64(v)
			case 20:
				st.threads = int(v)
			case 22:
				st.start = uint64(v)
			case 23:
				st.vsize = uint64(v)
			}
		}
		field++
	}
	if field <= 23 {
		return fmt.Errorf("proc: short stat %q", b)
	}
	return nil
}

// parseInt parses a possibly negative decimal (stat's priority and nice
// fields are signed).
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	v, ok := kfile.Uint(b)
	if !ok || v > 1<<63-1 {
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}

// parseStatus takes the real and effective uid ("Uid:\tR\tE\tS\tF") and
// VmRSS (kB; absent for a zombie and a kernel thread) from
// /proc/PID/status.
func parseStatus(b []byte, uids *[2]uint32, rssKB *uint64) error {
	found := false
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("Uid:")):
			f := bytes.Fields(line[4:])
			if len(f) < 2 {
				return fmt.Errorf("proc: bad status line %q", line)
			}
			for i := range 2 {
				v, ok := kfile.Uint(f[i])
				if !ok || v > 1<<32-1 {
					return fmt.Errorf("proc: bad status line %q", line)
				}
				uids[i] = uint32(v)
			}
			found = true
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			v, ok := kfile.Uint(bytes.TrimSuffix(bytes.TrimSpace(line[6:]), []byte(" kB")))
			if !ok {
				return fmt.Errorf("proc: bad status line %q", line)
			}
			*rssKB = v
		}
	}
	if !found {
		return fmt.Errorf("proc: status without Uid")
	}
	return nil
}

// fdBufs are the getdents and readlink buffers of scanFDs, pooled: the
// sampler scans every process's table every pass.
type fdBufs struct{ dents, link []byte }

var fdPool = sync.Pool{New: func() any { return &fdBufs{dents: make([]byte, 8192), link: make([]byte, 256)} }}

// scanFDs counts the descriptors in a /proc/PID/fd directory and those
// that are sockets, appends the sockets' inodes to socks and reports
// whether descriptor 0 is one of them. It opens the directory
// once and reads each link relative to it (readlinkat), rather than
// resolving /proc/PID/fd/N from the root for each.
//
// When the table is this process's own (self), the descriptor scanFDs
// holds on the directory is in it and is not counted, as it would not be
// if the directory were closed before the links were read.
func scanFDs(dir string, self bool, socks []uint64) (n, nsock int, _ []uint64, stdin bool, _ error) {
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, socks, false, err
	}
	defer unix.Close(dfd)
	bufs := fdPool.Get().(*fdBufs)
	defer fdPool.Put(bufs)
	var own []byte
	if self {
		own = strconv.AppendInt(nil, int64(dfd), 10)
	}
	for {
		k, err := unix.Getdents(dfd, bufs.dents)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, 0, socks, false, err
		}
		if k <= 0 {
			return n, nsock, socks, stdin, nil
		}
		d := bufs.dents[:k]
		for len(d) > 0 {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			reclen := int(d[16]) | int(d[17])<<8
			if reclen < 20 || reclen > len(d) {
				return 0, 0, socks, false, fmt.Errorf("proc: bad dirent in %s", dir)
			}
			name := d[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			d = d[reclen:]
			if len(name) == 0 || name[0] == '.' || (own != nil && bytes.Equal(name, own)) {
				continue
			}
			m, err := readlinkat(dfd, name, bufs.link)
			if err != nil {
				continue // closed since getdents
			}
			n++
			t := bufs.link[:m]
			if rest, ok := bytes.CutPrefix(t, []byte("socket:[")); ok {
				nsock++
				if ino, ok := kfile.Uint(bytes.TrimSuffix(rest, []byte("]"))); ok {
					socks = append(socks, ino)
				}
				if len(name) == 1 && name[0] == '0' {
					stdin = true
				}
			}
		}
	}
}

// readlinkat reads the link name relative to dfd into buf without
// allocating a path string: name is at most a few digits, so it is copied
// into a NUL-terminated array on the stack.
func readlinkat(dfd int, name, buf []byte) (int, error) {
	var p [32]byte
	if len(name) >= len(p) {
		return 0, unix.ENAMETOOLONG
	}
	copy(p[:], name)
	for {
		r, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dfd), uintptr(unsafe.Pointer(&p[0])),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// LibrarySample is Sample as it was before the raw readers: the procfs
// library's Proc, Stat, NewStatus, IO and FileDescriptorTargets, through
// os.File. It is kept as the reference that TestSampleMatchesLibrary
// holds Sample to on live processes, and so that scripts/bench can measure
// both in one daemon run (telemetry.Tuning.RawProc). It returns the same
// Sample.
func (fs FS) LibrarySample(pid int) (Sample, error) {
	p, err := fs.fs.Proc(pid)
	if err != nil {
		return Sample{}, wrap(pid, err)
	}
	st, err := p.Stat()
	if err != nil {
		return Sample{}, wrap(pid, err)
	}
	status, err := p.NewStatus()
	if err != nil {
		return Sample{}, wrap(pid, err)
	}
	s := Sample{
		Pid:        pid,
		PPid:       st.PPID,
		Comm:       st.Comm,
		State:      st.State,
		Uid:        uint32(status.UIDs[0]),
		Euid:       uint32(status.UIDs[1]),
		Threads:    st.NumThreads,
		StartTicks: st.Starttime,
		CPUSeconds: float64(st.UTime+st.STime) / userHZ,
		// VmRSS (kB) rather than stat's rss (pages): the same counter
		// (get_mm_counter: anon+file+shmem), but in a unit that does not
		// depend on the page size of the machine reading a fixture. Both
		// are approximate: the kernel keeps RSS in per-cpu counters and
		// reads them without summing every cpu.
		RSS:        int64(status.VmRSS),
		VSize:      int64(st.VSize),
		MajFaults:  uint64(st.MajFlt),
		MinFaults:  uint64(st.MinFlt),
		ReadBytes:  -1,
		WriteBytes: -1,
		FDs:        -1,
		Sockets:    -1,
	}
	if bt, err := fs.bootTime(); err == nil {
		s.Start = ticksAfter(bt, st.Starttime)
	}
	// /proc/PID/io is absent without CONFIG_TASK_IO_ACCOUNTING and EACCES
	// for other users' processes. read_bytes/write_bytes count what
	// reached the block layer (page cache hits and tmpfs are invisible),
	// unlike rchar/wchar.
	if io, err := p.IO(); err == nil {
		s.ReadBytes = int64(io.ReadBytes)
		s.WriteBytes = int64(io.WriteBytes)
	}
	// procfs returns "" for a descriptor whose readlink failed: it was
	// closed between readdir and readlink, so it is not counted.
	if targets, err := p.FileDescriptorTargets(); err == nil {
		s.FDs, s.Sockets = 0, 0
		for _, t := range targets {
			if t == "" {
				continue
			}
			s.FDs++
			if rest, ok := strings.CutPrefix(t, "socket:["); ok {
				s.Sockets++
				if ino, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64); err == nil {
					s.SocketInodes = append(s.SocketInodes, ino)
				}
			}
		}
		slices.Sort(s.SocketInodes)
		s.SocketInodes = slices.Compact(s.SocketInodes)
		if s.Sockets > 0 {
			l, err := os.Readlink(fs.path(strconv.Itoa(pid), "fd", "0"))
			s.StdinSocket = err == nil && strings.HasPrefix(l, "socket:[")
		}
	}
	return s, nil
}

// ticksAfter converts a stat tick count into an instant.
func ticksAfter(boot time.Time, ticks uint64) time.Time {
	return boot.Add(time.Duration(ticks) * (time.Second / userHZ))
}

// Cmdline returns pid's argv.
//
// procfs' CmdLine trims every trailing NUL, which loses trailing empty
// arguments (`sh -c cmd ”`); this strips exactly the one terminator the
// kernel writes. Kernel threads and zombies have no mm and read as an
// empty list. A process that rewrote its argv area (setproctitle) may
// read as one space-separated string: the kernel then returns the area up
// to the first NUL and the original argument boundaries are lost.
func (fs FS) Cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(fs.path(strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return nil, wrap(pid, err)
	}
	if len(b) == 0 {
		return []string{}, nil
	}
	if b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return strings.Split(string(b), "\x00"), nil
}

// StartTicks returns field 22 of pid's stat: its start time in USER_HZ
// ticks after boot. The kernel fixes it at fork (from CLOCK_BOOTTIME, so
// suspend does not disturb it); a recycled pid gets a new one, so (pid,
// StartTicks) names one process for its whole life.
func (fs FS) StartTicks(pid int) (uint64, error) {
	p, err := fs.fs.Proc(pid)
	if err != nil {
		return 0, wrap(pid, err)
	}
	st, err := p.Stat()
	if err != nil {
		return 0, wrap(pid, err)
	}
	return st.Starttime, nil
}

// Alive reports whether the process (pid, startTicks) still exists and
// has not exited: a pid now used by another process (different start
// ticks) and a zombie (exited, not yet reaped: "Z", or "X" in the instant
// of release) are both dead.
func (fs FS) Alive(pid int, startTicks uint64) bool {
	p, err := fs.fs.Proc(pid)
	if err != nil {
		return false
	}
	st, err := p.Stat()
	if err != nil {
		return false
	}
	return st.Starttime == startTicks && st.State != "Z" && st.State != "X"
}

// Pids lists the processes (thread-group leaders) under the root,
// ascending. Threads are not listed: readdir of /proc shows only
// tgids, though /proc/TID resolves for every thread.
func (fs FS) Pids() ([]int, error) {
	procs, err := fs.fs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("proc: %w", err)
	}
	pids := make([]int, len(procs))
	for i, p := range procs {
		pids[i] = p.PID
	}
	slices.Sort(pids)
	return pids, nil
}

func (fs FS) stat() (procfs.Stat, error) {
	st, err := fs.fs.Stat()
	if err != nil {
		return procfs.Stat{}, fmt.Errorf("proc: %w", err)
	}
	return st, nil
}

// BootTime reads btime from the root's stat, fresh each call.
//
// btime is whole seconds and is derived from the wall clock (realtime
// minus time since boot), so it moves when the clock is stepped; a
// process Start computed from it is good to about a second.
func (fs FS) BootTime() (time.Time, error) {
	st, err := fs.stat()
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(int64(st.BootTime), 0), nil
}

// bootTime is BootTime read once per FS: Sample needs it for every
// process, and re-parsing /proc/stat each time would dominate a tick.
// A failure is not cached, so a later call retries.
func (fs FS) bootTime() (time.Time, error) {
	if fs.boot == nil {
		return fs.BootTime()
	}
	fs.boot.mu.Lock()
	defer fs.boot.mu.Unlock()
	if !fs.boot.t.IsZero() {
		return fs.boot.t, nil
	}
	t, err := fs.BootTime()
	if err != nil {
		return time.Time{}, err
	}
	fs.boot.t = t
	return t, nil
}

// NumCPU counts the cpuN lines of the root's stat, or returns 0 when it
// cannot be read. /proc/stat lists online cpus only, so this is the
// number online now, not the number possible, and not what the daemon's
// own affinity or cgroup allows.
func (fs FS) NumCPU() int {
	st, err := fs.stat()
	if err != nil {
		return 0
	}
	return len(st.CPU)
}

// CPUTotal returns the seconds accounted to all cpus together since boot
// (the aggregate "cpu" line): user+nice+system+idle+iowait+irq+softirq+
// steal. guest and guest_nice are left out because the kernel already
// counts guest time in user and nice (account_guest_time). The aggregate
// sums every possible cpu, so time of a cpu taken offline stays in it.
// Per-cpu idle and iowait can step backwards on NO_HZ kernels (the idle
// time of a sleeping cpu is estimated), so a delta of this total may
// rarely be slightly negative.
func (fs FS) CPUTotal() (float64, error) {
	st, err := fs.stat()
	if err != nil {
		return 0, err
	}
	// procfs hands back each counter already divided by USER_HZ; sum
	// them as whole ticks so the total is exactly ticks/USER_HZ.
	c := st.CPUTotal
	var ticks float64
	for _, v := range []float64{c.User, c.Nice, c.System, c.Idle, c.Iowait, c.IRQ, c.SoftIRQ, c.Steal} {
		ticks += math.Round(v * userHZ)
	}
	return ticks / userHZ, nil
}
