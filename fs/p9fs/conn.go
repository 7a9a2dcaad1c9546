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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"

	"aiosfs/fs"
)

// 9P2000.L message types the conn looks at. Every message is
// size[4] type[1] tag[2] body, little-endian (Linux include/net/9p/9p.h);
// a reply's type is its request's plus one.
const (
	rlerror      = 7
	tstatfs      = 8
	tlopen       = 12
	tlcreate     = 14
	tsymlink     = 16
	tmknod       = 18
	trename      = 20
	treadlink    = 22
	tgetattr     = 24
	tsetattr     = 26
	txattrwalk   = 30
	txattrcreate = 32
	treaddir     = 40
	tfsync       = 50
	tlock        = 52
	tlink        = 70
	tmkdir       = 72
	trenameat    = 74
	tunlinkat    = 76
	tversion     = 100
	rversion     = 101
	tauth        = 102
	tattach      = 104
	rattach      = 105
	tflush       = 108
	rflush       = 109
	twalk        = 110
	rwalk        = 111
	tread        = 116
	twrite       = 118
	tclunk       = 120
	tremove      = 122

	headerLen = 7
	// ioHeaderLen is what an Rread or Rreaddir adds to its data:
	// size[4] type[1] tag[2] count[4]. A read returns at most msize
	// less this (IOHDRSZ in Linux).
	ioHeaderLen = 11
	// maxFrame is hugelgupf/p9's largest message; it drops a connection
	// that sends more, so the conn need not buffer more either.
	maxFrame = 4 << 20
	// maxWalk is the most names a Twalk may carry (MAXWELEM in Plan 9
	// and Linux): the Linux client never sends more, and a walk of
	// thousands of names is work for the server and nothing else.
	maxWalk = 16
	// dotlTrunc is O_TRUNC in a Tlopen's flags (9P2000.L uses Linux's
	// generic open flags).
	dotlTrunc = 0o1000
	noUID     = ^uint32(0)

	// settle is how long Read waits before it reports the end of the
	// connection. hugelgupf/p9 starts a receiving goroutine after a
	// request when none is idle, and that goroutine counts itself in the
	// connection's WaitGroup only once it runs; if the end is reported
	// first, Handle's final Wait races with that count (the race detector
	// reports it, and Wait may panic "WaitGroup is reused"). The pause
	// lets such a goroutine run while the reader still holds a count.
	settle = 20 * time.Millisecond
)

// layouts are the bodies of the requests the server takes, as
// hugelgupf/p9 decodes them: 1, 2, 4, 8 are fixed fields of that many
// bytes, s a string (size[2] then bytes), W a Twalk's names (count[2]
// then strings), D a Twrite's data (count[4] then exactly count bytes).
// A request whose type is not here (replies, the 9P2000.L.Google
// extensions, Tgetlock, which the library does not implement) is
// answered ENOSYS; one whose body does not fit its layout, EINVAL.
// Checking here matters: the library answers a body it cannot decode
// with the tag NOTAG, which leaves the client waiting for its reply.
var layouts = map[byte]string{
	tstatfs:      "4",
	tlopen:       "44",
	tlcreate:     "4s444",
	tsymlink:     "4ss4",
	tmknod:       "4s4444",
	trename:      "44s",
	treadlink:    "4",
	tgetattr:     "48",
	tsetattr:     "4444488888",
	txattrwalk:   "44s",
	txattrcreate: "4s84",
	treaddir:     "484",
	tfsync:       "4",
	tlock:        "414884s",
	tlink:        "44s",
	tmkdir:       "4s44",
	trenameat:    "4s4s",
	tunlinkat:    "4s4",
	tversion:     "4s",
	tauth:        "4ss4",
	tattach:      "44ss4",
	tflush:       "2",
	twalk:        "44W",
	tread:        "484",
	twrite:       "48D",
	tclunk:       "4",
	tremove:      "4",
}

// wellFormed says whether body fits layout (see layouts). Trailing bytes
// are allowed, as the library ignores them, except after a Twrite's data.
func wellFormed(layout string, b []byte) bool {
	str := func() bool {
		if len(b) < 2 || len(b)-2 < int(le.Uint16(b)) {
			return false
		}
		b = b[2+int(le.Uint16(b)):]
		return true
	}
	for _, k := range layout {
		switch k {
		case '1', '2', '4', '8':
			n := int(k - '0')
			if len(b) < n {
				return false
			}
			b = b[n:]
		case 's':
			if !str() {
				return false
			}
		case 'W':
			if len(b) < 2 {
				return false
			}
			n := le.Uint16(b)
			b = b[2:]
			for range n {
				if !str() {
					return false
				}
			}
		case 'D':
			if len(b) < 4 || uint64(len(b)-4) != uint64(le.Uint32(b)) {
				return false
			}
			b = b[4:]
		}
	}
	return true
}

