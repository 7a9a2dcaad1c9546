// Package process is the host's process operations the agent registry
// uses (signals, reaping its own children, nice values, the user
// database), behind one small interface so the registry's logic can be
// tested with Fake, which records every call (tailscale linuxfw's way).
package process

import (
	"fmt"
	"os/user"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Ops is what the agent registry does to processes and asks of the user
// database.
type Ops interface {
	// Kill sends sig to pid.
	Kill(pid int, sig syscall.Signal) error
	// Reap is wait4(pid, WNOHANG): done is false while pid runs.
	Reap(pid int) (ws syscall.WaitStatus, done bool, err error)
	// Setpriority sets pid's nice value.
	Setpriority(pid, nice int) error
	// User looks a user up by name, then by number.
	User(nameOrID string) (*user.User, error)
	// UserID looks a user up by number.
	UserID(uid uint32) (*user.User, error)
}

// Host is Ops on this host.
type Host struct{}

func (Host) Kill(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

func (Host) Reap(pid int) (syscall.WaitStatus, bool, error) {
	var ws unix.WaitStatus
	got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	if got == 0 || err != nil {
		return 0, false, err
	}
	return syscall.WaitStatus(ws), true, nil
}

func (Host) Setpriority(pid, nice int) error {
	return syscall.Setpriority(syscall.PRIO_PROCESS, pid, nice)
}

func (Host) User(v string) (*user.User, error) {
	u, err := user.Lookup(v)
	if err != nil {
		return user.LookupId(v)
	}
	return u, nil
}

func (Host) UserID(uid uint32) (*user.User, error) { return user.LookupId(strconv.Itoa(int(uid))) }

// Fake records every call and answers from its fields: Users by name and
// by uid; Exited are the pids Reap reports done with their status.
type Fake struct {
	mu     sync.Mutex
	Calls  []string
	Users  []user.User
	Exited map[int]syscall.WaitStatus
}

func (f *Fake) record(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, fmt.Sprintf(format, a...))
}

func (f *Fake) Kill(pid int, sig syscall.Signal) error {
	f.record("kill %d %d", pid, int(sig))
	return nil
}

func (f *Fake) Reap(pid int) (syscall.WaitStatus, bool, error) {
	f.record("reap %d", pid)
	f.mu.Lock()
	defer f.mu.Unlock()
	ws, ok := f.Exited[pid]
	return ws, ok, nil
}

func (f *Fake) Setpriority(pid, nice int) error {
	f.record("setpriority %d %d", pid, nice)
	return nil
}

func (f *Fake) User(v string) (*user.User, error) {
	f.record("user %s", v)
	for _, u := range f.Users {
		if u.Username == v || u.Uid == v {
			return &u, nil
		}
	}
	return nil, user.UnknownUserError(v)
}

func (f *Fake) UserID(uid uint32) (*user.User, error) {
	f.record("userid %d", uid)
	for _, u := range f.Users {
		if u.Uid == strconv.Itoa(int(uid)) {
			return &u, nil
		}
	}
	return nil, user.UnknownUserIdError(int(uid))
}
