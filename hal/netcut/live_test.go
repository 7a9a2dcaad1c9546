package netcut

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"aiosfs/internal/testutil"
)

// needRoot skips unless a cut can be made here.
func needRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "attaches cgroup BPF programs")
	testutil.RequireSupport(t, "cgroup BPF programs", Supported())
}

// The child's script: one command a line on stdin, one result a line on
// stdout ("ok ...", "err ERRNO", "timeout").
const childScript = `
import socket, sys, errno
tcp = None; udp = None
def out(s):
    sys.stdout.write(s + "\n"); sys.stdout.flush()
def err(e):
    if getattr(e, "errno", None) is None: return "timeout"  # settimeout ran out
    return "err " + errno.errorcode.get(e.errno, str(e.errno))
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    try:
        if cmd == "connect" or cmd == "connect6":
            fam, host = (socket.AF_INET6, "::1") if cmd == "connect6" else (socket.AF_INET, "127.0.0.1")
            s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(2)
            s.connect((host, int(arg)))
            if cmd == "connect": tcp = s
            out("ok")
        elif cmd == "connectsyn1":
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.settimeout(10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
            s.connect(("127.0.0.1", int(arg))); out("ok")
        elif cmd == "usertimeout":
            import time
            tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(arg))
            tcp.settimeout(2); tcp.send(b"w"); time.sleep(3 * int(arg) / 1000.0 + 1)
            out("ok %d" % tcp.send(b"w"))
        elif cmd == "send":
            tcp.settimeout(2); out("ok %d" % tcp.send(arg.encode()))
        elif cmd == "recv":
            tcp.settimeout(1); d = tcp.recv(100); out("ok " + d.decode())
        elif cmd == "udpopen":
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.connect(("127.0.0.1", int(arg))); out("ok")
        elif cmd == "udpsend":
            out("ok %d" % udp.send(b"u"))
        elif cmd == "sendto":
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); out("ok %d" % u.sendto(b"v", ("127.0.0.1", int(arg))))
        else:
            out("err unknown")
    except Exception as e:
        out(err(e))
`

type child struct {
	t   *testing.T
	in  io.Writer
	out *bufio.Scanner
}

// startChild runs the script in the cgroup dir from its first instruction
// (clone3 with CLONE_INTO_CGROUP: nothing is moved), killed in cleanup.
func startChild(t *testing.T, dir string) *child {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	cmd := exec.Command(py, "-c", childScript)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return &child{t: t, in: in, out: bufio.NewScanner(out)}
}

// do sends one command and returns its result, within a bound.
func (c *child) do(format string, args ...any) string {
	c.t.Helper()
	fmt.Fprintf(c.in, format+"\n", args...)
	res := make(chan string, 1)
	go func() {
		if c.out.Scan() {
			res <- c.out.Text()
		} else {
			res <- "child gone"
		}
	}()
	select {
	case r := <-res:
		return r
	case <-time.After(10 * time.Second):
		c.t.Fatalf("child did not answer %q in 10 s", fmt.Sprintf(format, args...))
		return ""
	}
}

// listener is a loopback TCP listener in the test process (outside the cut)
// handing over accepted connections.
func listener(t *testing.T, network, addr string) (int, chan net.Conn) {
	t.Helper()
	if network == "tcp6" {
		testutil.RequireIPv6Loopback(t)
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			conns <- c
		}
	}()
	return l.Addr().(*net.TCPAddr).Port, conns
}

func accepted(t *testing.T, conns chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted in 5 s")
		return nil
	}
}

// readWithin reads what arrives on c within d ("" if nothing).
func readWithin(c net.Conn, d time.Duration) string {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 100)
	n, _ := c.Read(buf)
	return string(buf[:n])
}

func expect(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
	t.Logf("%s: %s", what, got)
}

