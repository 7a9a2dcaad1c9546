package spawn

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ShimMain is the shim's whole life: wait for the spec (sent only once the
// daemon has placed this pid in the agent's cgroups), set the process up,
// exec. It never returns.
func ShimMain() {
	// Capability sets are per thread and execve keeps the calling thread's,
	// so everything from here to exec runs on one thread.
	runtime.LockOSThread()
	specF := os.NewFile(3, "spec")
	errF := os.NewFile(4, "exec-error")
	unix.CloseOnExec(4) // EOF on this pipe tells the daemon exec succeeded
	// What fails goes back as "ERRNO message", so the daemon hands the
	// writer the kernel's own errno (ENOENT, EACCES, ...).
	die := func(err error) {
		var en syscall.Errno
		if !errors.As(err, &en) {
			en = syscall.EINVAL
		}
		fmt.Fprintf(errF, "%d %v\n", int(en), err)
		os.Exit(127)
	}
	var spec Spec
	if err := json.NewDecoder(specF).Decode(&spec); err != nil {
		die(fmt.Errorf("spawn: read spec: %w", err))
	}
	specF.Close()
	if err := apply(spec); err != nil {
		die(err)
	}
	// The program is found, and its directory entered, only now that the
	// process has the agent's credentials: a path the agent's user may
	// not reach (a 0700 directory on the way) fails as it would in their
	// own shell, instead of being opened with the daemon's rights.
	if spec.Dir != "" {
		if err := os.Chdir(spec.Dir); err != nil {
			die(fmt.Errorf("chdir %s: %w", spec.Dir, err))
		}
	}
	path, err := lookPath(spec.Path, spec.Env)
	if err != nil {
		die(err)
	}
	// Descriptors the daemon did not open close-on-exec must not reach the
	// agent: go-fuse's /dev/fuse fd, for one, would keep a dead daemon's
	// mount connected (and every access to it hanging) for as long as the
	// agent lives; so would anything the daemon inherited from its shell.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		die(fmt.Errorf("close_range: %w", err))
	}
	err = syscall.Exec(path, spec.Args, spec.Env)
	die(fmt.Errorf("exec %s: %w", spec.Path, err))
}

// lookPath resolves the program the way a shell would, with the agent's
// credentials and PATH: a name with a slash is taken as it is (relative to
// the directory just entered), a bare name is searched in PATH.
func lookPath(name string, env []string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("no program: %w", syscall.ENOENT)
	}
	check := func(p string) error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.IsDir() {
			return fmt.Errorf("%s: is a directory: %w", p, syscall.EACCES)
		}
		if err := unix.Access(p, unix.X_OK); err != nil {
			return fmt.Errorf("%s: not executable: %w", p, err)
		}
		return nil
	}
	if strings.Contains(name, "/") {
		return name, check(name)
	}
	path := DefaultPath
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	var first error
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		err := check(p)
		if err == nil {
			return p, nil
		}
		if first == nil && !errors.Is(err, os.ErrNotExist) {
			first = err // found but not runnable: say so, as a shell does
		}
	}
	if first != nil {
		return "", first
	}
	return "", fmt.Errorf("%s: executable file not found in PATH: %w", name, syscall.ENOENT)
}

func apply(s Spec) error {
	// syscall's Setrlimit, not x/sys's: the runtime puts back the
	// RLIMIT_NOFILE it started with at exec unless syscall.Setrlimit
	// changed it (Go 1.21 and later).
	for _, r := range s.Rlimits {
		if err := syscall.Setrlimit(r.Resource, &syscall.Rlimit{Cur: r.Cur, Max: r.Max}); err != nil {
			return fmt.Errorf("setrlimit %d: %w", r.Resource, err)
		}
	}
	if s.Nice != 0 {
		if err := unix.Setpriority(unix.PRIO_PROCESS, 0, s.Nice); err != nil {
			return fmt.Errorf("setpriority %d: %w", s.Nice, err)
		}
	}
	drop, err := CapsOf(s.Drop)
	if err != nil {
		return err
	}
	add, err := CapsOf(s.Add)
	if err != nil {
		return err
	}
	for _, c := range drop {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %s: %w", capNames[c], err)
		}
	}
	if s.Uid == 0 && s.Gid == 0 {
		return clearInheritable(drop)
	}
	// Keep the permitted set across setuid so the added capabilities can
	// be raised as ambient ones, which survive execve of an unprivileged
	// program (capabilities(7)).
	if len(add) > 0 {
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("keepcaps: %w", err)
		}
	}
	groups := make([]int, len(s.Groups))
	for i, g := range s.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(int(s.Gid), int(s.Gid), int(s.Gid)); err != nil {
		return fmt.Errorf("setgid %d: %w", s.Gid, err)
	}
	if err := syscall.Setresuid(int(s.Uid), int(s.Uid), int(s.Uid)); err != nil {
		return fmt.Errorf("setuid %d: %w", s.Uid, err)
	}
	if len(add) == 0 {
		return nil
	}
	var data [2]unix.CapUserData
	for _, c := range add {
		data[c/32].Permitted |= 1 << (c % 32)
		data[c/32].Effective |= 1 << (c % 32)
		data[c/32].Inheritable |= 1 << (c % 32)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	for _, c := range add {
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return fmt.Errorf("ambient capability %s: %w", capNames[c], err)
		}
	}
	return nil
}

// clearInheritable removes dropped capabilities from the inheritable set
// too, so a root program cannot regain them through file capabilities.
func clearInheritable(drop []int) error {
	if len(drop) == 0 {
		return nil
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for _, c := range drop {
		data[c/32].Inheritable &^= 1 << (c % 32)
		data[c/32].Permitted &^= 1 << (c % 32)
		data[c/32].Effective &^= 1 << (c % 32)
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// capNames are the capability names of capabilities(7), by number.
var capNames = []string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill",
	"setgid", "setuid", "setpcap", "linux_immutable", "net_bind_service",
	"net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
	"sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time",
	"sys_tty_config", "mknod", "lease", "audit_write", "audit_control",
	"setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
	"block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
}

// CapName normalises a capability name ("CAP_NET_ADMIN", "net_admin") to
// its capabilities(7) form without the prefix, or fails.
func CapName(s string) (string, error) {
	n := strings.TrimPrefix(strings.ToLower(s), "cap_")
	for _, c := range capNames {
		if c == n {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown capability %q", s)
}

// CapsOf maps names to capability numbers.
func CapsOf(names []string) ([]int, error) {
	var out []int
	for _, s := range names {
		n, err := CapName(s)
		if err != nil {
			return nil, err
		}
		for i, c := range capNames {
			if c == n {
				out = append(out, i)
			}
		}
	}
	return out, nil
}
