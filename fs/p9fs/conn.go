package p9fs

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"

	"aiosfs/fs"
)

// 9P2000.L message types the conn looks at. Every message is
// size[4] type[1] tag[2] body, little-endian (Linux include/net/9p/9p.h).
const (
	rlerror = 7
	tlopen  = 12
	tauth   = 102
	tattach = 104
	tflush  = 108
	rflush  = 109
	tread   = 116
	tclunk  = 120
	tremove = 122

	headerLen = 7
	// maxFrame is hugelgupf/p9's largest message; it drops a connection
	// that sends more, so the conn need not buffer more either.
	maxFrame = 4 << 20
	noUID    = ^uint32(0)

	// settle is how long Read waits before it reports the end of the
	// connection. hugelgupf/p9 starts a receiving goroutine after a
	// request when none is idle, and that goroutine counts itself in the
	// connection's WaitGroup only once it runs; if the end is reported
	// first, Handle's final Wait races with that count (the race detector
	// reports it, and Wait may panic "WaitGroup is reused"). The pause
	// lets such a goroutine run while the reader still holds a count.
	settle = 20 * time.Millisecond
)

// nobody is who an anonymous (TCP) client is.
var nobody = fs.Caller{Uid: 65534, Gid: 65534}

var le = binary.LittleEndian

// conn is one client connection as the p9.Server sees it. Read hands the
// library one request frame at a time after looking at it; Write gathers
// the library's replies into whole frames. It is also the connection's
// p9.Attacher.
type conn struct {
	net.Conn
	root fs.Dir
	opts Options
	// own is the peer itself; trusted says whether its attach claims are
	// believed (a root peer on a unix socket, or TCP under TrustTCP).
	own     fs.Caller
	trusted bool

	// ctx ends when the connection does; every open file's reads derive
	// from it, so a lost client cannot leave a read (and the server's
	// shutdown) blocked.
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once

	in  *bufio.Reader
	req []byte // the rest of the request being handed to the library

	wmu     sync.Mutex // held while a whole frame goes out
	replies frames     // gathers the library's replies for sendReply

	// gate holds one token while an attach or open is inside the
	// library; op is that request. Attacher.Attach and File.Open are not
	// told which request they serve, so requests of those kinds go in
	// one at a time and the call reads op.
	gate chan struct{}

	mu       sync.Mutex
	op       op
	held     bool
	inflight map[uint16]req      // requests handed on and not yet answered
	files    map[uint32]*file    // fid -> file, for opened files
	flushed  map[uint16]*file    // tag of a flushed read -> its file
	after    map[uint16][][]byte // tag -> Rflush frames to send after its reply
}

// req is what conn remembers of a request in the library.
type req struct {
	typ byte
	fid uint32 // of a Tread
	old uint16 // of a Tflush: the tag it flushes
}

// op is the attach or open the library is handling.
type op struct {
	tag    uint16
	fid    uint32
	caller fs.Caller
}

func newConn(nc net.Conn, root fs.Dir, opts Options) (*conn, error) {
	c := &conn{
		Conn:     nc,
		root:     root,
		opts:     opts,
		own:      nobody,
		trusted:  opts.TrustTCP,
		in:       bufio.NewReader(nc),
		gate:     make(chan struct{}, 1),
		inflight: map[uint16]req{},
		files:    map[uint32]*file{},
		flushed:  map[uint16]*file{},
		after:    map[uint16][][]byte{},
	}
	if uc, ok := nc.(*net.UnixConn); ok {
		cred, err := peerCred(uc)
		if err != nil {
			return nil, err
		}
		c.own = fs.Caller{Uid: cred.Uid, Gid: cred.Gid}
		c.trusted = cred.Uid == 0
	}
	c.replies.each = c.sendReply
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// peerCred asks the kernel who connected (SO_PEERCRED): the credentials of
// the process that called connect, which a client cannot forge.
func peerCred(uc *net.UnixConn) (*unix.Ucred, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	return cred, nil
}

// Close ends the connection and everything blocked on it. The library
// closes both its reader and writer, which are both c.
func (c *conn) Close() error {
	var err error
	c.once.Do(func() {
		c.cancel()
		err = c.Conn.Close()
	})
	return err
}

// Read gives the library the next request, a frame at a time.
func (c *conn) Read(p []byte) (int, error) {
	for len(c.req) == 0 {
		frame, err := c.readFrame()
		if err == nil {
			c.req, err = c.inspect(frame)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.opts.logf("p9fs: %v: %v", c.RemoteAddr(), err)
			}
			// The library stops reading at the first error and
			// waits for the requests in flight; ending ctx ends
			// those that block. See settle for the pause.
			c.Close()
			time.Sleep(settle)
			return 0, err
		}
	}
	n := copy(p, c.req)
	c.req = c.req[n:]
	return n, nil
}

