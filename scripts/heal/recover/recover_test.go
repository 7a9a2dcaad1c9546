package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"aiosfs/internal/testutil"
	"aiosfs/scripts/heal/faults"
)

// TestRecoverRound runs the evaluation as `make eval` does, one round of
// 15 s, and checks what its report says a user would see: a row for
// every fault and supervisor; the baseline at systemd's semantics (a hang
// is never restarted without a watchdog and is with one; a crash loop
// gets the initial start and 4 restarts within the 10 s start limit, then
// stays down); the daemon restarting the crash and the hang (the crash
// within the round, the hang by its missed heartbeats); and nothing of
// its own left behind: no cgroup under its prefix, no mount, no process.
func TestRecoverRound(t *testing.T) {
	testutil.RequireFUSE(t, "the evaluation mounts the daemon's tree and makes memory cgroups")
	_, err := faults.OwnMemCgroup()
	testutil.RequireSupport(t, "the v1 memory controller (the programs' memory limits)", err)
	bin := filepath.Join(t.TempDir(), "recover")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-rounds", "1", "-secs", "15", "-v")
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	rows := map[string]map[string][]string{} // scenario -> supervisor -> columns
	var cur string
	for _, l := range strings.Split(out, "\n") {
		if name, _, ok := strings.Cut(l, ": "); ok && !strings.HasPrefix(l, " ") {
			cur = name
			rows[cur] = map[string][]string{}
			continue
		}
		if l == "all faults" {
			cur = "all"
			rows[cur] = map[string][]string{}
			continue
		}
		f := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(l), -1)
		if cur != "" && len(f) == 9 {
			rows[cur][f[0]] = f
		}
	}
	for _, sc := range append(scenarios, scenario{name: "all"}) {
		for _, sup := range supervisors {
			if rows[sc.name][sup] == nil {
				t.Errorf("no row for %s under %s in:\n%s", sc.name, sup, out)
			}
		}
	}
	if t.Failed() {
		return
	}
	col := func(sc, sup string, i int) string { return rows[sc][sup][i] }
	const up, restarts = 1, 3
	for _, c := range []struct{ sc, sup, up, restarts string }{
		{"hang", "systemd", "0/1", "0"},
		{"hang", "systemd+wd", "1/1", "1"},
		{"hang", "aiosfs", "1/1", "1"},
		{"crashloop", "systemd", "0/1", "4"},
		{"crash", "aiosfs", "1/1", "1"},
		{"crash", "systemd", "1/1", "1"},
	} {
		if col(c.sc, c.sup, up) != c.up || col(c.sc, c.sup, restarts) != c.restarts {
			t.Errorf("%s under %s: up at end %s, restarts %s; want %s and %s\n%s", c.sc, c.sup,
				col(c.sc, c.sup, up), col(c.sc, c.sup, restarts), c.up, c.restarts, out)
		}
	}
	// What it made is gone: cgroups, mounts, its temporary directory.
	b, _ = os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), "heal-recover-") {
		t.Errorf("a heal-recover mount is left:\n%s", b)
	}
	left, _ := filepath.Glob("/sys/fs/cgroup/*/aiosfs-recover-*")
	own, _ := faults.OwnMemCgroup()
	more, _ := filepath.Glob(filepath.Join(own, "aiosfs-recover-*"))
	if left = append(left, more...); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	if tmps, _ := filepath.Glob(filepath.Join(os.TempDir(), "heal-recover-*")); len(tmps) > 0 {
		t.Errorf("temporary directories left: %v", tmps)
	}
}
