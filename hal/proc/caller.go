package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

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

// NiceFloor is the lowest nice value pid may give a process it starts
// without CAP_SYS_NICE: its own nice (a child inherits it, and raising the
// nice value is always allowed) or, when RLIMIT_NICE allows lower,
// 20 - RLIMIT_NICE (setpriority(2), sched.c can_nice()).
func NiceFloor(pid, nice int) int {
	var rl unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NICE, nil, &rl); err != nil {
		return nice
	}
	floor := nice
	if rl.Cur < 40 {
		floor = min(floor, 20-int(rl.Cur))
	} else {
		floor = -20
	}
	return max(floor, -20)
}
