package p9fs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"aiosfs/fs"
	"aiosfs/fs/fstest"
)

// serve serves root on a unix socket in a fresh directory until the test
// ends, and returns the socket's path.
func serve(t *testing.T, root fs.Dir, opts Options) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "aios.sock")
	ln, err := ListenAndServe("unix!"+sock, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return sock
}

// fsClient is the conformance suite's view of a Client.
type fsClient struct{ *Client }

func (c fsClient) ReadDir(p string) ([]fstest.Entry, error) {
	ents, err := c.Client.ReadDir(p)
	var out []fstest.Entry
	for _, e := range ents {
		out = append(out, fstest.Entry{Name: e.Name, IsDir: e.Mode.IsDir()})
	}
	return out, err
}

func (c fsClient) Stat(p string) (fstest.Stat, error) {
	st, err := c.Client.Stat(p)
	return fstest.Stat{Mode: st.Mode, Uid: st.Uid, Gid: st.Gid, Ino: st.Qid, Size: st.Size}, err
}

func (c fsClient) Open(p string, write bool) (fstest.File, error) {
	f, err := c.Client.Open(p, write)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// dialAs serves root and attaches as the caller. As root, the test is a
// root peer on a unix socket and its claim is believed; run by anyone
// else it uses TCP with TrustTCP, so the tests that need a caller other
// than themselves still run.
func dialAs(t *testing.T, root fs.Dir, as fs.Caller) *Client {
	t.Helper()
	addr := serve(t, root, Options{})
	if os.Geteuid() != 0 {
		ln, err := ListenAndServe("tcp!127.0.0.1!0", root, Options{TrustTCP: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		addr = tcpAddr(ln)
	}
	c, err := DialAs(addr, as.Uid, as.Gid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mount(t *testing.T, root fs.Dir, as fs.Caller) fstest.Client {
	return fsClient{dialAs(t, root, as)}
}

func tcpAddr(ln net.Listener) string {
	a := ln.Addr().(*net.TCPAddr)
	return fmt.Sprintf("tcp!%s!%d", a.IP, a.Port)
}

func TestConformance(t *testing.T) { fstest.Run(t, mount) }

// whoamiTree is the conformance tree with two more files: whoami, which
// shows the caller the model was given, and rootonly, root's and 0600.
func whoamiTree(t *testing.T) *fstest.Tree {
	tr := fstest.NewTree()
	kids, err := tr.Root.List()
	if err != nil {
		t.Fatal(err)
	}
	kids = append(kids, tr.NS.Text("/whoami", 0444, fs.Owner{}, func(c fs.Caller) ([]byte, error) {
		return []byte(fmt.Sprintf("uid=%d gid=%d\n", c.Uid, c.Gid)), nil
	}), tr.NS.Text("/rootonly", 0600, fs.Owner{}, func(fs.Caller) ([]byte, error) {
		return []byte("root's\n"), nil
	}))
	tr.Root = tr.NS.StaticDir("/", 0555, fs.Owner{}, kids...)
	return tr
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	var got syscall.Errno
	if !errors.As(err, &got) || got != want {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func readString(t *testing.T, c *Client, p string) string {
	t.Helper()
	b, err := c.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

// A root peer's claim is believed, gid included.
func TestRootPeerClaim(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only a root peer's claim is believed")
	}
	sock := serve(t, whoamiTree(t).Root, Options{})
	for _, as := range []fs.Caller{{Uid: 0, Gid: 0}, {Uid: 1000, Gid: 1000}, {Uid: 1000, Gid: 42}} {
		c, err := DialAs(sock, as.Uid, as.Gid)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("uid=%d gid=%d\n", as.Uid, as.Gid)
		if got := readString(t, c, "/whoami"); got != want {
			t.Errorf("attached as %+v, model saw %q", as, got)
		}
		c.Close()
	}
}

// TCP is anonymous and read-only: whatever the client claims it is
// nobody, may read what others may read, and every change is refused with
// EROFS, even one nobody's permissions would allow. TrustTCP lets the
// claim and the writes through.
func TestTCPAnonymous(t *testing.T) {
	tr := whoamiTree(t)
	ln, err := ListenAndServe("tcp!127.0.0.1!0", tr.Root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := DialAs(tcpAddr(ln), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := readString(t, c, "/whoami"); got != "uid=65534 gid=65534\n" {
		t.Fatalf("TCP client claiming root is %q to the model, want nobody", got)
	}
	if got := readString(t, c, "/value"); got != "\n" {
		t.Fatalf("value = %q", got)
	}
	// ctl is 0644 root: refused for being read-only before its mode is
	// looked at.
	wantErrno(t, "anonymous write of ctl", c.WriteFile("/ctl", []byte("echo x\n")), syscall.EROFS)
	wantErrno(t, "anonymous write of owned/ctl", c.WriteFile("/owned/ctl", []byte("echo x\n")), syscall.EROFS)
	_, err = c.Open("/ctl", true)
	wantErrno(t, "anonymous open of ctl for writing", err, syscall.EROFS)
	if got := readString(t, c, "/value"); got != "\n" {
		t.Fatalf("value after refused writes = %q", got)
	}

	trusted, err := ListenAndServe("tcp!127.0.0.1!0", tr.Root, Options{TrustTCP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer trusted.Close()
	tc, err := DialAs(tcpAddr(trusted), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.WriteFile("/ctl", []byte("echo trusted\n")); err != nil {
		t.Fatalf("write under TrustTCP: %v", err)
	}
	if got := readString(t, c, "/value"); got != "trusted\n" {
		t.Fatalf("value after the trusted write = %q", got)
	}
}

// Options.ReadOnly holds on a unix socket too, for root as for anyone.
func TestReadOnlyUnix(t *testing.T) {
	sock := serve(t, fstest.NewTree().Root, Options{ReadOnly: true})
	c, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := readString(t, c, "/value"); got != "\n" {
		t.Fatalf("value = %q", got)
	}
	wantErrno(t, "write of ctl on a read-only server", c.WriteFile("/ctl", []byte("echo x\n")), syscall.EROFS)
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct{ in, network, address string }{
		{"unix!/run/aios.sock", "unix", "/run/aios.sock"},
		{"/run/aios.sock", "unix", "/run/aios.sock"},
		{"tcp!127.0.0.1!564", "tcp", "127.0.0.1:564"},
		{"tcp!::1!564", "tcp", "[::1]:564"},
	} {
		n, a, err := parseAddr(tc.in)
		if err != nil || n != tc.network || a != tc.address {
			t.Errorf("parseAddr(%q) = %q, %q, %v", tc.in, n, a, err)
		}
	}
	for _, bad := range []string{"", "tcp!host", "udp!h!1", "unix!a!b"} {
		if _, _, err := parseAddr(bad); err == nil {
			t.Errorf("parseAddr(%q) succeeded", bad)
		}
	}
}

// A unix socket left by a dead server is replaced; a live one is not.
func TestListenStaleSocket(t *testing.T) {
	root := fstest.NewTree().Root
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := ListenAndServe(sock, root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ListenAndServe(sock, root, Options{}); err == nil {
		t.Fatal("second server took over a live socket")
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("stale socket not left for the test: %v", err)
	}
	ln, err = ListenAndServe(sock, root, Options{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln.Close()
}

func waitFor(t *testing.T, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: still blocked after 5s", what)
		return nil
	}
}

// A read blocked on events ends when its file is closed (Tclunk) while
// the read is in flight.
func TestEventsEndOnClunk(t *testing.T) {
	sock := serve(t, fstest.NewTree().Root, Options{})
	c, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := c.Open("/events.follow", false)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.Read(make([]byte, 100))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	wantErrno(t, "read of a clunked events file", waitFor(t, "events read after clunk", done), syscall.EINTR)
	// The connection is still good.
	if got := readString(t, c, "/value"); got != "\n" {
		t.Fatalf("value after clunk = %q", got)
	}
}

// Closing the listener stops the server even with a read blocked on
// events: Serve closes the connection, the read ends, Serve returns.
func TestShutdownWithBlockedRead(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- Serve(ln, fstest.NewTree().Root, Options{}) }()

	c, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := c.Open("/events.follow", false)
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := f.Read(make([]byte, 100))
		read <- err
	}()
	time.Sleep(100 * time.Millisecond)
	ln.Close()
	if err := waitFor(t, "Serve after its listener closed", served); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := waitFor(t, "client read after shutdown", read); err == nil {
		t.Fatal("read succeeded after the server shut down")
	}
}

// A read blocked on events ends when its client goes away, and the
// server keeps serving others.
func TestEventsEndOnDisconnect(t *testing.T) {
	sock := serve(t, fstest.NewTree().Root, Options{})
	c, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Open("/events.follow", false)
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := f.Read(make([]byte, 100))
		read <- err
	}()
	time.Sleep(100 * time.Millisecond)
	c.Close()
	if err := waitFor(t, "read after its client closed", read); err == nil {
		t.Fatal("read succeeded on a closed client")
	}
	c2, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got := readString(t, c2, "/value"); got != "\n" {
		t.Fatalf("value = %q", got)
	}
}

func TestErrnoMapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{fs.ErrNotExist, syscall.ENOENT},
		{fs.Errorf(syscall.EBUSY, "busy"), syscall.EBUSY},
		{os.ErrPermission, syscall.EACCES},
		{errors.New("anything"), syscall.EIO},
	} {
		var got syscall.Errno
		if !errors.As(clientErr("op", "/p", errno(tc.err)), &got) || got != tc.want {
			t.Errorf("%v: client sees %v, want %v", tc.err, got, tc.want)
		}
	}
	if !strings.Contains(clientErr("read", "/x", errors.New("EOF")).Error(), "input/output error") {
		t.Error("connection errors are not EIO")
	}
}
