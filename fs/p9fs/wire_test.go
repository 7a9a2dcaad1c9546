package p9fs

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"aiosfs/fs"
	"aiosfs/fs/fstest"
)

// wire speaks 9P frames by hand, for what the library's client never
// sends: Tauth and Tflush.
type wire struct {
	t *testing.T
	c net.Conn
}

const (
	noTag = 0xffff
	noFid = ^uint32(0)
)

// send writes a message; fields are as msg encodes them.
func (w wire) send(typ byte, tag uint16, fields ...any) {
	w.t.Helper()
	b, err := msg(typ, tag, fields...)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.c.Write(b); err != nil {
		w.t.Fatal(err)
	}
}

// msg encodes a message; fields are uint8, uint16, uint32, uint64, string,
// []string (a count then the strings) or []byte (a count then the bytes),
// as 9P encodes them.
func msg(typ byte, tag uint16, fields ...any) ([]byte, error) {
	b := make([]byte, headerLen)
	b[4] = typ
	le.PutUint16(b[5:], tag)
	for _, f := range fields {
		switch v := f.(type) {
		case uint8:
			b = append(b, v)
		case uint16:
			b = le.AppendUint16(b, v)
		case uint32:
			b = le.AppendUint32(b, v)
		case uint64:
			b = le.AppendUint64(b, v)
		case string:
			b = le.AppendUint16(b, uint16(len(v)))
			b = append(b, v...)
		case []string:
			b = le.AppendUint16(b, uint16(len(v)))
			for _, s := range v {
				b = le.AppendUint16(b, uint16(len(s)))
				b = append(b, s...)
			}
		case []byte:
			b = le.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		default:
			return nil, fmt.Errorf("wire: cannot encode %T", f)
		}
	}
	le.PutUint32(b, uint32(len(b)))
	return b, nil
}

// rawWire is wire for goroutines other than the test's: it returns errors.
type rawWire struct{ c net.Conn }

func (w rawWire) send(typ byte, tag uint16, fields ...any) error {
	b, err := msg(typ, tag, fields...)
	if err == nil {
		_, err = w.c.Write(b)
	}
	return err
}

// expect reads one reply and checks its type and tag.
func (w rawWire) expect(typ byte, tag uint16) ([]byte, error) {
	f, err := readMsg(w.c)
	if err != nil {
		return nil, err
	}
	if f[4] != typ || le.Uint16(f[5:]) != tag {
		if f[4] == rlerror && len(f) == headerLen+4 {
			return nil, fmt.Errorf("got Rlerror %v tag %d, want type %d tag %d", syscall.Errno(le.Uint32(f[headerLen:])), le.Uint16(f[5:]), typ, tag)
		}
		return nil, fmt.Errorf("got type %d tag %d, want type %d tag %d", f[4], le.Uint16(f[5:]), typ, tag)
	}
	return f[headerLen:], nil
}

// recv reads one message, failing the test if none comes within d.
func (w wire) recv(d time.Duration) (typ byte, tag uint16, body []byte) {
	w.t.Helper()
	w.c.SetReadDeadline(time.Now().Add(d))
	f, err := readMsg(w.c)
	if err != nil {
		w.t.Fatalf("wire: no reply: %v", err)
	}
	return f[4], le.Uint16(f[5:]), f[headerLen:]
}

// silent checks that nothing arrives for d.
func (w wire) silent(d time.Duration) {
	w.t.Helper()
	w.c.SetReadDeadline(time.Now().Add(d))
	f, err := readMsg(w.c)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		w.t.Fatalf("wire: got %x (%v), want nothing yet", f, err)
	}
}

func readMsg(c net.Conn) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, err
	}
	f := make([]byte, le.Uint32(size[:]))
	copy(f, size[:])
	_, err := io.ReadFull(c, f[4:])
	return f, err
}

// expect reads a reply and checks its type and tag.
func (w wire) expect(typ byte, tag uint16) []byte {
	w.t.Helper()
	gt, gtag, body := w.recv(5 * time.Second)
	if gt != typ || gtag != tag {
		errno := ""
		if gt == rlerror && len(body) == 4 {
			errno = syscall.Errno(le.Uint32(body)).Error()
		}
		w.t.Fatalf("wire: got type %d tag %d %s, want type %d tag %d", gt, gtag, errno, typ, tag)
	}
	return body
}

func (w wire) expectErrno(tag uint16, want syscall.Errno) {
	w.t.Helper()
	body := w.expect(rlerror, tag)
	if got := syscall.Errno(le.Uint32(body)); got != want {
		w.t.Fatalf("wire: tag %d failed with %v, want %v", tag, got, want)
	}
}

// Message types the tests send or expect, beyond those conn knows.
const (
	rlopen  = 13
	rread   = 117
	rwrite  = 119
	rclunk  = 121
	rstatfs = 9
)

// The wire: Tauth is refused with ENOENT (so diod's clients attach
// without authentication), a read blocked on events ends with EINTR when
// flushed, its reply comes before Rflush, and the fid still works after.
func TestWireAuthAndFlush(t *testing.T) {
	tr := fstest.NewTree()
	sock := serve(t, tr.Root, Options{})
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	w := wire{t, nc}

	w.send(tversion, noTag, uint32(8192), "9P2000.L")
	w.expect(rversion, noTag)
	w.send(tauth, 1, uint32(9), "", "", noFid)
	w.expectErrno(1, syscall.ENOENT)
	w.send(tattach, 1, uint32(0), noFid, "", "", noFid)
	w.expect(rattach, 1)
	w.send(twalk, 1, uint32(0), uint32(1), []string{"events.follow"})
	w.expect(rwalk, 1)
	w.send(tlopen, 1, uint32(1), uint32(0))
	w.expect(rlopen, 1)

	w.send(tread, 2, uint32(1), uint64(0), uint32(4096))
	w.silent(200 * time.Millisecond)
	w.send(tflush, 3, uint16(2))
	w.expectErrno(2, syscall.EINTR)
	w.expect(rflush, 3)

	// The flush ended that read only: the next one blocks until an
	// event arrives, and returns it.
	w.send(tread, 4, uint32(1), uint64(0), uint32(4096))
	w.silent(100 * time.Millisecond)
	c := dialAs(t, tr.Root, fs.RootCaller)
	if err := c.WriteFile("/ctl", []byte("echo after flush\n")); err != nil {
		t.Fatal(err)
	}
	body := w.expect(rread, 4)
	if got := string(body[4:]); got != "echo after flush\n" {
		t.Fatalf("read after flush = %q", got)
	}

	// A flush of a request already answered is answered at once.
	w.send(tflush, 5, uint16(4))
	w.expect(rflush, 5)
	w.send(tclunk, 6, uint32(1))
	w.expect(rclunk, 6)
}

// A client that claims to be nobody at attach from a root peer is nobody:
// the claim, not the peer, decides.
func TestWireAttachClaim(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only a root peer's claim is believed")
	}
	sock := serve(t, fstest.NewTree().Root, Options{})
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	w := wire{t, nc}
	w.send(tversion, noTag, uint32(8192), "9P2000.L")
	w.expect(rversion, noTag)
	w.send(tattach, 1, uint32(0), noFid, "nobody", "", uint32(65534))
	w.expect(rattach, 1)
	w.send(twalk, 1, uint32(0), uint32(1), []string{"owned", "secret"})
	w.expect(rwalk, 1)
	w.send(tlopen, 1, uint32(1), uint32(0))
	w.expectErrno(1, syscall.EACCES)
}