// changes says whether a request would change the tree, and so is
// refused on a read-only connection. Tremove, Trename and Trenameat are
// not among them: they are EROFS on every connection (see inspect).
func changes(typ byte, body []byte) bool {
	switch typ {
	case tlcreate, tsymlink, tmknod, tsetattr, txattrcreate,
		tlink, tmkdir, tunlinkat, twrite:
		return true
	case tlopen:
		flags := le.Uint32(body[4:])
		return flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&dotlTrunc != 0
	}
	return false
}

// nobody is who an anonymous (TCP) client is.
var nobody = fs.Caller{Uid: 65534, Gid: 65534}

var le = binary.LittleEndian

// conn is one client connection as the p9.Server sees it. Read hands the
// library one request frame at a time after looking at it; Write gathers
// the library's replies into whole frames. It is also the connection's
// p9.Attacher.
type conn struct {
	net.Conn
	root    fs.Dir
	session uint64 // fs.Caller.Session of every caller on it
	opts    Options
	logf    func(format string, args ...any) // opts.Logf, rate-limited by the listener
	// own is the peer itself; trusted says whether its attach claims are
	// believed (a root peer on a unix socket, or TCP under TrustTCP).
	own     fs.Caller
	trusted bool
	// readOnly refuses every change (see changes); limitUid says the
	// connection counts toward its uid's MaxConnsPerUid.
	readOnly bool
	limitUid bool
	// msize is the message size agreed at Tversion, 0 before: until
	// then only a Tversion is served. Read's goroutine alone uses it.
	msize uint32

	// ctx ends when the connection does; every open file's reads derive
	// from it, so a lost client cannot leave a read (and the server's
	// shutdown) blocked.
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once

	in  *bufio.Reader
	req []byte // the rest of the request being handed to the library
	// rbuf is the frame buffer readFrame reuses once the library has
	// taken the whole of the last request (nothing of a frame is kept
	// past inspect: what is kept is copied).
	rbuf []byte

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
	// fids are the fids the library holds for this connection, as its
	// replies tell; newFids counts attaches and walks in flight that
	// would add one. Together they are bounded by MaxFids.
	fids    map[uint32]struct{}
	newFids int
	// paths are the paths the library keeps a node for on this
	// connection: one for every name it has walked to from a directory,
	// kept until the connection ends (only a rename or remove would
	// drop one). A directory that takes any name (mem/find/TAG) would
	// let them grow without end; MaxPaths bounds them. fidPath is the
	// path of each fid, to know where a walk starts.
	paths   map[uint64]struct{}
	fidPath map[uint32]uint64
}

// req is what conn remembers of a request in the library.
type req struct {
	typ byte
	fid uint32 // of a Tread, Tclunk or Tremove
	old uint16 // of a Tflush: the tag it flushes
	// newFid is the fid a Tattach, Twalk or Txattrwalk adds when it
	// succeeds, if adds says it is not one the connection holds.
	newFid uint32
	adds   bool
	clunks bool // a Tclunk or Tremove: fid is gone once answered

	// What a Tattach, Twalk or Txattrwalk does to the paths (see
	// conn.paths): newFid ends up at the path walk names from the
	// root (fromRoot) or from fid from. walk is dropped once admitted;
	// moved says newFid's path was set, and prevPath/hadPrev what to
	// put back if the request fails.
	walk     []string
	from     uint32
	fromRoot bool
	moved    bool
	hadPrev  bool
	prevPath uint64
}

// op is the attach or open the library is handling.
type op struct {
	tag    uint16
	fid    uint32
	caller fs.Caller
}

