package main

// The trust boundary, tried the way an unprivileged local user and a
// careless root would: each case drives the real daemon through its FUSE
// mount from a real shell (as nobody with setpriv where the attacker is
// unprivileged), and checks the refusal's errno, that nothing changed in
// the kernel's own files, and that nothing leaked. docs/security.md is the
// threat model these cases come from.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const nobody = 65534

// adversaryDaemon starts a daemon whose mount point every user can reach.
func adversaryDaemon(t *testing.T, tag string, extra ...string) (*testDaemon, string) {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("setpriv (util-linux) is needed: run scripts/install-deps.sh")
	}
	top, err := os.MkdirTemp("", "aiosfs-adv-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(top, 0755)
	t.Cleanup(func() { os.RemoveAll(top) })
	prefix := fmt.Sprintf("aiosfs-adv-%s-%d", tag, os.Getpid())
	d := startDaemon(t, filepath.Join(top, "aios"), filepath.Join(top, "state"), prefix, extra...)
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.term()
		}
		if left := cgroupsLeft(prefix); len(left) > 0 {
			t.Errorf("cgroups left behind: %v\n%s", left, d.out)
		}
	})
	return d, top
}

// mustFail runs script (as uid, if given) and wants it to fail with the
// errno's message in its output.
func (d *testDaemon) mustFail(script, errText string, asUid ...int) string {
	d.t.Helper()
	out, rc := d.sh(script, asUid...)
	if rc == 0 || !strings.Contains(out, errText) {
		d.t.Errorf("%s (uid %v): rc %d %q, want a failure with %q", script, asUid, rc, out, errText)
	}
	return out
}

func (d *testDaemon) mustRun(script string, asUid ...int) string {
	d.t.Helper()
	out, rc := d.sh(script, asUid...)
	if rc != 0 {
		d.t.Fatalf("%s (uid %v): rc %d %q\nlog:\n%s", script, asUid, rc, out, d.read("log"))
	}
	return out
}

// agentIDs lists the agents in agents/ now (not its README).
func (d *testDaemon) agentIDs() []string {
	ents, err := os.ReadDir(filepath.Join(d.mount, "agents"))
	if err != nil {
		d.t.Fatal(err)
	}
	var ids []string
	for _, e := range ents {
		if e.Name() != "README" {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

// ownCgroup is the directory of this test process's cgroup for controller.
func ownCgroup(t *testing.T, controller string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) == 3 && parts[1] == controller {
			return filepath.Join("/sys/fs/cgroup", controller, parts[2])
		}
	}
	t.Skipf("no %s cgroup v1 hierarchy here", controller)
	return ""
}

func TestAdoptRefusesWhatMustNeverBeAnAgent(t *testing.T) {
	d, _ := adversaryDaemon(t, "adopt")
	daemonPid := d.cmd.Process.Pid
	// A tree the test owns: a shell whose child sleeps.
	tree := exec.Command("bash", "-c", "sleep 600 & echo $!; wait")
	tree.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stdout, _ := tree.StdoutPipe()
	if err := tree.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-tree.Process.Pid, syscall.SIGKILL); tree.Wait() })
	var child int
	fmt.Fscan(stdout, &child)
	if child == 0 {
		t.Fatal("no child pid")
	}

	d.mustFail(`echo 'adopt 1' > ctl`, "Operation not permitted")
	d.mustFail(fmt.Sprintf(`echo 'adopt %d' > ctl`, daemonPid), "Operation not permitted")
	d.mustFail(fmt.Sprintf(`echo 'adopt %d' > ctl`, os.Getpid()), "Operation not permitted") // the daemon's parent
	d.mustFail(`echo 'adopt 2' > ctl`, "Operation not permitted")                            // kthreadd
	if ids := d.agentIDs(); len(ids) != 0 {
		t.Fatalf("refused adopts made agents %v", ids)
	}
	if b, _ := os.ReadFile("/proc/1/cgroup"); strings.Contains(string(b), "aiosfs-adv") {
		t.Fatalf("PID 1 moved: %s", b)
	}

	// The child alone: exactly that process moves, the shell stays.
	shellBefore, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", tree.Process.Pid))
	d.mustRun(fmt.Sprintf(`echo 'adopt %d kid' > ctl`, child))
	st := d.read("agents/1/status")
	if field(st, "pids") != strconv.Itoa(child) {
		t.Errorf("adopt moved more than the named process: %s", st)
	}
	if after, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", tree.Process.Pid)); string(after) != string(shellBefore) {
		t.Errorf("the parent shell moved too:\n%s", after)
	}
	// Its parent's tree now holds agent 1's process: refused, nothing moves.
	out := d.mustFail(fmt.Sprintf(`echo 'adopt %d tree' > ctl`, tree.Process.Pid), "Device or resource busy")
	if log := d.read("log"); !strings.Contains(log, "holds process") {
		t.Errorf("refusal not explained (%s):\n%s", out, log)
	}
	if ids := d.agentIDs(); len(ids) != 1 {
		t.Errorf("agents after the refused adopt: %v", ids)
	}
	// Released at a clean stop: the child goes back where it came from.
	d.term()
	if after, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", child)); strings.Contains(string(after), "aiosfs-adv") {
		t.Errorf("adopted process not given back at stop:\n%s", after)
	}
}

