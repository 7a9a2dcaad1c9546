package process

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"aiosfs/internal/testutil"
)

// RaiseNofile changes another process's RLIMIT_NOFILE, as
// /proc/PID/limits shows. Within the hard limit: raising that needs
// CAP_SYS_RESOURCE, which a container may not give root.
func TestRaiseNofile(t *testing.T) {
	testutil.RequireRoot(t, "changes another process's limit")
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	old, err := RaiseNofile(pid, 4099)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Max open files") {
			f := strings.Fields(l[25:])
			if f[0] != "4099" {
				t.Fatalf("after RaiseNofile: %q (was %d)", l, old)
			}
			return
		}
	}
	t.Fatalf("no Max open files in %s", b)
}