func newConn(nc net.Conn, root fs.Dir, opts Options) (*conn, error) {
	opts = opts.limits()
	c := &conn{
		Conn:     nc,
		root:     root,
		opts:     opts,
		logf:     opts.logf,
		own:      nobody,
		trusted:  opts.TrustTCP,
		readOnly: opts.ReadOnly || !opts.TrustTCP,
		in:       bufio.NewReader(nc),
		gate:     make(chan struct{}, 1),
		inflight: map[uint16]req{},
		files:    map[uint32]*file{},
		flushed:  map[uint16]*file{},
		after:    map[uint16][][]byte{},
		fids:     map[uint32]struct{}{},
		paths:    map[uint64]struct{}{},
		fidPath:  map[uint32]uint64{},
	}
	if uc, ok := nc.(*net.UnixConn); ok {
		cred, err := peerCred(uc)
		if err != nil {
			return nil, err
		}
		c.own = fs.Caller{Uid: cred.Uid, Gid: cred.Gid}
		c.trusted = cred.Uid == 0
		c.readOnly = opts.ReadOnly
		c.limitUid = cred.Uid != 0
	}
	c.session = sessions.Add(1)
	c.own.Session = c.session
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
				c.logf("p9fs: %v: %v", c.RemoteAddr(), err)
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
	// Before Tversion only a Tversion is served, and it is small; after,
	// nothing larger than the agreed msize is. So a frame, which is read
	// whole before it is looked at, costs at most msize.
	limit := c.msize
	if limit == 0 {
		limit = minMsize
	}
	n := le.Uint32(size[:])
	if n < headerLen || n > limit {
		return nil, fmt.Errorf("p9fs: bad message size %d (msize %d)", n, limit)
	}
	if cap(c.rbuf) < int(n) || cap(c.rbuf) > keepBuf {
		c.rbuf = make([]byte, max(n, 512))
	}
	frame := c.rbuf[:n]
	copy(frame, size[:])
	if _, err := io.ReadFull(c.in, frame[4:]); err != nil {
		return nil, err
	}
	return frame, nil
}

// inspect acts on a request before the library sees it and returns what
// to hand on: the frame, or nothing when the request was answered here.
// It is where the protocol's bounds are kept: the library would walk any
// number of names, accept any msize, hold any number of fids and serve any
// number of requests at once, and it answers a body it cannot decode
// without the request's tag. An error ends the connection.
func (c *conn) inspect(frame []byte) ([]byte, error) {
	typ, tag, body := frame[4], le.Uint16(frame[5:]), frame[headerLen:]
	layout, known := layouts[typ]
	switch {
	case !known:
		return nil, c.reply(tag, syscall.ENOSYS)
	case !wellFormed(layout, body):
		return nil, c.reply(tag, syscall.EINVAL)
	case typ == tversion:
		return c.version(tag, frame)
	case c.msize == 0:
		// version(5): Tversion "must be the first message sent".
		// The library would serve requests without one, with its
		// per-session buffers unset.
		return nil, c.reply(tag, syscall.EPROTO)
	case typ == trename || typ == trenameat:
		// Nothing in the tree is ever renamed (directories are
		// templatefs.ReadOnlyDir, files refuse Rename), for anyone;
		// answered here because the library holds a lock over the
		// whole connection for a rename (see tremove below).
		return nil, c.reply(tag, syscall.EROFS)
	case c.readOnly && changes(typ, body):
		// EROFS, not EACCES: the refusal is the connection's, not
		// the file's permission bits, and it is what the same
		// request gets on a file system mounted read-only.
		return nil, c.reply(tag, syscall.EROFS)
	}
	r := req{typ: typ}
	var o *op
	switch typ {
	case tauth:
		// hugelgupf/p9 answers Tauth with ENOSYS; diod's clients
		// (and its libnpclient) take only ENOENT as "no
		// authentication needed" and give up otherwise.
		return nil, c.reply(tag, syscall.ENOENT)
	case tattach:
		m, _ := parseAttach(body)
		r.newFid, r.adds = m.fid, true
		r.fromRoot, r.walk = true, attachNames(m.aname)
		if len(r.walk) > maxWalk {
			// The library walks an aname's every component.
			return nil, c.reply(tag, syscall.EINVAL)
		}
		o = &op{tag: tag, fid: m.fid, caller: c.attachCaller(m.uname, m.nuname)}
	case twalk, txattrwalk:
		if typ == twalk && le.Uint16(body[8:]) > maxWalk {
			return nil, c.reply(tag, syscall.EINVAL)
		}
		// A walk to its own fid replaces it; it adds none.
		r.newFid, r.adds = le.Uint32(body[4:]), le.Uint32(body) != le.Uint32(body[4:])
		r.from = le.Uint32(body)
		if typ == twalk {
			r.walk = walkNames(body[8:])
		}
	case tlopen:
		o = &op{tag: tag, fid: le.Uint32(body)}
	case tread, treaddir:
		// A count larger than msize allows would make the library
		// slice its msize buffer past its end (and recover from
		// that with EFAULT) or send a reply larger than msize; read(5)
		// lets the server return fewer bytes, so it is cut down.
		r.fid = le.Uint32(body)
		if max := c.msize - ioHeaderLen; le.Uint32(body[12:]) > max {
			le.PutUint32(body[12:], max)
		}
	case tflush:
		r.old = le.Uint16(body)
	case tclunk, tremove:
		r.fid, r.clunks = le.Uint32(body), true
		if typ == tremove {
			// Nothing can be removed either (directories refuse
			// every unlink), but Tremove clunks its fid even so.
			// The library would take a lock over the whole
			// connection for it, which waits for any read
			// blocked on events, and every later request waits
			// behind that: the library gets a Tclunk, and
			// sendReply turns its Rclunk into Rlerror(EROFS).
			frame[4] = tclunk
		}
	}
	if err := c.admit(tag, &r); err != nil {
		return nil, c.refuse(tag, err)
	}
	switch typ {
	case tflush:
		// The library's Tflush only waits for the old request to
		// finish; a read blocked on events would never finish.
		c.interrupt(r.old)
	case tclunk, tremove:
		// The library closes a file only when its last request ends,
		// and a blocked read is such a request.
		c.forget(r.fid)
	}
	if o != nil {
		if err := c.hold(*o); err != nil {
			return nil, err
		}
	}
	return frame, nil
}