func (c *conn) readFrame() ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c.in, size[:]); err != nil {
		return nil, err
	}
	n := le.Uint32(size[:])
	if n < headerLen || n > maxFrame {
		return nil, fmt.Errorf("p9fs: bad message size %d", n)
	}
	frame := make([]byte, n)
	copy(frame, size[:])
	if _, err := io.ReadFull(c.in, frame[4:]); err != nil {
		return nil, err
	}
	return frame, nil
}

// inspect acts on a request before the library sees it and returns what
// to hand on: the frame, or nothing when the request was answered here.
func (c *conn) inspect(frame []byte) ([]byte, error) {
	typ, tag, body := frame[4], le.Uint16(frame[5:]), frame[headerLen:]
	r := req{typ: typ}
	switch typ {
	case tauth:
		// hugelgupf/p9 answers Tauth with ENOSYS; diod's clients
		// (and its libnpclient) take only ENOENT as "no
		// authentication needed" and give up otherwise.
		return nil, c.reply(tag, syscall.ENOENT)
	case tattach:
		m, ok := parseAttach(body)
		if !ok {
			return nil, c.reply(tag, syscall.EINVAL)
		}
		if err := c.hold(op{tag: tag, fid: m.fid, caller: c.attachCaller(m.uname, m.nuname)}); err != nil {
			return nil, err
		}
	case tlopen:
		if len(body) < 8 {
			return nil, c.reply(tag, syscall.EINVAL)
		}
		if err := c.hold(op{tag: tag, fid: le.Uint32(body)}); err != nil {
			return nil, err
		}
	case tread:
		if len(body) >= 4 {
			r.fid = le.Uint32(body)
		}
	case tflush:
		// The library's Tflush only waits for the old request to
		// finish; a read blocked on events would never finish.
		if len(body) >= 2 {
			r.old = le.Uint16(body)
			c.interrupt(r.old)
		}
	case tclunk, tremove:
		// The library closes a file only when its last request ends,
		// and a blocked read is such a request.
		if len(body) >= 4 {
			c.forget(le.Uint32(body))
		}
	}
	c.mu.Lock()
	c.inflight[tag] = r
	c.mu.Unlock()
	return frame, nil
}

// attachMsg is the body of a Tattach:
// fid[4] afid[4] uname[s] aname[s] n_uname[4].
type attachMsg struct {
	fid, afid    uint32
	uname, aname string
	nuname       uint32
}

func parseAttach(b []byte) (m attachMsg, ok bool) {
	str := func() string {
		if len(b) < 2 || len(b) < 2+int(le.Uint16(b)) {
			ok = false
			return ""
		}
		s := string(b[2 : 2+le.Uint16(b)])
		b = b[2+len(s):]
		return s
	}
	if len(b) < 8 {
		return m, false
	}
	m.fid, m.afid, b = le.Uint32(b), le.Uint32(b[4:]), b[8:]
	ok = true
	m.uname = str()
	m.aname = str()
	if !ok || len(b) < 4 {
		return m, false
	}
	m.nuname = le.Uint32(b)
	return m, true
}

func (m attachMsg) frame(tag uint16) []byte {
	b := make([]byte, headerLen, headerLen+20+len(m.uname)+len(m.aname))
	b[4] = tattach
	le.PutUint16(b[5:], tag)
	b = le.AppendUint32(b, m.fid)
	b = le.AppendUint32(b, m.afid)
	b = le.AppendUint16(b, uint16(len(m.uname)))
	b = append(b, m.uname...)
	b = le.AppendUint16(b, uint16(len(m.aname)))
	b = append(b, m.aname...)
	b = le.AppendUint32(b, m.nuname)
	le.PutUint32(b, uint32(len(b)))
	return b
}

// attachCaller is who an attach makes the client: the uid it names when
// the peer may say so, otherwise the peer itself.
func (c *conn) attachCaller(uname string, nuname uint32) fs.Caller {
	if !c.trusted || nuname == noUID {
		return c.own
	}
	return fs.Caller{Uid: nuname, Gid: groupOf(uname, nuname)}
}

// groupOf is the gid of a believed attach as uid. 9P2000.L names no group:
// this package's client puts "UID:GID" in uname; for other clients (diod's
// tools, the kernel) it is the user's group in the user database, or the
// uid itself for users it lacks (Debian gives each user a group of the
// same number, and nobody's is nogroup, 65534).
func groupOf(uname string, uid uint32) uint32 {
	var u, g uint32
	if n, _ := fmt.Sscanf(uname, "%d:%d", &u, &g); n == 2 && u == uid {
		return g
	}
	if usr, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		if g, err := strconv.ParseUint(usr.Gid, 10, 32); err == nil {
			return uint32(g)
		}
	}
	return uid
}

// hold lets o into the library once no other attach or open is there.
func (c *conn) hold(o op) error {
	select {
	case c.gate <- struct{}{}:
	case <-c.ctx.Done():
		return net.ErrClosed
	}
	c.mu.Lock()
	c.op, c.held = o, true
	c.mu.Unlock()
	return nil
}

