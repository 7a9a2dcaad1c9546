package fusefs

import (
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"aiosfs/fs"
	"aiosfs/fs/fstest"
)

func TestConformance(t *testing.T) {
	requireRoot(t)
	fstest.Run(t, func(t *testing.T, root fs.Dir, as fs.Caller) fstest.Client {
		dir := mountTree(t, root)
		// os.Root resolves names with openat from the mount's root, so a
		// caller with no right to the temporary directories above the
		// mount point still reaches the tree.
		r, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() }) // before the unmount, which an open fd makes EBUSY
		return &client{root: r, as: as}
	})
}

// client is an ordinary program using the mount point, acting as one
// caller. The kernel puts the calling thread's fsuid and fsgid in each FUSE
// request, so a non-root caller runs every operation on a thread of its own
// with those set (setfsuid is per thread, unlike setuid in Go).
type client struct {
	root *os.Root
	as   fs.Caller
}

// do runs fn as c.as. The thread is never unlocked: Go ends a locked
// thread with its goroutine, so the changed credentials cannot leak into
// other goroutines.
func (c *client) do(fn func() error) error {
	if c.as.Uid == 0 && c.as.Gid == 0 {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setfsgid(int(c.as.Gid)); err != nil {
			errc <- err
			return
		}
		if err := unix.Setfsuid(int(c.as.Uid)); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// rel makes the suite's "/x/y" a name under the mount's root.
func rel(p string) string {
	if p = strings.TrimLeft(p, "/"); p == "" {
		return "."
	}
	return p
}

func (c *client) ReadFile(p string) (b []byte, err error) {
	err = c.do(func() error {
		b, err = c.root.ReadFile(rel(p))
		return err
	})
	return b, err
}

func (c *client) WriteFile(p string, data []byte) error {
	return c.do(func() error {
		f, err := c.root.OpenFile(rel(p), os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		_, werr := f.Write(data)
		cerr := f.Close() // close(2) sends FLUSH: a ctl's error can surface here
		if werr != nil {
			return werr
		}
		return cerr
	})
}

func (c *client) ReadDir(p string) (ents []fstest.Entry, err error) {
	err = c.do(func() error {
		f, err := c.root.Open(rel(p))
		if err != nil {
			return err
		}
		defer f.Close()
		des, err := f.ReadDir(-1) // directory order, unlike os.ReadDir
		for _, de := range des {
			ents = append(ents, fstest.Entry{Name: de.Name(), IsDir: de.IsDir()})
		}
		return err
	})
	return ents, err
}

func (c *client) Stat(p string) (st fstest.Stat, err error) {
	err = c.do(func() error {
		fi, err := c.root.Stat(rel(p))
		if err != nil {
			return err
		}
		sys := fi.Sys().(*syscall.Stat_t)
		st = fstest.Stat{Mode: fi.Mode(), Uid: sys.Uid, Gid: sys.Gid, Ino: sys.Ino, Size: fi.Size()}
		return nil
	})
	return st, err
}

func (c *client) Open(p string, write bool) (fstest.File, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_WRONLY
	}
	var f *os.File
	err := c.do(func() (err error) {
		f, err = c.root.OpenFile(rel(p), flag, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &file{c: c, f: f}, nil
}

// file is an open file whose reads, writes and close also run as the
// client's caller.
type file struct {
	c *client
	f *os.File
}

func (f *file) Read(p []byte) (n int, err error) {
	err = f.c.do(func() error { n, err = f.f.Read(p); return err })
	return n, err
}

func (f *file) Write(p []byte) (n int, err error) {
	err = f.c.do(func() error { n, err = f.f.Write(p); return err })
	return n, err
}

func (f *file) Close() error { return f.c.do(f.f.Close) }
