// Package lockfile keeps two daemons off one state directory. Lock takes
// an exclusive flock(2) on STATE/lock and writes the holder's pid into it;
// a second Lock on the same directory fails at once, naming that pid.
//
// flock rather than a pid file alone: the kernel drops the lock when the
// holder's descriptor closes, which includes the process dying by
// SIGKILL, so a crash never leaves a stale lock to clean up by hand (the
// pid in the file is then stale, but only read to name a live holder).
// The descriptor is close-on-exec, so agents the daemon spawns, which may
// outlive it, never inherit the lock.
package lockfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Name is the lock file's name in the directory.
const Name = "lock"

// ErrLocked is wrapped by the error of a Lock that another holder has.
var ErrLocked = errors.New("locked")

// HeldError says who holds the lock.
type HeldError struct {
	Dir string
	Pid int // 0 when the holder has not written its pid (yet)
}

func (e *HeldError) Error() string {
	who := "another aiosfs"
	if e.Pid > 0 {
		who = fmt.Sprintf("another aiosfs (pid %d)", e.Pid)
	}
	return fmt.Sprintf("%s is using %s (it holds %s); stop it or use another state directory", who, e.Dir, filepath.Join(e.Dir, Name))
}

func (e *HeldError) Unwrap() error { return ErrLocked }

// File is a held lock.
type File struct {
	f *os.File
}

// Lock takes the lock of dir (which must exist), without waiting. When
// another process (or another File in this one) has it, the error is a
// *HeldError wrapping ErrLocked.
func Lock(dir string) (*File, error) {
	path := filepath.Join(dir, Name)
	// O_CLOEXEC is Go's default for os.OpenFile; said here because the
	// lock must not leak into spawned agents.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0644)
	if err != nil {
		return nil, fmt.Errorf("lockfile: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &HeldError{Dir: dir, Pid: readPid(f)}
		}
		return nil, fmt.Errorf("lockfile: flock %s: %w", path, err)
	}
	// The file may hold a dead holder's pid; replace it with ours.
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lockfile: write pid to %s: %w", path, err)
	}
	return &File{f: f}, nil
}

// readPid reads the holder's pid from the lock file.
func readPid(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Path is the lock file.
func (l *File) Path() string { return l.f.Name() }

// Close releases the lock. The file stays: removing it would let a
// process that opened it just before take a lock on an unlinked inode
// while a third creates a new file and locks that.
func (l *File) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
	return err
}
