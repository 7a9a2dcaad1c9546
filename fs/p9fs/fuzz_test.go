package p9fs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"aiosfs/fs/fstest"
)

// fuzzTrace logs every reply (for looking at what a seed does).
var fuzzTrace = false

// probeTag is the tag of the request FuzzServe sends after the input, to
// see that the server still answers; input frames never use it.
const probeTag = 0xfffe

// FuzzServe feeds arbitrary bytes to one server connection over a
// net.Pipe, with the test tree behind it, and checks that the server does
// not panic (hugelgupf/p9 turns a handler's panic into EFAULT, which the
// adapter never returns otherwise), does not hang (a deadline), and
// answers or closes.
//
// The first byte picks how the rest is sent. Bit 0 set: as raw bytes,
// after which the server must end once the client hangs up. Bit 0 clear:
// as frames, each type[1] tag[2] n[2] body[n] with its size computed,
// then a Tclunk probe, which must be answered (or the connection closed)
// within the deadline. Bit 1 starts the frames with a Tversion and a
// Tattach as root; bit 2 serves as TrustTCP (root's attach believed,
// writes allowed), else read-only and nobody.
//
// Every run ends a connection, which takes conn's settle pause (20ms), so
// this runs some 45 inputs a second on one core. The Makefile caps the
// minimizing of each new input at 20 runs (-fuzzminimizetime 20x): at the
// default of 60s, every new input stalled the run for up to a minute.
func FuzzServe(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 64<<10 {
			return
		}
		fuzzServe(t, data[0], data[1:])
	})
}

func fuzzServe(t *testing.T, mode byte, in []byte) {
	var logMu sync.Mutex
	var logs []string
	opts := Options{
		TrustTCP:    mode&4 != 0,
		MaxFids:     16,
		MaxOpen:     8,
		MaxPaths:    64,
		MaxRequests: 8,
		MaxMsize:    8192,
		Logf: func(format string, args ...any) {
			logMu.Lock()
			logs = append(logs, fmt.Sprintf(format, args...))
			logMu.Unlock()
		},
	}
	srv, cli := net.Pipe()
	c, err := newConn(srv, fstest.NewTree().Root, opts)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		c.serve()
		close(served)
	}()

	// The replies: each must be a whole message; EFAULT means a panic.
	replies := make(chan uint16, 64) // tags
	stop := make(chan struct{})
	var bad []string
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(replies)
		for {
			m, err := readMsg(cli)
			if err != nil {
				return
			}
			if len(m) < headerLen {
				bad = append(bad, fmt.Sprintf("a %d-byte reply", len(m)))
				return
			}
			tag := le.Uint16(m[5:])
			if fuzzTrace {
				t.Logf("reply %x", m[4:min(len(m), 16)])
			}
			if m[4] == rlerror && len(m) == headerLen+4 && syscall.Errno(le.Uint32(m[headerLen:])) == syscall.EFAULT {
				bad = append(bad, fmt.Sprintf("EFAULT (a panic in a handler) for tag %d", tag))
			}
			select {
			case replies <- tag:
			case <-stop:
				return
			}
		}
	}()
	// await waits for the reply to tag, or for d; it says whether the
	// connection is still open.
	await := func(tag uint16, d time.Duration) (open, answered bool) {
		timer := time.NewTimer(d)
		defer timer.Stop()
		for {
			select {
			case got, ok := <-replies:
				if !ok {
					return false, false
				}
				if got == tag {
					return true, true
				}
			case <-timer.C:
				return true, false
			}
		}
	}
	// write sends b; it fails the test if the server stops reading.
	write := func(b []byte) (open bool) {
		cli.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := cli.Write(b)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the server stopped reading for 5s")
		}
		return err == nil
	}

	if mode&1 != 0 {
		// Raw: the server must end once the client hangs up. (A
		// raw write may stall on a frame the server waits to
		// complete; the hang-up below ends it.)
		go cli.Write(in)
	} else {
		// Frames, one at a time as a client waits for each reply
		// (a read of events is never answered: 10ms is enough).
		var frames [][]byte
		if mode&2 != 0 {
			frames = append(frames,
				fuzzFrame(tversion, noTag, le.AppendUint32(nil, 8192), "9P2000.L"),
				fuzzFrame(tattach, 1, []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}))
		}
		for len(in) >= 5 {
			typ, tag, n := in[0], le.Uint16(in[1:]), int(le.Uint16(in[3:]))
			in = in[5:]
			n = min(n, len(in))
			if tag == probeTag {
				tag = 0
			}
			frames = append(frames, fuzzFrame(typ, tag, in[:n]))
			in = in[n:]
		}
		open := true
		for _, f := range frames {
			if open = write(f); !open {
				break
			}
			if open, _ = await(le.Uint16(f[5:]), 10*time.Millisecond); !open {
				break
			}
		}
		// The probe: answered, or the connection closed.
		if open && write(fuzzFrame(tclunk, probeTag, []byte{0xf0, 0xff, 0xff, 0xff})) {
			if open, answered := await(probeTag, 5*time.Second); open && !answered {
				t.Fatalf("no answer to the probe and the connection still open after 5s")
			}
		}
	}
	cli.Close()
	close(stop)
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatalf("the server did not end 5s after the client hung up")
	}
	<-readerDone
	if len(bad) > 0 {
		t.Fatalf("bad replies: %s", strings.Join(bad, "; "))
	}
	logMu.Lock()
	defer logMu.Unlock()
	for _, l := range logs {
		if strings.Contains(l, "panic") {
			t.Fatalf("the server logged a panic: %s", l)
		}
	}
}

