package p9fs

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"aiosfs/fs"
	"aiosfs/fs/fstest"
)

// dialWire connects a hand-speaking client to a unix socket server.
func dialWire(t *testing.T, sock string) wire {
	t.Helper()
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return wire{t, nc}
}

// session is a connection that has agreed msize and attached fid 0 to
// the root.
func session(t *testing.T, sock string, msize uint32) wire {
	t.Helper()
	w := dialWire(t, sock)
	w.send(tversion, noTag, msize, "9P2000.L")
	w.expect(rversion, noTag)
	w.send(tattach, 1, uint32(0), noFid, "", "", noFid)
	w.expect(rattach, 1)
	return w
}

// closed checks that the server has closed the connection.
func (w wire) closed() {
	w.t.Helper()
	w.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := readMsg(w.c)
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		w.t.Fatalf("wire: got %x (%v), want the connection closed", f, err)
	}
}

// Tversion: an msize below 4096 is refused with Rlerror(EINVAL), and the
// connection stays for another try; a larger one is cut to MaxMsize; the
// version is 9P2000.L without extensions; nothing is served before it,
// and a session is agreed once.
func TestVersionBounds(t *testing.T) {
	sock := serve(t, fstest.NewTree().Root, Options{})
	w := dialWire(t, sock)
	w.send(tattach, 1, uint32(0), noFid, "", "", noFid)
	w.expectErrno(1, syscall.EPROTO)
	for _, msize := range []uint32{0, 7, 4095} {
		w.send(tversion, noTag, msize, "9P2000.L")
		w.expectErrno(noTag, syscall.EINVAL)
	}
	w.send(tversion, noTag, uint32(4096), "9P2000.L")
	if body := w.expect(rversion, noTag); le.Uint32(body) != 4096 {
		t.Fatalf("msize 4096 agreed as %d", le.Uint32(body))
	}
	w.send(tversion, noTag, uint32(8192), "9P2000.L")
	w.expectErrno(noTag, syscall.EPROTO)
	w.send(tattach, 1, uint32(0), noFid, "", "", noFid)
	w.expect(rattach, 1)

	for _, tc := range []struct {
		ask, want uint32
		version   string
	}{
		{^uint32(0), defaultMaxMsize, "9P2000.L"},
		{1 << 20, defaultMaxMsize, "9P2000.L.Google.2"},
		{8192, 8192, "9P2000.L"},
	} {
		w := dialWire(t, sock)
		w.send(tversion, noTag, tc.ask, tc.version)
		body := w.expect(rversion, noTag)
		if got, ver := le.Uint32(body), string(body[6:]); got != tc.want || ver != "9P2000.L" {
			t.Errorf("Tversion %d %q: Rversion %d %q, want %d 9P2000.L", tc.ask, tc.version, got, ver, tc.want)
		}
	}
	w = dialWire(t, sock)
	w.send(tversion, noTag, uint32(8192), "9P2000")
	if body := w.expect(rversion, noTag); string(body[6:]) != "unknown" {
		t.Errorf("Tversion 9P2000: Rversion %q, want unknown", body[6:])
	}

	// The repo's client, with its 64 KiB msize cut to 4096, still
	// lists and reads the 300 KB file whole.
	c, err := Dial(serve(t, fstest.NewTree().Root, Options{MaxMsize: 4096}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if b, err := c.ReadFile("/big"); err != nil || string(b) != string(fstest.Big) {
		t.Fatalf("big: %d bytes, %v", len(b), err)
	}
	if ents, err := c.ReadDir("/"); err != nil || len(ents) != 7 {
		t.Fatalf("ReadDir /: %d entries, %v", len(ents), err)
	}
}

// Twalk takes at most 16 names (MAXWELEM); more is EINVAL without a walk.
// 16 names of which the first does not exist walk, and fail ENOENT.
func TestWalkBounds(t *testing.T) {
	sock := serve(t, fstest.NewTree().Root, Options{})
	w := session(t, sock, 8192)
	names := func(n int) []string { return strings.Split(strings.Repeat("x/", n)[:2*n-1], "/") }
	w.send(twalk, 2, uint32(0), uint32(1), names(16))
	w.expectErrno(2, syscall.ENOENT)
	for _, n := range []int{17, 100, 2000} {
		w.send(twalk, 2, uint32(0), uint32(1), names(n))
		w.expectErrno(2, syscall.EINVAL)
	}
	w.send(twalk, 2, uint32(0), uint32(1), []string{"owned", "ctl"})
	if body := w.expect(rwalk, 2); le.Uint16(body) != 2 {
		t.Fatalf("walk of 2 names: %d qids", le.Uint16(body))
	}
}

// A connection holds at most MaxFids fids: one more is EMFILE, nothing
// walked; reusing a fid, or a clunk, makes room.
func TestFidLimit(t *testing.T) {
	sock := serve(t, fstest.NewTree().Root, Options{MaxFids: 8})
	w := session(t, sock, 8192) // fid 0
	for fid := uint32(1); fid < 8; fid++ {
		w.send(twalk, 2, uint32(0), fid, []string{"value"})
		w.expect(rwalk, 2)
	}
	w.send(twalk, 2, uint32(0), uint32(8), []string{"value"})
	w.expectErrno(2, syscall.EMFILE)
	w.send(tattach, 2, uint32(8), noFid, "", "", noFid)
	w.expectErrno(2, syscall.EMFILE)
	w.send(txattrwalk, 2, uint32(1), uint32(8), "user.x")
	w.expectErrno(2, syscall.EMFILE)
	// A walk onto a fid held replaces it, and a walk of a fid to itself
	// adds none.
	w.send(twalk, 2, uint32(0), uint32(7), []string{"big"})
	w.expect(rwalk, 2)
	w.send(twalk, 2, uint32(0), uint32(0), []string{})
	w.expect(rwalk, 2)
	// A failed walk adds none either, and a clunk frees one.
	w.send(tclunk, 3, uint32(3))
	w.expect(rclunk, 3)
	w.send(twalk, 2, uint32(0), uint32(8), []string{"nonexistent"})
	w.expectErrno(2, syscall.ENOENT)
	w.send(twalk, 2, uint32(0), uint32(8), []string{"value"})
	w.expect(rwalk, 2)
	w.send(twalk, 2, uint32(0), uint32(9), []string{"value"})
	w.expectErrno(2, syscall.EMFILE)
	// Clunking a fid twice: EBADF, and the count stays right.
	w.send(tclunk, 3, uint32(8))
	w.expect(rclunk, 3)
	w.send(tclunk, 3, uint32(8))
	w.expectErrno(3, syscall.EBADF)
	w.send(twalk, 2, uint32(0), uint32(9), []string{"value"})
	w.expect(rwalk, 2)
	w.send(twalk, 2, uint32(0), uint32(10), []string{"value"})
	w.expectErrno(2, syscall.EMFILE)
}

// A connection has at most MaxRequests in flight: one more is EAGAIN, but
// a Tflush still goes in and ends a blocked read, which makes room.
func TestRequestLimit(t *testing.T) {
	sock := serve(t, fstest.NewTree().Root, Options{MaxRequests: 4})
	w := session(t, sock, 8192)
	w.send(twalk, 1, uint32(0), uint32(1), []string{"events.follow"})
	w.expect(rwalk, 1)
	w.send(tlopen, 1, uint32(1), uint32(0))
	w.expect(rlopen, 1)
	for tag := uint16(10); tag < 14; tag++ {
		w.send(tread, tag, uint32(1), uint64(0), uint32(100))
	}
	w.silent(100 * time.Millisecond)
	w.send(tstatfs, 2, uint32(0))
	w.expectErrno(2, syscall.EAGAIN)
	// The flush ends the reads of that fid (see conn.interrupt), and
	// Rflush comes after the flushed read's reply.
	w.send(tflush, 3, uint16(10))
	got := w.collect(3, rflush)
	if got[10] != rlerror {
		t.Fatalf("flushed read: replies %v", got)
	}
	w.send(tstatfs, 2, uint32(0))
	w.collect(2, rstatfs)
}

// collect reads replies until one of type typ with tag comes, and
// returns the type of each reply by tag.
func (w wire) collect(tag uint16, typ byte) map[uint16]byte {
	w.t.Helper()
	got := map[uint16]byte{}
	for {
		gt, gtag, _ := w.recv(5 * time.Second)
		got[gtag] = gt
		if gtag == tag {
			if gt != typ {
				w.t.Fatalf("wire: tag %d answered with type %d, want %d", tag, gt, typ)
			}
			return got
		}
	}
}

// Reads are cut to msize: a count beyond it returns msize-11 bytes, where
// hugelgupf/p9 panicked (answered EFAULT) or said ENOBUFS.
func TestReadCount(t *testing.T) {
	sock := serve(t, fstest.NewTree().Root, Options{})
	w := session(t, sock, 8192)
	w.send(twalk, 1, uint32(0), uint32(1), []string{"big"})
	w.expect(rwalk, 1)
	w.send(tlopen, 1, uint32(1), uint32(0))
	w.expect(rlopen, 1)
	for _, count := range []uint32{10000, 1 << 20, ^uint32(0)} {
		w.send(tread, 2, uint32(1), uint64(0), count)
		body := w.expect(rread, 2)
		if n := le.Uint32(body); n != 8192-ioHeaderLen || string(body[4:]) != string(fstest.Big[:n]) {
			t.Fatalf("read of %d: %d bytes", count, n)
		}
	}
	w.send(twalk, 1, uint32(0), uint32(2), []string{})
	w.expect(rwalk, 1)
	w.send(tlopen, 1, uint32(2), uint32(0))
	w.expect(rlopen, 1)
	w.send(treaddir, 2, uint32(2), uint64(0), ^uint32(0))
	w.expect(treaddir+1, 2)
}

// A request that does not decode is answered EINVAL with its own tag (the
// library answered with NOTAG, so the client waited forever); an unknown
// type is ENOSYS.
func TestMalformedBodies(t *testing.T) {
	sock := serve(t, fstest.NewTree().Root, Options{})
	w := session(t, sock, 8192)
	raw := func(typ byte, tag uint16, body ...byte) {
		b := make([]byte, headerLen, headerLen+len(body))
		b[4] = typ
		le.PutUint16(b[5:], tag)
		b = append(b, body...)
		le.PutUint32(b, uint32(len(b)))
		if _, err := w.c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	raw(twalk, 5, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 2, 0, 'a') // 3 names, half of one
	w.expectErrno(5, syscall.EINVAL)
	raw(tclunk, 6)
	w.expectErrno(6, syscall.EINVAL)
	raw(twrite, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 'x') // count 9, 1 byte
	w.expectErrno(7, syscall.EINVAL)
	raw(tattach, 8, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 200, 0)
	w.expectErrno(8, syscall.EINVAL)
	for _, typ := range []byte{0, 1, 2, 6, 99, 101, 124, 126, 200, 255} {
		raw(typ, 9, 0, 0, 0, 0)
		w.expectErrno(9, syscall.ENOSYS)
	}
	w.send(tstatfs, 2, uint32(0))
	w.expect(rstatfs, 2)
}

// Read-only, on the wire: every change is EROFS, reads go on.
func TestReadOnlyWire(t *testing.T) {
	sock := serve(t, fstest.NewTree().Root, Options{ReadOnly: true})
	w := session(t, sock, 8192)
	w.send(twalk, 1, uint32(0), uint32(1), []string{"ctl"})
	w.expect(rwalk, 1)
	for _, flags := range []uint32{syscall.O_WRONLY, syscall.O_RDWR, syscall.O_RDONLY | dotlTrunc} {
		w.send(tlopen, 2, uint32(1), flags)
		w.expectErrno(2, syscall.EROFS)
	}
	for _, m := range []struct {
		typ    byte
		fields []any
	}{
		{tlcreate, []any{uint32(0), "new", uint32(0), uint32(0644), uint32(0)}},
		{tmkdir, []any{uint32(0), "d", uint32(0755), uint32(0)}},
		{tsymlink, []any{uint32(0), "l", "ctl", uint32(0)}},
		{tmknod, []any{uint32(0), "n", uint32(0644), uint32(0), uint32(0), uint32(0)}},
		{tlink, []any{uint32(0), uint32(1), "ln"}},
		{trename, []any{uint32(1), uint32(0), "ctl2"}},
		{trenameat, []any{uint32(0), "ctl", uint32(0), "ctl2"}},
		{tunlinkat, []any{uint32(0), "ctl", uint32(0)}},
		{tsetattr, []any{uint32(1), uint32(8), uint32(0), uint32(0), uint32(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0)}},
		{txattrcreate, []any{uint32(1), "user.x", uint64(1), uint32(0)}},
		{twrite, []any{uint32(1), uint64(0), []byte("echo x\n")}},
	} {
		w.send(m.typ, 2, m.fields...)
		w.expectErrno(2, syscall.EROFS)
	}
	w.send(tremove, 2, uint32(1))
	w.expectErrno(2, syscall.EROFS)
	w.send(twalk, 1, uint32(0), uint32(1), []string{"value"})
	w.expect(rwalk, 1)
	w.send(tlopen, 2, uint32(1), uint32(0))
	w.expect(rlopen, 2)
}

// MaxConns: a connection beyond it is closed at once, with one log line;
// when one closes, another is served.
func TestConnLimit(t *testing.T) {
	var (
		mu   sync.Mutex
		logs []string
	)
	logf := func(format string, args ...any) {
		mu.Lock()
		logs = append(logs, sprintf(format, args...))
		mu.Unlock()
	}
	sock := serve(t, fstest.NewTree().Root, Options{MaxConns: 2, Logf: logf})
	a, b := dialWire(t, sock), dialWire(t, sock)
	for _, w := range []wire{a, b} {
		w.send(tversion, noTag, uint32(8192), "9P2000.L")
		w.expect(rversion, noTag)
	}
	for range 3 {
		dialWire(t, sock).closed()
	}
	mu.Lock()
	got := strings.Join(logs, "\n")
	mu.Unlock()
	if !strings.Contains(got, "refused 1 connection(s)") || !strings.Contains(got, "MaxConns") || strings.Count(got, "refused") != 1 {
		t.Fatalf("log after 3 refusals within a second:\n%s", got)
	}
	a.c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := Dial(sock)
		if err == nil {
			if got := readString(t, c, "/value"); got != "\n" {
				t.Fatalf("value = %q", got)
			}
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served after one closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MaxConnsPerUid counts non-root unix peers by uid; root, and other
// uids, are not held back by one uid's connections.
func TestConnLimitPerUid(t *testing.T) {
	s := newServer(fstest.NewTree().Root, Options{MaxConns: 10, MaxConnsPerUid: 2})
	peer := func(uid uint32, unix bool) *conn {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return &conn{Conn: a, own: fs.Caller{Uid: uid}, limitUid: unix && uid != 0}
	}
	var admitted []*conn
	for _, tc := range []struct {
		uid  uint32
		unix bool
		want bool
	}{
		{1000, true, true}, {1000, true, true}, {1000, true, false},
		{1001, true, true}, {0, true, true}, {0, true, true}, {0, true, true},
		{65534, false, true}, {65534, false, true}, {65534, false, true},
	} {
		c := peer(tc.uid, tc.unix)
		if got := s.admit(c); got != tc.want {
			t.Fatalf("uid %d unix %v: admitted %v, want %v", tc.uid, tc.unix, got, tc.want)
		}
		if tc.want {
			admitted = append(admitted, c)
		}
	}
	s.leave(admitted[0])
	if !s.admit(peer(1000, true)) {
		t.Fatal("uid 1000 refused after one of its connections left")
	}
	if !s.admit(peer(1002, true)) || s.open() != 10 || s.admit(peer(0, true)) {
		t.Fatalf("%d open; the 11th admitted past MaxConns", s.open())
	}
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// Tremove and renames are EROFS for everyone, and do not stall the
// connection: hugelgupf/p9 would run them under a lock over the whole
// connection, which waits for a read blocked on events, while every later
// walk waited behind it. Tremove still clunks its fid.
func TestRemoveDoesNotStall(t *testing.T) {
	sock := serve(t, fstest.NewTree().Root, Options{})
	w := session(t, sock, 8192)
	w.send(twalk, 1, uint32(0), uint32(1), []string{"events.follow"})
	w.expect(rwalk, 1)
	w.send(tlopen, 1, uint32(1), uint32(0))
	w.expect(rlopen, 1)
	w.send(tread, 2, uint32(1), uint64(0), uint32(100))
	w.send(twalk, 1, uint32(0), uint32(2), []string{"value"})
	w.expect(rwalk, 1)
	w.send(tremove, 3, uint32(2))
	w.expectErrno(3, syscall.EROFS)
	w.send(trenameat, 3, uint32(0), "value", uint32(0), "value2")
	w.expectErrno(3, syscall.EROFS)
	w.send(trename, 3, uint32(1), uint32(0), "events2")
	w.expectErrno(3, syscall.EROFS)
	w.send(twalk, 4, uint32(0), uint32(3), []string{"big"})
	w.expect(rwalk, 4)
	w.send(tclunk, 5, uint32(2))
	w.expectErrno(5, syscall.EBADF)
	w.send(tremove, 5, uint32(2))
	w.expectErrno(5, syscall.EBADF)
	w.send(tremove, 5, uint32(0))
	w.expectErrno(5, syscall.EROFS)
}

// A connection has at most MaxOpen files open: one more open is EMFILE;
// a clunk makes room. Directories hold nothing open and do not count.
func TestOpenLimit(t *testing.T) {
	sock := serve(t, fstest.NewTree().Root, Options{MaxOpen: 3})
	w := session(t, sock, 8192)
	for fid := uint32(1); fid <= 5; fid++ {
		w.send(twalk, 1, uint32(0), fid, []string{"events.follow"})
		w.expect(rwalk, 1)
	}
	for fid := uint32(1); fid <= 3; fid++ {
		w.send(tlopen, 2, fid, uint32(0))
		w.expect(rlopen, 2)
	}
	w.send(tlopen, 2, uint32(4), uint32(0))
	w.expectErrno(2, syscall.EMFILE)
	w.send(twalk, 1, uint32(0), uint32(6), []string{})
	w.expect(rwalk, 1)
	w.send(tlopen, 2, uint32(6), uint32(0))
	w.expect(rlopen, 2)
	w.send(tclunk, 3, uint32(2))
	w.expect(rclunk, 3)
	w.send(tlopen, 2, uint32(4), uint32(0))
	w.expect(rlopen, 2)
	w.send(tlopen, 2, uint32(5), uint32(0))
	w.expectErrno(2, syscall.EMFILE)
}

// What connections log is limited to connLogRate lines a second per
// listener, so that a flood of bad connections is not a flood of lines.
func TestConnLogLimit(t *testing.T) {
	var (
		mu   sync.Mutex
		logs []string
	)
	s, sock, _ := serveServer(t, Options{Logf: func(format string, args ...any) {
		mu.Lock()
		logs = append(logs, sprintf(format, args...))
		mu.Unlock()
	}})
	start := time.Now()
	for range 3 * connLogRate {
		w := dialWire(t, sock)
		w.rawSend(sized(1, tversion, 1)...) // a bad size: logged, closed
		w.closed()
	}
	for s.open() != 0 {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	// Within a second (on a loaded machine, a few), connLogRate lines and
	// one saying how many were dropped.
	seconds := int(time.Since(start)/time.Second) + 1
	if max := seconds * (connLogRate + 1); len(logs) > max {
		t.Fatalf("%d lines logged for %d bad connections in %d s, want at most %d:\n%s",
			len(logs), 3*connLogRate, seconds, max, strings.Join(logs, "\n"))
	}
	if len(logs) == 0 || !strings.Contains(logs[0], "bad message size 1") {
		t.Fatalf("log: %q", logs)
	}
}

// anyTree is a root with one directory, any, that has a file of every
// name, as the daemon's mem/find has one for every tag.
func anyTree() fs.Dir {
	ns := &fs.NS{}
	anyDir := ns.Dir("/any", 0555, fs.Owner{}, func() ([]fs.Node, error) { return nil, nil }, func(name string) (fs.Node, error) {
		return ns.Text("/any/"+name, 0444, fs.Owner{}, func(fs.Caller) ([]byte, error) { return []byte(name), nil }), nil
	})
	return ns.StaticDir("/", 0555, fs.Owner{}, anyDir)
}

// A connection walks to at most MaxPaths distinct paths: hugelgupf/p9
// keeps a node for each (some 400 bytes) as long as the connection lives,
// so walking any/NAME for ever-new names grew the heap without end (7.4 MB
// for 20,000 names). Beyond MaxPaths a walk to a new path is ENFILE;
// paths already walked, from any fid, still work; an aname of more than
// 16 names is EINVAL.
func TestPathLimit(t *testing.T) {
	sock := serve(t, anyTree(), Options{MaxPaths: 100})
	w := session(t, sock, 8192)
	walk := func(from uint32, names ...string) (typ byte, errno syscall.Errno) {
		w.send(twalk, 1, from, uint32(1), names)
		typ, _, body := w.recv(5 * time.Second)
		if typ == rlerror {
			errno = syscall.Errno(le.Uint32(body))
		} else {
			w.send(tclunk, 2, uint32(1))
			w.expect(rclunk, 2)
		}
		return typ, errno
	}
	base := heapInuse()
	// "any" is one path; 99 names make 100.
	for i := range 99 {
		if typ, e := walk(0, "any", fmt.Sprint("n", i)); typ != rwalk {
			t.Fatalf("walk %d: %v", i, e)
		}
	}
	for i := range 2000 {
		if _, e := walk(0, "any", fmt.Sprint("new", i)); e != syscall.ENFILE {
			t.Fatalf("walk to a new path %d past MaxPaths: %v, want ENFILE", i, e)
		}
	}
	if grown := heapInuse() - base; grown > 1<<20 {
		t.Errorf("heap grew %.1f MB over 2,000 refused walks", mb(grown))
	}
	// Known paths, walked again, from the root or from any.
	if typ, e := walk(0, "any", "n5"); typ != rwalk {
		t.Fatalf("walk to a known path: %v", e)
	}
	w.send(twalk, 1, uint32(0), uint32(3), []string{"any"})
	w.expect(rwalk, 1)
	if typ, e := walk(3, "n7"); typ != rwalk {
		t.Fatalf("walk from any to a known path: %v", e)
	}
	if _, e := walk(3, "new"); e != syscall.ENFILE {
		t.Fatalf("walk from any to a new path: %v, want ENFILE", e)
	}
	// Attach walks its aname, and counts it.
	w.send(tattach, 4, uint32(5), noFid, "", "any/n9", noFid)
	w.expect(rattach, 4)
	w.send(tattach, 4, uint32(6), noFid, "", "any/other", noFid)
	w.expectErrno(4, syscall.ENFILE)
	w.send(tattach, 4, uint32(6), noFid, "", strings.Repeat("any/", 17)+"x", noFid)
	w.expectErrno(4, syscall.EINVAL)
}
