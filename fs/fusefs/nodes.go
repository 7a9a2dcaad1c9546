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

	cfg    *config
	parent *dirNode // nil for the root
	name   string   // in parent
}

// config is a mount's settings, shared by its nodes.
type config struct {
	plain      bool // Options.Plain
	revalidate bool // entries are cached: walk the model again on OPEN, GETATTR, OPENDIR
}

func newNode(m fs.Node, cfg *config, parent *dirNode, name string) gofs.InodeEmbedder {
	if _, ok := m.(fs.Dir); ok {
		return &dirNode{node{m: m, cfg: cfg, parent: parent, name: name}}
	}
	return &fileNode{node{m: m, cfg: cfg, parent: parent, name: name}}
}

// current is the node's model object as of now. With cached entries the
// kernel reaches a node without a LOOKUP, so the node walks the model
// again from the root along its path (each level's Walk, in the daemon:
// microseconds, no round trip) and keeps what it finds. A name gone
// from the model is ENOENT, and the kernel is told to forget it.
func (n *node) current() (fs.Node, error) {
	if !n.cfg.revalidate || n.parent == nil {
		return n.model(), nil
	}
	pm, err := n.parent.current()
	if err != nil {
		return nil, err
	}
	d, ok := pm.(fs.Dir)
	if !ok {
		return nil, fs.ErrNotDir
	}
	m, err := d.Walk(n.name)
	if err == nil && stableAttr(m) != n.StableAttr() {
		err = fs.ErrNotExist // another kind of object under the name
	}
	if err != nil {
		if fs.Errno(err) == syscall.ENOENT {
			// Not from inside the request: the kernel may hold the
			// directory's lock while it waits for our answer.
			go n.parent.NotifyEntry(n.name)
		}
		return nil, err
	}
	n.refresh(m)
	return m, nil
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

// Getattr walks the model again whether or not a handle comes with the
// request: go-fuse hands a node's Getattr one of its open handles even
// for stat(2) by path (the kernel sends one only for fstat of a regular
// file, and go-fuse stands one in otherwise), and a directory's handle
// stays open until the kernel's asynchronous RELEASEDIR arrives, after
// close(2) has returned: os.Root opened dyn/a to reach dyn/a/ctl, and a
// stat of dyn/a right after the object's removal succeeded (11 runs in
// 300 of the conformance suite's DynamicIdentity). So a gone object is
// ENOENT to fstat of an open handle too, as a write through one is.
func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	m, err := n.current()
	if err != nil {
		return fs.Errno(err)
	}
	fillAttr(m.Attr(), &out.Attr)
	return 0
}

var _ = (gofs.NodeGetxattrer)((*node)(nil))

// Getxattr answers ENOSYS: the tree has no extended attributes, and the
// kernel remembers ENOSYS for the life of the mount (it sets
// no_getxattr), where go-fuse's default ENODATA has it ask again for
// every file `ls -l` lists, three times (security.selinux and two ACLs).
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if n.cfg.plain {
		return 0, syscall.ENODATA
	}
	return 0, syscall.ENOSYS
}

var _ = (gofs.NodeListxattrer)((*node)(nil))

// Listxattr answers ENOSYS for the same reason (no_listxattr).
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if n.cfg.plain {
		return 0, 0
	}
	return 0, syscall.ENOSYS
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
	m, err := n.current()
	if err != nil {
		return fs.Errno(err)
	}
	a, c := m.Attr(), callerOf(ctx)
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
	return d.NewInode(ctx, newNode(m, d.cfg, d, name), st), 0
}

var _ = (gofs.NodeReaddirer)((*dirNode)(nil))

func (d *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	m, err := d.current()
	if err != nil {
		return nil, fs.Errno(err)
	}
	kids, err := m.(fs.Dir).List()
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
// A read-only open is also FOPEN_NOFLUSH: nothing is deferred to close
// on a handle nobody wrote to, so the kernel need not send FLUSH.
func (f *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	m, err := f.current()
	if err != nil {
		return nil, 0, fs.Errno(err)
	}
	file, ok := m.(fs.File)
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
	c := callerOf(ctx)
	h, err := file.Open(ctx, c, mode)
	if err != nil {
		return nil, 0, fs.Errno(err)
	}
	out := &handle{h: h}
	fl := uint32(fuse.FOPEN_DIRECT_IO)
	if mode == fs.OREAD && !f.cfg.plain {
		fl |= fuse.FOPEN_NOFLUSH
		if tf, ok := file.(*fs.TextFile); ok {
			out.text, out.caller = tf, c
		}
	}
	return out, fl, 0
}

// handle is an open model file. go-fuse gives each request's context to
// the handle: it carries the caller and is cancelled when the kernel sends
// FUSE_INTERRUPT (the reader got a signal, or was killed), so a blocked
// events read returns context.Canceled, which fs.Errno makes EINTR.
//
// text is set for a read-only handle of a text file (fs.Text, rendered at
// open): a read at offset 0 after the handle has been read re-opens it,
// so that the reader sees the content as of now (Plan 9 polling).
type handle struct {
	mu     sync.Mutex // h, read
	h      fs.Handle
	text   *fs.TextFile
	caller fs.Caller
	read   bool // a read has been served
}

var _ = (gofs.FileReader)((*handle)(nil))

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.mu.Lock()
	if h.text != nil && off == 0 && h.read {
		nh, err := h.text.Open(ctx, h.caller, fs.OREAD)
		if err != nil {
			h.mu.Unlock()
			return nil, fs.Errno(err)
		}
		h.h.Close()
		h.h = nh
	}
	h.read = true
	mh := h.h
	h.mu.Unlock()
	n, err := mh.Read(ctx, dest, off)
	if err != nil {
		return nil, fs.Errno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

var _ = (gofs.FileWriter)((*handle)(nil))

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.mu.Lock()
	mh := h.h
	h.mu.Unlock()
	n, err := mh.Write(ctx, data, off)
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
	h.mu.Lock()
	mh := h.h
	h.mu.Unlock()
	if fl, ok := mh.(fs.Flusher); ok {
		return fs.Errno(fl.Flush(ctx))
	}
	return 0
}

var _ = (gofs.FileReleaser)((*handle)(nil))

func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fs.Errno(h.h.Close())
}
