package main

// End-to-end tests: the real daemon (this test binary re-executed as
// aiosfs), a real FUSE mount driven by bash, real cgroups checked in the
// kernel's own files, diod's 9P clients on the daemon's socket, and a
// SIGKILL of the daemon followed by a restart.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"aiosfs/ctl"
	"aiosfs/hal/spawn"
	"aiosfs/internal/testutil"
)

const beDaemon = "AIOSFS_TEST_BE_DAEMON"

func TestMain(m *testing.M) {
	spawn.MaybeShim()
	if os.Getenv(beDaemon) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// daemon is one aiosfs process under test.
type testDaemon struct {
	t      *testing.T
	mount  string
	state  string
	prefix string
	cmd    *exec.Cmd
	out    *syncBuffer
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func requireRoot(t *testing.T) {
	t.Helper()
	testutil.RequireFUSE(t, "mounts FUSE and makes cgroups")
}

func startDaemon(t *testing.T, mount, state, prefix string, extra ...string) *testDaemon {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d := &testDaemon{t: t, mount: mount, state: state, prefix: prefix, out: &syncBuffer{}}
	d.cmd = exec.Command(self, append([]string{"serve", "-mount", mount, "-state", state, "-cgroup-prefix", prefix, "-interval", "200ms", "-grace", "1s"}, extra...)...)
	d.cmd.Env = append(os.Environ(), beDaemon+"=1")
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	// If this test dies, the daemon shuts down cleanly with it.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.waitFor("the tree to be served", func() bool {
		_, err := os.Stat(filepath.Join(mount, "version"))
		return err == nil
	})
	return d
}

func (d *testDaemon) waitFor(what string, ok func() bool) {
	d.t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out waiting for %s; daemon said:\n%s", what, d.out)
		}
	}
}