func TestUnprivilegedSpawnStaysWithinItsLimits(t *testing.T) {
	d, top := adversaryDaemon(t, "spawn")

	// weight=10000 is accepted, but only among nobody's own agents: the
	// user's parent group keeps the default share against everyone else.
	d.mustRun(`echo 'spawn hog weight=10000 -- /bin/sleep 600' > ctl`, nobody)
	st := d.read("agents/1/status")
	cpu := cgroupPath(st, "cpu")
	if !strings.Contains(cpu, "/user-65534/agent-1") {
		t.Fatalf("nobody's agent is not in its user group: %s", st)
	}
	if got := kernel(t, cpu, "cpu.shares"); got != "262144" {
		t.Errorf("agent cpu.shares = %s (weight 10000 within the user group)", got)
	}
	if got := kernel(t, filepath.Dir(cpu), "cpu.shares"); got != "1024" {
		t.Errorf("user group cpu.shares = %s, want the default 1024: nobody raised its share of the host", got)
	}
	d.mustFail(`echo 'prio -5' > agents/1/ctl`, "Operation not permitted", nobody)
	d.mustFail(`echo 'spawn x prio=-1 -- /bin/sleep 1' > ctl`, "Operation not permitted", nobody)
	d.mustFail(`echo 'spawn x user=root -- /bin/sleep 1' > ctl`, "Operation not permitted", nobody)
	d.mustFail(`echo 'spawn x cpumax=0 -- /bin/sleep 1' > ctl`, "Invalid argument", nobody)

	// A caller confined to 30 MiB gets no agent above 30 MiB.
	box := filepath.Join(ownCgroup(t, "memory"), fmt.Sprintf("aiosfs-adv-box-%d", os.Getpid()))
	if err := os.Mkdir(box, 0755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(box) })
	os.WriteFile(filepath.Join(box, "memory.limit_in_bytes"), []byte("31457280"), 0)
	inBox := func(line string) (string, int) {
		script := fmt.Sprintf(`echo $$ > %s/cgroup.procs && exec setpriv --reuid=%d --regid=%d --clear-groups bash -c "echo '%s' > %s/ctl"`, box, nobody, nobody, line, d.mount)
		out, err := exec.Command("bash", "-c", script).CombinedOutput()
		rc := 0
		if err != nil {
			rc = 1
		}
		return string(out), rc
	}
	if out, rc := inBox("spawn esc -- /bin/sleep 600"); rc != 0 {
		t.Fatalf("spawn from the box: %s\n%s", out, d.read("log"))
	}
	if out, rc := inBox("spawn esc2 memmax=1G -- /bin/sleep 600"); rc == 0 || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("memmax above the caller's own limit: %q", out)
	}
	st = d.read("agents/2/status")
	if got := kernel(t, cgroupPath(st, "memory"), "memory.limit_in_bytes"); got != "31457280" {
		t.Errorf("agent spawned from a 30 MiB cgroup has memory.limit_in_bytes %s", got)
	}
	if !strings.Contains(st, "ceiling memmax=31457280") {
		t.Errorf("status does not show the ceiling:\n%s", st)
	}
	d.mustFail(`echo 'memmax max' > agents/2/ctl`, "Operation not permitted", nobody)
	if got := kernel(t, cgroupPath(st, "memory"), "memory.limit_in_bytes"); got != "31457280" {
		t.Errorf("the owner lifted the ceiling: %s", got)
	}

	// Root's quota: nobody may have two agents; the third is refused.
	d.mustFail(`echo 'quota nobody agents=1' > ctl`, "Operation not permitted", nobody) // root's verb
	d.mustRun(`echo 'quota nobody agents=2 pids=64' > ctl`)
	d.mustFail(`echo 'spawn third -- /bin/sleep 600' > ctl`, "Disk quota exceeded", nobody)
	if q := d.read("quotas"); !strings.Contains(q, "quota uid=65534 agents=2 ") || !strings.Contains(q, "usage uid=65534 agents=2 ") {
		t.Errorf("quotas:\n%s", q)
	}
	if got := kernel(t, filepath.Join(filepath.Dir(cgroupPath(st, "pids"))), "pids.max"); got != "64" {
		t.Errorf("user group pids.max = %s, want the quota 64", got)
	}

	// dir= and the program are reached as nobody: a 0700 directory on the
	// way stops the agent as it would stop nobody's shell.
	secret := filepath.Join(top, "secret")
	os.MkdirAll(filepath.Join(secret, "sub"), 0755)
	os.WriteFile(filepath.Join(secret, "sub", "f"), []byte("PRIVATE\n"), 0644)
	os.Chmod(secret, 0700)
	d.mustRun(`echo 'quota nobody agents=10' > ctl`)
	d.mustFail(fmt.Sprintf(`echo 'spawn peek dir=%s/sub -- /bin/cat f' > ctl`, secret), "Permission denied", nobody)
	d.mustFail(fmt.Sprintf(`echo 'spawn peek -- %s/sub/f' > ctl`, secret), "Permission denied", nobody)

	// Relative paths are the caller's: its working directory, not the
	// daemon's.
	work := filepath.Join(top, "work")
	os.MkdirAll(work, 0755)
	os.WriteFile(filepath.Join(work, "prog"), []byte("#!/bin/sh\npwd\n"), 0755)
	d.mustRun(fmt.Sprintf(`cd %s && echo "spawn rel -- ./prog" > %s/ctl`, work, d.mount), nobody)
	id := d.agentIDs()[len(d.agentIDs())-1]
	d.waitFor("the relative program's output", func() bool {
		out, _ := d.sh("cat agents/"+id+"/log", nobody)
		return out == work+"\n"
	})
	// The caller's resource limits go with its agent, as to a child.
	d.mustRun(`ulimit -n 77 && echo 'spawn lim -- /bin/sh -c "ulimit -n"' > ctl`, nobody)
	lid := d.agentIDs()[len(d.agentIDs())-1]
	d.waitFor("the agent to print its fd limit", func() bool {
		out, _ := d.sh("cat agents/"+lid+"/log", nobody)
		if out != "77\n" {
			d.t.Logf("log: %q", out)
		}
		return out == "77\n"
	})
	// Its output is its owner's: root's agents' output is not nobody's.
	d.mustRun(`echo 'spawn secretjob -- /bin/echo hunter2' > ctl`)
	rid := d.agentIDs()[len(d.agentIDs())-1]
	d.waitFor("root's agent to print", func() bool { return strings.Contains(d.read("agents/"+rid+"/log"), "hunter2") })
	d.mustFail("cat agents/"+rid+"/log", "Permission denied", nobody)
	if out, _ := exec.Command("find", filepath.Join(top, "state", "logs"), "-perm", "/044").CombinedOutput(); len(out) > 0 {
		t.Errorf("output files readable by others: %s", out)
	}

	// Memory-fabric regions are held to root's quota for the user, and
	// root's agents' memory layout is root's.
	d.mustFail(`echo 'alloc fill 64G persistent' > mem/ctl`, "Disk quota exceeded", nobody)
	d.mustRun(`echo 'quota nobody regionbytes=4M regions=2' > ctl`)
	d.mustRun(`echo 'alloc a 2M persistent' > mem/ctl`, nobody)
	d.mustFail(`echo 'alloc b 3M' > mem/ctl`, "Disk quota exceeded", nobody)
	if _, err := os.Stat(filepath.Join(d.mount, "mem/regions/b")); err == nil {
		t.Error("a refused region was made")
	}
	d.mustFail("cat agents/"+rid+"/mem/hot", "Permission denied", nobody)
	d.mustFail("cat agents/"+rid+"/mem/wss", "Permission denied", nobody)

	// A name that is not UTF-8 is refused, and metrics keeps working.
	d.mustFail(`printf 'spawn \xc3\x28x -- /bin/sleep 100\n' > ctl`, "Invalid argument", nobody)
	if _, err := os.ReadFile(filepath.Join(d.mount, "metrics")); err != nil {
		t.Errorf("metrics: %v", err)
	}
}

