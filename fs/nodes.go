package fs

import (
	"bytes"
	"context"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Owner is the uid and gid a node belongs to.
type Owner struct{ Uid, Gid uint32 }

// NS builds the nodes of one namespace and carries its hooks. Engines get
// an *NS and build their directories with it; they never see an adapter.
type NS struct {
	// Reject is told of every refused open, write or ctl command: the
	// caller, the file's path, the command (or "open" / "write") and the
	// error. The daemon puts it in `log` and `events`. May be nil.
	Reject func(c Caller, path, cmd string, err error)
	// Boot is the Mtime of every node: synthetic files have no history of
	// their own, and a fixed time keeps stat output stable.
	Boot time.Time

	docs docs // NS.Document's lines, for the READMEs
}

func (ns *NS) reject(c Caller, p, cmd string, err error) {
	if ns != nil && ns.Reject != nil {
		ns.Reject(c, p, cmd, err)
	}
}

// NoUid stands for a caller the model does not know (a failed lookup is
// not told who looked).
const NoUid = ^uint32(0)

// Report tells the Reject hook that a lookup of path failed with err.
func (ns *NS) Report(p string, err error) {
	ns.reject(Caller{Uid: NoUid, Gid: NoUid}, p, "walk", err)
}

func (ns *NS) attr(p string, mode os.FileMode, o Owner) Attr {
	p = path.Clean("/" + p)
	name := path.Base(p)
	if p == "/" {
		name = "/"
	}
	var boot time.Time
	if ns != nil {
		boot = ns.Boot
	}
	return Attr{Name: name, Path: PathID(p), Mode: mode, Uid: o.Uid, Gid: o.Gid, Mtime: boot}
}

// checkOpen is every file's open check: a read-only file refuses writing
// to anyone, root included; otherwise the permission bits decide. Each
// refusal is reported.
func (ns *NS) checkOpen(p string, a Attr, c Caller, m OpenMode, readOnly bool) error {
	if readOnly && m.writes() {
		ns.reject(c, p, "write", ErrReadOnly)
		return ErrReadOnly
	}
	if err := CheckAccess(a, c, m); err != nil {
		ns.reject(c, p, "open", err)
		return err
	}
	return nil
}

// ---- directories ----

// ListDir is a directory whose children come from functions, called on
// each walk and list so the tree always shows current state.
//
// Every ListDir also has a README (ReadmeName) naming its entries and
// their formats: listed after them and walkable, unless the directory
// has a child of that name of its own.
type ListDir struct {
	ns   *NS
	p    string
	attr Attr
	list func() ([]Node, error)
	walk func(name string) (Node, error) // optional fast path
	doc  func(name string) string        // a child's format line (TabDir's rows), or nil
}

// Dir returns a directory at path p listing list(). If walk is nil a walk
// scans list.
func (ns *NS) Dir(p string, perm os.FileMode, o Owner, list func() ([]Node, error), walk func(string) (Node, error)) *ListDir {
	return &ListDir{ns: ns, p: path.Clean("/" + p), attr: ns.attr(p, os.ModeDir|perm.Perm(), o), list: list, walk: walk}
}

// StaticDir returns a directory with a fixed list of children.
func (ns *NS) StaticDir(p string, perm os.FileMode, o Owner, children ...Node) *ListDir {
	kids := append([]Node(nil), children...)
	return ns.Dir(p, perm, o, func() ([]Node, error) { return kids, nil }, nil)
}

func (d *ListDir) Attr() Attr { return d.attr }

// List returns the children, then the README (unless a child has its name).
func (d *ListDir) List() ([]Node, error) {
	kids, err := d.list()
	if err != nil {
		return kids, err
	}
	for _, k := range kids {
		if k.Attr().Name == ReadmeName {
			return kids, nil
		}
	}
	return append(kids[:len(kids):len(kids)], d.readmeNode()), nil
}

// Walk returns the child named name. A name that is no child but ends in
// FollowSuffix after the name of a stream file child is that stream's
// blocking form (see FollowSuffix).
func (d *ListDir) Walk(name string) (Node, error) {
	if name == ReadmeName {
		// A child of that name of its own wins; a walk function that
		// would make any name (a tag) does not.
		kids, err := d.list()
		if err != nil {
			return nil, err
		}
		for _, k := range kids {
			if k.Attr().Name == ReadmeName {
				return k, nil
			}
		}
		return d.readmeNode(), nil
	}
	n, err := d.walk1(name)
	if err != nil && len(name) > len(FollowSuffix) && strings.HasSuffix(name, FollowSuffix) {
		if m, err2 := d.walk1(strings.TrimSuffix(name, FollowSuffix)); err2 == nil {
			if sf, ok := m.(*StreamFile); ok && !sf.follow {
				return sf.Follow(), nil
			}
		}
	}
	return n, err
}

func (d *ListDir) walk1(name string) (Node, error) {
	if d.walk != nil {
		return d.walk(name)
	}
	kids, err := d.list()
	if err != nil {
		return nil, err
	}
	for _, k := range kids {
		if k.Attr().Name == name {
			return k, nil
		}
	}
	return nil, ErrNotExist
}

// SortNodes orders nodes by name, for directories whose source is a map.
func SortNodes(ns []Node) {
	sort.Slice(ns, func(i, j int) bool { return ns[i].Attr().Name < ns[j].Attr().Name })
}

// ---- read-only text files ----

// TextFile is rendered at open and read by offset.
type TextFile struct {
	ns     *NS
	path   string
	attr   Attr
	render func(c Caller) ([]byte, error)
}

// Text returns a read-only file whose content is render's output at open.
func (ns *NS) Text(p string, perm os.FileMode, o Owner, render func(c Caller) ([]byte, error)) *TextFile {
	return &TextFile{ns: ns, path: path.Clean("/" + p), attr: ns.attr(p, perm.Perm()&^0222, o), render: render}
}

func (f *TextFile) Attr() Attr { return f.attr }

func (f *TextFile) Open(ctx context.Context, c Caller, m OpenMode) (Handle, error) {
	if err := f.ns.checkOpen(f.path, f.attr, c, m, true); err != nil {
		return nil, err
	}
	b, err := f.render(c)
	if err != nil {
		return nil, err
	}
	return &bufHandle{buf: b}, nil
}

// bufHandle serves a snapshot by offset.
type bufHandle struct{ buf []byte }

func (h *bufHandle) Read(_ context.Context, p []byte, off int64) (int, error) {
	return readAt(h.buf, p, off), nil
}

func (h *bufHandle) Write(context.Context, []byte, int64) (int, error) { return 0, ErrReadOnly }
func (h *bufHandle) Close() error                                      { return nil }

// readAt is the one place offset arithmetic lives: past the end is EOF (0).
func readAt(buf, p []byte, off int64) int {
	if off < 0 || off >= int64(len(buf)) {
		return 0
	}
	return copy(p, buf[off:])
}

// ---- ctl files ----

// Exec runs one command line (without its newline) for caller c.
type Exec func(ctx context.Context, c Caller, line string) error

// CtlFile executes commands written to it; reading it prints help.
type CtlFile struct {
	ns   *NS
	path string
	attr Attr
	help func() []byte
	exec Exec
}

// Ctl returns a ctl file. help renders what a read shows (the verb table);
// exec runs each command line.
func (ns *NS) Ctl(p string, perm os.FileMode, o Owner, help func() []byte, exec Exec) *CtlFile {
	return &CtlFile{ns: ns, path: path.Clean("/" + p), attr: ns.attr(p, perm.Perm(), o), help: help, exec: exec}
}

func (f *CtlFile) Attr() Attr { return f.attr }

func (f *CtlFile) Open(ctx context.Context, c Caller, m OpenMode) (Handle, error) {
	if err := f.ns.checkOpen(f.path, f.attr, c, m, false); err != nil {
		return nil, err
	}
	var initial []byte
	if m.reads() && f.help != nil {
		initial = f.help()
	}
	return f.ns.NewCtlHandle(f.path, c, initial, f.exec), nil
}

// Ctl input is bounded, because every ctl a user can open for writing
// (/ctl, /clone, /mem/ctl are 0666) takes bytes from anyone: without a
// bound, one `dd` of a newline-free stream grows the daemon's memory with
// the stream and, before these limits, copied the buffered partial line
// on every write (38 s and 1.2 GB for 100 MiB).
const (
	// MaxCtlLine is the longest command line, in bytes without its
	// newline. The longest real commands (a spawn with a long argv and a
	// few env= settings) are a few KiB.
	MaxCtlLine = 64 << 10
	// MaxCtlWrite is the most one write may carry. FUSE hands the daemon
	// at most 128 KiB a write; 9P allows up to its msize (4 MiB). A batch
	// of 5000 verbs is about 100 KiB, so 1 MiB refuses no real batch.
	MaxCtlWrite = 1 << 20
	// ErrnoCtlTooLong is the errno of both refusals: EMSGSIZE ("Message
	// too long"), which says what happened where EINVAL would read like a
	// bad verb; a ctl line is a control message.
	ErrnoCtlTooLong = syscall.EMSGSIZE
)

// CtlHandle is an open ctl: reads serve a fixed buffer (the help table, or
// a clone's number), writes run commands line by line.
type CtlHandle struct {
	ns     *NS
	path   string
	caller Caller
	buf    []byte
	exec   Exec
	mu     sync.Mutex
	// partial is the start of a line whose newline has not come yet;
	// never longer than MaxCtlLine.
	partial []byte
	// skipping: a line over MaxCtlLine was refused and the rest of it,
	// up to its newline, is being thrown away (and every write carrying
	// it fails), so its tail never runs as a command of its own.
	skipping bool
}

// NewCtlHandle returns a handle that reads initial and runs written lines
// through exec, reporting refusals for the file at path p.
func (ns *NS) NewCtlHandle(p string, c Caller, initial []byte, exec Exec) *CtlHandle {
	return &CtlHandle{ns: ns, path: p, caller: c, buf: initial, exec: exec}
}

func (h *CtlHandle) Read(_ context.Context, p []byte, off int64) (int, error) {
	return readAt(h.buf, p, off), nil
}

// Write runs every complete line in p (after any partial line left from an
// earlier write). It stops at the first refused line and fails the write
// with that line's error; the lines before it have taken effect, the rest
// of p is dropped.
//
// Size limits: a write of more than MaxCtlWrite bytes is refused whole
// before any of it runs; a line of more than MaxCtlLine bytes is refused
// as soon as it passes the limit, its buffered start is dropped and so is
// the rest of it up to its newline: writes carrying that rest fail too
// (reported once, when the line passed the limit), and, as after any
// refused line, what follows it in the same write is dropped. Both refusals are
// ErrnoCtlTooLong, and the line is reported (to `log`) only by its first
// MaxCtlLine bytes, which the daemon shortens further. Each byte is looked
// at once and at most MaxCtlLine bytes are kept, so the cost of a write is
// linear in its size and the memory of a handle is bounded.
func (h *CtlHandle) Write(ctx context.Context, p []byte, _ int64) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(p)
	if len(p) > MaxCtlWrite {
		prefix := append(h.partial, p[:min(len(p), MaxCtlLine-len(h.partial))]...)
		h.partial = nil
		// What follows continues the last line of p, unless p ended one.
		h.skipping = p[len(p)-1] != '\n'
		err := Errorf(ErrnoCtlTooLong, "write of %d bytes refused: a ctl write carries at most %d bytes (MaxCtlWrite)", len(p), MaxCtlWrite)
		h.ns.reject(h.caller, h.path, string(prefix), err)
		return 0, err
	}
	if h.skipping {
		i := bytes.IndexByte(p, '\n')
		if i >= 0 {
			h.skipping = false
		}
		return 0, Errorf(ErrnoCtlTooLong, "rest of a ctl line longer than %d bytes (MaxCtlLine), refused", MaxCtlLine)
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		end := i
		if i < 0 {
			end = len(p)
		}
		if len(h.partial)+end > MaxCtlLine {
			prefix := append(h.partial, p[:MaxCtlLine-len(h.partial)]...)
			h.partial = nil
			h.skipping = i < 0
			err := Errorf(ErrnoCtlTooLong, "ctl line longer than %d bytes (MaxCtlLine) refused", MaxCtlLine)
			h.ns.reject(h.caller, h.path, string(prefix), err)
			return 0, err
		}
		if i < 0 {
			// Appending to a buffer bounded by MaxCtlLine: the copy
			// is amortised and never larger than one line.
			h.partial = append(h.partial, p...)
			break
		}
		line := string(append(h.partial, p[:i]...))
		h.partial = h.partial[:0]
		p = p[i+1:]
		if err := h.run(ctx, line); err != nil {
			h.partial = nil
			return 0, err
		}
	}
	return n, nil
}

