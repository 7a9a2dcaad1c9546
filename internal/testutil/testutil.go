// Package testutil holds the rigs the packages' tests share, so that a
// test's preconditions read the same everywhere (containerd's
// RequiresRoot): call them first, and the test skips saying why.
package testutil

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireRoot skips t unless it runs as root; why says what needs it
// ("mounts FUSE and makes cgroups").
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
}

// RequireFiles skips t unless every path exists (/dev/fuse, a helper
// binary the test runs).
func RequireFiles(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s", p)
		}
	}
}

// RequireFUSE is RequireRoot and RequireFiles("/dev/fuse"): a test that
// mounts.
func RequireFUSE(t testing.TB, why string) {
	t.Helper()
	RequireRoot(t, why)
	RequireFiles(t, "/dev/fuse")
}

// RequireSupport skips t when err says the machine lacks what the test
// needs (it wraps errors.ErrUnsupported: no privilege, an old kernel),
// naming what; any other error is a failure to find out, and fails t.
// Pass the answer of a package's Supported().
func RequireSupport(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("needs %s, which this machine lacks: %v", what, err)
	}
	t.Fatalf("checking for %s: %v", what, err)
}

// RequireCap skips t unless this process has capability c in its
// effective set (root in a container may lack some); name is its name
// ("CAP_SYS_ADMIN") and why what needs it.
func RequireCap(t testing.TB, c int, name, why string) {
	t.Helper()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatalf("capget: %v", err)
	}
	if data[c/32].Effective&(1<<(uint(c)%32)) == 0 {
		t.Skipf("needs %s: %s", name, why)
	}
}

// RequireIPv6Loopback skips t unless the loopback interface has ::1
// (/proc/net/if_inet6: a kernel without IPv6, or booted with it off,
// has no such line).
func RequireIPv6Loopback(t testing.TB) {
	t.Helper()
	data, err := os.ReadFile("/proc/net/if_inet6")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 6 && f[0] == "00000000000000000000000000000001" {
			return
		}
	}
	t.Skip("needs IPv6 on loopback (::1): this kernel has none")
}
