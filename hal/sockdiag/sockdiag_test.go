package sockdiag

import (
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"aiosfs/internal/testutil"
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

// inodeOfListener is inodeOf for a listener.
func inodeOfListener(t *testing.T, l *net.TCPListener) uint64 {
	t.Helper()
	f, err := l.File() // a dup: the same socket, the same inode
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := strings.CutPrefix(link, "socket:[")
	ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", link, err)
	}
	return ino
}

// TestDumpStatesAndPeers holds a real loopback listener and one
// connection to it, and finds in one dump the listener in LISTEN on its
// port with no peer, and both ends ESTABLISHED with each other's ports.
func TestDumpStatesAndPeers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal("loopback TCP:", err)
	}
	defer ln.Close()
	lport := uint16(ln.Addr().(*net.TCPAddr).Port)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer sc.Close()
	cport := uint16(cc.LocalAddr().(*net.TCPAddr).Port)
	if _, err := cc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(sc, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}

	lIno := inodeOfListener(t, ln.(*net.TCPListener))
	cIno, sIno := inodeOf(t, cc.(*net.TCPConn)), inodeOf(t, sc.(*net.TCPConn))
	m, err := Dump()
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	if s, ok := m[lIno]; !ok || s.State != StateListen || s.LocalPort != lport || s.Remote.IsValid() || s.Connected() {
		t.Errorf("listener %d: %+v (present %v), want LISTEN on port %d with no peer", lIno, s, ok, lport)
	}
	if s, ok := m[cIno]; !ok || s.State != StateEstablished || !s.Connected() || s.LocalPort != cport || s.Remote != netip.AddrPortFrom(lo, lport) {
		t.Errorf("client %d: %+v (present %v), want ESTABLISHED from port %d to 127.0.0.1:%d", cIno, s, ok, cport, lport)
	} else if s.Sent < 5 {
		t.Errorf("client %d: sent %d, want >= 5", cIno, s.Sent)
	}
	if s, ok := m[sIno]; !ok || s.State != StateEstablished || s.LocalPort != lport || s.Remote != netip.AddrPortFrom(lo, cport) {
		t.Errorf("accepted %d: %+v (present %v), want ESTABLISHED on port %d from 127.0.0.1:%d", sIno, s, ok, lport, cport)
	} else if s.Received != 5 {
		t.Errorf("accepted %d: received %d, want 5", sIno, s.Received)
	}
	// TCPBytes is the same dump's counters.
	b, err := TCPBytes()
	if err != nil {
		t.Fatal(err)
	}
	if b[sIno].Received != 5 {
		t.Errorf("TCPBytes: accepted socket %+v, want received 5", b[sIno])
	}
}

// TestDumpIPv6 checks an IPv6 loopback connection's peer reads as ::1.
func TestDumpIPv6(t *testing.T) {
	testutil.RequireIPv6Loopback(t)
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	cc, err := net.Dial("tcp6", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	m, err := Dump()
	if err != nil {
		t.Fatal(err)
	}
	want := netip.AddrPortFrom(netip.IPv6Loopback(), uint16(ln.Addr().(*net.TCPAddr).Port))
	if s := m[inodeOf(t, cc.(*net.TCPConn))]; !s.Connected() || s.Remote != want {
		t.Errorf("client: %+v, want connected to %v", s, want)
	}
}