func (h *CtlHandle) run(ctx context.Context, line string) error {
	if h.exec == nil {
		h.ns.reject(h.caller, h.path, line, ErrReadOnly)
		return ErrReadOnly
	}
	if err := h.exec(ctx, h.caller, line); err != nil {
		h.ns.reject(h.caller, h.path, line, err)
		return err
	}
	return nil
}

// Flush runs a trailing line that had no newline (`echo -n kill > ctl`).
// The rest of an over-long line has nothing to run: it was refused.
func (h *CtlHandle) Flush(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.skipping = false
	if len(h.partial) == 0 {
		return nil
	}
	line := string(h.partial)
	h.partial = nil
	return h.run(ctx, line)
}

func (h *CtlHandle) Close() error { return h.Flush(context.Background()) }

// ---- streams ----

// Stream is a source of whole lines for a blocking file such as events.
type Stream interface {
	// Next blocks until it has one or more whole lines, or ctx ends.
	Next(ctx context.Context) ([]byte, error)
	Close() error
}

// Backlogger is a Stream that keeps its recent lines (the bus keeps the
// last events): the snapshot form of its file shows them. A Stream
// without it has an empty snapshot.
type Backlogger interface {
	Backlog() []byte
}

// FollowSuffix names the blocking form of a stream file: events is the
// snapshot, events.follow the stream.
//
// Every stream file has two forms. The one a directory lists (events,
// agents/N/events, threat/alerts) is a snapshot: the stream's backlog
// (its recent lines, as Backlogger gives them) rendered at open, then end
// of file, like any text file; it never blocks, so a tree walker (grep -r,
// find -exec cat, tar, rsync, tail agents/*/*) reads it and moves on. The
// blocking form, Plan 9's events file, is NAME.follow: reads block until
// there are new lines, from the open on, and end only when the reader
// goes away. It is walkable but not listed (as Linux's /proc/TID for a
// thread is), because anything listed is opened by some walker: only a
// reader who names it follows. Every ListDir resolves NAME.follow for its
// stream file NAME (ListDir.Walk), so every stream has it, in FUSE and
// in 9P alike.
const FollowSuffix = ".follow"