// errDupTag is a request whose tag is already in flight, which the
// library drops without an answer; so does conn, silently (a log line
// per message would let a client flood the log).
var errDupTag = errors.New("tag in use")

// admit records r as in flight with tag, or returns the errno that
// refuses it: EAGAIN with MaxRequests in flight (Tflush and Tclunk, which
// end requests, may go on to twice that), EMFILE for a fid beyond
// MaxFids, ENFILE for paths beyond MaxPaths. A plain error (twice
// MaxRequests) ends the connection.
func (c *conn) admit(tag uint16, r *req) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.inflight[tag]; dup {
		return errDupTag
	}
	max := c.opts.MaxRequests
	switch n := len(c.inflight); {
	case n >= 2*max:
		return fmt.Errorf("p9fs: %d requests in flight, twice MaxRequests", n)
	case n >= max && r.typ != tflush && r.typ != tclunk:
		return syscall.EAGAIN
	}
	if r.adds {
		if _, held := c.fids[r.newFid]; held {
			r.adds = false
		} else if len(c.fids)+c.newFids >= c.opts.MaxFids {
			return syscall.EMFILE
		}
	}
	if r.fromRoot || r.typ == twalk || r.typ == txattrwalk {
		if err := c.walkPaths(r); err != nil {
			return err
		}
	}
	if r.adds {
		c.newFids++
	}
	r.walk = nil
	c.inflight[tag] = *r
	return nil
}

// walkPaths counts the paths r's walk may make the library keep, and
// refuses it with ENFILE when they would pass MaxPaths; otherwise it sets
// newFid's path. Every name counts, though a walk that fails keeps only
// the nodes before the failing name: an upper bound, as it should be. A
// walk from a fid conn does not know is left alone: the library answers
// it EBADF. Called with c.mu held.
func (c *conn) walkPaths(r *req) error {
	id, known := uint64(0), true // the root's path
	if !r.fromRoot {
		id, known = c.fidPath[r.from]
	}
	if !known {
		return nil
	}
	ids := make([]uint64, 0, len(r.walk))
	fresh := 0
	for _, name := range r.walk {
		id = pathID(id, name)
		if _, seen := c.paths[id]; !seen && !slices.Contains(ids, id) {
			fresh++
		}
		ids = append(ids, id)
	}
	if len(c.paths)+fresh > c.opts.MaxPaths {
		return syscall.ENFILE
	}
	for _, id := range ids {
		c.paths[id] = struct{}{}
	}
	r.prevPath, r.hadPrev = c.fidPath[r.newFid]
	c.fidPath[r.newFid], r.moved = id, true
	return nil
}

// pathID names the path name under the path parent (FNV-1a).
func pathID(parent uint64, name string) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := range 8 {
		h = (h ^ uint64(byte(parent>>(8*i)))) * prime
	}
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * prime
	}
	return h
}

// attachNames are the names the library walks for a Tattach's aname.
func attachNames(aname string) []string {
	aname = strings.TrimPrefix(aname, "/")
	if aname == "" {
		return nil
	}
	return strings.Split(aname, "/")
}

