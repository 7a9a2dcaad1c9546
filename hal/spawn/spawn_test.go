package spawn

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"aiosfs/internal/testutil"
)

func TestMain(m *testing.M) {
	// The test binary is its own shim, as the daemon's binary is.
	MaybeShim()
	os.Exit(m.Run())
}

func requireRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "the shim sets credentials and capabilities")
}

// run starts spec with stdout to a file and returns the placed pid, the
// exit code and the output.
func run(t *testing.T, spec Spec) (int, int, string) {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	placed := 0
	p, err := Start(spec, func(pid int) error { placed = pid; return nil }, out, out)
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if placed != p.Pid {
		t.Fatalf("placed pid %d, but the process is %d: the leader must keep the shim's pid", placed, p.Pid)
	}
	b, _ := os.ReadFile(out.Name())
	return placed, st.ExitCode(), string(b)
}

func statusField(status, key string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestCredentialsNiceAndAmbientCaps(t *testing.T) {
	requireRoot(t)
	_, code, out := run(t, Spec{Path: "sh", Args: []string{"sh", "-c", "cat /proc/self/status; echo nice=$(cut -d' ' -f19 /proc/self/stat); pwd"},
		Env: []string{"PATH=/usr/bin:/bin"}, Dir: "/tmp", Uid: 65534, Gid: 65534, Nice: 5, Add: []string{"net_bind_service"}})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if uid := statusField(out, "Uid"); uid != "65534\t65534\t65534\t65534" {
		t.Errorf("Uid line %q, want 65534 everywhere", uid)
	}
	amb, _ := strconv.ParseUint(statusField(out, "CapAmb"), 16, 64)
	if amb != 1<<10 {
		t.Errorf("CapAmb %#x, want only net_bind_service (bit 10)", amb)
	}
	if !strings.Contains(out, "nice=5\n") || !strings.Contains(out, "\n/tmp\n") {
		t.Errorf("nice or working directory not applied:\n%s", out)
	}
}

func TestDropFromBoundingSet(t *testing.T) {
	requireRoot(t)
	_, code, out := run(t, Spec{Path: "/bin/cat", Args: []string{"cat", "/proc/self/status"}, Drop: []string{"CAP_NET_RAW"}})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	bnd, _ := strconv.ParseUint(statusField(out, "CapBnd"), 16, 64)
	eff, _ := strconv.ParseUint(statusField(out, "CapEff"), 16, 64)
	if bnd&(1<<13) != 0 || eff&(1<<13) != 0 || bnd&(1<<12) == 0 {
		t.Errorf("CapBnd %#x CapEff %#x: want net_raw (13) gone, net_admin (12) kept", bnd, eff)
	}
}

func TestExecFailureIsReported(t *testing.T) {
	requireRoot(t)
	_, err := Start(Spec{Path: "/nonexistent/prog", Args: []string{"prog"}}, func(int) error { return nil }, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "no such file") || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Start of a missing program: %v, want the exec error with ENOENT", err)
	}
	if _, err := Start(Spec{Path: "/bin/true", Args: []string{"true"}, Add: []string{"fly"}}, func(int) error { return nil }, nil, nil); err == nil {
		t.Fatal("unknown capability accepted")
	}
}

func TestLookPath(t *testing.T) {
	if p, err := lookPath("sh", []string{"PATH=/nonexistent:/bin"}); err != nil || p != "/bin/sh" {
		t.Fatalf("lookPath(sh) = %q, %v", p, err)
	}
	if _, err := lookPath("no-such-program-here", nil); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("lookPath of a missing program: %v, want ENOENT", err)
	}
	if _, err := lookPath("/etc/passwd", nil); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("lookPath of a non-executable file: %v, want EACCES", err)
	}
	if n, err := CapName("CAP_SYS_ADMIN"); err != nil || n != "sys_admin" {
		t.Fatalf("CapName = %q, %v", n, err)
	}
}

// The directory and the program are reached with the agent's rights, not
// the daemon's: a file behind a 0700 directory stays out of nobody's reach,
// as it would in nobody's own shell.
func TestPathsAfterPrivilegeDrop(t *testing.T) {
	requireRoot(t)
	top := t.TempDir()
	os.Chmod(top, 0755)
	secret := filepath.Join(top, "secret")
	sub := filepath.Join(secret, "sub")
	if err := os.MkdirAll(sub, 0755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sub, "f"), []byte("PRIVATE\n"), 0644)
	os.WriteFile(filepath.Join(sub, "prog"), []byte("#!/bin/sh\necho ran\n"), 0755)
	os.Chmod(secret, 0700)
	nobody := func(s Spec) error {
		s.Uid, s.Gid = 65534, 65534
		s.Env = []string{"PATH=/usr/bin:/bin"}
		_, err := Start(s, func(int) error { return nil }, nil, nil)
		return err
	}
	if err := nobody(Spec{Path: "cat", Args: []string{"cat", "f"}, Dir: sub}); !errors.Is(err, syscall.EACCES) {
		t.Errorf("nobody entered a directory behind a 0700 one: %v, want EACCES", err)
	}
	if err := nobody(Spec{Path: filepath.Join(sub, "prog"), Args: []string{"prog"}}); !errors.Is(err, syscall.EACCES) {
		t.Errorf("nobody ran a program behind a 0700 directory: %v, want EACCES", err)
	}
	// Root, whose directory it is, gets there; relative names resolve in Dir.
	_, code, out := run(t, Spec{Path: "./prog", Args: []string{"prog"}, Dir: sub})
	if code != 0 || out != "ran\n" {
		t.Fatalf("root running ./prog in %s: exit %d, %q", sub, code, out)
	}
}

// TestStartRefusedWithoutShim: a program whose main did not call
// MaybeShim gets ErrNoShim from Start, and no process: the shim would
// have been that program's own main.
func TestStartRefusedWithoutShim(t *testing.T) {
	shimReady.Store(false)
	defer shimReady.Store(true)
	placed := false
	p, err := Start(Spec{Path: "/bin/true", Args: []string{"true"}}, func(int) error { placed = true; return nil }, nil, nil)
	if !errors.Is(err, ErrNoShim) || p != nil || placed {
		t.Fatalf("Start without MaybeShim: %v, process %v, placed %v; want ErrNoShim and nothing started", err, p, placed)
	}
}
