package p9fs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"
)

// Client is a 9P2000.L connection attached to a server's root, for the
// `aiosfs ls|cat|write` subcommands and the tests. Every call walks from
// the root, so it sees the tree as it is now. It is safe for concurrent
// use. Its errors are *os.PathError around a syscall.Errno.
type Client struct {
	p9   *p9.Client
	root p9.File
	// clunks holds a token for each Tclunk ReadFile has sent without
	// waiting for its reply (see ReadFile); at most cap of them.
	clunks chan struct{}
	// SyncClunk makes ReadFile wait for every Rclunk, as before
	// docs/cost.md's run 8: for benchmarks that compare.
	SyncClunk bool
}

// maxAsyncClunks bounds the clunks in flight from ReadFile, well below
// the server's MaxRequests (64): a Client shared by many goroutines
// must not fill the server's request table with them.
const maxAsyncClunks = 8

// Dirent is a directory entry, or what Stat shows of one path.
type Dirent struct {
	Name  string
	Mode  os.FileMode // os.ModeDir for directories, plus permission bits
	Uid   uint32
	Gid   uint32
	Qid   uint64 // the qid path: the object's stable identity
	Size  int64  // 0 for synthetic files
	Mtime time.Time
}

// Dial connects to the dial string addr as the calling process.
func Dial(addr string) (*Client, error) {
	return DialAs(addr, uint32(os.Geteuid()), uint32(os.Getegid()))
}

// DialAs connects claiming to be uid and gid. The server believes the
// claim only from a root peer on a unix socket (or over TCP with
// TrustTCP); anyone else is who their socket says they are.
func DialAs(addr string, uid, gid uint32) (*Client, error) {
	network, address, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	nc, err := net.Dial(network, address)
	if err != nil {
		return nil, err
	}
	pc, err := p9.NewClient(newClaim(nc, uid, gid))
	if err != nil {
		nc.Close()
		return nil, clientErr("version", addr, err)
	}
	root, err := pc.Attach("/")
	if err != nil {
		pc.Close()
		return nil, clientErr("attach", addr, err)
	}
	return &Client{p9: pc, root: root, clunks: make(chan struct{}, maxAsyncClunks)}, nil
}

// Close ends the connection; the server closes what was left open.
func (c *Client) Close() error {
	c.root.Close()
	return c.p9.Close()
}

// walk returns a new fid for p, relative to the root.
func (c *Client) walk(p string) (p9.File, error) {
	var names []string
	if p = path.Clean("/" + p); p != "/" {
		names = strings.Split(p[1:], "/")
	}
	_, f, err := c.root.Walk(names)
	return f, err
}

