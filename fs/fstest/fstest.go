// Package fstest is the conformance suite every adapter of the tree model
// runs: the same small tree, the same operations, the same expected bytes
// and errnos. An adapter's test supplies a Mount that serves a tree and
// returns a Client speaking its protocol (files under a FUSE mount point, a
// 9P client connection).
package fstest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"aiosfs/fs"
)

// Entry is one directory entry as a client sees it.
type Entry struct {
	Name  string
	IsDir bool
}

// Stat is what a client's stat shows.
type Stat struct {
	Mode os.FileMode // type bits (os.ModeDir) and permission bits
	Uid  uint32
	Gid  uint32
	Ino  uint64 // inode number or qid path
	Size int64
}

// File is an open file.
type File interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	Close() error
}

// Client is a protocol client acting as one caller. Errors must unwrap
// (errors.As) to a syscall.Errno.
type Client interface {
	ReadFile(path string) ([]byte, error)
	// WriteFile opens for writing with truncation, as `echo x > f` does,
	// writes data in one write and closes, returning the first error.
	WriteFile(path string, data []byte) error
	ReadDir(path string) ([]Entry, error)
	Stat(path string) (Stat, error)
	Open(path string, write bool) (File, error)
}

// Mount serves root and returns a client acting as caller as. It registers
// its own cleanup with t.
type Mount func(t *testing.T, root fs.Dir, as fs.Caller) Client

// Owner of the owned/ subtree in the test tree.
const OwnerUid = 1000

// Tree is the suite's test namespace. Its root ctl takes:
//
//	echo TEXT    set value to TEXT (and emit "echo TEXT" on events)
//	mk NAME      make dyn/NAME
//	rm NAME      remove dyn/NAME
type Tree struct {
	NS   *fs.NS
	Root fs.Dir

	mu       sync.Mutex
	value    string
	dyn      map[string]bool
	subs     []chan string
	echoed   []string // every "echo" line, the events' backlog
	Rejected []string // "path: cmd: error" for each Reject call; see Rejections
}

// Rejections returns a copy of Rejected, safe while the tree is served.
func (t *Tree) Rejections() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.Rejected...)
}

// Big is the content of the file "big": larger than any single read so
// that offsets are exercised.
var Big = func() []byte {
	var b strings.Builder
	for i := 0; b.Len() < 300<<10; i++ {
		fmt.Fprintf(&b, "line %06d of the big file\n", i)
	}
	return []byte(b.String())
}()

// NewTree builds the test tree.
func NewTree() *Tree {
	t := &Tree{dyn: map[string]bool{}}
	ns := &fs.NS{Boot: time.Unix(1700000000, 0)}
	ns.Reject = func(c fs.Caller, p, cmd string, err error) {
		t.mu.Lock()
		t.Rejected = append(t.Rejected, fmt.Sprintf("%s: %s: %v", p, cmd, err))
		t.mu.Unlock()
	}
	t.NS = ns
	root := fs.Owner{}
	own := fs.Owner{Uid: OwnerUid, Gid: OwnerUid}
	help := func() []byte { return []byte("echo TEXT\nmk NAME\nrm NAME\n") }
	t.Root = ns.StaticDir("/", 0555, root,
		ns.Ctl("/ctl", 0644, root, help, t.exec),
		ns.Text("/value", 0444, root, func(fs.Caller) ([]byte, error) {
			t.mu.Lock()
			defer t.mu.Unlock()
			return []byte(t.value + "\n"), nil
		}),
		ns.Text("/big", 0444, root, func(fs.Caller) ([]byte, error) { return Big, nil }),
		ns.StreamOf("/events", 0444, root, t.openEvents),
		ns.StaticDir("/owned", 0755, own,
			ns.Ctl("/owned/ctl", 0644, own, help, t.exec),
			ns.Text("/owned/secret", 0400, own, func(fs.Caller) ([]byte, error) { return []byte("s3cret\n"), nil }),
		),
		ns.Dir("/dyn", 0555, root, t.listDyn, nil),
	)
	return t
}