// fuzzFrame is a message of typ and tag with body, sized.
func fuzzFrame(typ byte, tag uint16, body []byte, strs ...string) []byte {
	b := make([]byte, headerLen, headerLen+len(body))
	b[4] = typ
	le.PutUint16(b[5:], tag)
	b = append(b, body...)
	for _, s := range strs {
		b = le.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	le.PutUint32(b, uint32(len(b)))
	return b
}

// fuzzSeeds are transcripts a real client sends, in both modes, and the
// malformed cases of TestMalformedLive.
func fuzzSeeds() [][]byte {
	must := func(typ byte, tag uint16, fields ...any) []byte {
		b, err := msg(typ, tag, fields...)
		if err != nil {
			panic(err)
		}
		return b
	}
	session := [][]byte{
		must(tversion, noTag, uint32(8192), "9P2000.L"),
		must(tauth, 1, uint32(9), "", "", noFid),
		must(tattach, 1, uint32(0), noFid, "", "", uint32(0)),
		must(twalk, 2, uint32(0), uint32(1), []string{"value"}),
		must(tlopen, 3, uint32(1), uint32(0)),
		must(tread, 4, uint32(1), uint64(0), uint32(4096)),
		must(tclunk, 5, uint32(1)),
		must(twalk, 2, uint32(0), uint32(2), []string{"ctl"}),
		must(tlopen, 3, uint32(2), uint32(syscall.O_WRONLY|dotlTrunc)),
		must(twrite, 4, uint32(2), uint64(0), []byte("echo fuzz\nmk a\n")),
		must(tclunk, 5, uint32(2)),
		must(twalk, 2, uint32(0), uint32(3), []string{"events.follow"}),
		must(tlopen, 3, uint32(3), uint32(0)),
		must(tread, 6, uint32(3), uint64(0), uint32(100)),
		must(tflush, 7, uint16(6)),
		must(twalk, 2, uint32(0), uint32(4), []string{}),
		must(tlopen, 3, uint32(4), uint32(0)),
		must(treaddir, 4, uint32(4), uint64(0), uint32(8000)),
		must(tgetattr, 4, uint32(4), uint64(0x3fff)),
		must(tstatfs, 4, uint32(4)),
		must(tremove, 5, uint32(4)),
	}
	var raw, framed []byte
	for _, m := range session {
		raw = append(raw, m...)
		framed = append(framed, framedOf(m)...)
	}
	seeds := [][]byte{
		append([]byte{1}, raw...),
		append([]byte{5}, raw...),
		append([]byte{0}, framed...),
		append([]byte{4}, framed...),
		append([]byte{2}, framedOf(must(twalk, 2, uint32(0), uint32(1), strings.Split(strings.Repeat("a/", 17)[:33], "/")))...),
		append([]byte{6}, framedOf(must(tread, 4, uint32(0), uint64(0), ^uint32(0)))...),
		append([]byte{2}, framedOf(must(tclunk, 4, uint32(0)))...),
		{1, 0, 0, 0, 0},
		{1, 7, 0, 0, 0, 0x78, 1, 0},
		{1, 0xff, 0xff, 0xff, 0xff},
		append([]byte{0}, framedOf(must(tversion, noTag, uint32(0), "9P2000.L"))...),
		append([]byte{2}, framedOf(must(99, 3, uint32(0)))...),
	}
	return seeds
}

// framedOf turns a message into FuzzServe's frame form.
func framedOf(m []byte) []byte {
	b := []byte{m[4], m[5], m[6]}
	b = le.AppendUint16(b, uint16(len(m)-headerLen))
	return append(b, m[headerLen:]...)
}
