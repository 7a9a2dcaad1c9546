package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestErrno(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{Errorf(syscall.EBUSY, "busy"), syscall.EBUSY},
		{fmt.Errorf("wrapped: %w", Errorf(syscall.EPERM, "no")), syscall.EPERM},
		{syscall.ENOSPC, syscall.ENOSPC},
		{os.ErrNotExist, syscall.ENOENT},
		{context.Canceled, syscall.EINTR},
		{errors.New("anything else"), syscall.EIO},
	} {
		if got := Errno(tc.err); got != tc.want {
			t.Errorf("Errno(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if !errors.Is(Errorf(syscall.ENOENT, "x"), syscall.ENOENT) {
		t.Error("errors.Is does not match an *Error by errno")
	}
}

func TestCheckAccess(t *testing.T) {
	a := Attr{Mode: 0640, Uid: 10, Gid: 20}
	for _, tc := range []struct {
		c    Caller
		m    OpenMode
		want bool
	}{
		{RootCaller, ORDWR, true},
		{Caller{Uid: 10, Gid: 99}, ORDWR, true},
		{Caller{Uid: 11, Gid: 20}, OREAD, true},
		{Caller{Uid: 11, Gid: 20}, OWRITE, false},
		{Caller{Uid: 11, Gid: 21}, OREAD, false},
	} {
		if got := CheckAccess(a, tc.c, tc.m) == nil; got != tc.want {
			t.Errorf("CheckAccess(0640 10:20, %+v, %v) allowed=%v, want %v", tc.c, tc.m, got, tc.want)
		}
	}
}

func TestWalkAndIdentity(t *testing.T) {
	ns := &NS{}
	leaf := ns.Text("/a/b/c", 0444, Owner{}, func(Caller) ([]byte, error) { return []byte("c\n"), nil })
	root := ns.StaticDir("/", 0555, Owner{}, ns.StaticDir("/a", 0555, Owner{}, ns.StaticDir("/a/b", 0555, Owner{}, leaf)))
	n, err := Walk(root, "a/./b//c")
	if err != nil || n.Attr().Name != "c" {
		t.Fatalf("Walk = %v, %v", n, err)
	}
	if n.Attr().Path != PathID("/a/b/c") || PathID("a/b/c") != PathID("/a/b/c/") || PathID("/a/b") == PathID("/a/b/c") {
		t.Fatal("PathID is not a stable function of the clean path")
	}
	if _, err := Walk(root, "a/b/c/d"); Errno(err) != syscall.ENOTDIR {
		t.Fatalf("walk through a file: %v", err)
	}
	if _, err := Walk(root, "a/x"); Errno(err) != syscall.ENOENT {
		t.Fatalf("walk to a missing name: %v", err)
	}
	if n.Attr().Mode.Perm() != 0444 {
		t.Fatal("text file mode")
	}
	if ns.Text("/w", 0666, Owner{}, nil).Attr().Mode.Perm() != 0444 {
		t.Fatal("a text file must never show write bits")
	}
}

func TestCtlHandlePiecesAndRefusals(t *testing.T) {
	var ran, refused []string
	ns := &NS{Reject: func(c Caller, p, cmd string, err error) { refused = append(refused, p+" "+cmd) }}
	f := ns.Ctl("/ctl", 0644, Owner{}, func() []byte { return []byte("help\n") }, func(_ context.Context, _ Caller, line string) error {
		if strings.HasPrefix(line, "bad") {
			return Errorf(syscall.EINVAL, "unknown control message")
		}
		ran = append(ran, line)
		return nil
	})
	h, err := f.Open(context.Background(), RootCaller, ORDWR)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if n, _ := h.Read(context.Background(), buf, 0); string(buf[:n]) != "help\n" {
		t.Fatalf("ctl reads %q", buf[:n])
	}
	if n, _ := h.Read(context.Background(), buf, 5); n != 0 {
		t.Fatal("read past the end must be EOF (0, nil)")
	}
	ctx := context.Background()
	h.Write(ctx, []byte("one\ntw"), 0)
	h.Write(ctx, []byte("o\nthr"), 0)
	if _, err := h.Write(ctx, []byte("ee\nbad x\nfour\n"), 0); Errno(err) != syscall.EINVAL {
		t.Fatalf("refused line: %v", err)
	}
	h.Write(ctx, []byte("tail"), 0)
	if err := h.(Flusher).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ran, ","); got != "one,two,three,tail" {
		t.Fatalf("ran %q: lines after a refused one in the same write must not run", got)
	}
	if len(refused) != 1 || refused[0] != "/ctl bad x" {
		t.Fatalf("refusals reported: %q", refused)
	}
	if _, err := ns.Text("/ro", 0444, Owner{}, nil).Open(ctx, RootCaller, OWRITE); Errno(err) != syscall.EACCES {
		t.Fatalf("root opening a read-only file for write: %v", err)
	}
	if _, err := f.Open(ctx, Caller{Uid: 5, Gid: 5}, OWRITE); Errno(err) != syscall.EACCES {
		t.Fatalf("non-owner opening a 0644 ctl for write: %v", err)
	}
	if len(refused) != 3 {
		t.Fatalf("refused opens not reported: %q", refused)
	}
}

func TestReadFileWriteFile(t *testing.T) {
	ns := &NS{}
	big := strings.Repeat("0123456789abcdef", 10000) // larger than one read
	var got []string
	root := ns.StaticDir("/", 0555, Owner{},
		ns.Text("/big", 0444, Owner{}, func(Caller) ([]byte, error) { return []byte(big), nil }),
		ns.Ctl("/ctl", 0644, Owner{}, nil, func(_ context.Context, _ Caller, l string) error {
			if l == "bad" {
				return Errorf(syscall.EINVAL, "unknown control message")
			}
			got = append(got, l)
			return nil
		}),
	)
	ctx := context.Background()
	b, err := ReadFile(ctx, root, "/big", RootCaller)
	if err != nil || string(b) != big {
		t.Fatalf("ReadFile: %d bytes, %v; want %d", len(b), err, len(big))
	}
	if err := WriteFile(ctx, root, "/ctl", RootCaller, []byte("one\ntwo")); err != nil || strings.Join(got, ",") != "one,two" {
		t.Fatalf("WriteFile ran %q, %v", got, err)
	}
	if err := WriteFile(ctx, root, "/ctl", RootCaller, []byte("bad\n")); Errno(err) != syscall.EINVAL {
		t.Fatalf("refused line: %v", err)
	}
	if _, err := ReadFile(ctx, root, "/", RootCaller); Errno(err) != syscall.EISDIR {
		t.Fatalf("ReadFile of a directory: %v", err)
	}
	if err := WriteFile(ctx, root, "/big", RootCaller, []byte("x")); Errno(err) != syscall.EACCES {
		t.Fatalf("WriteFile of a read-only file: %v", err)
	}
}