func (t *Tree) exec(_ context.Context, _ fs.Caller, line string) error {
	f := strings.Fields(line)
	if len(f) == 0 {
		return fs.Errorf(syscall.EINVAL, "empty control message")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case f[0] == "echo":
		t.value = strings.Join(f[1:], " ")
		t.echoed = append(t.echoed, line+"\n")
		for _, s := range t.subs {
			select {
			case s <- line + "\n":
			default:
			}
		}
	case f[0] == "mk" && len(f) == 2:
		t.dyn[f[1]] = true
	case f[0] == "rm" && len(f) == 2:
		if !t.dyn[f[1]] {
			return fs.Errorf(syscall.ENOENT, "no such object %q", f[1])
		}
		delete(t.dyn, f[1])
	case f[0] == "mk" || f[0] == "rm":
		return fs.Errorf(syscall.EINVAL, "bad # args to command")
	default:
		return fs.Errorf(syscall.EINVAL, "unknown control message")
	}
	return nil
}

func (t *Tree) listDyn() ([]fs.Node, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []fs.Node
	for name := range t.dyn {
		name := name
		p := "/dyn/" + name
		out = append(out, t.NS.StaticDir(p, 0555, fs.Owner{},
			t.NS.Text(p+"/status", 0444, fs.Owner{}, func(fs.Caller) ([]byte, error) {
				return []byte("name=" + name + "\n"), nil
			}),
			t.NS.Ctl(p+"/ctl", 0644, fs.Owner{}, nil, func(_ context.Context, _ fs.Caller, line string) error {
				t.mu.Lock()
				defer t.mu.Unlock()
				if !t.dyn[name] {
					return fs.Errorf(syscall.ENOENT, "%s has gone", name)
				}
				return nil
			}),
		))
	}
	fs.SortNodes(out)
	return out, nil
}

type chanStream struct {
	t  *Tree
	ch chan string
}

func (t *Tree) openEvents(fs.Caller) (fs.Stream, error) {
	ch := make(chan string, 64)
	t.mu.Lock()
	t.subs = append(t.subs, ch)
	t.mu.Unlock()
	return &chanStream{t, ch}, nil
}

