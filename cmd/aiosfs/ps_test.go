package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"aiosfs/ctl"
)

func TestRecord(t *testing.T) {
	for _, tc := range []struct {
		line, name string
		kv         map[string]string
	}{
		{`agent id=3 name=web state=running exit=- pids=1,2`, "agent", map[string]string{"id": "3", "name": "web", "state": "running", "exit": "-", "pids": "1,2"}},
		{`agent id=4 name="my job" exit="signal KILL" uid=0`, "agent", map[string]string{"id": "4", "name": "my job", "exit": "signal KILL", "uid": "0"}},
		{`cmd argv="sh -c 'while :; do sleep 0.2; done'" dir=-`, "cmd", map[string]string{"argv": "sh -c 'while :; do sleep 0.2; done'", "dir": "-"}},
		{`cmd argv="say \"hi\"\tthere" dir="/a b"`, "cmd", map[string]string{"argv": "say \"hi\"\tthere", "dir": "/a b"}},
		{`time=1795631723.655 cpu=0.024 rss=3317760`, "", map[string]string{"time": "1795631723.655", "cpu": "0.024", "rss": "3317760"}},
		{`agent name="unterminated x=1`, "agent", map[string]string{"name": `"unterminated`, "x": "1"}},
		{``, "", map[string]string{}},
	} {
		name, kv := record(tc.line)
		if name != tc.name || !reflect.DeepEqual(kv, tc.kv) {
			t.Errorf("record(%q) = %q %v, want %q %v", tc.line, name, kv, tc.name, tc.kv)
		}
	}
}