// StreamFile is a stream's file: its snapshot form, or with follow set
// its blocking form.
type StreamFile struct {
	ns     *NS
	path   string
	attr   Attr
	open   func(c Caller) (Stream, error)
	follow bool
}

// StreamOf returns the snapshot form of a stream file (see FollowSuffix):
// each open makes a new Stream with open; the snapshot reads its backlog
// and closes it, the blocking form (Follow) reads it until it is closed.
func (ns *NS) StreamOf(p string, perm os.FileMode, o Owner, open func(c Caller) (Stream, error)) *StreamFile {
	return &StreamFile{ns: ns, path: path.Clean("/" + p), attr: ns.attr(p, perm.Perm()&^0222, o), open: open}
}

// Follow returns the blocking form of f, named f's name plus FollowSuffix.
func (f *StreamFile) Follow() *StreamFile {
	if f.follow {
		return f
	}
	p := f.path + FollowSuffix
	a := f.ns.attr(p, f.attr.Mode, Owner{f.attr.Uid, f.attr.Gid})
	return &StreamFile{ns: f.ns, path: p, attr: a, open: f.open, follow: true}
}

// Follows reports whether f is the blocking form.
func (f *StreamFile) Follows() bool { return f.follow }

func (f *StreamFile) Attr() Attr { return f.attr }