// sh runs a bash script in the mount point and returns stdout+stderr and
// the exit status. bash, not dash: dash reports every failed echo as an
// I/O error instead of the errno the tree returned.
func (d *testDaemon) sh(script string, asUid ...int) (string, int) {
	d.t.Helper()
	args := []string{"bash", "-c", "cd " + d.mount + " && " + script}
	if len(asUid) == 1 {
		u := strconv.Itoa(asUid[0])
		args = append([]string{"setpriv", "--reuid=" + u, "--regid=" + u, "--clear-groups"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

func (d *testDaemon) read(p string) string {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.mount, p))
	if err != nil {
		d.t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

// field returns key's value in the first line of text that has it.
// field is the value of key in text's records (ctl.Field).
func field(text, key string) string {
	v, _ := ctl.Field(text, key)
	return v
}

// cgroupPath returns the agent's directory for controller from status.
func cgroupPath(status, controller string) string {
	m := regexp.MustCompile(`(?m)^cgroup controller=` + controller + ` path=(\S+)$`).FindStringSubmatch(status)
	if m == nil {
		return ""
	}
	return m[1]
}

func kernel(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatalf("kernel file: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func (d *testDaemon) kill9() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
}

func (d *testDaemon) term() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			d.t.Errorf("daemon exit: %v\n%s", err, d.out)
		}
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		d.t.Fatalf("daemon did not stop on SIGTERM:\n%s", d.out)
	}
}

func cgroupsLeft(prefix string) []string {
	var left []string
	filepath.WalkDir("/sys/fs/cgroup", func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		if strings.HasPrefix(e.Name(), prefix) {
			left = append(left, p)
			return filepath.SkipDir
		}
		return nil
	})
	return left
}

func TestEndToEnd(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("setpriv (util-linux) is needed: run scripts/install-deps.sh")
	}
	// Not under t.TempDir(), whose parent is 0700: other users' shells
	// must reach the mount point.
	top, err := os.MkdirTemp("", "aiosfs-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(top, 0755)
	t.Cleanup(func() { os.RemoveAll(top) })
	mount := filepath.Join(top, "aios")
	state := t.TempDir()
	prefix := fmt.Sprintf("aiosfs-e2e-%d", os.Getpid())
	d := startDaemon(t, mount, state, prefix)
	var agentPids []int
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.term()
		}
		for _, p := range agentPids { // only if the daemon failed to stop them
			syscall.Kill(p, syscall.SIGKILL)
		}
		if left := cgroupsLeft(prefix); len(left) > 0 {
			t.Errorf("cgroups left behind: %v", left)
		}
	})

	// --- spawn from the shell, checked in the kernel's files ---
	out, rc := d.sh(`echo 'spawn web memmax=64M cpus=0 cpumax=0.5 -- sleep 600' > ctl && ls -l agents/1 && cat agents/1/status`)
	if rc != 0 {
		t.Fatalf("spawn: rc %d\n%s\n%s", rc, out, d.out)
	}
	for _, want := range []string{"-rw-r--r-- 1 root root 0", " ctl\n", " status\n", " stat\n", " history\n", " events\n", "agent id=1 name=web state=running"} {
		if !strings.Contains(out, want) {
			t.Errorf("ls -l / status lacks %q:\n%s", want, out)
		}
	}
	status := d.read("agents/1/status")
	pid, _ := strconv.Atoi(field(status, "pid"))
	agentPids = append(agentPids, pid)
	mem, cpu, cpuset, freezer := cgroupPath(status, "memory"), cgroupPath(status, "cpu"), cgroupPath(status, "cpuset"), cgroupPath(status, "freezer")
	if mem == "" || cpu == "" || cpuset == "" || freezer == "" {
		t.Fatalf("status lacks cgroup paths (this test expects the v1 host it was written on):\n%s", status)
	}
	if procs := kernel(t, mem, "cgroup.procs"); procs != strconv.Itoa(pid) {
		t.Errorf("cgroup.procs = %q, want the leader %d", procs, pid)
	}
	if got := kernel(t, mem, "memory.limit_in_bytes"); got != "67108864" {
		t.Errorf("memory.limit_in_bytes = %s", got)
	}
	if got := kernel(t, cpu, "cpu.cfs_quota_us"); got != "50000" {
		t.Errorf("cpu.cfs_quota_us = %s", got)
	}
	if got := kernel(t, cpuset, "cpuset.cpus"); got != "0" {
		t.Errorf("cpuset.cpus = %s", got)
	}

	// --- verbs and the events stream ---
	ev := exec.Command("cat", filepath.Join(mount, "agents/1/events.follow"))
	ev.WaitDelay = 5 * time.Second
	var evOut syncBuffer
	ev.Stdout = &evOut
	ev.Start()
	time.Sleep(300 * time.Millisecond) // let cat open the stream before the verbs
	out, rc = d.sh(`echo freeze > agents/1/ctl && cat ` + freezer + `/freezer.state && echo thaw > agents/1/ctl && cat ` + freezer + `/freezer.state && echo 'memhigh 32M' > agents/1/ctl && echo 'cpumax 0.25' > agents/1/ctl`)
	if rc != 0 || out != "FROZEN\nTHAWED\n" {
		t.Errorf("freeze/thaw: rc %d %q", rc, out)
	}
	if got := kernel(t, cpu, "cpu.cfs_quota_us"); got != "25000" {
		t.Errorf("after cpumax 0.25: cpu.cfs_quota_us = %s", got)
	}
	// A shorter time slice keeps the share: 5ms of every 20ms.
	if out, rc := d.sh(`echo 'cpuperiod 20ms' > agents/1/ctl`); rc != 0 {
		t.Errorf("cpuperiod 20ms: rc %d %q", rc, out)
	}
	if q, p := kernel(t, cpu, "cpu.cfs_quota_us"), kernel(t, cpu, "cpu.cfs_period_us"); q != "5000" || p != "20000" {
		t.Errorf("after cpuperiod 20ms: cpu.cfs_quota_us = %s, cpu.cfs_period_us = %s", q, p)
	}
	d.waitFor("events to show freeze and thaw", func() bool {
		return strings.Contains(evOut.String(), "kind=freeze agent=1") && strings.Contains(evOut.String(), "kind=thaw agent=1")
	})
	ev.Process.Kill()
	ev.Wait()

	// --- clone: open allocates, read gives N, the same handle is its ctl ---
	out, rc = d.sh(`exec 3<>clone; read n <&3; echo "exec memmax=32M -- sleep 600" >&3; exec 3>&-; echo $n; n2=$(cat clone); echo 'exec -- sleep 600' > agents/$n2/ctl; echo $n2`)
	if rc != 0 || out != "2\n3\n" {
		t.Fatalf("clone: rc %d %q\n%s", rc, out, d.read("log"))
	}
	for _, n := range []string{"2", "3"} {
		st := d.read("agents/" + n + "/status")
		if field(st, "state") != "running" {
			t.Errorf("cloned agent %s: %s", n, st)
		}
		p, _ := strconv.Atoi(field(st, "pid"))
		agentPids = append(agentPids, p)
	}

	// --- bad input: the right errno, nothing changes, the reason in log ---
	for _, tc := range []struct{ script, stderr, logged string }{
		{`echo bogus > ctl`, "Invalid argument", "unknown control message: bogus"},
		{`echo memmax > agents/1/ctl`, "Invalid argument", "bad # args to command: memmax"},
		{`echo 'memmax 12Q' > agents/1/ctl`, "Invalid argument", `bad size "12Q"`},
		{`echo 'cpuperiod 2s' > agents/1/ctl`, "Invalid argument", "cpuperiod 2s not in 1ms..1s"},
		{`echo 'merge 99' > agents/1/ctl`, "No such file or directory", "no such agent 99"},
		{`echo kill > agents/99/ctl`, "No such file or directory", "/agents/99: no such agent 99"},
		{`echo x > version`, "Permission denied", "/version: refused \"write\": file is read-only"},
	} {
		out, rc := d.sh(tc.script)
		if rc == 0 || !strings.Contains(out, tc.stderr) {
			t.Errorf("%s: rc %d %q, want failure with %q", tc.script, rc, out, tc.stderr)
		}
		if log := d.read("log"); !strings.Contains(log, tc.logged) {
			t.Errorf("%s: log lacks %q:\n%s", tc.script, tc.logged, log)
		}
	}
	if got := kernel(t, mem, "memory.limit_in_bytes"); got != "67108864" {
		t.Errorf("refused writes changed memory.limit_in_bytes to %s", got)
	}

	// --- ownership: an agent's directory is its uid's ---
	out, rc = d.sh(`echo 'spawn nob user=nobody -- sleep 600' > ctl && ls -ln agents/4 | grep ' ctl$'`)
	if rc != 0 || !strings.HasPrefix(out, "-rw-r--r-- 1 65534 65534 0") {
		t.Fatalf("agent run as nobody: rc %d %q", rc, out)
	}
	p4, _ := strconv.Atoi(field(d.read("agents/4/status"), "pid"))
	agentPids = append(agentPids, p4)
	if out, rc = d.sh(`echo 'memhigh 16M' > agents/4/ctl`, 65534); rc != 0 {
		t.Errorf("owner's write refused: %q", out)
	}
	if out, rc = d.sh(`echo 'cap +net_admin' > agents/4/ctl`, 65534); rc == 0 || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("owner changed its own capabilities: rc %d %q", rc, out)
	}
	if out, rc = d.sh(`echo kill > agents/1/ctl`, 1000); rc == 0 || !strings.Contains(out, "Permission denied") {
		t.Errorf("non-owner write to root's agent: rc %d %q", rc, out)
	}
	if out, rc = d.sh(`echo kill > agents/4/ctl`, 1000); rc == 0 || !strings.Contains(out, "Permission denied") {
		t.Errorf("non-owner write to nobody's agent: rc %d %q", rc, out)
	}
	if field(d.read("agents/1/status"), "state") != "running" || field(d.read("agents/4/status"), "state") != "running" {
		t.Error("a refused kill ended an agent")
	}
	if out, rc = d.sh(`cat agents/1/status`, 1000); rc != 0 || !strings.Contains(out, "name=web") {
		t.Errorf("others may read: rc %d %q", rc, out)
	}

	// --- 9P: diod's real clients and our own on the daemon's socket ---
	sock := filepath.Join(state, "9p.sock")
	if _, err := exec.LookPath("diodcat"); err == nil || fileExists("/usr/sbin/diodcat") {
		ls, err := exec.Command("/usr/sbin/diodls", "-s", sock, "-a", "/").CombinedOutput()
		if err != nil || !strings.Contains(string(ls), "agents\n") || !strings.Contains(string(ls), "metrics\n") {
			t.Errorf("diodls: %v %q", err, ls)
		}
		cat, err := exec.Command("/usr/sbin/diodcat", "-s", sock, "-a", "/", "agents/1/status").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(cat), "agent id=1 name=web ") {
			t.Errorf("diodcat: %v %q", err, cat)
		}
	} else {
		t.Error("diod's clients are missing: run scripts/install-deps.sh")
	}
	self, _ := os.Executable()
	c := exec.Command(self, "cat", "unix!"+sock, "/agents/1/status")
	c.Env = append(os.Environ(), beDaemon+"=1")
	if b, err := c.CombinedOutput(); err != nil || !strings.HasPrefix(string(b), "agent id=1 name=web ") {
		t.Errorf("aiosfs cat over 9P: %v %q", err, b)
	}
	c = exec.Command(self, "write", sock, "/agents/1/ctl", "memmax", "lots")
	c.Env = append(os.Environ(), beDaemon+"=1")
	if b, err := c.CombinedOutput(); err == nil || !strings.Contains(string(b), "errno 22") {
		t.Errorf("aiosfs write of a bad size over 9P: %v %q", err, b)
	}

	// --- metrics ---
	d.waitFor("a sample of agent 1", func() bool { return strings.Contains(d.read("agents/1/stat"), "procs=1") })
	metrics := d.read("metrics")
	for _, want := range []string{`aiosfs_agent_memory_max_bytes{agent="1",name="web"} 6.7108864e+07`, `aiosfs_agents{state="running"} 4`, `aiosfs_agent_cpu_period_seconds{agent="1",name="web"} 0.02`, `aiosfs_agent_processes{agent="1",name="web"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// --- kill -9 of the daemon, restart: agents intact ---
	d.kill9()
	d = startDaemon(t, mount, state, prefix)
	st := d.read("agents/1/status")
	if field(st, "state") != "running" || field(st, "pid") != strconv.Itoa(pid) || field(st, "memmax") != "67108864" || field(st, "cpumax") != "0.25" || field(st, "cpuperiod") != "0.02" {
		t.Fatalf("after SIGKILL and restart, agent 1:\n%s", st)
	}
	if procs := kernel(t, mem, "cgroup.procs"); procs != strconv.Itoa(pid) {
		t.Errorf("after restart cgroup.procs = %q", procs)
	}
	if field(d.read("agents/4/status"), "uid") != "65534" {
		t.Error("agent 4 lost its owner")
	}
	// A verb on a re-adopted agent reaches the kernel, and its end is seen
	// (with the kernel's exit status, from the proc connector).
	if out, rc := d.sh(`echo 'memmax 80M' > agents/1/ctl && echo kill > agents/2/ctl`); rc != 0 {
		t.Fatalf("verbs after restart: %q", out)
	}
	if got := kernel(t, mem, "memory.limit_in_bytes"); got != "83886080" {
		t.Errorf("after restart memmax 80M: %s", got)
	}
	d.waitFor("agent 2 to end", func() bool { return field(d.read("agents/2/status"), "state") == "exited" })
	if ex := field(d.read("agents/2/status"), "exit"); ex != "signal KILL" {
		t.Errorf("re-adopted agent killed: exit %q, want signal KILL", ex)
	}

	// --- clean stop: agents stopped, cgroups and mount gone ---
	d.term()
	// The scheduler kept what its predictors learned of the agent.
	if b, err := os.ReadFile(filepath.Join(state, "sched.json.history")); err != nil || !strings.Contains(string(b), `"1":{"samples":[[`) {
		t.Errorf("sched history after a clean stop: %v\n%.200s", err, b)
	}
	if b, _ := os.ReadFile("/proc/mounts"); strings.Contains(string(b), mount) {
		t.Error("mount left after SIGTERM")
	}
	for _, p := range agentPids {
		if syscall.Kill(p, 0) == nil && !zombie(p) {
			t.Errorf("agent process %d still running after the daemon stopped", p)
		}
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}
