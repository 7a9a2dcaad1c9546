package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"golang.org/x/sys/unix"
)

// Timeouts of the operations that wait for the kernel. Variables so tests
// can shorten them.
var (
	// freezeTimeout bounds Freeze and Thaw: a task in uninterruptible
	// sleep (NFS, FUSE) can keep a group FREEZING indefinitely.
	freezeTimeout = 10 * time.Second
	// killTimeout bounds how long Kill waits for the group to empty.
	killTimeout = 10 * time.Second
)

// filePerm is the mode of a file a direct write would create. Interface
// files always exist on a cgroup file system, so it matters only in
// fixture trees (where containerd's own writes create files with mode 0).
const filePerm = 0o644

// groupErr wraps err with the group and operation; a group the library
// knows to be deleted also wraps fs.ErrNotExist.
func groupErr(name, op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, cgroup1.ErrCgroupDeleted) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cgroup %s: %s: %w (%w)", name, op, err, fs.ErrNotExist)
	}
	return fmt.Errorf("cgroup %s: %s: %w", name, op, err)
}

// unsupported is the error of a controller the group lacks.
func unsupported(name, op, why string) error {
	return fmt.Errorf("cgroup %s: %s: %s: %w", name, op, why, ErrUnsupported)
}

// checkPid rejects pids that cannot name a process.
func checkPid(name string, pid int) error {
	if pid <= 0 {
		return fmt.Errorf("cgroup %s: add pid %d: %w", name, pid, ErrInvalid)
	}
	return nil
}

// killPids sends SIGKILL to each pid; pids already gone are not an error.
func killPids(pids []int) error {
	var errs []error
	for _, p := range pids {
		if err := unix.Kill(p, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %d: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// waitEmpty polls procs until the group is empty, sending SIGKILL again to
// whatever appears (a fork that raced the first round), for up to
// killTimeout. A killed child of the caller leaves cgroup.procs as soon as
// it exits, before it is reaped, so zombies do not keep a group busy.
func waitEmpty(name string, procs func() ([]int, error)) error {
	deadline := time.Now().Add(killTimeout)
	delay := time.Millisecond
	for {
		pids, err := procs()
		if err != nil {
			return groupErr(name, "kill", err)
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: kill: pids %v remain after %v: %w", name, pids, killTimeout, ErrBusy)
		}
		if err := killPids(pids); err != nil {
			return groupErr(name, "kill", err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 20*time.Millisecond)
	}
}

// pollUntil re-checks done until it says true or timeout passes.
func pollUntil(timeout time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return os.ErrDeadlineExceeded
		}
		time.Sleep(delay)
		delay = min(2*delay, 10*time.Millisecond)
	}
}

// exists says whether path exists.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