// A state filesystem that fills up: every change the daemon reports as
// done survives kill -9; one it could not save fails with ENOSPC and is
// not left running.
func TestFullStateFilesystem(t *testing.T) {
	requireRoot(t)
	top, err := os.MkdirTemp("", "aiosfs-full-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(top, 0755)
	t.Cleanup(func() { os.RemoveAll(top) })
	state := filepath.Join(top, "state")
	os.Mkdir(state, 0755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", state).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", state).Run() })
	prefix := fmt.Sprintf("aiosfs-full-%d", os.Getpid())
	mount := filepath.Join(top, "aios")
	d := startDaemon(t, mount, state, prefix)
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.term()
		}
		exec.Command("pkill", "-f", "sleep 3902").Run()
		if left := cgroupsLeft(prefix); len(left) > 0 {
			t.Errorf("cgroups left behind: %v", left)
		}
	})
	d.mustRun(`echo 'spawn keep memmax=64M -- /bin/sleep 3902' > ctl`)
	// Fill what is left.
	exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(state, "filler"), "bs=64k").Run()

	var ok []string
	failed := false
	for i := 0; i < 64 && !failed; i++ {
		out, rc := d.sh(fmt.Sprintf(`echo 'spawn f%d -- /bin/sleep 3902' > ctl`, i))
		switch {
		case rc == 0:
			ok = append(ok, fmt.Sprintf("f%d", i))
		case strings.Contains(out, "No space left on device"):
			failed = true
		default:
			t.Fatalf("spawn on a full disk: rc %d %q, want success or ENOSPC", rc, out)
		}
	}
	if !failed {
		t.Fatalf("64 spawns on a full tmpfs all reported success; the test cannot tell whether saves fail")
	}
	before := d.read("agents/1/status")
	_, rc := d.sh(`echo 'memmax 32M' > agents/1/ctl`)
	after := d.read("agents/1/status")
	if rc != 0 && field(after, "memmax") != field(before, "memmax") {
		t.Errorf("a refused memmax changed status: %s -> %s", field(before, "memmax"), field(after, "memmax"))
	}
	if kernel(t, cgroupPath(after, "memory"), "memory.limit_in_bytes") != field(after, "memmax") {
		t.Errorf("status and the kernel disagree after memmax on a full disk:\n%s", after)
	}
	// kill -9, make room, start again: exactly what was acknowledged.
	d.kill9()
	os.Remove(filepath.Join(state, "filler"))
	d = startDaemon(t, mount, state, prefix)
	var names []string
	for _, id := range d.agentIDs() {
		st := d.read("agents/" + id + "/status")
		if field(st, "state") == "running" {
			names = append(names, field(st, "name"))
		}
	}
	want := append([]string{"keep"}, ok...)
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("after kill -9 running agents are %v, want the acknowledged %v", names, want)
	}
	if out, _ := exec.Command("pgrep", "-c", "-f", "sleep 3902").Output(); strings.TrimSpace(string(out)) != strconv.Itoa(len(want)) {
		t.Errorf("%s sleeps run, want %d: a refused spawn left its process", strings.TrimSpace(string(out)), len(want))
	}
	time.Sleep(10 * time.Millisecond)
}

