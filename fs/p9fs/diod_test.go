package p9fs

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"aiosfs/fs"
	"aiosfs/fs/fstest"
)

// diod runs one of diod's 9P2000.L clients (Debian package diod:
// /usr/sbin/diodls, /usr/sbin/diodcat) and returns its standard output.
func diod(t *testing.T, tool string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath(tool)
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/" + tool); err != nil {
			t.Skipf("%s not found: install Debian's diod package (apt-get install diod) for the external 9P client tests", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Logf("%s %s: %v: %s", tool, strings.Join(args, " "), err, stderr.String())
	}
	return string(out), err
}

// diod's tools attach with aname "ctl" unless told (-a /), send Tauth
// first, and take only ENOENT as "no authentication needed".
func TestDiodClients(t *testing.T) {
	tr := fstest.NewTree()
	sock := serve(t, tr.Root, Options{})
	c := dialAs(t, tr.Root, fs.RootCaller)
	if err := c.WriteFile("/ctl", []byte("echo hello from aiosfs\n")); err != nil {
		t.Fatal(err)
	}

	t.Run("ls", func(t *testing.T) {
		out, err := diod(t, "diodls", "-s", sock, "-a", "/")
		if err != nil {
			t.Fatal(err)
		}
		if want := "ctl\nvalue\nbig\nevents\nowned\ndyn\nREADME\n"; out != want {
			t.Fatalf("diodls lists %q, want %q", out, want)
		}
	})
	t.Run("ls-l", func(t *testing.T) {
		out, err := diod(t, "diodls", "-s", sock, "-a", "/", "-l", "owned")
		if err != nil {
			t.Fatal(err)
		}
		// Mode and size columns; owner names and dates depend on the host.
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasSuffix(lines[2], " README") || !strings.HasPrefix(lines[0], "-rw-r--r--") || !strings.HasSuffix(lines[0], " ctl") ||
			!strings.HasPrefix(lines[1], "-r--------") || !strings.HasSuffix(lines[1], " secret") {
			t.Fatalf("diodls -l owned:\n%s", out)
		}
	})
	t.Run("cat", func(t *testing.T) {
		out, err := diod(t, "diodcat", "-s", sock, "-a", "/", "value")
		if err != nil {
			t.Fatal(err)
		}
		if out != "hello from aiosfs\n" {
			t.Fatalf("diodcat value = %q", out)
		}
		out, err = diod(t, "diodcat", "-s", sock, "-a", "/", "big")
		if err != nil {
			t.Fatal(err)
		}
		if out != string(fstest.Big) {
			t.Fatalf("diodcat big: %d bytes, want the %d of fstest.Big", len(out), len(fstest.Big))
		}
	})
	t.Run("tcp", func(t *testing.T) {
		ln, err := ListenAndServe("tcp!127.0.0.1!0", tr.Root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addr := ln.Addr().(*net.TCPAddr).String()
		out, err := diod(t, "diodcat", "-s", addr, "-a", "/", "value")
		if err != nil || out != "hello from aiosfs\n" {
			t.Fatalf("diodcat over TCP: %q, %v", out, err)
		}
		// Anonymous over TCP: the owner's 0400 file is not readable.
		if out, err := diod(t, "diodcat", "-s", addr, "-a", "/", "owned/secret"); err == nil {
			t.Fatalf("anonymous diodcat read owned/secret: %q", out)
		}
	})
}