func TestHumanUnits(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0B", "512": "512B", "1024": "1KiB", "1536": "1.5KiB", "598016": "584KiB",
		"67108864": "64MiB", "268435456": "256MiB", "3317760": "3.2MiB", "2147483648": "2GiB",
		"max": "max", "-": "-", "": "-",
	} {
		if got := humanBytes(in); got != want {
			t.Errorf("humanBytes(%q) = %q, want %q", in, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		0: "0s", 45 * time.Second: "45s", 90 * time.Second: "1m30s", 12 * time.Minute: "12m",
		3*time.Hour + 4*time.Minute: "3h4m", 5 * time.Hour: "5h", 50*time.Hour + time.Minute: "2d2h", -time.Second: "0s",
	} {
		if got := humanAge(d); got != want {
			t.Errorf("humanAge(%v) = %q, want %q", d, got, want)
		}
	}
}

// psRowOf on the formats' own examples: running, exited, not yet sampled.
func TestPsRow(t *testing.T) {
	now := time.Unix(1795631721+126, 0) // 125.3 s after started
	status := `agent id=1 name=web state=running pid=9819 pids=9819,9922 uid=1000 gid=1000 prio=0 caps=- weight=- cpumax=max cpuperiod=0.1 cpus=0 memhigh=max memmax=268435456 started=1795631721.683 ended=0 exit=- restarts=0 spawned=1 pidsmax=max
cmd argv="sh -c 'while :; do sleep 0.2; done'" dir=-
cgroup controller=memory path=/sys/fs/cgroup/memory/aiosfs/agent-1
`
	stat := "time=1795631723.655 cpu=0.024 cpu_seconds=0.067 rss=3317760 mem=598016 threads=2 procs=2\n"
	r, ok := psRowOf(status, stat, now)
	want := psRow{"1", "web", "running", "9819", "1000", "0.02", "584KiB", "256MiB", "2m5s", "sh -c 'while :; do sleep 0.2; done'"}
	if !ok || r != want {
		t.Errorf("running: %+v, want %+v", r, want)
	}
	// No memory controller: mem=0, so rss; not sampled yet: "-".
	r, _ = psRowOf(status, strings.Replace(stat, "mem=598016", "mem=0", 1), now)
	if r.Mem != "3.2MiB" {
		t.Errorf("mem=0: MEM %q, want rss 3.2MiB", r.Mem)
	}
	r, _ = psRowOf(status, "", now)
	if r.CPU != "-" || r.Mem != "-" {
		t.Errorf("no sample: CPU %q MEM %q", r.CPU, r.Mem)
	}
	exited := strings.NewReplacer("state=running", "state=exited", "ended=0", "ended=1795631781.683", "memmax=268435456", "memmax=max").Replace(status)
	r, _ = psRowOf(exited, stat, now)
	if r.State != "exited" || r.Pid != "-" || r.CPU != "-" || r.Age != "1m" || r.MemMax != "max" {
		t.Errorf("exited: %+v", r)
	}
	if _, ok := psRowOf("garbage\n", "", now); ok {
		t.Error("a status without an agent record gave a row")
	}
}

// A name or command cannot write control sequences to the terminal.
func TestPsPrintable(t *testing.T) {
	var b strings.Builder
	writeRows(&b, []psRow{{ID: "1", Name: "x\x1b[2Jy", State: "running", Cmd: "a\tb\xff"}})
	if strings.ContainsAny(b.String(), "\x1b\xff") || strings.Count(b.String(), "\t") > 0 {
		t.Errorf("control bytes reach the terminal: %q", b.String())
	}
	if !strings.Contains(b.String(), `x\x1b[2Jy`) {
		t.Errorf("escaped name missing: %q", b.String())
	}
}

func TestCtlPathAndLine(t *testing.T) {
	for in, want := range map[string]string{
		"3": "/agents/3/ctl", "agents/3": "/agents/3/ctl", "/agents/3/ctl": "/agents/3/ctl",
		"/": "/ctl", ".": "/ctl", "ctl": "/ctl", "sched": "/sched/ctl", "mem/ctl": "/mem/ctl",
		"../../etc": "/etc/ctl",
	} {
		if got := ctlPath(in); got != want {
			t.Errorf("ctlPath(%q) = %q, want %q", in, got, want)
		}
	}
	// The words come back out of the ctl tokenizer unchanged.
	for _, words := range [][]string{
		{"memmax", "1G"},
		{"spawn", "w", "--", "sh", "-c", "while :; do sleep 1; done"},
		{"spawn", "q", "--", "echo", `it's "quoted" \ # not a comment`, ""},
	} {
		got, err := ctl.Tokenize(ctlLine(words))
		if err != nil || !reflect.DeepEqual(got, words) {
			t.Errorf("ctlLine(%q) = %q tokenizes to %q (%v)", words, ctlLine(words), got, err)
		}
	}
	if got := ctlLine([]string{"memmax 1G"}); got != "memmax 1G" {
		t.Errorf("one word with blanks is the line: %q", got)
	}
}

// fakeTree is a tree whose log is given.
type fakeTree struct{ log string }

func (f fakeTree) ReadFile(p string) ([]byte, error) {
	if p == "/log" {
		return []byte(f.log), nil
	}
	return nil, syscall.ENOENT
}
func (f fakeTree) List(string) ([]string, error)  { return nil, syscall.ENOENT }
func (f fakeTree) WriteFile(string, []byte) error { return syscall.EINVAL }
func (f fakeTree) Close() error                   { return nil }
func (f fakeTree) String() string                 { return "fake" }

func TestRefusalReason(t *testing.T) {
	start := time.Date(2026, 11, 25, 18, 35, 24, 0, time.UTC)
	ts := func(d time.Duration) string { return start.Add(d).Format("2006-01-02T15:04:05.000Z") }
	log := strings.Join([]string{
		ts(-time.Hour) + ` uid=0 /agents/1/ctl: refused "memmax 12Q": old reason`,
		ts(-time.Hour) + ` uid=0 /agents/1/ctl: refused "cpus 9": cpus 9 not on this machine`,
		ts(0) + ` uid=0 /agents/1/ctl: refused "memmax 12Q": bad size "12Q" (want bytes)`,
		ts(time.Millisecond) + ` uid=0 /agents/2/ctl: refused "kill": other agent`,
		ts(2*time.Millisecond) + ` /agents/99: no such agent 99`,
		ts(3*time.Millisecond) + ` aiosfs 0.1.0 serving: a line: with colons`,
		``,
	}, "\n")
	f := fakeTree{log}
	for _, tc := range []struct{ p, line, want string }{
		{"/agents/1/ctl", "memmax 12Q", `bad size "12Q" (want bytes)`},
		{"/agents/1/ctl", "cpus 9", "cpus 9 not on this machine"}, // exact command, however old
		{"/agents/1/ctl", "weight 0", `bad size "12Q" (want bytes)`},
		{"/agents/99/ctl", "kill", "no such agent 99"},
		{"/agents/7/ctl", "kill", ""},
	} {
		if got := refusalReason(f, tc.p, tc.line, start); got != tc.want {
			t.Errorf("reason for %s %q = %q, want %q", tc.p, tc.line, got, tc.want)
		}
	}
	// Long past refusals of other commands are not this one's reason.
	if got := refusalReason(f, "/agents/1/ctl", "weight 0", start.Add(time.Hour)); got != "" {
		t.Errorf("an hour later: %q", got)
	}
}

func TestPsCtlUsage(t *testing.T) {
	var u strings.Builder
	usage(&u)
	for _, want := range []string{"aiosfs ps [-a] [MOUNT|ADDR]", "aiosfs ctl [-t MOUNT|ADDR] PATH VERB [ARG...]"} {
		if !strings.Contains(u.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
	for _, args := range [][]string{{"-x"}, {"a", "b"}} {
		if err := ps(args, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("ps %q: %v, want a usage error", args, err)
		}
	}
	for _, args := range [][]string{{}, {"3"}, {"-t"}, {"-x", "3", "kill"}} {
		if err := ctlCmd(args); !errors.Is(err, errUsage) {
			t.Errorf("ctl %q: %v, want a usage error", args, err)
		}
	}
	if err := ps([]string{"/nonexistent"}, io.Discard); err == nil {
		t.Error("ps of a missing tree succeeded")
	}
	if err := ps([]string{os.TempDir()}, io.Discard); err == nil || !strings.Contains(err.Error(), "not an aiosfs tree") {
		t.Errorf("ps of a plain directory: %v", err)
	}
}

// aiosfs runs this test binary as the aiosfs command (see TestMain).
func aiosfs(t *testing.T, asUid int, args ...string) (string, int) {
	t.Helper()
	self, _ := os.Executable()
	argv := append([]string{self}, args...)
	if asUid >= 0 {
		u := strconv.Itoa(asUid)
		argv = append([]string{"setpriv", "--reuid=" + u, "--regid=" + u, "--clear-groups"}, argv...)
	}
	c := exec.Command(argv[0], argv[1:]...)
	c.Env = append(os.Environ(), beDaemon+"=1")
	out, _ := c.CombinedOutput()
	return string(out), c.ProcessState.ExitCode()
}

// psLine is the row of agent id in ps output, split into columns.
func psLine(out, id string) []string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 10 && f[0] == id {
			return f
		}
	}
	return nil
}

// TestPsAndCtl drives `aiosfs ps` and `aiosfs ctl` against a real daemon,
// through its FUSE mount and over 9P on its socket, as root and as
// nobody; and scrapes its -metrics-listen endpoint once (the flag's
// wiring; daemon's tests parse the exposition).
func TestPsAndCtl(t *testing.T) {
	requireRoot(t)
	top, err := os.MkdirTemp("", "aiosfs-ps-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(top, 0755)
	t.Cleanup(func() { os.RemoveAll(top) })
	mount, state := filepath.Join(top, "aios"), filepath.Join(top, "state")
	prefix := fmt.Sprintf("aiosfs-ps-%d", os.Getpid())
	metricsAddr := freeLoopbackPort(t)
	d := startDaemon(t, mount, state, prefix, "-metrics-listen", metricsAddr)
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.term()
		}
		if left := cgroupsLeft(prefix); len(left) > 0 {
			t.Errorf("cgroups left behind: %v", left)
		}
	})
	sock := "unix!" + filepath.Join(state, "9p.sock")

	if out, rc := d.sh(`echo 'spawn web memmax=64M -- sh -c "while :; do sleep 0.2; done"' > ctl && echo 'spawn short -- true' > ctl && echo 'spawn nob user=nobody -- sleep 600' > ctl`); rc != 0 {
		t.Fatalf("spawn: %q\n%s", out, d.out)
	}
	d.waitFor("web sampled and short exited", func() bool {
		return strings.Contains(d.read("agents/1/stat"), "procs=") && field(d.read("agents/2/status"), "state") == "exited"
	})
	webPid := field(d.read("agents/1/status"), "pid")

	for _, where := range []string{mount, sock, filepath.Join(state, "9p.sock")} {
		out, rc := aiosfs(t, -1, "ps", where)
		if rc != 0 {
			t.Fatalf("ps %s: rc %d\n%s", where, rc, out)
		}
		if !regexp.MustCompile(`^ID +NAME +STATE +PID +UID +CPU +MEM +MEMMAX +AGE +CMD\n`).MatchString(out) {
			t.Errorf("ps %s: header:\n%s", where, out)
		}
		web := psLine(out, "1")
		if web == nil || web[1] != "web" || web[2] != "running" || web[3] != webPid || web[4] != "0" || web[7] != "64MiB" ||
			!strings.HasSuffix(web[6], "B") || !regexp.MustCompile(`^\d+s$`).MatchString(web[8]) ||
			!strings.Contains(out, "  sh -c 'while :; do sleep 0.2; done'\n") {
			t.Errorf("ps %s: agent 1 row %q\n%s", where, web, out)
		}
		if nob := psLine(out, "3"); nob == nil || nob[4] != "65534" || nob[7] != "max" {
			t.Errorf("ps %s: agent 3 row %q", where, nob)
		}
		if psLine(out, "2") != nil {
			t.Errorf("ps %s shows the exited agent without -a:\n%s", where, out)
		}
		out, _ = aiosfs(t, -1, "ps", "-a", where)
		if short := psLine(out, "2"); short == nil || short[2] != "exited" || short[3] != "-" {
			t.Errorf("ps -a %s: agent 2 row %q\n%s", where, short, out)
		}
	}
	// Anyone may read status and stat: nobody's ps over 9P sees root's agent.
	if out, rc := aiosfs(t, 65534, "ps", sock); rc != 0 || psLine(out, "1") == nil {
		t.Errorf("ps as nobody over 9P: rc %d\n%s", rc, out)
	}

	memCg := cgroupPath(d.read("agents/1/status"), "memory")
	// ctl through the mount (a path in it), over 9P (-t), by number.
	for _, args := range [][]string{
		{"ctl", filepath.Join(mount, "agents/1/ctl"), "memmax", "80M"},
		{"ctl", "-t", sock, "agents/1", "memmax", "96M"},
		{"ctl", "-t", mount, "1", "memmax 100M"},
	} {
		if out, rc := aiosfs(t, -1, args...); rc != 0 || out != "" {
			t.Errorf("%q: rc %d %q", args, rc, out)
		}
	}
	if memCg != "" {
		if got := kernel(t, memCg, "memory.limit_in_bytes"); got != "104857600" {
			t.Errorf("after the ctl writes memory.limit_in_bytes = %s, want 100M", got)
		}
	}
	// A spawn's argv passes through unchanged.
	argv := []string{"sh", "-c", "sleep 600; echo 'done' \"#\""}
	if out, rc := aiosfs(t, -1, append([]string{"ctl", "-t", sock, "/", "spawn", "quoted", "--"}, argv...)...); rc != 0 {
		t.Fatalf("ctl spawn: rc %d %q", rc, out)
	}
	st := d.read("agents/4/status")
	if c := records(st, "cmd"); len(c) == 0 {
		t.Errorf("agent 4 has no cmd:\n%s", st)
	} else if got, err := ctl.Tokenize(c[0]["argv"]); err != nil || !reflect.DeepEqual(got, argv) {
		t.Errorf("spawned argv %q, want %q (%v)", got, argv, err)
	}

	// Refusals: the errno and the reason from log.
	for _, tc := range []struct {
		uid  int
		args []string
		want string
	}{
		{-1, []string{"ctl", filepath.Join(mount, "agents/1/ctl"), "memmax", "12Q"}, `invalid argument (errno 22): bad size "12Q"`},
		{-1, []string{"ctl", "-t", sock, "1", "memmax", "12Q"}, `invalid argument (errno 22): bad size "12Q"`},
		{-1, []string{"ctl", "-t", sock, "99", "kill"}, "no such file or directory (errno 2): no such agent 99"},
		{-1, []string{"ctl", "-t", mount, "1", "bogus"}, "unknown control message: bogus"},
		{65534, []string{"ctl", "-t", sock, "1", "kill"}, `/agents/1/ctl: "kill": permission denied (errno 13)`},
		{65534, []string{"ctl", "-t", sock, "3", "cap", "+net_admin"}, "operation not permitted (errno 1): "},
		{65534, []string{"ctl", "-t", mount, "/", "spawn", "x", "user=root", "--", "true"}, "operation not permitted (errno 1): "},
	} {
		out, rc := aiosfs(t, tc.uid, tc.args...)
		if rc != 1 || !strings.HasPrefix(out, "aiosfs ctl: ") || !strings.Contains(out, tc.want) || strings.Count(out, "\n") != 1 {
			t.Errorf("%q as %d: rc %d %q, want one line with %q", tc.args, tc.uid, rc, out, tc.want)
		}
	}
	if field(d.read("agents/1/status"), "state") != "running" || field(d.read("agents/1/status"), "memmax") != "104857600" {
		t.Errorf("a refused ctl changed agent 1:\n%s", d.read("agents/1/status"))
	}

	// -metrics-listen: the exposition, over HTTP.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v\n%s", err, d.out)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `aiosfs_agent_memory_max_bytes{agent="1",name="web"} 1.048576e+08`) {
		t.Errorf("scrape lacks agent 1's memmax:\n%s", body)
	}

	d.term()
	if _, err := http.Get("http://" + metricsAddr + "/metrics"); err == nil {
		t.Error("metrics endpoint answers after the daemon stopped")
	}
}

// freeLoopbackPort is a loopback address no one listens on now.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
