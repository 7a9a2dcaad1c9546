// Package fusefs serves an aiosfs tree model (package fs) as a FUSE file
// system through go-fuse/v2, so that `cat`, `echo verb > ctl` and `ls -l`
// work on it like on any local directory:
//
//	srv, err := fusefs.Mount("/aios", root, fusefs.Options{AllowOther: true})
//	...
//	srv.Wait()
//
// The adapter is thin. Directories are walked and listed in the model on
// every lookup and readdir; every file is opened through the model with
// the credentials of the calling process, and the model decides what it
// may do (no default_permissions, so FUSE and 9P enforce the same rules).
// Every model error reaches the client as fs.Errno(err).
//
// Inode numbers are the model's Attr().Path, so a name keeps its inode for
// the life of its object. Files are served with direct I/O and size 0, as
// Plan 9 /proc is.
//
// What a request costs is kernel round trips (25-40 µs each on the VM of
// docs/cost.md), not the handlers (a few µs), so the adapter avoids them:
//
//   - Entries are cached by the kernel for EntryTimeout (1 s): a path
//     walk of agents/N/stat makes no LOOKUP once it is warm. Names do
//     vanish (an agent is removed), so every request that reaches a node
//     through a cached entry, OPEN, GETATTR and OPENDIR, first walks the
//     model again from the root along the node's path, in the daemon (a
//     few µs, no round trip): a gone name answers ENOENT, as a fresh
//     LOOKUP would, and the kernel is told to drop the entry. Attributes
//     are not cached (timeout 0), so stat(2) always comes here and sees a
//     removal at once. New names need no invalidation (no negative
//     entries are cached).
//   - A read-only open is FOPEN_NOFLUSH: no FLUSH request on close (the
//     handle has nothing to flush: a ctl's deferred line needs a write).
//   - GETXATTR and LISTXATTR answer ENOSYS, which the kernel remembers
//     for the life of the mount (fc->no_getxattr): `ls -l` asks three
//     xattrs of every entry otherwise.
//   - A read at offset 0 of a read-only handle of a text file (fs.Text)
//     that has already been read renders the file afresh: Plan 9's way of
//     polling a status file, pread(fd, buf, 0) on a kept descriptor, one
//     round trip, instead of a new open.
//
// Options.Plain turns all of these off, for measuring them.
package fusefs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"aiosfs/fs"
)

// Options configure a mount.
type Options struct {
	// AllowOther lets users other than the mounting one use the tree.
	// Without it the kernel refuses everyone else before the model sees
	// the request.
	AllowOther bool
	// Debug logs every FUSE request and reply.
	Debug bool
	// Name is the file system name in /proc/mounts (source "Name", type
	// "fuse.Name"). Default "aiosfs".
	Name string
	// EntryTimeout is how long the kernel may keep a name without asking
	// again (see the package comment for how removals stay visible at
	// once); 0 means DefaultEntryTimeout, negative none.
	EntryTimeout time.Duration
	// Plain serves as before the cost remedies of docs/cost.md: entry
	// timeouts of zero (every walk LOOKUPs every name), a FLUSH on every
	// close, GETXATTR answered ENODATA (asked again for every file), and
	// a handle's content rendered only at open. For benches that compare.
	Plain bool
}

// DefaultEntryTimeout is Options.EntryTimeout's default.
const DefaultEntryTimeout = time.Second

// Server is a mounted tree.
type Server struct {
	dir string
	srv *fuse.Server
}

// Mount serves root at dir and returns once the kernel has the mount. It
// creates dir if it is missing and first clears a stale mount that a
// crashed daemon left there.
func Mount(dir string, root fs.Dir, opts Options) (*Server, error) {
	if err := ClearStale(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0755); err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = "aiosfs"
	}
	// Attributes are never cached: stat(2) must reach the model, which
	// also revalidates the name (see the package comment). Entries are,
	// unless Plain.
	var zero time.Duration
	entry := opts.EntryTimeout
	if entry == 0 {
		entry = DefaultEntryTimeout
	}
	if entry < 0 || opts.Plain {
		entry = 0
	}
	rootNode := newNode(root, &config{plain: opts.Plain, revalidate: entry > 0}, nil, "")
	srv, err := gofs.Mount(dir, rootNode, &gofs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther: opts.AllowOther,
			Debug:      opts.Debug,
			FsName:     name,
			Name:       name,
			// As root, call mount(2) ourselves: the fusermount helper is
			// missing on minimal hosts and adds nothing for root. Strict, so
			// a failure reports mount(2)'s error rather than a missing
			// helper's. Other users need the setuid helper.
			DirectMountStrict: os.Geteuid() == 0,
		},
		EntryTimeout: &entry,
		AttrTimeout:  &zero,
		// go-fuse turns permission bits 0000 into 0644/0755 unless told
		// not to; the model's bits are what stat must show.
		NullPermissions: true,
		RootStableAttr:  &gofs.StableAttr{Ino: root.Attr().Path},
	})
	if err != nil {
		return nil, fmt.Errorf("fusefs: mount %s: %w", dir, err)
	}
	return &Server{dir: dir, srv: srv}, nil
}

// Unmount detaches the tree. It fails (EBUSY) while files are open on it.
func (s *Server) Unmount() error {
	if err := s.srv.Unmount(); err != nil {
		return fmt.Errorf("fusefs: unmount %s: %w", s.dir, err)
	}
	return nil
}

// Wait blocks until the tree is unmounted.
func (s *Server) Wait() { s.srv.Wait() }

// ClearStale removes a mount at dir whose daemon has died. The kernel keeps
// such a mount in place and answers every operation on it with ENOTCONN
// (ECONNABORTED after an abort through /sys/fs/fuse/connections); go-fuse
// cannot mount over it because it stats the mount point first. A lazy
// unmount (MNT_DETACH) takes it away even while processes still hold files
// in it. A live mount, a plain directory and a missing one are left alone.
func ClearStale(dir string) error {
	_, err := os.Stat(dir)
	if !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, syscall.ECONNABORTED) {
		return nil
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("fusefs: clear stale mount %s: %w", dir, err)
	}
	return nil
}

// callerOf is the process behind a FUSE request: the kernel sends the
// fsuid, fsgid and pid of the calling thread with every request, and
// go-fuse puts them in the request's context. A request without them
// (never from the kernel) acts as nobody rather than as root.
func callerOf(ctx context.Context) fs.Caller {
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return fs.Caller{Uid: 65534, Gid: 65534}
	}
	return fs.Caller{Uid: c.Uid, Gid: c.Gid, Pid: c.Pid}
}
