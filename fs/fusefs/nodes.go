package fusefs

import (
	"context"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"aiosfs/fs"
)

// node is what directories and files share: the go-fuse inode and the model
// node it shows. The model node is replaced on each lookup, because the
// model builds fresh nodes for the same object (a ListDir lists new ones
// each time) while go-fuse keeps one inode per identity for as long as the
// kernel remembers it.
type node struct {
	gofs.Inode
	mu sync.Mutex
	m  fs.Node
}

func newNode(m fs.Node) gofs.InodeEmbedder {
	if _, ok := m.(fs.Dir); ok {
		return &dirNode{node{m: m}}
	}
	return &fileNode{node{m: m}}
}

// stableAttr is the identity go-fuse dedups inodes by: the model's path id
// and the file type.
func stableAttr(m fs.Node) gofs.StableAttr {
	mode := uint32(syscall.S_IFREG)
	if _, ok := m.(fs.Dir); ok {
		mode = syscall.S_IFDIR
	}
	return gofs.StableAttr{Ino: m.Attr().Path, Mode: mode}
}

func (n *node) model() fs.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m
}

func (n *node) refresh(m fs.Node) {
	n.mu.Lock()
	n.m = m
	n.mu.Unlock()
}

// fillAttr is what stat shows: the model's owner, bits, time and size
// (0 for files whose content exists only once opened; direct I/O reads it).
// go-fuse fills in Ino and the file type from the inode's StableAttr.
func fillAttr(a fs.Attr, out *fuse.Attr) {
	out.Mode = uint32(a.Mode.Perm())
	out.Uid = a.Uid
	out.Gid = a.Gid
	out.Nlink = 1 // "unknown" to find(1), which must not guess subdirectory counts
	out.Size = uint64(a.Size)
	out.Blocks = (out.Size + 511) / 512
	t := a.Mtime
	out.SetTimes(&t, &t, &t)
}

var _ = (gofs.NodeGetattrer)((*node)(nil))

func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(n.model().Attr(), &out.Attr)
	return 0
}

var _ = (gofs.NodeSetattrer)((*node)(nil))

// Setattr exists for `echo x > f`: the shell opens with O_TRUNC and, since
// go-fuse does not negotiate FUSE_ATOMIC_O_TRUNC, the kernel follows the
// open with SETATTR(size=0), which must succeed. Sizes and times mean
// nothing to a synthetic file and are ignored; changing the owner or the
// permission bits is refused, as /proc refuses chmod.
func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if in.Valid&(fuse.FATTR_MODE|fuse.FATTR_UID|fuse.FATTR_GID) != 0 {
		return syscall.EPERM
	}
	fillAttr(n.model().Attr(), &out.Attr)
	return 0
}

var _ = (gofs.NodeAccesser)((*node)(nil))

// Access answers access(2) (`test -w ctl`) and chdir with the model's rule,
// so that they agree with what open will do. go-fuse's default applies
// the unix bits itself and counts supplementary groups, which it looks up
// in /etc/group; FUSE requests carry only the fsgid, and so does the
// model. The model does not guard traversal (Walk has no caller), so
// directories are always searchable; a file is executable by nobody
// unless it has an x bit, as for root on a disk.
func (n *node) Access(ctx context.Context, mask uint32) syscall.Errno {
	a, c := n.model().Attr(), callerOf(ctx)
	if mask&unix.R_OK != 0 {
		if err := fs.CheckAccess(a, c, fs.OREAD); err != nil {
			return fs.Errno(err)
		}
	}
	if mask&unix.W_OK != 0 {
		if err := fs.CheckAccess(a, c, fs.OWRITE); err != nil {
			return fs.Errno(err)
		}
	}
	if mask&unix.X_OK != 0 && !a.IsDir() && a.Mode&0111 == 0 {
		return syscall.EACCES
	}
	return 0
}

// ---- directories ----

// dirNode is a model directory. It keeps no children of its own: each
// lookup and readdir asks the model.
type dirNode struct{ node }

var _ = (gofs.NodeLookuper)((*dirNode)(nil))

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	m, err := d.model().(fs.Dir).Walk(name)
	if err != nil {
		return nil, fs.Errno(err)
	}
	fillAttr(m.Attr(), &out.Attr)
	st := stableAttr(m)
	// The kernel still knows this child: give its inode the fresh model
	// node rather than a new inode, which go-fuse would drop in favour of
	// the old one (it dedups by StableAttr after Lookup returns).
	if ch := d.GetChild(name); ch != nil && ch.StableAttr() == st {
		ch.Operations().(interface{ refresh(fs.Node) }).refresh(m)
		return ch, 0
	}
	return d.NewInode(ctx, newNode(m), st), 0
}

var _ = (gofs.NodeReaddirer)((*dirNode)(nil))

func (d *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	kids, err := d.model().(fs.Dir).List()
	if err != nil {
		return nil, fs.Errno(err)
	}
	ents := make([]fuse.DirEntry, 0, len(kids))
	for _, k := range kids {
		st := stableAttr(k)
		ents = append(ents, fuse.DirEntry{Name: k.Attr().Name, Ino: st.Ino, Mode: st.Mode})
	}
	return gofs.NewListDirStream(ents), 0
}

// ---- files ----

// fileNode is a model file.
type fileNode struct{ node }

var _ = (gofs.NodeOpener)((*fileNode)(nil))

// Open opens the model file as the calling process. FOPEN_DIRECT_IO makes
// the kernel send every read to us whatever the size in stat says (0);
// without it the page cache believes the size and `cat` prints nothing.
func (f *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	file, ok := f.model().(fs.File)
	if !ok {
		return nil, 0, syscall.EACCES
	}
	var mode fs.OpenMode
	switch flags & syscall.O_ACCMODE {
	case syscall.O_WRONLY:
		mode = fs.OWRITE
	case syscall.O_RDWR:
		mode = fs.ORDWR
	default:
		mode = fs.OREAD
	}
	h, err := file.Open(ctx, callerOf(ctx), mode)
	if err != nil {
		return nil, 0, fs.Errno(err)
	}
	return &handle{h: h}, fuse.FOPEN_DIRECT_IO, 0
}

// handle is an open model file. go-fuse gives each request's context to
// the handle: it carries the caller and is cancelled when the kernel sends
// FUSE_INTERRUPT (the reader got a signal, or was killed), so a blocked
// events read returns context.Canceled, which fs.Errno makes EINTR.
type handle struct{ h fs.Handle }

var _ = (gofs.FileReader)((*handle)(nil))

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := h.h.Read(ctx, dest, off)
	if err != nil {
		return nil, fs.Errno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

var _ = (gofs.FileWriter)((*handle)(nil))

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, err := h.h.Write(ctx, data, off)
	if err != nil {
		return 0, fs.Errno(err)
	}
	return uint32(n), 0
}

var _ = (gofs.FileFlusher)((*handle)(nil))

// Flush is close(2) (the kernel sends FLUSH for every close of a
// descriptor): deferred work such as a ctl line without its newline runs
// here, where its error still reaches the writer. RELEASE comes later and
// its result reaches nobody.
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	if fl, ok := h.h.(fs.Flusher); ok {
		return fs.Errno(fl.Flush(ctx))
	}
	return 0
}

var _ = (gofs.FileReleaser)((*handle)(nil))

func (h *handle) Release(ctx context.Context) syscall.Errno {
	return fs.Errno(h.h.Close())
}