// TestCutLive: before the cut the child connects and talks; under the cut a
// new connect (v4, v6) and a UDP send fail with EPERM at once and an
// established connection exchanges nothing either way; after Close it
// connects again.
func TestCutLive(t *testing.T) {
	needRoot(t)
	dir := testutil.Cgroup2Dir(t, "netcut-test")
	port, conns := listener(t, "tcp4", "127.0.0.1:0")
	port6, conns6 := listener(t, "tcp6", "[::1]:0")
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	uport := udp.LocalAddr().(*net.UDPAddr).Port
	c := startChild(t, dir)

	expect(t, "connect before the cut", c.do("connect %d", port), "ok")
	srv := accepted(t, conns)
	expect(t, "connect6 before the cut", c.do("connect6 %d", port6), "ok")
	accepted(t, conns6)
	expect(t, "send before the cut", c.do("send hello"), "ok 5")
	expect(t, "server reads before the cut", readWithin(srv, 2*time.Second), "hello")
	srv.Write([]byte("back"))
	expect(t, "child reads before the cut", c.do("recv"), "ok back")
	expect(t, "udp connect before the cut", c.do("udpopen %d", uport), "ok")
	expect(t, "udp send before the cut", c.do("udpsend"), "ok 1")

	cut, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()

	start := time.Now()
	expect(t, "connect under the cut", c.do("connect %d", port), "err EPERM")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("connect under the cut took %v, want at once", d)
	}
	expect(t, "connect6 under the cut", c.do("connect6 %d", port6), "err EPERM")
	expect(t, "udp sendto under the cut", c.do("sendto %d", uport), "err EPERM")
	expect(t, "udp send on a connected socket under the cut", c.do("udpsend"), "err EPERM")
	// TCP send on the established connection is queued: it "succeeds".
	expect(t, "send on the established connection under the cut", c.do("send again"), "ok 5")
	expect(t, "server reads under the cut", readWithin(srv, time.Second), "")
	srv.Write([]byte("more"))
	expect(t, "child reads under the cut", c.do("recv"), "timeout")
	// What the established connection ends with: the retransmission
	// timeout, shortened here with TCP_USER_TIMEOUT (500 ms) on the socket.
	expect(t, "send after the retransmission timeout", c.do("usertimeout 500"), "err ETIMEDOUT")

	if err := cut.Close(); err != nil {
		t.Fatal(err)
	}
	expect(t, "connect after Close", c.do("connect %d", port), "ok")
	srv2 := accepted(t, conns)
	expect(t, "send after Close", c.do("send hi"), "ok 2")
	expect(t, "server reads after Close", readWithin(srv2, 2*time.Second), "hi")
	if err := cut.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestSKBOnlyConnectHangs is the measurement behind the sock_addr programs:
// with the packet drops alone a connect() does not fail, it hangs in SYN
// retransmissions (here: still pending after 2 s, the child's timeout).
func TestSKBOnlyConnectHangs(t *testing.T) {
	needRoot(t)
	dir := testutil.Cgroup2Dir(t, "netcut-test")
	port, _ := listener(t, "tcp4", "127.0.0.1:0")
	c := startChild(t, dir)
	var skb []hook
	for _, h := range hooks {
		if h.typ == ebpf.CGroupSKB {
			skb = append(skb, h)
		}
	}
	cut, err := attach(dir, skb)
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()
	start := time.Now()
	expect(t, "connect with the skb drops only", c.do("connect %d", port), "timeout")
	t.Logf("connect still pending after the child's 2 s timeout (%v in all), not failed", time.Since(start).Round(time.Millisecond))
	// How it ends: after the SYN retries (TCP_SYNCNT 1 here: about 3 s;
	// tcp_syn_retries 6 by default: about 127 s).
	start = time.Now()
	expect(t, "connect with one SYN retry", c.do("connectsyn1 %d", port), "err ETIMEDOUT")
	t.Logf("... after %v", time.Since(start).Round(time.Millisecond))
}

