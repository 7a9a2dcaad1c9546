// Package testutil holds the rigs the packages' tests share, so that a
// test's preconditions read the same everywhere (containerd's
// RequiresRoot): call them first, and the test skips saying why.
package testutil

import (
	"os"
	"testing"
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