// A damaged or lost store: the daemon starts, says so, keeps the damaged
// file aside, and takes back the agents still running in their cgroups.
// A second daemon on the same state directory or prefix refuses at once.
func TestDamagedStoreAndSecondDaemon(t *testing.T) {
	d, top := adversaryDaemon(t, "store")
	d.mustRun(`echo 'spawn a memmax=48M -- /bin/sleep 3903' > ctl && echo 'spawn b -- /bin/sleep 3903' > ctl && echo freeze > agents/2/ctl`)
	t.Cleanup(func() { exec.Command("pkill", "-f", "sleep 3903").Run() })
	state := filepath.Join(top, "state")

	// A second daemon: same state directory, then same prefix elsewhere.
	self, _ := os.Executable()
	for _, args := range [][]string{
		{"serve", "-mount", "", "-state", state, "-cgroup-prefix", d.prefix + "x"},
		{"serve", "-mount", "", "-state", filepath.Join(top, "state2"), "-cgroup-prefix", d.prefix},
	} {
		cmd := exec.Command(self, args...)
		cmd.Env = append(os.Environ(), beDaemon+"=1")
		done := make(chan struct{})
		var out []byte
		go func() { out, _ = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("a second daemon (%v) did not refuse", args)
		}
		if !strings.Contains(string(out), fmt.Sprintf("pid %d", d.cmd.Process.Pid)) || cmd.ProcessState.ExitCode() == 0 {
			t.Errorf("second daemon %v: exit %d, %q: want a refusal naming pid %d", args, cmd.ProcessState.ExitCode(), out, d.cmd.Process.Pid)
		}
	}
	if got := d.agentIDs(); len(got) != 2 {
		t.Fatalf("the refused daemons disturbed the first: agents %v", got)
	}

	for _, damage := range []struct {
		name string
		do   func(db string) error
	}{
		{"truncated", func(db string) error { return os.Truncate(db, 10000) }},
		{"emptied", func(db string) error { return os.Truncate(db, 0) }},
		{"garbage", func(db string) error {
			return os.WriteFile(db, []byte(strings.Repeat("not a bbolt file\n", 2000)), 0600)
		}},
	} {
		d.kill9()
		if err := damage.do(filepath.Join(state, "state.db")); err != nil {
			t.Fatal(err)
		}
		d = startDaemon(t, d.mount, state, d.prefix)
		if got := d.agentIDs(); strings.Join(got, " ") != "1 2" {
			t.Fatalf("%s store: agents after restart %v, want 1 2\n%s", damage.name, got, d.out)
		}
		st1, st2 := d.read("agents/1/status"), d.read("agents/2/status")
		if field(st1, "state") != "running" || field(st1, "memmax") != "50331648" || field(st2, "state") != "frozen" {
			t.Errorf("%s store: agents not taken back as they were:\n%s%s", damage.name, st1, st2)
		}
		if !strings.Contains(d.out.String(), "re-adopted 2") {
			t.Errorf("%s store: the daemon did not say what it did:\n%s", damage.name, d.out)
		}
		// New numbers never collide with the cgroups found.
		d.mustRun(`echo 'spawn c -- /bin/sleep 3903' > ctl`)
		if got := d.agentIDs(); len(got) != 3 || got[2] == "1" || got[2] == "2" {
			t.Errorf("%s store: a new spawn got %v", damage.name, got)
		}
		d.mustRun(`echo kill > agents/` + d.agentIDs()[2] + `/ctl`)
	}
	t.Cleanup(func() { // the last daemon started; cleanups run last first
		if d.cmd.ProcessState == nil {
			d.term()
		}
	})
	if kept, _ := filepath.Glob(filepath.Join(state, "state.db.damaged-*")); len(kept) < 2 {
		t.Errorf("damaged stores not kept aside: %v", kept)
	}
}

