package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"aiosfs/fs"
)

func TestLogKeepsTheLastLinesAndCopies(t *testing.T) {
	var copyTo bytes.Buffer
	l := NewLog(3, &copyTo)
	for i := 1; i <= 5; i++ {
		l.Printf("line %d\n", i)
	}
	got := strings.Split(strings.TrimSpace(string(l.Bytes())), "\n")
	if len(got) != 3 || !strings.HasSuffix(got[0], " line 3") || !strings.HasSuffix(got[2], " line 5") {
		t.Fatalf("log keeps %q, want lines 3..5 oldest first", got)
	}
	if n := strings.Count(copyTo.String(), "\n"); n != 5 {
		t.Fatalf("copied %d lines, want all 5", n)
	}
	if !strings.Contains(got[0], "T") || !strings.Contains(got[0], "Z line") {
		t.Fatalf("lines must start with an RFC 3339 UTC time: %q", got[0])
	}
}

// TestLogVisibility is the rule of Log's comment: root reads every line,
// a user the general lines and their own, a NoUid line is root's; stderr
// gets everything.
func TestLogVisibility(t *testing.T) {
	var stderr bytes.Buffer
	l := NewLog(10, &stderr)
	l.Printf("general")
	l.PrintfFor(1000, "alice's refusal")
	l.PrintfFor(1001, "bob's refusal")
	l.PrintfFor(fs.NoUid, "a lookup by someone")
	for uid, want := range map[uint32]string{
		0:        "general,alice's refusal,bob's refusal,a lookup by someone",
		1000:     "general,alice's refusal",
		1001:     "general,bob's refusal",
		65534:    "general",
		fs.NoUid: "general",
	} {
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(string(l.BytesFor(uid))), "\n") {
			_, text, _ := strings.Cut(line, " ")
			got = append(got, text)
		}
		if strings.Join(got, ",") != want {
			t.Errorf("uid %d reads %q, want %q", uid, got, want)
		}
	}
	if n := strings.Count(stderr.String(), "\n"); n != 4 {
		t.Errorf("stderr got %d lines, want all 4", n)
	}
}

func TestClip(t *testing.T) {
	if s := strings.Repeat("a", MaxLoggedCmd); clip(s) != s {
		t.Error("a command of MaxLoggedCmd bytes was cut")
	}
	got := clip(strings.Repeat("a", 1000))
	if want := strings.Repeat("a", MaxLoggedCmd) + "…[+744 bytes]"; got != want {
		t.Errorf("clip of 1000 bytes = %q, want %q", got, want)
	}
	// A cut never splits a character: é is 2 bytes and straddles 256.
	got = clip(strings.Repeat("a", MaxLoggedCmd-1) + strings.Repeat("é", 10))
	if !strings.HasSuffix(got, "a…[+20 bytes]") {
		t.Errorf("clip across a character = %q", got)
	}
}

// ---- through a real FUSE mount, as nobody ----

const nobody = 65534

// fuseDaemon starts a daemon mounted under a directory everyone may
// search, so nobody reaches the mount point. Its agents' cgroups are
// under a prefix of the test's own.
func fuseDaemon(t *testing.T) (*Daemon, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts FUSE, makes cgroups and acts as nobody")
	}
	for _, f := range []string{"/dev/fuse", "/usr/bin/setpriv", "/usr/bin/bash"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("needs %s", f)
		}
	}
	base, err := os.MkdirTemp("", "aiosfs-logtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0755); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(base, "mnt")
	cfg := Config{Mount: mnt, StateDir: filepath.Join(base, "state"), Interval: time.Second, ProcRoot: "/proc",
		CgroupRoot: "/sys/fs/cgroup", Prefix: newPrefix(), Grace: time.Second, GPU: "none"}
	d, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return d, mnt
}

