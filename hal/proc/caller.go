package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pfKthread is PF_KTHREAD in the flags field of /proc/PID/stat
// (include/linux/sched.h): the task is a kernel thread.
const pfKthread = 0x00200000

// Process is what the agent engine checks of a process before it acts for
// or on it: who it is, where it sits and what it may do.
type Process struct {
	Pid, PPid int
	Uid       uint32 // real uid
	Nice      int    // -20..19
	Kernel    bool   // a kernel thread (PF_KTHREAD): never an agent
}

// Inspect reads pid's stat and status.
func (fs FS) Inspect(pid int) (Process, error) {
	p, err := fs.fs.Proc(pid)
	if err != nil {
		return Process{}, wrap(pid, err)
	}
	st, err := p.Stat()
	if err != nil {
		return Process{}, wrap(pid, err)
	}
	status, err := p.NewStatus()
	if err != nil {
		return Process{}, wrap(pid, err)
	}
	return Process{Pid: pid, PPid: st.PPID, Uid: uint32(status.UIDs[0]), Nice: st.Nice,
		Kernel: st.Flags&pfKthread != 0 || pid == 2 || st.PPID == 2}, nil
}

// Ancestors lists pid's parent, its parent's parent, and so on up to PID 1
// (included); a process that ends meanwhile stops the walk.
func (fs FS) Ancestors(pid int) []int {
	var out []int
	for i := 0; i < 4096 && pid > 1; i++ { // bounded: a pid loop is impossible, but cheap to rule out
		p, err := fs.Inspect(pid)
		if err != nil || p.PPid <= 0 {
			break
		}
		out = append(out, p.PPid)
		pid = p.PPid
	}
	return out
}

// Cwd is pid's working directory, as the kernel resolves /proc/PID/cwd.
func (fs FS) Cwd(pid int) (string, error) {
	d, err := os.Readlink(filepath.Join(fs.Root(), strconv.Itoa(pid), "cwd"))
	if err != nil {
		return "", wrap(pid, err)
	}
	if !filepath.IsAbs(d) { // "(unreachable)" paths and the like
		return "", fmt.Errorf("proc: %d/cwd is %q, not a path", pid, d)
	}
	return d, nil
}

// CgroupFile is the path of pid's /proc/PID/cgroup under this root.
func (fs FS) CgroupFile(pid int) string {
	return filepath.Join(fs.Root(), strconv.Itoa(pid), "cgroup")
}

// NiceFloor is the lowest nice value a process with nice value nice and
// resource limits rl may give a process it starts without CAP_SYS_NICE:
// its own nice (a child inherits it, and raising the nice value is always
// allowed) or, where RLIMIT_NICE allows lower, 20 - RLIMIT_NICE
// (setpriority(2); kernel/sched/syscalls.c can_nice()).
func NiceFloor(rl []Rlimit, nice int) int {
	floor := nice
	for _, r := range rl {
		if r.Resource != unix.RLIMIT_NICE {
			continue
		}
		if r.Cur >= 40 {
			floor = -20
		} else {
			floor = min(floor, 20-int(r.Cur))
		}
	}
	return max(floor, -20)
}

// Rlimit is one resource limit of a process (getrlimit(2)).
type Rlimit struct {
	Resource int    `json:"resource"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

// limitNames are /proc/PID/limits' row names (fs/proc/base.c lnames) of
// the limits an agent inherits from the unprivileged caller that started
// it, as a child inherits its parent's; RLIMIT_NICE is read for NiceFloor
// (and set by prio, not here), RLIMIT_RTTIME is left alone.
var limitNames = map[string]int{
	"Max cpu time": unix.RLIMIT_CPU, "Max file size": unix.RLIMIT_FSIZE, "Max data size": unix.RLIMIT_DATA,
	"Max stack size": unix.RLIMIT_STACK, "Max core file size": unix.RLIMIT_CORE, "Max resident set": unix.RLIMIT_RSS,
	"Max processes": unix.RLIMIT_NPROC, "Max open files": unix.RLIMIT_NOFILE, "Max locked memory": unix.RLIMIT_MEMLOCK,
	"Max address space": unix.RLIMIT_AS, "Max file locks": unix.RLIMIT_LOCKS, "Max pending signals": unix.RLIMIT_SIGPENDING,
	"Max msgqueue size": unix.RLIMIT_MSGQUEUE, "Max nice priority": unix.RLIMIT_NICE, "Max realtime priority": unix.RLIMIT_RTPRIO,
}

// Rlimits reads pid's resource limits from /proc/PID/limits (prlimit(2)
// of another user's process needs CAP_SYS_RESOURCE, which a daemon in a
// container may lack; the file is readable by all). RLIMIT_NICE is in the
// list; Spawnable leaves it out.
func (fs FS) Rlimits(pid int) ([]Rlimit, error) {
	b, err := os.ReadFile(filepath.Join(fs.Root(), strconv.Itoa(pid), "limits"))
	if err != nil {
		return nil, wrap(pid, err)
	}
	return parseLimits(string(b))
}

// parseLimits parses /proc/PID/limits: a header, then rows of a name in
// 25 columns, the soft and hard limits ("unlimited" or a number) and units.
func parseLimits(s string) ([]Rlimit, error) {
	var out []Rlimit
	for _, line := range strings.Split(s, "\n") {
		if len(line) < 26 {
			continue
		}
		res, ok := limitNames[strings.TrimSpace(line[:25])]
		if !ok {
			continue
		}
		f := strings.Fields(line[25:])
		if len(f) < 2 {
			return nil, fmt.Errorf("proc: limits: bad row %q", line)
		}
		cur, err1 := limitValue(f[0])
		hard, err2 := limitValue(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("proc: limits: bad row %q", line)
		}
		out = append(out, Rlimit{Resource: res, Cur: cur, Max: hard})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("proc: limits: no limits")
	}
	return out, nil
}

func limitValue(s string) (uint64, error) {
	if s == "unlimited" {
		return unix.RLIM_INFINITY, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// Spawnable leaves out the limits an agent does not take from its caller:
// RLIMIT_NICE (prio is checked on its own) and any the kernel would not let
// a child keep.
func Spawnable(rl []Rlimit) []Rlimit {
	var out []Rlimit
	for _, r := range rl {
		if r.Resource != unix.RLIMIT_NICE {
			out = append(out, r)
		}
	}
	return out
}
