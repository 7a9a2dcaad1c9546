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

	"github.com/prometheus/procfs"
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
func (fs FS) Sample(pid int) (Sample, error) {
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