func (f *StreamFile) Open(ctx context.Context, c Caller, m OpenMode) (Handle, error) {
	if err := f.ns.checkOpen(f.path, f.attr, c, m, true); err != nil {
		return nil, err
	}
	s, err := f.open(c)
	if err != nil {
		return nil, err
	}
	if !f.follow {
		var b []byte
		if bl, ok := s.(Backlogger); ok {
			b = bl.Backlog()
		}
		s.Close()
		return &bufHandle{buf: b}, nil
	}
	return &streamHandle{s: s}, nil
}

// streamHandle returns whole lines; what does not fit in one read is kept
// for the next, so a reader with a small buffer still sees every byte.
type streamHandle struct {
	mu      sync.Mutex
	s       Stream
	pending []byte
}

func (h *streamHandle) Read(ctx context.Context, p []byte, _ int64) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.pending) == 0 {
		b, err := h.s.Next(ctx)
		if err != nil {
			return 0, err
		}
		h.pending = b
	}
	n := copy(p, h.pending)
	h.pending = h.pending[n:]
	return n, nil
}

func (h *streamHandle) Write(context.Context, []byte, int64) (int, error) { return 0, ErrReadOnly }
func (h *streamHandle) Close() error                                      { return h.s.Close() }

// compile-time checks
var (
	_ Dir     = (*ListDir)(nil)
	_ File    = (*TextFile)(nil)
	_ File    = (*CtlFile)(nil)
	_ File    = (*StreamFile)(nil)
	_ Flusher = (*CtlHandle)(nil)
)
