package p9fs

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"aiosfs/fs/fstest"
)

// serveServer is serve with the server itself, to count its connections.
func serveServer(t *testing.T, opts Options) (*server, string, *fstest.Tree) {
	t.Helper()
	tr := fstest.NewTree()
	sock := filepath.Join(t.TempDir(), "aios.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(tr.Root, opts)
	done := make(chan error, 1)
	go func() { done <- s.serve(ln) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, sock, tr
}

// rawSend writes bytes as they are, size field and all.
func (w wire) rawSend(b ...byte) {
	w.t.Helper()
	if _, err := w.c.Write(b); err != nil {
		w.t.Fatal(err)
	}
}

// sized is a message of the given size field, type and tag, and body.
func sized(size uint32, typ byte, tag uint16, body ...byte) []byte {
	b := le.AppendUint32(nil, size)
	b = append(b, typ)
	b = le.AppendUint16(b, tag)
	return append(b, body...)
}

// A live server on a unix socket takes malformed traffic on many
// connections at once (bad sizes, unknown types, truncated bodies, long
// walks, msize 0, reads of unopened fids, double clunks, huge counts,
// hang-ups in mid-message), answers or closes each as it should, keeps no
// connection it has closed, and then serves a normal client correctly.
func TestMalformedLive(t *testing.T) {
	s, sock, _ := serveServer(t, Options{})
	var wg sync.WaitGroup
	run := func(name string, f func(t *testing.T)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(name, f)
		}()
	}
	// Sizes that cannot be a message, or exceed msize, end the
	// connection, before and after Tversion.
	for _, size := range []uint32{0, 1, 4, 6, 1<<32 - 1, 4097} {
		for _, versioned := range []bool{false, true} {
			run("size", func(t *testing.T) {
				w := dialWire(t, sock)
				if versioned {
					w.send(tversion, noTag, uint32(8192), "9P2000.L")
					w.expect(rversion, noTag)
					if size == 4097 {
						size = 8193
					}
				}
				w.rawSend(sized(size, tclunk, 1, 0, 0, 0, 0)...)
				w.closed()
			})
		}
	}
	run("size 7", func(t *testing.T) {
		w := session(t, sock, 8192)
		for _, typ := range []byte{tclunk, tread, twalk, tattach, tversion, tflush} {
			w.rawSend(sized(7, typ, 3)...)
			w.expectErrno(3, syscall.EINVAL)
		}
		w.send(tstatfs, 2, uint32(0))
		w.expect(rstatfs, 2)
	})
	run("types and bodies", func(t *testing.T) {
		w := dialWire(t, sock)
		w.send(tversion, noTag, uint32(0), "9P2000.L")
		w.expectErrno(noTag, syscall.EINVAL)
		w.send(tversion, noTag, uint32(7), "9P2000.L")
		w.expectErrno(noTag, syscall.EINVAL)
		w.send(tversion, noTag, uint32(8192), "9P2000.L")
		w.expect(rversion, noTag)
		w.send(tattach, 1, uint32(0), noFid, "", "", noFid)
		w.expect(rattach, 1)
		for _, typ := range []byte{0, 1, 2, 6, 99, 101, 200, 255} {
			w.rawSend(sized(11, typ, 4, 0, 0, 0, 0)...)
			w.expectErrno(4, syscall.ENOSYS)
		}
		w.rawSend(sized(17, twalk, 5, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0)...) // 1 name, missing
		w.expectErrno(5, syscall.EINVAL)
		w.rawSend(sized(12, tlopen, 5, 1, 0, 0, 0, 0)...)
		w.expectErrno(5, syscall.EINVAL)
		w.send(twalk, 6, uint32(0), uint32(1), strings.Split(strings.Repeat("a/", 17)[:33], "/"))
		w.expectErrno(6, syscall.EINVAL)
		// Reads of fids never walked, and walked but not opened.
		w.send(tread, 7, uint32(99), uint64(0), uint32(100))
		w.expectErrno(7, syscall.EBADF)
		w.send(twalk, 6, uint32(0), uint32(1), []string{"big"})
		w.expect(rwalk, 6)
		w.send(tread, 7, uint32(1), uint64(0), uint32(100))
		w.expectErrno(7, syscall.EINVAL)
		w.send(twrite, 7, uint32(1), uint64(0), []byte("x"))
		w.expectErrno(7, syscall.EINVAL)
		// A huge count is cut to msize.
		w.send(tlopen, 8, uint32(1), uint32(0))
		w.expect(rlopen, 8)
		w.send(tread, 7, uint32(1), uint64(0), ^uint32(0))
		if body := w.expect(rread, 7); le.Uint32(body) != 8192-ioHeaderLen {
			t.Errorf("read of 2^32-1 bytes returned %d", le.Uint32(body))
		}
		// Clunk twice.
		w.send(tclunk, 9, uint32(1))
		w.expect(rclunk, 9)
		w.send(tclunk, 9, uint32(1))
		w.expectErrno(9, syscall.EBADF)
		w.send(tstatfs, 2, uint32(0))
		w.expect(rstatfs, 2)
	})
	// Hang-ups: in mid-message, with a size larger than what follows,
	// and with a read blocked on events.
	for i := 0; i < 20; i++ {
		run("hang-up", func(t *testing.T) {
			w := session(t, sock, 8192)
			switch i % 3 {
			case 0:
				w.rawSend(sized(100, twalk, 2, 0, 0, 0)...)
			case 1:
				w.rawSend(0x40, 0, 0)
			case 2:
				w.send(twalk, 2, uint32(0), uint32(1), []string{"events.follow"})
				w.expect(rwalk, 2)
				w.send(tlopen, 2, uint32(1), uint32(0))
				w.expect(rlopen, 2)
				w.send(tread, 3, uint32(1), uint64(0), uint32(100))
			}
			w.c.Close()
		})
	}
	wg.Wait()

	// Every one of those connections is gone...
	deadline := time.Now().Add(5 * time.Second)
	for s.open() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still served after their clients left", s.open())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// ... and a normal client is served as before.
	c, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteFile("/ctl", []byte("echo still here\n")); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, c, "/value"); got != "still here\n" {
		t.Fatalf("value = %q", got)
	}
	if b, err := c.ReadFile("/big"); err != nil || string(b) != string(fstest.Big) {
		t.Fatalf("big: %d bytes, %v", len(b), err)
	}
	ents, err := c.ReadDir("/")
	if err != nil || len(ents) != 7 {
		t.Fatalf("ReadDir /: %d entries, %v", len(ents), err)
	}
}