// walkNames are a Twalk's names, from nwname[2] on (already checked
// against its layout).
func walkNames(b []byte) []string {
	names := make([]string, le.Uint16(b))
	b = b[2:]
	for i := range names {
		n := int(le.Uint16(b))
		names[i], b = string(b[2:2+n]), b[2+n:]
	}
	return names
}

// version serves a Tversion: it is refused once a session is agreed (the
// library would swap its buffers under requests in flight) and when msize
// is below minMsize; msize is cut to MaxMsize, and the version to plain
// 9P2000.L, so that the library offers none of its extensions. Other
// versions go on, for the library to answer "unknown".
//
// The refusals are Rlerror: the Linux client, diod's libnpclient and
// hugelgupf/p9's client all take an Rlerror to Tversion as a failed
// version with that errno, and the connection stays open for another try.
// (Rversion "unknown" would also do, but says nothing of why.)
func (c *conn) version(tag uint16, frame []byte) ([]byte, error) {
	body := frame[headerLen:]
	msize, ver := le.Uint32(body), string(body[6:6+le.Uint16(body[4:])])
	switch {
	case c.msize != 0:
		return nil, c.reply(tag, syscall.EPROTO)
	case msize < minMsize:
		return nil, c.reply(tag, syscall.EINVAL)
	case ver == "9P2000.L" || strings.HasPrefix(ver, "9P2000.L."):
		c.msize = min(msize, c.opts.MaxMsize)
		frame = make([]byte, headerLen, headerLen+4+2+8)
		frame[4] = tversion
		le.PutUint16(frame[5:], tag)
		frame = le.AppendUint32(frame, c.msize)
		frame = le.AppendUint16(frame, 8)
		frame = append(frame, "9P2000.L"...)
		le.PutUint32(frame, uint32(len(frame)))
	}
	r := req{typ: tversion}
	if err := c.admit(tag, &r); err != nil {
		return nil, c.refuse(tag, err)
	}
	return frame, nil
}

// refuse answers a request admit refused: with its errno, with nothing
// for a duplicate tag, or by ending the connection.
func (c *conn) refuse(tag uint16, err error) error {
	var e syscall.Errno
	switch {
	case errors.Is(err, errDupTag):
		return nil
	case errors.As(err, &e):
		return c.reply(tag, e)
	}
	return err
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
	return fs.Caller{Uid: nuname, Gid: groupOf(uname, nuname), Session: c.session}
}

// sessions numbers the connections (fs.Caller.Session), from 1.
var sessions atomic.Uint64

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

// mayOpen says whether the connection may open one more file (MaxOpen).
func (c *conn) mayOpen() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.files) < c.opts.MaxOpen
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
	r, ok := c.inflight[tag]
	delete(c.inflight, tag)
	if ok && r.adds {
		c.newFids--
		if frame[4] == r.typ+1 {
			c.fids[r.newFid] = struct{}{}
		}
	}
	if ok && r.moved && frame[4] != r.typ+1 {
		// The walk failed: the fid is where it was, or nowhere.
		if r.hadPrev {
			c.fidPath[r.newFid] = r.prevPath
		} else {
			delete(c.fidPath, r.newFid)
		}
	}
	if ok && r.clunks && !(frame[4] == rlerror && len(frame) >= headerLen+4 && le.Uint32(frame[headerLen:]) == uint32(syscall.EBADF)) {
		// Tclunk and Tremove free the fid even when they fail,
		// unless there was none (EBADF).
		delete(c.fids, r.fid)
		delete(c.fidPath, r.fid)
	}
	if ok && r.typ == tremove && frame[4] == tclunk+1 {
		frame = errFrame(tag, syscall.EROFS)
	}
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
	return c.send(errFrame(tag, e))
}

// errFrame is an Rlerror.
func errFrame(tag uint16, e syscall.Errno) []byte {
	m := make([]byte, headerLen+4)
	le.PutUint32(m[0:], uint32(len(m)))
	m[4] = rlerror
	le.PutUint16(m[5:], tag)
	le.PutUint32(m[7:], uint32(e))
	return m
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
			c.logf("p9fs: %v: hugelgupf/p9 panicked at the end of the connection: %v", c.RemoteAddr(), r)
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

// keepBuf is the largest reply buffer a connection keeps between replies.
const keepBuf = 8 << 10

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
	// An idle connection keeps no large buffer: a read's reply may
	// have grown this to msize.
	if len(fr.buf) == 0 && cap(fr.buf) > keepBuf {
		fr.buf = nil
	}
	return len(p), nil
}
