// Package fs is the aiosfs tree model: directories as tables, files as
// read and write functions, event streams, identity and errors. It knows
// nothing of FUSE or 9P; fs/fusefs and fs/p9fs serve the same model and must
// agree byte for byte and errno for errno (fs/fstest checks that).
//
// Semantics, as in Plan 9 /proc:
//
//   - A read-only file is rendered once, when it is opened, into a buffer
//     that reads then serve by offset. Its size is 0 in stat, and adapters
//     must serve it with direct I/O so `cat` sees the rendered bytes.
//     Both adapters also render a text file (Text) afresh on a read at
//     offset 0 of a handle that has been read, which is how a Plan 9
//     program polls a status file (pread at 0 of a kept descriptor): one
//     round trip instead of an open, a read and a close.
//   - A ctl file executes one command per line. A write may arrive in
//     pieces: complete lines run as they arrive, a trailing partial line
//     waits for the rest or runs at flush/close. A rejected line fails the
//     write with the errno carried by its *Error and is reported to the
//     namespace's Reject hook (which puts it in `log` and `events`).
//   - A stream file (events) is listed as a snapshot of its recent lines
//     that ends like any file, so tree walkers never block on it; its
//     blocking form NAME.follow (walkable, not listed: see FollowSuffix)
//     blocks in Read until it has whole lines to return and ends when the
//     reader's context is cancelled (FUSE interrupt, 9P flush) or the
//     handle is closed.
//   - Identity: each node's Path is a hash of its full path name. Objects
//     are never renumbered (agent numbers are not reused), so a path names
//     one object for its life, and a handle to a gone object gets ENOENT
//     from the engine rather than another object's state.
//   - Ownership: every node carries uid, gid and permission bits. Open
//     checks them against the caller the adapter reports; root passes the
//     bit checks but never writes a file that has no write function.
package fs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path"
	"syscall"
	"time"
)

// Caller is who performs an operation, as the adapter learned it: the FUSE
// request's credentials, or the 9P attach uid (checked against the unix
// socket's peer credentials).
type Caller struct {
	Uid, Gid uint32
	Pid      uint32 // 0 when unknown (9P)
	// Session is the 9P connection the request came on, unique in the
	// daemon's life; 0 for FUSE and in-process callers. It keys errstr.
	Session uint64
}

// RootCaller is the daemon itself and root users.
var RootCaller = Caller{}

// Attr is what stat shows of a node.
type Attr struct {
	Name  string
	Path  uint64      // stable identity: inode number, qid path
	Mode  os.FileMode // os.ModeDir for directories, plus permission bits
	Uid   uint32
	Gid   uint32
	Mtime time.Time
	// Size is 0 for files rendered at open (their length is known only
	// then); a byte store such as a memory region's data gives its length.
	Size int64
}

// IsDir reports whether the node is a directory.
func (a Attr) IsDir() bool { return a.Mode.IsDir() }

// Node is anything in the tree.
type Node interface {
	Attr() Attr
}

// Dir is a directory node.
type Dir interface {
	Node
	// Walk returns the child named name, or an *Error with ENOENT.
	Walk(name string) (Node, error)
	// List returns the children in a stable order.
	List() ([]Node, error)
}

// OpenMode is how a file is opened.
type OpenMode int

// Open modes, as O_RDONLY, O_WRONLY and O_RDWR.
const (
	OREAD OpenMode = iota
	OWRITE
	ORDWR
)

func (m OpenMode) reads() bool  { return m == OREAD || m == ORDWR }
func (m OpenMode) writes() bool { return m == OWRITE || m == ORDWR }

// File is a leaf node that can be opened.
type File interface {
	Node
	Open(ctx context.Context, c Caller, mode OpenMode) (Handle, error)
}

// Handle is an open file. Read and Write take the request's context so that
// a blocking read ends when the client interrupts or flushes. End of file
// is (0, nil), never io.EOF, which adapters would report as EIO. Reads of
// one handle are serialised: a stream's second reader waits for the first.
type Handle interface {
	Read(ctx context.Context, p []byte, off int64) (int, error)
	Write(ctx context.Context, p []byte, off int64) (int, error)
	// Close releases the handle. A handle that may still have work to do
	// (a ctl with a partial last line) does it in Flush, which adapters
	// call on close(2) so its error reaches the writer.
	Close() error
}

// Flusher is implemented by handles with deferred work (see Handle.Close).
type Flusher interface {
	Flush(ctx context.Context) error
}

// Error is an error with the errno a client should see. Msg is in Plan 9
// words ("unknown control message") and is what `log` records.
type Error struct {
	Errno syscall.Errno
	Msg   string
}

func (e *Error) Error() string { return e.Msg }

// Is lets errors.Is(err, syscall.ENOENT) match an *Error by errno.
func (e *Error) Is(target error) bool {
	t, ok := target.(syscall.Errno)
	return ok && t == e.Errno
}

// Errorf builds an *Error.
func Errorf(errno syscall.Errno, format string, args ...any) error {
	return &Error{Errno: errno, Msg: fmt.Sprintf(format, args...)}
}

// Errno maps any error to the errno an adapter returns. This is the one
// error-mapping function both adapters use, so they cannot disagree.
func Errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Errno
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, os.ErrPermission):
		return syscall.EACCES
	case errors.Is(err, os.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return syscall.EINTR
	}
	return syscall.EIO
}

// Common errors.
var (
	ErrNotExist = &Error{syscall.ENOENT, "file does not exist"}
	ErrReadOnly = &Error{syscall.EACCES, "file is read-only"}
	ErrPerm     = &Error{syscall.EACCES, "permission denied"}
	ErrIsDir    = &Error{syscall.EISDIR, "is a directory"}
	ErrNotDir   = &Error{syscall.ENOTDIR, "not a directory"}
)

// PathID is the stable identity of the node at full path p. It is a 64-bit
// FNV-1a hash: paths name objects for their whole life (agent numbers are
// never reused), so equal paths mean the same object.
func PathID(p string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(path.Clean("/" + p)))
	return h.Sum64()
}

// Walk resolves a slash-separated path from dir.
func Walk(root Dir, p string) (Node, error) {
	var n Node = root
	for _, name := range splitPath(p) {
		d, ok := n.(Dir)
		if !ok {
			return nil, ErrNotDir
		}
		var err error
		if n, err = d.Walk(name); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func splitPath(p string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			if i > start && p[start:i] != "." {
				out = append(out, p[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// CheckAccess applies the permission bits of a to caller c for mode m.
// Root passes every bit check (the kernel's CAP_DAC_OVERRIDE); the rule
// that nobody writes a file without a write function is the file's own.
func CheckAccess(a Attr, c Caller, m OpenMode) error {
	if c.Uid == 0 {
		return nil
	}
	perm := a.Mode.Perm()
	var bits os.FileMode
	switch {
	case c.Uid == a.Uid:
		bits = (perm >> 6) & 7
	case c.Gid == a.Gid:
		bits = (perm >> 3) & 7
	default:
		bits = perm & 7
	}
	if m.reads() && bits&4 == 0 {
		return ErrPerm
	}
	if m.writes() && bits&2 == 0 {
		return ErrPerm
	}
	return nil
}