func (c *Client) open(p string, flags p9.OpenFlags) (p9.File, error) {
	f, err := c.walk(p)
	if err != nil {
		return nil, err
	}
	if _, _, err := f.Open(flags); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadFile reads p from offset 0 to the end of what it rendered at open.
//
// It returns without waiting for the Rclunk of the file: a file opened
// only for reading has nothing deferred to its close (a ctl's unfinished
// line needs a write), so the reply carries nothing for the reader, and
// waiting was one of five round trips (docs/cost.md, "9P"). The Tclunk
// goes out from a goroutine, so the server may close the file a moment
// after ReadFile has returned (it counts toward MaxOpen until then); at
// most maxAsyncClunks are in flight at once, beyond that ReadFile waits.
func (c *Client) ReadFile(p string) ([]byte, error) {
	f, err := c.open(p, p9.ReadOnly)
	if err != nil {
		return nil, clientErr("open", p, err)
	}
	defer c.clunk(f)
	var out []byte
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	for {
		n, err := f.ReadAt(buf, int64(len(out)))
		out = append(out, buf[:n]...)
		if err == io.EOF || (err == nil && n == 0) {
			return out, nil
		}
		if err != nil {
			return out, clientErr("read", p, err)
		}
	}
}

// clunk closes a fid ReadFile read or Stat walked: without waiting for the reply when
// fewer than maxAsyncClunks are in flight.
func (c *Client) clunk(f p9.File) {
	if !c.SyncClunk {
		select {
		case c.clunks <- struct{}{}:
			go func() {
				f.Close()
				<-c.clunks
			}()
			return
		default:
		}
	}
	f.Close()
}

// readBufs are ReadFile's read buffers: a read asks for up to 64 KiB (the
// default msize) and most files are a few hundred bytes, so a fresh
// buffer per call was nearly all that a ReadFile allocated.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// WriteFile writes data to p as `echo data > p` does: open for writing
// with truncation, one write, close. It returns the first error: a ctl
// runs the lines it was given in the write and an unfinished last line at
// close, so either may fail.
func (c *Client) WriteFile(p string, data []byte) error {
	f, err := c.open(p, p9.WriteOnly|syscall.O_TRUNC)
	if err != nil {
		return clientErr("open", p, err)
	}
	_, werr := f.WriteAt(data, 0)
	cerr := f.Close()
	if werr != nil {
		return clientErr("write", p, werr)
	}
	return clientErr("close", p, cerr)
}

// Stat describes p.
func (c *Client) Stat(p string) (Dirent, error) {
	f, err := c.walk(p)
	if err != nil {
		return Dirent{}, clientErr("stat", p, err)
	}
	// A fid only walked, never opened, has nothing to close: its clunk
	// need not be waited for either (see ReadFile).
	defer c.clunk(f)
	qid, _, a, err := f.GetAttr(p9.AttrMaskAll)
	if err != nil {
		return Dirent{}, clientErr("stat", p, err)
	}
	return Dirent{
		Name:  path.Base(path.Clean("/" + p)),
		Mode:  a.Mode.OSMode(),
		Uid:   uint32(a.UID),
		Gid:   uint32(a.GID),
		Qid:   qid.Path,
		Size:  int64(a.Size),
		Mtime: time.Unix(int64(a.MTimeSeconds), int64(a.MTimeNanoSeconds)),
	}, nil
}

// ReadDir lists directory p in the server's order, with each entry's
// attributes. An entry gone between the listing and its stat is left out.
func (c *Client) ReadDir(p string) ([]Dirent, error) {
	d, err := c.open(p, p9.ReadOnly)
	if err != nil {
		return nil, clientErr("open", p, err)
	}
	defer d.Close()
	var names []string
	for off := uint64(0); ; {
		// The server fills count bytes whatever the message size (64
		// KiB by default), so ask for less than that.
		ents, err := d.Readdir(off, 32<<10)
		if err != nil {
			return nil, clientErr("readdir", p, err)
		}
		if len(ents) == 0 {
			break
		}
		for _, e := range ents {
			names = append(names, e.Name)
		}
		off = ents[len(ents)-1].Offset
	}
	out := make([]Dirent, 0, len(names))
	for _, name := range names {
		st, err := c.Stat(path.Join(p, name))
		if errors.Is(err, syscall.ENOENT) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// File is an open file read and written at a running offset, as a file
// descriptor is.
type File struct {
	f    p9.File
	path string
	off  int64
}

// Open opens p for reading, or for writing without truncation (a ctl that
// will get several writes).
func (c *Client) Open(p string, write bool) (*File, error) {
	flags := p9.ReadOnly
	if write {
		flags = p9.WriteOnly
	}
	f, err := c.open(p, flags)
	if err != nil {
		return nil, clientErr("open", p, err)
	}
	return &File{f: f, path: p}, nil
}

// Read reads at the offset; io.EOF at the end. On a stream it blocks until
// there is a line, and ends (EINTR) when the file is closed meanwhile.
func (f *File) Read(p []byte) (int, error) {
	n, err := f.f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF {
		return n, err
	}
	return n, clientErr("read", f.path, err)
}

// Write writes p at the offset.
func (f *File) Write(p []byte) (int, error) {
	n, err := f.f.WriteAt(p, f.off)
	f.off += int64(n)
	return n, clientErr("write", f.path, err)
}

// Close clunks the file; a ctl's unfinished last line runs now, and its
// error is returned.
func (f *File) Close() error { return clientErr("close", f.path, f.f.Close()) }

// clientErr makes a library error this package's: hugelgupf/p9 returns
// its own linux.Errno, and callers match syscall.Errno. Anything else
// (the connection failed) is EIO.
func clientErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	var e linux.Errno
	if errors.As(err, &e) {
		return &os.PathError{Op: op, Path: p, Err: syscall.Errno(e)}
	}
	return &os.PathError{Op: op, Path: p, Err: fmt.Errorf("%w (%v)", syscall.EIO, err)}
}

// claim is the client's connection: it puts uid and gid into the library
// client's Tattach, which always names no user (n_uname ~0, uname "").
// Its reads are buffered: the library reads a reply's header and its body
// in two reads, which are two system calls on the bare socket and mostly
// one here. (claim is no syscall.Conn, so the library's recvmsg path,
// which would bypass the buffer, is not taken.)
type claim struct {
	net.Conn
	frames
	in       *bufio.Reader
	uid, gid uint32
}

func newClaim(nc net.Conn, uid, gid uint32) *claim {
	c := &claim{Conn: nc, in: bufio.NewReader(nc), uid: uid, gid: gid}
	c.each = c.send
	return c
}

func (c *claim) Read(p []byte) (int, error) { return c.in.Read(p) }

func (c *claim) Write(p []byte) (int, error) { return c.frames.Write(p) }

// send gives a Tattach uname "UID:GID" (see groupOf) and n_uname uid.
func (c *claim) send(frame []byte) error {
	if frame[4] == tattach {
		if m, ok := parseAttach(frame[headerLen:]); ok {
			m.uname, m.nuname = fmt.Sprintf("%d:%d", c.uid, c.gid), c.uid
			frame = m.frame(le.Uint16(frame[5:]))
		}
	}
	_, err := c.Conn.Write(frame)
	return err
}
