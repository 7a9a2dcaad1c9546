package agent

import (
	"errors"
	"io/fs"
	"syscall"

	"aiosfs/ctl"
	aiofs "aiosfs/fs"
	"aiosfs/hal/cgroup"
)

// isUnsupported says the host lacks the controller or file (a v1 host
// without the pids hierarchy, a v2 subtree without cpuset delegated).
func isUnsupported(err error) bool { return errors.Is(err, cgroup.ErrUnsupported) }

// kernelErr gives the writer of a verb the errno the kernel gave the
// daemon: EBUSY for a memory limit below what the group uses, EPERM,
// ENOENT for a group gone; EINVAL only for what the kernel found invalid.
func kernelErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var fe *aiofs.Error
	if errors.As(err, &fe) {
		return err
	}
	errno := syscall.EIO
	var en syscall.Errno
	switch {
	case errors.As(err, &en):
		errno = en
	case errors.Is(err, cgroup.ErrUnsupported):
		errno = syscall.EOPNOTSUPP
	case errors.Is(err, cgroup.ErrBusy):
		errno = syscall.EBUSY
	case errors.Is(err, cgroup.ErrInvalid):
		errno = syscall.EINVAL
	case errors.Is(err, fs.ErrNotExist):
		errno = syscall.ENOENT
	}
	return aiofs.Errorf(errno, "%s: %v", op, err)
}

// saveErr is a change that could not be written to the store: it has been
// undone, and the writer sees the store's errno (ENOSPC, EROFS, EIO).
func saveErr(err error) error {
	errno := syscall.EIO
	var en syscall.Errno
	if errors.As(err, &en) {
		errno = en
	}
	return aiofs.Errorf(errno, "not saved, so not applied: %v", err)
}

// parseCPUMax is a cpumax value: cores, a percentage, or max. A bare 0
// is refused rather than read as "no limit", which is what "max" says.
func parseCPUMax(v string) (float64, error) {
	c, err := ctl.ParseCores(v)
	if err == nil && c == 0 && v != "max" && v != "none" {
		return 0, ctl.Errorf("cpumax %q would give no cpu time (want at least 0.01 cores, or max for no limit)", v)
	}
	return c, err
}
