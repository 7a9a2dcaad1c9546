package spawn

import (
	"encoding/json"
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
	die := func(format string, args ...any) {
		fmt.Fprintf(errF, format+"\n", args...)
		os.Exit(127)
	}
	var spec Spec
	if err := json.NewDecoder(specF).Decode(&spec); err != nil {
		die("spawn: read spec: %v", err)
	}
	specF.Close()
	if err := apply(spec); err != nil {
		die("%v", err)
	}
	// Descriptors the daemon did not open close-on-exec must not reach the
	// agent: go-fuse's /dev/fuse fd, for one, would keep a dead daemon's
	// mount connected (and every access to it hanging) for as long as the
	// agent lives; so would anything the daemon inherited from its shell.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		die("close_range: %v", err)
	}
	err := syscall.Exec(spec.Path, spec.Args, spec.Env)
	die("exec %s: %v", spec.Path, err)
}

func apply(s Spec) error {
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
	if s.Dir != "" {
		if err := os.Chdir(s.Dir); err != nil {
			return fmt.Errorf("chdir: %w", err)
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