// user runs a bash script as uid (0: root; else through setpriv, with
// that uid and gid and no groups), as an operator would type it. Never
// with cmd.Dir on the mount: see fs/fusefs's sh.
func user(uid int, script string, args ...string) (stdout, stderr string, err error) {
	argv := append([]string{"/usr/bin/bash", "-c", script, "bash"}, args...)
	if uid != 0 {
		argv = append([]string{"/usr/bin/setpriv", fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--clear-groups"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// eventsReader is `cat events` as uid, running until the test ends.
type eventsReader struct {
	cmd *exec.Cmd
	out *syncBuf
}

func readEvents(t *testing.T, uid int, mnt string) *eventsReader {
	t.Helper()
	argv := []string{"/usr/bin/cat", filepath.Join(mnt, "events.follow")}
	if uid != 0 {
		argv = append([]string{"/usr/bin/setpriv", fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--clear-groups"}, argv...)
	}
	r := &eventsReader{cmd: exec.Command(argv[0], argv[1:]...), out: &syncBuf{}}
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cmd.Process.Kill(); r.cmd.Wait() })
	return r
}

// waitFor waits up to 10 s for the reader to have shown want.
func (r *eventsReader) waitFor(t *testing.T, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(r.out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("events reader did not show %q in 10s; it shows:\n%s", want, r.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r.out.String()
}

// TestLogAndEventsAsNobody is the review's defect 5c: root's refused
// `spawn ... env=DB_PASSWORD=hunter2 ...` was in the world-readable log
// and events. Now nobody's `grep hunter2 log` finds nothing, nobody's
// `cat log` and `cat events` show only nobody's own refusals and general
// lines, and root's log and events show the secret redacted.
func TestLogAndEventsAsNobody(t *testing.T) {
	_, mnt := fuseDaemon(t)
	rootEvents := readEvents(t, 0, mnt)
	nobodyEvents := readEvents(t, nobody, mnt)
	// A public event both readers must see, so both are subscribed
	// before the refusals below: published again until they have (a
	// reader that has not opened events yet misses it).
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(rootEvents.out.String(), "kind=interval") ||
		!strings.Contains(nobodyEvents.out.String(), "kind=interval"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("events readers did not start in 10s: root's shows %q, nobody's %q", rootEvents.out, nobodyEvents.out)
		}
		if _, e, err := user(0, `echo 'interval 900ms' > "$1/ctl"`, mnt); err != nil {
			t.Fatalf("interval: %v %s", err, e)
		}
	}

	_, e, err := user(0, `echo 'spawn job env=DB_PASSWORD=hunter2 -- /usr/bin/typo' > "$1/ctl"`, mnt)
	if err == nil || !strings.Contains(e, "No such file or directory") {
		t.Fatalf("root's spawn of a missing binary: %v, stderr %q; want it refused with ENOENT", err, e)
	}
	_, e, err = user(nobody, `echo 'spawn mine env=API_TOKEN=tok123 -- /usr/bin/typo2' > "$1/ctl"`, mnt)
	if err == nil || !strings.Contains(e, "No such file or directory") {
		t.Fatalf("nobody's spawn of a missing binary: %v, stderr %q", err, e)
	}

	// nobody's log: its own refusal and general lines; nothing of root's.
	if out, _, err := user(nobody, `grep hunter2 "$1/log"`, mnt); err == nil || out != "" {
		t.Errorf("nobody's grep hunter2 log found %q (err %v)", out, err)
	}
	out, e, err := user(nobody, `cat "$1/log"`, mnt)
	if err != nil {
		t.Fatalf("nobody's cat log: %v %s", err, e)
	}
	if strings.Contains(out, "typo ") || strings.Contains(out, "uid=0 ") || strings.Contains(out, "DB_PASSWORD") {
		t.Errorf("nobody's log shows root's refusal:\n%s", out)
	}
	if !strings.Contains(out, `uid=65534 /ctl: refused "spawn mine env=API_TOKEN=… -- /usr/bin/typo2"`) || strings.Contains(out, "tok123") {
		t.Errorf("nobody's log does not show nobody's own refusal, redacted:\n%s", out)
	}
	if !strings.Contains(out, " serving: ") {
		t.Errorf("nobody's log lacks the daemon's general lines:\n%s", out)
	}

	// root's log: both refusals, both redacted.
	out, _, _ = user(0, `cat "$1/log"`, mnt)
	if strings.Contains(out, "hunter2") || strings.Contains(out, "tok123") {
		t.Errorf("root's log keeps a secret:\n%s", out)
	}
	for _, want := range []string{`uid=0 /ctl: refused "spawn job env=DB_PASSWORD=… -- /usr/bin/typo"`, "uid=65534 /ctl: refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("root's log lacks %q:\n%s", want, out)
		}
	}

	// events: nobody's reader gets nobody's refusal and, before it in
	// the stream, never root's; root's reader gets both, redacted.
	got := nobodyEvents.waitFor(t, "typo2")
	if strings.Contains(got, "/usr/bin/typo ") || strings.Contains(got, "DB_PASSWORD") || strings.Contains(got, "tok123") {
		t.Errorf("nobody's events show root's refusal or a secret:\n%s", got)
	}
	if !strings.Contains(got, `cmd="spawn mine env=API_TOKEN=… -- /usr/bin/typo2"`) {
		t.Errorf("nobody's events lack its own refusal:\n%s", got)
	}
	got = rootEvents.waitFor(t, "typo2")
	if !strings.Contains(got, `cmd="spawn job env=DB_PASSWORD=… -- /usr/bin/typo"`) || strings.Contains(got, "hunter2") || strings.Contains(got, "tok123") {
		t.Errorf("root's events do not show root's refusal redacted:\n%s", got)
	}
}

// TestNonUTF8NameAsNobody is the review's defect 5d: `printf 'spawn
// \xc3\x28x -- ...' | tee ctl` as nobody made an agent whose name turned
// every read of metrics into EIO. The line is now refused (EINVAL, no
// agent), and metrics survives a bad name that reaches the engine by
// another road (adopt names an agent after the process's comm, which any
// user can set to any bytes; a store written before this check).
func TestNonUTF8NameAsNobody(t *testing.T) {
	d, mnt := fuseDaemon(t)
	_, e, err := user(nobody, `printf 'spawn \xc3\x28x -- /bin/sleep 100\n' > "$1/ctl"`, mnt)
	if err == nil || !strings.Contains(e, "Invalid argument") {
		t.Fatalf("nobody's non-UTF-8 spawn: %v, stderr %q; want EINVAL", err, e)
	}
	if ids := d.Agents.IDs(); len(ids) != 0 {
		t.Fatalf("refused spawn left agents %v", ids)
	}
	log, _, _ := user(nobody, `cat "$1/log"`, mnt)
	if !strings.Contains(log, `refused "spawn \xc3(x -- /bin/sleep 100": control message is not valid UTF-8: byte 0xc3 at offset 6`) {
		t.Errorf("nobody's log does not say why:\n%s", log)
	}

	// Past ctl, the engine refuses it too (adopt names agents after a
	// process's comm, which any user can set to any bytes).
	if _, err := d.Agents.Spawn(fs.Caller{Uid: nobody, Gid: nobody}, []string{"\xc3\x28y", "--", "/bin/sleep", "100"}); fs.Errno(err) != syscall.EINVAL {
		t.Fatalf("engine spawn with a non-UTF-8 name: %v, want EINVAL", err)
	}
	if _, e, err := user(nobody, `cat "$1/metrics"`, mnt); err != nil {
		t.Fatalf("cat metrics: %v %s", err, e)
	}
}

// TestHugeCtlLineAsNobody is the review's defect 3 through the mount: a
// 100 MiB line with no newline, written by nobody in 1 MiB writes that
// go on after each refusal. Each write fails with EMSGSIZE ("Message
// too long"), nothing runs, log holds one clipped line, and the heap of
// this process (the daemon is in it) after a GC stays within a few MiB.
// `dd` stops at the first error and says so.
func TestHugeCtlLineAsNobody(t *testing.T) {
	d, mnt := fuseDaemon(t)
	ctl := filepath.Join(mnt, "ctl")

	// The review's command.
	start := time.Now()
	_, e, err := user(nobody, `head -c 104857600 /dev/zero | tr '\0' B | dd of="$1" bs=1M`, ctl)
	t.Logf("review's dd of a 100 MiB line as nobody: %v in %v", err, time.Since(start))
	if err == nil || !strings.Contains(e, "Message too long") {
		t.Errorf("dd of a 100 MiB line: %v, stderr %q; want it to fail saying Message too long", err, e)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start = time.Now()
	errs, err := writeAs(nobody, ctl, 100, bytes.Repeat([]byte("B"), 1<<20))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("100 MiB line in 1 MiB writes as nobody through FUSE: refused in %v; heap after GC %+d bytes (%d MiB before)", took, growth, before.HeapAlloc>>20)
	for i, err := range errs {
		if !errors.Is(err, syscall.EMSGSIZE) {
			t.Fatalf("write %d: %v, want EMSGSIZE", i, err)
		}
	}
	if growth > 16<<20 {
		t.Errorf("heap grew by %d bytes, want under 16 MiB", growth)
	}
	if ids := d.Agents.IDs(); len(ids) != 0 {
		t.Errorf("agents %v after refused lines", ids)
	}
	out, _, _ := user(0, `cat "$1/log"`, mnt)
	if len(out) > 16<<10 {
		t.Errorf("log is %d bytes after three refused lines, want them clipped", len(out))
	}
	if !strings.Contains(out, `uid=65534 /ctl: refused "BBBB`) || !strings.Contains(out, "…[+65280 bytes]") || !strings.Contains(out, "longer than 65536 bytes") {
		t.Errorf("log does not show a clipped refusal naming the limit:\n%s", out)
	}
}

// writeAs opens path for writing as uid (through setfsuid on a thread of
// its own: the kernel puts the thread's fsuid in each FUSE request) and
// writes buf n times, going on after errors as a careless client would.
func writeAs(uid int, path string, n int, buf []byte) ([]error, error) {
	type result struct {
		errs []error
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: Go ends a locked thread with its goroutine, so
		// the changed credentials die with it.
		runtime.LockOSThread()
		unix.Setfsgid(uid)
		unix.Setfsuid(uid)
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			done <- result{err: err}
			return
		}
		var errs []error
		for i := 0; i < n; i++ {
			_, err := f.Write(buf)
			errs = append(errs, err)
		}
		f.Close()
		done <- result{errs: errs}
	}()
	r := <-done
	return r.errs, r.err
}

// syncBuf collects a child's output while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestKillDashSignal is README item 11: `kill -9` was refused while
// `kill 9`, `kill KILL` and `kill SIGTERM` worked. Every form kill(1)
// takes now works through an agent's ctl, and the exit status names the
// signal from the same table (ctl.SignalName).
func TestKillDashSignal(t *testing.T) {
	d, mnt := fuseDaemon(t)
	for i, form := range []string{"-9", "-KILL", "-SIGTERM", "-15"} {
		if _, e, err := user(0, `echo 'spawn s -- /bin/sleep 100' > "$1/ctl"`, mnt); err != nil {
			t.Fatalf("spawn: %v %s", err, e)
		}
		id := d.Agents.IDs()[i]
		if _, e, err := user(0, fmt.Sprintf(`echo 'kill %s' > "$1/agents/%d/ctl"`, form, id), mnt); err != nil {
			t.Fatalf("kill %s: %v, stderr %q", form, err, e)
		}
		want := `exit="signal KILL"`
		if strings.Contains(form, "TERM") || form == "-15" {
			want = `exit="signal TERM"`
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, _, _ := user(0, fmt.Sprintf(`cat "$1/agents/%d/status"`, id), mnt)
			if strings.Contains(st, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after kill %s, status does not say %q in 10s:\n%s", form, want, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if _, e, err := user(0, `echo 'spawn s -- /bin/sleep 100' > "$1/ctl"; echo 'kill -0' > "$1/agents/5/ctl"`, mnt); err == nil || !strings.Contains(e, "Invalid argument") {
		t.Errorf("kill -0: %v, stderr %q; want EINVAL", err, e)
	}
}
