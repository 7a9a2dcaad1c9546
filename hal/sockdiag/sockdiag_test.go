package sockdiag

import (
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// inodeOf returns the socket inode behind c's descriptor, read the way
// hal/proc reads it: readlink of /proc/self/fd/N = "socket:[INODE]".
func inodeOf(t *testing.T, c *net.TCPConn) uint64 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ino uint64
	var lerr error
	err = rc.Control(func(fd uintptr) {
		var l string
		l, lerr = os.Readlink("/proc/self/fd/" + strconv.Itoa(int(fd)))
		if lerr != nil {
			return
		}
		s, ok := strings.CutPrefix(l, "socket:[")
		s, ok2 := strings.CutSuffix(s, "]")
		if !ok || !ok2 {
			lerr = &os.PathError{Op: "readlink", Path: l, Err: os.ErrInvalid}
			return
		}
		ino, lerr = strconv.ParseUint(s, 10, 64)
	})
	if err != nil {
		t.Fatal(err)
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	return ino
}

func TestTCPBytesLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal("loopback TCP:", err)
	}
	defer ln.Close()
	const n = 1 << 20
	got := make(chan error, 1)
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		accepted <- c.(*net.TCPConn)
		_, err = io.CopyN(io.Discard, c, n)
		got <- err
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := cc.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	defer sc.Close()
	cIno, sIno := inodeOf(t, cc.(*net.TCPConn)), inodeOf(t, sc)

	// The receiver has read everything, but the last ACK may still be in
	// flight for bytes_acked kernels: retry briefly.
	var m map[uint64]Bytes
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err = TCPBytes()
		if err != nil {
			t.Fatal(err)
		}
		if m[cIno].Sent >= n && m[sIno].Received >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b, ok := m[cIno]; !ok || b.Sent < n {
		t.Errorf("client socket %d: %+v (present %v), want sent >= %d", cIno, b, ok, n)
	}
	if b, ok := m[sIno]; !ok || b.Received < n {
		t.Errorf("server socket %d: %+v (present %v), want received >= %d", sIno, b, ok, n)
	}
}