// vmRSS is a process's resident set in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// A hostile burst from an unprivileged user: endless ctl lines, refused
// commands with long secrets, 9P connections opened and dropped, events
// readers that come and go. Every write is refused with its errno, the
// daemon answers throughout, and its memory comes back to within a bound
// of where it was (the review saw 1.2-2 GB after one 100 MiB line).
func TestHostileBurstMemory(t *testing.T) {
	d, top := adversaryDaemon(t, "burst")
	pid := d.cmd.Process.Pid
	d.read("metrics") // warm
	before := vmRSS(t, pid)

	// 64 MiB of one line in 1 MiB writes, as nobody: each write refused.
	d.mustFail(`head -c 67108864 /dev/zero | tr '\0' B | dd of=ctl bs=1M 2>&1`, "Message too long", nobody)
	// Refused commands carrying secrets, 50 of them.
	script := `for i in $(seq 50); do echo "spawn x$i env=TOKEN=$(head -c 3000 /dev/zero | tr '\0' S) -- /nonexistent/prog" > ctl 2>/dev/null; done; true`
	d.mustRun(script, nobody)
	// Events readers that go away.
	d.mustRun(`for i in $(seq 20); do timeout 0.2 cat events.follow >/dev/null; done; true`, nobody)
	// 9P connections opened and dropped without a word, as nobody.
	sock := filepath.Join(top, "state", "9p.sock")
	d.mustRun(fmt.Sprintf(`python3 -c "
import socket
for i in range(200):
    s=socket.socket(socket.AF_UNIX)
    try:
        s.connect('%s'); s.send(b'\xff\xff\xff\x7f')
    except OSError:
        pass  # closed by the server first (a bad size, or past the per-uid limit)
    s.close()
"`, sock), nobody)

	if log, _ := d.sh("cat log", nobody); strings.Contains(log, "SSSSSSSSSSSSSSSS") || len(log) > 1<<20 {
		t.Errorf("log keeps the secrets or grew past 1 MiB (%d bytes)", len(log))
	}
	// Still answering, and memory back within 48 MiB of where it was.
	var after int64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		d.read("version")
		after = vmRSS(t, pid)
		if after < before+48<<20 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("daemon RSS %d MiB before the burst, %d MiB after", before>>20, after>>20)
	if after >= before+48<<20 {
		t.Errorf("daemon RSS %d MiB after the burst, %d MiB before: not back within 48 MiB", after>>20, before>>20)
	}
}