// mountBPFFS mounts bpffs if needed and unmounts it in cleanup only if this
// test mounted it; it removes PinRoot in cleanup only if this test made it.
func mountBPFFS(t *testing.T) {
	t.Helper()
	mounted, err := MountBPFFS()
	if err != nil {
		t.Fatal(err) // root, with the BPF support checked: a failure here is one
	}
	if mounted {
		t.Logf("mounted bpffs at %s", BPFFS)
		t.Cleanup(func() {
			if err := unix.Unmount(BPFFS, 0); err != nil {
				t.Errorf("unmount bpffs: %v", err)
			}
		})
	}
	if _, err := os.Stat(PinRoot); errors.Is(err, os.ErrNotExist) {
		t.Cleanup(func() { os.Remove(PinRoot) }) // only if empty
	}
}

// TestPinnedCutSurvivesCrash: a pinned cut stays when its Go object is
// dropped without Close (a daemon crash), Load finds it, and Close of the
// loaded one lifts it and removes the pins.
func TestPinnedCutSurvivesCrash(t *testing.T) {
	needRoot(t)
	mountBPFFS(t)
	dir := testutil.Cgroup2Dir(t, "netcut-test")
	port, conns := listener(t, "tcp4", "127.0.0.1:0")
	c := startChild(t, dir)
	pins := filepath.Join(PinRoot, filepath.Base(dir))

	cut, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cut.Pin(pins); err != nil {
		cut.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { // if the test fails half way
		if l, err := Load(pins); err == nil {
			l.Close()
		}
	})
	cut.Drop() // the "crash": handles gone, nothing unpinned
	cut = nil
	expect(t, "connect after the daemon dropped the pinned cut", c.do("connect %d", port), "err EPERM")

	loaded, err := Load(pins)
	if err != nil {
		t.Fatal(err)
	}
	id, err := CgroupID(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.CgroupID() != id {
		t.Errorf("loaded cut on cgroup %d, want %d", loaded.CgroupID(), id)
	}
	expect(t, "connect with the loaded cut", c.do("connect %d", port), "err EPERM")
	if err := loaded.Close(); err != nil {
		t.Fatal(err)
	}
	expect(t, "connect after Close of the loaded cut", c.do("connect %d", port), "ok")
	accepted(t, conns)
	if _, err := os.Stat(pins); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pins left after Close: %v", err)
	}
	if _, err := Load(pins); err == nil {
		t.Error("Load after Close found a cut")
	}
}

// TestOthersUndisturbed: a program someone else attached with a link to the
// same cgroup is still attached after our Close; one attached exclusively
// (no BPF_F_ALLOW_MULTI) makes New fail and stays.
func TestOthersUndisturbed(t *testing.T) {
	needRoot(t)
	dir := testutil.Cgroup2Dir(t, "netcut-test")
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	allow, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.CGroupSKB, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer allow.Close()
	count := func() int {
		r, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachCGroupInetEgress})
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Programs)
	}

	other, err := link.AttachRawLink(link.RawLinkOptions{Target: int(f.Fd()), Program: allow, Attach: ebpf.AttachCGroupInetEgress})
	if err != nil {
		t.Fatal(err)
	}
	cut, err := New(dir)
	if err != nil {
		other.Close()
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Errorf("egress programs with the cut: %d, want 2", n)
	}
	cut.Close()
	if n := count(); n != 1 {
		t.Errorf("egress programs after Close: %d, want 1 (the other one)", n)
	}
	other.Close()
	if n := count(); n != 0 {
		t.Errorf("egress programs after all closed: %d", n)
	}

	// Exclusive attachment by someone else: New must fail and leave it.
	if err := link.RawAttachProgram(link.RawAttachProgramOptions{Target: int(f.Fd()), Program: allow, Attach: ebpf.AttachCGroupInetEgress}); err != nil {
		t.Fatal(err)
	}
	defer link.RawDetachProgram(link.RawDetachProgramOptions{Target: int(f.Fd()), Program: allow, Attach: ebpf.AttachCGroupInetEgress})
	if cut, err := New(dir); err == nil {
		cut.Close()
		t.Error("New on a cgroup with an exclusive program succeeded")
	} else {
		t.Logf("New next to an exclusive program: %v", err)
	}
	if n := count(); n != 1 {
		t.Errorf("egress programs after the refused New: %d, want 1", n)
	}
	// And nothing of the failed New stayed on the other hooks.
	r, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachCGroupInet4Connect})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Programs) != 0 {
		t.Errorf("connect4 programs after the refused New: %d", len(r.Programs))
	}
}

