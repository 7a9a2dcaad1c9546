package fusefs

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"aiosfs/fs"
	"aiosfs/fs/fstest"
)

// sh runs a shell script in dir as a user would, returning what the user
// sees. It is bash, the shell an operator types into: Debian's /bin/sh
// (dash) reports every failed write of its builtin echo as "I/O error",
// whatever the errno, so `echo bogus > ctl` could not show EINVAL. The shell changes into dir itself: with cmd.Dir, Go's forkExec
// would chdir between vfork and exec, and a FUSE request from there to a
// server in this same process deadlocks (the vforking thread holds its P
// in the kernel, so a garbage collection's stop-the-world never completes
// and no goroutine answers).
func sh(t *testing.T, dir, script string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command("bash", "-c", `cd "$1" || exit; `+script, "bash", dir)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// shOK runs script and fails the test unless it succeeds.
func shOK(t *testing.T, dir, script string) string {
	t.Helper()
	out, errOut, err := sh(t, dir, script)
	if err != nil {
		t.Fatalf("%s: %v\nstderr: %s", script, err, errOut)
	}
	return out
}

// shFails runs script and fails the test unless it fails with wantErr on
// stderr.
func shFails(t *testing.T, dir, script, wantErr string) {
	t.Helper()
	out, errOut, err := sh(t, dir, script)
	if err == nil || !strings.Contains(errOut, wantErr) {
		t.Fatalf("%s: err %v, stdout %q, stderr %q; want failure saying %q", script, err, out, errOut, wantErr)
	}
}

func TestShell(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	tr := fstest.NewTree()
	dir := mountTree(t, tr.Root)

	if got := shOK(t, dir, "cat value"); got != "\n" {
		t.Errorf("cat value before any write = %q, want %q", got, "\n")
	}
	if got := shOK(t, dir, `echo "echo hi" > ctl; cat value`); got != "hi\n" {
		t.Errorf(`after echo "echo hi" > ctl, cat value = %q, want "hi\n"`, got)
	}
	if got := shOK(t, dir, "cat ctl"); got != "echo TEXT\nmk NAME\nrm NAME\n" {
		t.Errorf("cat ctl = %q, want the verb table", got)
	}
	// No newline: the line runs when the shell closes the file (FLUSH).
	if got := shOK(t, dir, `printf "echo tail" > ctl; cat value`); got != "tail\n" {
		t.Errorf("after a write without newline, cat value = %q, want %q", got, "tail\n")
	}

	// ls -ln: numeric owners, so the test does not depend on /etc/passwd.
	want := map[string]string{
		"ctl":    "-rw-r--r-- 0 0",
		"value":  "-r--r--r-- 0 0",
		"big":    "-r--r--r-- 0 0",
		"events": "-r--r--r-- 0 0",
		"owned":  "drwxr-xr-x 1000 1000",
		"dyn":    "dr-xr-xr-x 0 0",
		"README": "-r--r--r-- 0 0",
	}
	ls := shOK(t, dir, "ls -ln")
	t.Logf("ls -ln:\n%s", ls)
	for _, line := range strings.Split(strings.TrimSpace(ls), "\n")[1:] { // after "total 0"
		f := strings.Fields(line)
		if len(f) < 9 {
			t.Fatalf("ls -ln line %q", line)
		}
		name := f[len(f)-1]
		got := strings.Join([]string{f[0], f[2], f[3]}, " ")
		if got != want[name] || f[4] != "0" {
			t.Errorf("ls -ln shows %q, want mode and owners %q and size 0", line, want[name])
		}
		delete(want, name)
	}
	if len(want) > 0 {
		t.Errorf("ls -ln did not show %v:\n%s", want, ls)
	}
	// Inode numbers are the model's identities.
	if got, want := shOK(t, dir, "stat -c %i owned/ctl"), fmt.Sprintln(fs.PathID("/owned/ctl")); got != want {
		t.Errorf("inode of owned/ctl = %s, want fs.PathID = %s", got, want)
	}

	shFails(t, dir, "echo bogus > ctl", "Invalid argument")
	shFails(t, dir, "echo rm nothere > ctl", "No such file or directory")
	shFails(t, dir, "echo x > value", "Permission denied")
	shFails(t, dir, "cat nothere", "No such file or directory")
	if got := shOK(t, dir, "cat value"); got != "tail\n" {
		t.Errorf("rejected commands changed value to %q", got)
	}

	// Other users: the model checks the caller the kernel reports.
	as := func(uid int, script string) string {
		return fmt.Sprintf("setpriv --reuid=%d --regid=%d --clear-groups sh -c '%s'", uid, uid, script)
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("no setpriv (util-linux) to act as another user")
	}
	shFails(t, dir, as(65534, `echo "echo x" > owned/ctl`), "Permission denied")
	shFails(t, dir, as(65534, "cat owned/secret"), "Permission denied")
	// access(2) agrees with open.
	if got := shOK(t, dir, as(65534, "test -w owned/ctl || echo no; test -r value && echo yes; test -w ctl || echo no")); got != "no\nyes\nno\n" {
		t.Errorf("test -w/-r as nobody: %q, want no yes no", got)
	}
	if got := shOK(t, dir, "cd owned && test -w ctl && echo yes"); got != "yes\n" {
		t.Errorf("root: cd owned and test -w ctl: %q", got)
	}
	if got := shOK(t, dir, as(65534, "cat value")); got != "tail\n" {
		t.Errorf("nobody reads value = %q, want %q", got, "tail\n")
	}
	if got := shOK(t, dir, as(fstest.OwnerUid, `echo "echo mine" > owned/ctl; cat owned/secret value`)); got != "s3cret\nmine\n" {
		t.Errorf("owner writes owned/ctl and reads owned/secret, value: %q", got)
	}
}
