package fusefs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"aiosfs/fs"
)

// probe is an events stream that never has anything to say and records
// what happens to the read blocked on it.
type probe struct {
	entered   chan struct{} // a read is blocked in Next
	cancelled chan struct{} // its context ended
	closed    chan struct{} // the handle was released
	once      [3]sync.Once
}

func newProbe() *probe {
	return &probe{entered: make(chan struct{}), cancelled: make(chan struct{}), closed: make(chan struct{})}
}

func (p *probe) Next(ctx context.Context) ([]byte, error) {
	p.once[0].Do(func() { close(p.entered) })
	<-ctx.Done()
	p.once[1].Do(func() { close(p.cancelled) })
	return nil, ctx.Err()
}

func (p *probe) Close() error {
	p.once[2].Do(func() { close(p.closed) })
	return nil
}

// mountProbe serves a tree whose only file is events, backed by p.
func mountProbe(t *testing.T, p *probe) string {
	ns := &fs.NS{}
	root := ns.StaticDir("/", 0555, fs.Owner{},
		ns.StreamOf("/events", 0444, fs.Owner{}, func(fs.Caller) (fs.Stream, error) { return p, nil }))
	return mountTree(t, root)
}

// waitFor fails the test unless ch closes within 10s.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not happen in 10s", what)
	}
}

// TestEventsReaderKilled: `cat events` blocks; killing cat (^C, kill -9)
// makes the kernel send FUSE_INTERRUPT for its read, the read ends, cat
// dies and its handle is released, so the tree unmounts cleanly.
func TestEventsReaderKilled(t *testing.T) {
	requireRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			p := newProbe()
			dir := mountProbe(t, p)
			cat := exec.Command("cat", filepath.Join(dir, "events.follow"))
			if err := cat.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, p.entered, "cat's read reaching the stream")
			if err := cat.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { cat.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				// The read never ended: abort the connection (umount -f) so
				// that cat and this test can go on, then fail.
				unix.Unmount(dir, unix.MNT_FORCE|unix.MNT_DETACH)
				t.Fatalf("cat blocked in a read of events survived %v", sig)
			}
			waitFor(t, p.cancelled, "cancelling the read's context")
			waitFor(t, p.closed, "closing the stream")
		})
	}
}

// TestEventsReadInterrupted: a signal that does not kill the reader
// (here SIGURG, which the Go runtime handles and ignores) ends the blocked
// read(2) with EINTR, as on a pipe.
func TestEventsReadInterrupted(t *testing.T) {
	requireRoot(t)
	p := newProbe()
	dir := mountProbe(t, p)
	fd, err := unix.Open(filepath.Join(dir, "events.follow"), unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	tid := make(chan int, 1)
	readErr := make(chan error, 1)
	go func() {
		// One thread, so the signal can be aimed at the blocked read.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid <- unix.Gettid()
		_, err := unix.Read(fd, make([]byte, 4096))
		readErr <- err
	}()
	reader := <-tid
	waitFor(t, p.entered, "the read reaching the stream")
	if err := unix.Tgkill(os.Getpid(), reader, unix.SIGURG); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-readErr:
		if err != syscall.EINTR {
			t.Errorf("interrupted read: %v, want EINTR", err)
		}
	case <-time.After(10 * time.Second):
		unix.Unmount(dir, unix.MNT_FORCE|unix.MNT_DETACH)
		t.Fatal("a signal did not end the blocked read")
	}
	waitFor(t, p.cancelled, "cancelling the read's context")
	unix.Close(fd)
	waitFor(t, p.closed, "closing the stream")
}