// TestSupported logs the verdict here; as root on this host it is nil.
func TestSupported(t *testing.T) {
	err := Supported()
	t.Logf("Supported: %v", err)
	if os.Geteuid() == 0 && err != nil {
		t.Logf("root but not supported: %v", err)
	}
}

// TestNotCgroup2: a v1 or non-cgroup directory is refused clearly.
func TestNotCgroup2(t *testing.T) {
	if _, err := New(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a cgroup2") {
		t.Errorf("New on a plain directory: %v", err)
	}
}

// TestCloseDetachesWhileHeldElsewhere: Close lifts the cut even while another
// handle (a second Load, as a confused restart might leave) still refers to
// the links, and Load of a cut that is gone says so with os.ErrNotExist.
func TestCloseDetachesWhileHeldElsewhere(t *testing.T) {
	needRoot(t)
	mountBPFFS(t)
	dir := testutil.Cgroup2Dir(t, "netcut-test")
	port, conns := listener(t, "tcp4", "127.0.0.1:0")
	c := startChild(t, dir)
	pins := filepath.Join(PinRoot, filepath.Base(dir))

	cut, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()
	if err := cut.Pin(pins); err != nil {
		t.Fatal(err)
	}
	if err := cut.Pin(pins); err == nil {
		t.Error("second Pin succeeded")
	}
	other, err := Load(pins)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Drop()
	expect(t, "connect under the cut", c.do("connect %d", port), "err EPERM")
	if err := cut.Close(); err != nil {
		t.Fatal(err)
	}
	expect(t, "connect after Close, another handle still open", c.do("connect %d", port), "ok")
	accepted(t, conns)
	if _, err := Load(pins); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a closed cut: %v, want os.ErrNotExist", err)
	}
	if err := other.Close(); err != nil {
		t.Errorf("Close of the other handle after the cut was lifted: %v", err)
	}
}

// TestCgroupRemovedUnderPinnedCut: when the cut cgroup is removed (the agent
// ended) the kernel detaches the links; Load of the pins still works but
// reports cgroup id 0, which the engine must take as "not cut", and Close
// cleans the pins up.
func TestCgroupRemovedUnderPinnedCut(t *testing.T) {
	needRoot(t)
	mountBPFFS(t)
	dir := testutil.Cgroup2Dir(t, "netcut-test")
	pins := filepath.Join(PinRoot, filepath.Base(dir))
	cut, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cut.Pin(pins); err != nil {
		cut.Close()
		t.Fatal(err)
	}
	defer cut.Close()
	id := cut.CgroupID()
	cut.Drop()
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	var loaded *Cut
	deadline := time.Now().Add(5 * time.Second)
	for {
		loaded, err = Load(pins)
		if err != nil {
			t.Logf("Load after the cgroup was removed: %v", err)
			os.RemoveAll(pins)
			return
		}
		if loaded.CgroupID() != id || time.Now().After(deadline) {
			break
		}
		loaded.Drop()
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("Load after the cgroup was removed: cgroup id %d (was %d)", loaded.CgroupID(), id)
	if loaded.CgroupID() == id {
		t.Errorf("links still report the removed cgroup %d", id)
	}
	if err := loaded.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := os.Stat(pins); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pins left: %v", err)
	}
}

// TestPinOutsideBPFFS: pinning in a directory that is not a bpffs is refused
// clearly and leaves the cut as it was (attached, unpinned).
func TestPinOutsideBPFFS(t *testing.T) {
	needRoot(t)
	dir := testutil.Cgroup2Dir(t, "netcut-test")
	cut, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()
	err = cut.Pin(filepath.Join(t.TempDir(), "pins"))
	if err == nil || !strings.Contains(err.Error(), "not in a bpffs") {
		t.Errorf("Pin outside bpffs: %v", err)
	}
	if cut.PinDir() != "" {
		t.Errorf("PinDir after a refused Pin: %q", cut.PinDir())
	}
	if err := cut.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