// 9P peers: a local user on the unix socket is itself and no more; a TCP
// peer reads as nobody and writes nothing.
func TestNinePPeers(t *testing.T) {
	// A port the kernel says is free now (a fixed one could be an
	// ephemeral port another connection holds).
	host, port, _ := strings.Cut(freeLoopbackPort(t), ":")
	addr := "tcp!" + host + "!" + port
	d, top := adversaryDaemon(t, "9p", "-listen", addr)
	sock := "unix!" + filepath.Join(top, "state", "9p.sock")
	d.mustRun(`echo 'spawn rootjob -- /bin/sleep 600' > ctl`)

	if out, rc := aiosfs(t, nobody, "cat", sock, "/version"); rc != 0 || !strings.HasPrefix(out, "version=") {
		t.Errorf("nobody over the unix socket: rc %d %q", rc, out)
	}
	if out, rc := aiosfs(t, nobody, "write", sock, "/agents/1/ctl", "kill"); rc == 0 || !strings.Contains(out, "permission denied") {
		t.Errorf("nobody killing root's agent over 9P: rc %d %q", rc, out)
	}
	if out, rc := aiosfs(t, nobody, "write", sock, "/ctl", "spawn", "mine", "--", "/bin/sleep", "600"); rc != 0 {
		t.Errorf("nobody spawning its own agent over 9P: rc %d %q", rc, out)
	}
	if st := d.read("agents/2/status"); field(st, "uid") != "65534" || !strings.Contains(st, "dir=/") {
		t.Errorf("nobody's agent over 9P is not nobody's, or not in /:\n%s", st)
	}
	// Relative paths need a local caller.
	if out, rc := aiosfs(t, nobody, "write", sock, "/ctl", "spawn", "rel", "--", "./prog"); rc == 0 {
		t.Errorf("relative program over 9P accepted: %q", out)
	}

	// TCP: reads as nobody, no writes at all, even to /ctl, even claiming root.
	if out, rc := aiosfs(t, -1, "cat", addr, "/agents/1/status"); rc != 0 || !strings.Contains(out, "name=rootjob") {
		t.Errorf("TCP read: rc %d %q", rc, out)
	}
	if out, rc := aiosfs(t, -1, "write", addr, "/ctl", "spawn", "net", "--", "/bin/sleep", "600"); rc == 0 || !strings.Contains(out, "read-only file system") {
		t.Errorf("TCP spawn: rc %d %q, want EROFS", rc, out)
	}
	if out, rc := aiosfs(t, -1, "cat", addr, "/agents/1/log"); rc == 0 {
		t.Errorf("TCP peer read root's agent output: %q", out)
	}
	if ids := d.agentIDs(); len(ids) != 2 {
		t.Errorf("agents after the refused TCP spawn: %v", ids)
	}
}

// A state directory on a read-only filesystem: the daemon refuses to start,
// saying why, and leaves no mount or cgroup behind.
func TestReadOnlyStateDirectory(t *testing.T) {
	requireRoot(t)
	top, err := os.MkdirTemp("", "aiosfs-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	state := filepath.Join(top, "state")
	os.Mkdir(state, 0755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", state).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a read-only tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", state).Run() })
	prefix := fmt.Sprintf("aiosfs-ro-%d", os.Getpid())
	self, _ := os.Executable()
	cmd := exec.Command(self, "serve", "-mount", filepath.Join(top, "aios"), "-state", state, "-cgroup-prefix", prefix)
	cmd.Env = append(os.Environ(), beDaemon+"=1")
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "read-only file system") {
		t.Errorf("daemon on a read-only state directory: exit %d, %q", cmd.ProcessState.ExitCode(), out)
	}
	if left := cgroupsLeft(prefix); len(left) > 0 {
		t.Errorf("cgroups left behind: %v", left)
	}
	if b, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(b), filepath.Join(top, "aios")) {
		t.Errorf("mount left behind")
	}
}