// current is the attach or open being handled (see gate).
func (c *conn) current() op {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.op
}

// interrupt ends the read with tag oldtag, if one is in flight: it
// cancels the reads of that fid until the read has been answered, so the
// read ends whether or not it has reached the model yet.
func (c *conn) interrupt(oldtag uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.inflight[oldtag]
	if !ok || r.typ != tread {
		return
	}
	if f := c.files[r.fid]; f != nil && c.flushed[oldtag] == nil {
		f.interrupt()
		c.flushed[oldtag] = f
	}
}

// forget ends fid's open file: its blocked reads return now, and the
// library closes it when its last request is answered.
func (c *conn) forget(fid uint32) {
	c.mu.Lock()
	f := c.files[fid]
	delete(c.files, fid)
	c.mu.Unlock()
	if f != nil {
		f.stop()
	}
}

// opened records f as the open file of the fid being opened.
func (c *conn) opened(f *file) {
	c.mu.Lock()
	c.files[f.fid] = f
	c.mu.Unlock()
}

// closed drops f, unless its fid already names a newer file.
func (c *conn) closed(f *file) {
	c.mu.Lock()
	if c.files[f.fid] == f {
		delete(c.files, f.fid)
	}
	c.mu.Unlock()
}

// Write takes the library's replies: whole frames go out under wmu, the
// lock reply also takes, so the two never interleave on the wire.
func (c *conn) Write(p []byte) (int, error) { return c.replies.Write(p) }

// sendReply sends one of the library's replies and settles what conn
// kept of its request: the gate, a flushed read's file, a held Rflush.
func (c *conn) sendReply(frame []byte) error {
	tag := le.Uint16(frame[5:])
	c.mu.Lock()
	r := c.inflight[tag]
	delete(c.inflight, tag)
	if _, pending := c.inflight[r.old]; pending && frame[4] == rflush {
		// The library answers Tflush once the old request's handler
		// has returned, but that handler's reply may not be out yet,
		// and a client reuses the old tag as soon as it has Rflush:
		// Rflush goes after the old reply.
		c.after[r.old] = append(c.after[r.old], append([]byte(nil), frame...))
		c.mu.Unlock()
		return nil
	}
	if f := c.flushed[tag]; f != nil {
		delete(c.flushed, tag)
		f.resume()
	}
	if c.held && c.op.tag == tag {
		c.held = false
		<-c.gate
	}
	later := c.after[tag]
	delete(c.after, tag)
	c.mu.Unlock()

	err := c.send(frame)
	for _, m := range later {
		if e := c.send(m); err == nil {
			err = e
		}
	}
	return err
}

// reply answers a request with Rlerror here, without the library.
func (c *conn) reply(tag uint16, e syscall.Errno) error {
	var m [headerLen + 4]byte
	le.PutUint32(m[0:], uint32(len(m)))
	m[4] = rlerror
	le.PutUint16(m[5:], tag)
	le.PutUint32(m[7:], uint32(e))
	return c.send(m[:])
}

func (c *conn) send(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.Conn.Write(frame)
	return err
}

// serve runs the library on c until the connection ends. Should Handle
// panic in spite of settle, the connection is over all the same: the
// panic is logged and the files the library did not get to close are
// closed here.
func (c *conn) serve() {
	defer func() {
		if r := recover(); r != nil {
			c.opts.logf("p9fs: %v: hugelgupf/p9 panicked at the end of the connection: %v", c.RemoteAddr(), r)
			c.Close()
			c.mu.Lock()
			files := c.files
			c.files = map[uint32]*file{}
			c.mu.Unlock()
			for _, f := range files {
				f.Close()
			}
		}
	}()
	p9.NewServer(c).Handle(c, c)
}

// Attach implements p9.Attacher: the root, as the caller the attach
// being handled established.
func (c *conn) Attach() (p9.File, error) {
	return newNode(c, c.root, c.current().caller), nil
}

// frames gathers whole 9P messages, each of which hugelgupf/p9 writes in
// several Writes (net.Buffers writes one buffer at a time to anything but
// a *net.TCPConn or *net.UnixConn), and hands each message to each. The
// library's send lock, held across a message, serializes the Writes.
type frames struct {
	buf  []byte
	each func(frame []byte) error
}

func (fr *frames) Write(p []byte) (int, error) {
	fr.buf = append(fr.buf, p...)
	for len(fr.buf) >= headerLen {
		n := int(le.Uint32(fr.buf))
		if n < headerLen {
			return 0, fmt.Errorf("p9fs: %d-byte message written", n)
		}
		if len(fr.buf) < n {
			break
		}
		err := fr.each(fr.buf[:n])
		fr.buf = append(fr.buf[:0], fr.buf[n:]...)
		if err != nil {
			return 0, err
		}
	}
	return len(p), nil
}