func (s *chanStream) Next(ctx context.Context) ([]byte, error) {
	select {
	case l := <-s.ch:
		return []byte(l), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Backlog is every echo so far: the snapshot form of events shows it.
func (s *chanStream) Backlog() []byte {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	return []byte(strings.Join(s.t.echoed, ""))
}

func (s *chanStream) Close() error {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	for i, c := range s.t.subs {
		if c == s.ch {
			s.t.subs = append(s.t.subs[:i], s.t.subs[i+1:]...)
			break
		}
	}
	return nil
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %v", what, want)
	}
	if got := errnoOf(err); got != want {
		t.Fatalf("%s: error %v (errno %d), want %v", what, err, got, want)
	}
}

// Run runs the conformance suite against mount.
func Run(t *testing.T, mount Mount) {
	t.Run("ReadDirRoot", func(t *testing.T) {
		tr := NewTree()
		c := mount(t, tr.Root, fs.RootCaller)
		ents, err := c.ReadDir("/")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			s := e.Name
			if e.IsDir {
				s += "/"
			}
			got = append(got, s)
		}
		want := "ctl value big events owned/ dyn/ README"
		if strings.Join(got, " ") != want {
			t.Fatalf("root lists %q, want %q", strings.Join(got, " "), want)
		}
	})
	t.Run("ReadWhole", func(t *testing.T) {
		tr := NewTree()
		c := mount(t, tr.Root, fs.RootCaller)
		b, err := c.ReadFile("/big")
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != string(Big) {
			t.Fatalf("big: read %d bytes, want %d identical bytes", len(b), len(Big))
		}
		st, err := c.Stat("/big")
		if err != nil {
			t.Fatal(err)
		}
		if st.Size != 0 || st.Mode.Perm() != 0444 || st.Mode.IsDir() {
			t.Fatalf("big: stat %+v, want size 0 mode 0444 regular", st)
		}
	})
	t.Run("CtlWriteThenRead", func(t *testing.T) {
		tr := NewTree()
		c := mount(t, tr.Root, fs.RootCaller)
		if err := c.WriteFile("/ctl", []byte("echo hello world\n")); err != nil {
			t.Fatal(err)
		}
		b, err := c.ReadFile("/value")
		if err != nil || string(b) != "hello world\n" {
			t.Fatalf("value = %q, %v; want %q", b, err, "hello world\n")
		}
		help, err := c.ReadFile("/ctl")
		if err != nil || !strings.HasPrefix(string(help), "echo TEXT\n") {
			t.Fatalf("ctl reads %q, %v; want its verb table", help, err)
		}
	})
	t.Run("CtlPartialLines", func(t *testing.T) {
		tr := NewTree()
		c := mount(t, tr.Root, fs.RootCaller)
		f, err := c.Open("/ctl", true)
		if err != nil {
			t.Fatal(err)
		}
		for _, piece := range []string{"ec", "ho one\necho tw", "o"} {
			if _, err := f.Write([]byte(piece)); err != nil {
				t.Fatalf("write %q: %v", piece, err)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		b, _ := c.ReadFile("/value")
		if string(b) != "two\n" {
			t.Fatalf("after pieces value = %q, want %q", b, "two\n")
		}
	})
	t.Run("BadCommand", func(t *testing.T) {
		tr := NewTree()
		c := mount(t, tr.Root, fs.RootCaller)
		c.WriteFile("/ctl", []byte("echo kept\n"))
		wantErrno(t, "unknown verb", c.WriteFile("/ctl", []byte("bogus 1 2\n")), syscall.EINVAL)
		wantErrno(t, "wrong count", c.WriteFile("/ctl", []byte("mk\n")), syscall.EINVAL)
		wantErrno(t, "missing object", c.WriteFile("/ctl", []byte("rm nothere\n")), syscall.ENOENT)
		b, _ := c.ReadFile("/value")
		if string(b) != "kept\n" {
			t.Fatalf("value changed by bad commands: %q", b)
		}
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if len(tr.Rejected) != 3 || !strings.Contains(tr.Rejected[0], "unknown control message") {
			t.Fatalf("rejections reported: %q, want 3 starting with unknown control message", tr.Rejected)
		}
	})
	t.Run("ReadOnlyFile", func(t *testing.T) {
		tr := NewTree()
		c := mount(t, tr.Root, fs.RootCaller)
		wantErrno(t, "write value", c.WriteFile("/value", []byte("x\n")), syscall.EACCES)
		wantErrno(t, "write events", c.WriteFile("/events", []byte("x\n")), syscall.EACCES)
	})
	t.Run("Missing", func(t *testing.T) {
		tr := NewTree()
		c := mount(t, tr.Root, fs.RootCaller)
		_, err := c.Stat("/nothere")
		wantErrno(t, "stat /nothere", err, syscall.ENOENT)
		_, err = c.ReadFile("/dyn/nothere/status")
		wantErrno(t, "read /dyn/nothere/status", err, syscall.ENOENT)
	})
	t.Run("Ownership", func(t *testing.T) {
		tr := NewTree()
		root := mount(t, tr.Root, fs.RootCaller)
		st, err := root.Stat("/owned")
		if err != nil {
			t.Fatal(err)
		}
		if !st.Mode.IsDir() || st.Uid != OwnerUid || st.Gid != OwnerUid || st.Mode.Perm() != 0755 {
			t.Fatalf("owned: %+v, want dir uid=gid=%d 0755", st, OwnerUid)
		}
		owner := mount(t, tr.Root, fs.Caller{Uid: OwnerUid, Gid: OwnerUid})
		if err := owner.WriteFile("/owned/ctl", []byte("echo by owner\n")); err != nil {
			t.Fatalf("owner write: %v", err)
		}
		other := mount(t, tr.Root, fs.Caller{Uid: 65534, Gid: 65534})
		wantErrno(t, "non-owner write", other.WriteFile("/owned/ctl", []byte("echo by other\n")), syscall.EACCES)
		_, err = other.ReadFile("/owned/secret")
		wantErrno(t, "non-owner read of 0400 file", err, syscall.EACCES)
		if b, err := other.ReadFile("/value"); err != nil || string(b) != "by owner\n" {
			t.Fatalf("value = %q, %v; non-owner must read and see only the owner's write", b, err)
		}
		if err := root.WriteFile("/owned/ctl", []byte("echo by root\n")); err != nil {
			t.Fatalf("root write: %v", err)
		}
	})
	t.Run("EventsSnapshot", func(t *testing.T) {
		// The listed events is a snapshot: its backlog, then EOF, at
		// once, before and after events; it never blocks a reader.
		tr := NewTree()
		c := mount(t, tr.Root, fs.RootCaller)
		if b, err := c.ReadFile("/events"); err != nil || len(b) != 0 {
			t.Fatalf("events before any event = %q, %v; want empty and EOF", b, err)
		}
		if err := c.WriteFile("/ctl", []byte("echo one\necho two\n")); err != nil {
			t.Fatal(err)
		}
		if b, err := c.ReadFile("/events"); err != nil || string(b) != "echo one\necho two\n" {
			t.Fatalf("events snapshot = %q, %v; want the two echoes", b, err)
		}
		// The follow form is walkable, stat-able, read-only and unlisted.
		st, err := c.Stat("/events.follow")
		if err != nil || st.Mode.IsDir() || st.Mode.Perm() != 0444 {
			t.Fatalf("stat events.follow = %+v, %v", st, err)
		}
		ents, err := c.ReadDir("/")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name, fs.FollowSuffix) {
				t.Errorf("the root lists %s: a walker would block on it", e.Name)
			}
		}
		_, err = c.Stat("/value.follow")
		wantErrno(t, "stat value.follow (not a stream)", err, syscall.ENOENT)
		wantErrno(t, "write events.follow", c.WriteFile("/events.follow", []byte("x\n")), syscall.EACCES)
	})
	t.Run("Events", func(t *testing.T) {
		tr := NewTree()
		c := mount(t, tr.Root, fs.RootCaller)
		f, err := c.Open("/events.follow", false)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		got := make(chan string, 1)
		go func() {
			buf := make([]byte, 4096)
			n, err := f.Read(buf)
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- string(buf[:n])
		}()
		// The reader must be blocked, not at EOF, before anything happens.
		select {
		case s := <-got:
			t.Fatalf("events returned %q before any event", s)
		case <-time.After(200 * time.Millisecond):
		}
		// The stream subscribes at open, so this write is seen.
		if err := c.WriteFile("/ctl", []byte("echo ping\n")); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-got:
			if s != "echo ping\n" {
				t.Fatalf("events read %q, want %q", s, "echo ping\n")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("events read did not return after an event")
		}
	})
	t.Run("DynamicIdentity", func(t *testing.T) {
		tr := NewTree()
		c := mount(t, tr.Root, fs.RootCaller)
		if err := c.WriteFile("/ctl", []byte("mk a\nmk b\n")); err != nil {
			t.Fatal(err)
		}
		ents, err := c.ReadDir("/dyn")
		if err != nil || len(ents) != 3 || ents[0].Name != "a" || !ents[0].IsDir || ents[2].Name != fs.ReadmeName {
			t.Fatalf("dyn lists %+v, %v; want a/ b/ README", ents, err)
		}
		s1, err := c.Stat("/dyn/a")
		if err != nil {
			t.Fatal(err)
		}
		sb, _ := c.Stat("/dyn/b")
		s2, _ := c.Stat("/dyn/a")
		if s1.Ino != s2.Ino || s1.Ino == sb.Ino {
			t.Fatalf("identity: a=%d then %d, b=%d; want a stable and distinct", s1.Ino, s2.Ino, sb.Ino)
		}
		b, err := c.ReadFile("/dyn/a/status")
		if err != nil || string(b) != "name=a\n" {
			t.Fatalf("dyn/a/status = %q, %v", b, err)
		}
		f, err := c.Open("/dyn/a/ctl", true)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.WriteFile("/ctl", []byte("rm a\n")); err != nil {
			t.Fatal(err)
		}
		_, err = f.Write([]byte("poke\n"))
		wantErrno(t, "write to a gone object's ctl", err, syscall.ENOENT)
		f.Close()
		_, err = c.Stat("/dyn/a")
		wantErrno(t, "stat removed", err, syscall.ENOENT)
	})
}
