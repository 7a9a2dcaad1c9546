package p9fs

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

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
	if err := os.Chmod(sock, 0777); err != nil {
		t.Fatal(err)
	}

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
