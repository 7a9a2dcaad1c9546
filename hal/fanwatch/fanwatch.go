// Package fanwatch reports successful opens of chosen files through
// fanotify(7): FAN_OPEN marks on files, and on directories for the files
// directly in them (FAN_EVENT_ON_CHILD), with the opener's pid. It is
// what the threat engine's sensitive_opens feature is fed by, following
// scripts/threat/record, which recorded the engine's training windows.
//
// fanotify needs CAP_SYS_ADMIN in the initial user namespace: New fails
// with EPERM without it, and the caller goes without (say so). Only
// opens that succeed are seen (a refused open("/etc/shadow") is not), and
// marks are on inodes: a file replaced by rename (a new /etc/shadow from
// passwd(1)) loses its mark until Add is called for it again, while a
// directory's mark covers files created in it later.
//
// Cost: one event per open of a marked file, read in batches; each event
// carries a descriptor of the opened file, which Read turns into its path
// (one readlink) and closes. Nothing is paid for unmarked files.
package fanwatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Open is one successful open of a watched file.
type Open struct {
	Time time.Time
	Pid  int    // the opener's process (tgid)
	Path string // the opened file, as readlink of its descriptor says ("" if unknown)
}

// Watcher is one fanotify group.
type Watcher struct {
	f    *os.File // the group's descriptor, in the runtime's poller
	self int

	mu     sync.Mutex
	marked map[string]bool
}

// New makes a notification-only fanotify group (no permission events:
// nothing waits on the daemon).
func New() (*Watcher, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fanotify_init: %w", err)
	}
	return &Watcher{f: os.NewFile(uintptr(fd), "fanotify"), self: os.Getpid(), marked: map[string]bool{}}, nil
}

// Add marks path for FAN_OPEN: a file, or a directory for the files in
// it (not in its subdirectories, and not the directory's own opens). A
// path already marked is not marked again; a missing one is an error
// matching fs.ErrNotExist.
func (w *Watcher) Add(path string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.marked[path] {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	mask := uint64(unix.FAN_OPEN)
	if st.IsDir() {
		mask |= unix.FAN_EVENT_ON_CHILD
	}
	rc, err := w.f.SyscallConn()
	if err != nil {
		return err
	}
	var merr error
	if err := rc.Control(func(fd uintptr) {
		merr = unix.FanotifyMark(int(fd), unix.FAN_MARK_ADD, mask, unix.AT_FDCWD, path)
	}); err != nil {
		return err
	}
	if merr != nil {
		return &fs.PathError{Op: "fanotify_mark", Path: path, Err: merr}
	}
	w.marked[path] = true
	return nil
}

// Marked returns how many paths are marked.
func (w *Watcher) Marked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.marked)
}

// Read calls fn for every open, in order, until Close; it returns nil
// after Close and the read's error otherwise. Opens by this process are
// left out (the daemon's own state files). An overflowed queue (more than
// 16384 events unread) loses events, not the watcher.
func (w *Watcher) Read(fn func(Open)) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("fanotify read: %w", err)
		}
		now := time.Now()
		// struct fanotify_event_metadata: u32 event_len; u8 vers;
		// u8 reserved; u16 metadata_len; u64 mask; s32 fd; s32 pid.
		for off := 0; off+24 <= n; {
			l := int(binary.NativeEndian.Uint32(buf[off:]))
			if l < 24 || off+l > n {
				break
			}
			mask := binary.NativeEndian.Uint64(buf[off+8:])
			fd := int(int32(binary.NativeEndian.Uint32(buf[off+16:])))
			pid := int(int32(binary.NativeEndian.Uint32(buf[off+20:])))
			off += l
			path := ""
			if fd >= 0 {
				if pid != w.self && mask&unix.FAN_OPEN != 0 {
					path, _ = os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
				}
				unix.Close(fd)
			}
			if pid == w.self || mask&unix.FAN_OPEN == 0 {
				continue // ours, or FAN_Q_OVERFLOW (fd is FAN_NOFD)
			}
			fn(Open{Time: now, Pid: pid, Path: path})
		}
	}
}

// Close ends Read and the group (its marks go with it).
func (w *Watcher) Close() error { return w.f.Close() }
