package p9fs

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"aiosfs/fs/fstest"
)

// peerEnv tells a re-executed test binary where the server is.
const peerEnv = "P9FS_PEER_SOCK"

// A non-root peer is who SO_PEERCRED says, whatever it claims at attach:
// the test binary, run again as nobody, claims to be the owner of owned/
// and is refused its ctl.
func TestNonRootPeerCannotClaim(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as nobody")
	}
	// nobody must reach the socket and run the binary: go test keeps
	// both in private (0700) directories, so open a temporary one up
	// and put a copy of the binary there.
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "p9fs.test")
	copyFile(t, os.Args[0], bin)
	sock := filepath.Join(dir, "aios.sock")
	ln, err := ListenAndServe(sock, whoamiTree(t).Root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	cmd := exec.Command(bin, "-test.run=^TestNonRootPeerChild$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), peerEnv+"="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the child running as nobody failed: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

// TestNonRootPeerChild is the nobody side of TestNonRootPeerCannotClaim.
func TestNonRootPeerChild(t *testing.T) {
	sock := os.Getenv(peerEnv)
	if sock == "" {
		t.Skip("run by TestNonRootPeerCannotClaim")
	}
	if os.Geteuid() == 0 {
		t.Fatal("the child runs as root")
	}
	c, err := DialAs(sock, fstest.OwnerUid, fstest.OwnerUid)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := readString(t, c, "/whoami"); got != "uid=65534 gid=65534\n" {
		t.Fatalf("nobody claiming uid %d is %q to the model", fstest.OwnerUid, got)
	}
	wantErrno(t, "nobody's write of owned/ctl", c.WriteFile("/owned/ctl", []byte("echo x\n")), syscall.EACCES)
	_, err = c.ReadFile("/rootonly")
	wantErrno(t, "nobody's read of the 0600 root file", err, syscall.EACCES)
}

// The unix socket is 0666, whatever the umask: every local user may
// connect, and is who SO_PEERCRED says. diodcat run as nobody by setpriv
// reads what nobody may read, is uid 65534 to the model, and cannot read
// root's 0600 file.
func TestSocketOpenToAll(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "aios.sock")
	ln, err := ListenAndServe(sock, whoamiTree(t).Root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0666 {
		t.Fatalf("socket mode %v, want a 0666 socket", fi.Mode())
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as nobody")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not found (Debian's util-linux)")
	}
	diodcat, err := exec.LookPath("diodcat")
	if err != nil {
		if diodcat, err = exec.LookPath("/usr/sbin/diodcat"); err != nil {
			t.Skip("diodcat not found: install Debian's diod package (scripts/install-deps.sh)")
		}
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0755); err != nil {
			t.Fatal(err)
		}
	}
	asNobody := func(file string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var stderr strings.Builder
		cmd := exec.CommandContext(ctx, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
			diodcat, "-s", sock, "-a", "/", file)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		return string(out), err
	}
	if out, err := asNobody("whoami"); err != nil || out != "uid=65534 gid=65534\n" {
		t.Fatalf("diodcat whoami as nobody: %q, %v", out, err)
	}
	if out, err := asNobody("value"); err != nil || out != "\n" {
		t.Fatalf("diodcat value as nobody: %q, %v", out, err)
	}
	if out, err := asNobody("rootonly"); err == nil {
		t.Fatalf("nobody read the 0600 root file: %q", out)
	} else {
		t.Logf("diodcat rootonly as nobody: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
