package p9fs

import (
	"context"
	"sync"
	"syscall"

	"github.com/hugelgupf/p9/fsimpl/templatefs"
	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"

	"aiosfs/fs"
)

// node is what dir and file share: a model node seen by one caller on one
// connection. Each fid has its own node value; the model node may be a
// snapshot, which is why every walk starts from the model again.
type node struct {
	c      *conn
	n      fs.Node
	caller fs.Caller
}

// newNode wraps a model node as a directory or a file.
func newNode(c *conn, n fs.Node, caller fs.Caller) p9.File {
	nd := node{c: c, n: n, caller: caller}
	if d, ok := n.(fs.Dir); ok {
		return &dir{node: nd, d: d}
	}
	return &file{node: nd}
}

func qidOf(a fs.Attr) p9.QID {
	t := p9.TypeRegular
	if a.IsDir() {
		t = p9.TypeDir
	}
	return p9.QID{Type: t, Path: a.Path}
}

// GetAttr implements p9.File.GetAttr. Size is the model's: 0 for a file
// rendered at open, whose length is only known then.
func (n *node) GetAttr(p9.AttrMask) (p9.QID, p9.AttrMask, p9.Attr, error) {
	a := n.n.Attr()
	sec, nsec := uint64(a.Mtime.Unix()), uint64(a.Mtime.Nanosecond())
	if a.Mtime.IsZero() {
		sec, nsec = 0, 0
	}
	attr := p9.Attr{
		Mode:             p9.ModeFromOS(a.Mode),
		UID:              p9.UID(a.Uid),
		GID:              p9.GID(a.Gid),
		NLink:            1,
		BlockSize:        4096,
		Size:             uint64(a.Size),
		Blocks:           uint64(a.Size+511) / 512,
		ATimeSeconds:     sec,
		ATimeNanoSeconds: nsec,
		MTimeSeconds:     sec,
		MTimeNanoSeconds: nsec,
		CTimeSeconds:     sec,
		CTimeNanoSeconds: nsec,
	}
	valid := p9.AttrMask{Mode: true, NLink: true, UID: true, GID: true, ATime: true,
		MTime: true, CTime: true, INo: true, Size: true, Blocks: true}
	return qidOf(a), valid, attr, nil
}

// StatFS implements p9.File.StatFS, which `df` and the kernel's mount ask.
func (n *node) StatFS() (p9.FSStat, error) {
	return p9.FSStat{Type: 0x01021997 /* V9FS_MAGIC */, BlockSize: 4096, NameLength: 255}, nil
}

// dir serves an fs.Dir. Nothing can be created, removed or renamed:
// objects come and go through ctl files, so those answer EROFS.
type dir struct {
	node
	templatefs.ReadOnlyDir
	templatefs.NilCloser
	p9.DefaultWalkGetAttr
	d fs.Dir
}

// Walk implements p9.File.Walk, asking the model at every step so the tree
// shows current state. No names clones the fid.
func (d *dir) Walk(names []string) ([]p9.QID, p9.File, error) {
	var n fs.Node = d.d
	qids := make([]p9.QID, 0, len(names))
	for _, name := range names {
		cur, ok := n.(fs.Dir)
		if !ok {
			return nil, nil, errno(fs.ErrNotDir)
		}
		next, err := cur.Walk(name)
		if err != nil {
			return nil, nil, errno(err)
		}
		n = next
		qids = append(qids, qidOf(n.Attr()))
	}
	return qids, newNode(d.c, n, d.caller), nil
}

// Open implements p9.File.Open. The library has already refused to open a
// directory for writing; listing needs read permission, as on disk.
func (d *dir) Open(p9.OpenFlags) (p9.QID, uint32, error) {
	a := d.d.Attr()
	if err := fs.CheckAccess(a, d.caller, fs.OREAD); err != nil {
		return p9.QID{}, 0, errno(err)
	}
	return qidOf(a), 0, nil
}

// Readdir implements p9.File.Readdir. Offsets are positions in List() plus
// one; the library keeps as many entries as fit the client's count.
func (d *dir) Readdir(offset uint64, _ uint32) (p9.Dirents, error) {
	kids, err := d.d.List()
	if err != nil {
		return nil, errno(err)
	}
	var out p9.Dirents
	for i := offset; i < uint64(len(kids)); i++ {
		a := kids[i].Attr()
		// Rreaddir's type byte is a dirent d_type (DT_DIR, DT_REG)
		// to the Linux kernel and diod's clients, not a qid type.
		t := p9.QIDType(syscall.DT_REG)
		if a.IsDir() {
			t = syscall.DT_DIR
		}
		out = append(out, p9.Dirent{QID: qidOf(a), Offset: i + 1, Type: t, Name: a.Name})
	}
	return out, nil
}

// file serves an fs.File (or any other leaf, which cannot be opened).
// Once open, it belongs to the fid it was opened on: conn finds it there
// to end its blocked reads on Tflush and Tclunk.
type file struct {
	node
	templatefs.NotDirectoryFile
	templatefs.NotSymlinkFile
	templatefs.XattrUnimplemented
	templatefs.NoopRenamed
	templatefs.NotLockable
	p9.DefaultWalkGetAttr

	// Set by Open, before the library lets any read or write in.
	fid  uint32
	h    fs.Handle
	ctx  context.Context // ends at clunk, close, or the connection's end
	stop context.CancelFunc

	mu       sync.Mutex
	readCtx  context.Context // what reads block on; a flush cancels it
	endReads context.CancelFunc
	flushes  int // flushes of reads not yet answered

	// text is set on a read-only open of a text file (fs.Text, rendered
	// at open) unless Options.Plain: a Tread at offset 0 after the fid
	// has been read opens it again, so the reader sees the content as of
	// now. That is Plan 9's way of polling a status file (pread at 0 of
	// a kept descriptor), one round trip instead of five. A read at any
	// other offset serves the rendering it continues, so a file read in
	// pieces is one rendering. rmu orders the swap of h with the reads.
	text *fs.TextFile
	rmu  sync.Mutex
	read bool // a read has been served
}

// Walk implements p9.File.Walk: a file only clones.
func (f *file) Walk(names []string) ([]p9.QID, p9.File, error) {
	if len(names) > 0 {
		return nil, nil, linux.ENOTDIR
	}
	return nil, &file{node: f.node}, nil
}

// Open implements p9.File.Open: the model decides, for this caller.
func (f *file) Open(flags p9.OpenFlags) (p9.QID, uint32, error) {
	mf, ok := f.n.(fs.File)
	if !ok {
		return p9.QID{}, 0, errno(fs.ErrPerm)
	}
	mode := fs.OREAD
	switch flags.Mode() {
	case p9.WriteOnly:
		mode = fs.OWRITE
	case p9.ReadWrite:
		mode = fs.ORDWR
	}
	// conn refuses these before the library sees them; this is the
	// same rule where the model is asked, in case another path leads
	// here.
	if f.c.readOnly && (mode != fs.OREAD || flags&dotlTrunc != 0) {
		return p9.QID{}, 0, linux.EROFS
	}
	// Opens come here one at a time (conn's gate), so counting the open
	// files first is exact enough: a file clunked but not yet closed
	// has left the count.
	if !f.c.mayOpen() {
		return p9.QID{}, 0, linux.EMFILE
	}
	h, err := mf.Open(f.c.ctx, f.caller, mode)
	if err != nil {
		return p9.QID{}, 0, errno(err)
	}
	f.fid, f.h = f.c.current().fid, h
	if tf, ok := mf.(*fs.TextFile); ok && mode == fs.OREAD && !f.c.opts.Plain {
		f.text = tf
	}
	f.ctx, f.stop = context.WithCancel(f.c.ctx)
	f.readCtx, f.endReads = context.WithCancel(f.ctx)
	f.c.opened(f)
	return qidOf(f.n.Attr()), 0, nil
}

// interrupt cancels the reads in flight; resume, called when the flushed
// read has been answered, lets later reads block again.
func (f *file) interrupt() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushes++
	f.endReads()
}

func (f *file) resume() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.flushes--; f.flushes == 0 {
		f.readCtx, f.endReads = context.WithCancel(f.ctx)
	}
}

// ReadAt implements p9.File.ReadAt; at offset 0 a text file's fid that
// has been read renders afresh (see file.text).
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	ctx := f.readCtx
	f.mu.Unlock()
	h := f.h
	if f.text != nil {
		f.rmu.Lock()
		if off == 0 && f.read {
			nh, err := f.text.Open(ctx, f.caller, fs.OREAD)
			if err != nil {
				f.rmu.Unlock()
				return 0, errno(err)
			}
			f.h.Close()
			f.h = nh
		}
		f.read = true
		h = f.h
		f.rmu.Unlock()
	}
	n, err := h.Read(ctx, p, off)
	return n, errno(err)
}

// WriteAt implements p9.File.WriteAt.
func (f *file) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.h.Write(f.ctx, p, off)
	return n, errno(err)
}

// SetAttr implements p9.File.SetAttr. Truncation comes with `echo x > f`
// (O_TRUNC, ftruncate) and is a no-op on a synthetic file once the caller
// may write it; times are accepted and dropped (touch works). Modes and
// owners belong to the model.
func (f *file) SetAttr(valid p9.SetAttrMask, _ p9.SetAttr) error {
	if f.c.readOnly {
		return linux.EROFS
	}
	if valid.Permissions || valid.UID || valid.GID {
		return linux.EPERM
	}
	if valid.Size {
		return errno(fs.CheckAccess(f.n.Attr(), f.caller, fs.OWRITE))
	}
	return nil
}

// FSync implements p9.File.FSync: writes take effect as they arrive.
func (f *file) FSync() error { return nil }

// Rename implements p9.File.Rename (never called on servers).
func (f *file) Rename(p9.File, string) error { return linux.EROFS }

// Close implements p9.File.Close, which the library calls when the fid's
// last request is done (on clunk, or when the connection ends). Flush runs
// a ctl's unfinished last line; its error reaches the client in Rclunk.
// Flush gets its own context: the fid's has ended by now.
func (f *file) Close() error {
	if f.h == nil {
		return nil
	}
	f.stop()
	f.c.closed(f)
	var err error
	if fl, ok := f.h.(fs.Flusher); ok {
		err = fl.Flush(context.Background())
	}
	if cerr := f.h.Close(); err == nil {
		err = cerr
	}
	return errno(err)
}

// compile-time checks
var (
	_ p9.Attacher = (*conn)(nil)
	_ p9.File     = (*dir)(nil)
	_ p9.File     = (*file)(nil)
)
