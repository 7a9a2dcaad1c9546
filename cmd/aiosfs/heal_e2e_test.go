package main

// The healing engine end to end (issue 14): the real daemon, real agents
// in real cgroups, driven by bash through the FUSE mount, and the
// kernel's own files for what happened (memory.limit_in_bytes, the
// memory controller's oom_kill count).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var healSeq atomic.Int32

// healDaemon starts a daemon on a fresh mount, state directory and
// cgroup prefix of its own, and at the end stops it and checks that no
// cgroup of the prefix is left.
func healDaemon(t *testing.T) (*testDaemon, string) {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("setpriv (util-linux) is needed: run scripts/install-deps.sh")
	}
	top, err := os.MkdirTemp("", "aiosfs-heal-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(top, 0755) // other users' shells must reach the mount
	mount := filepath.Join(top, "aios")
	state := filepath.Join(top, "state")
	prefix := fmt.Sprintf("aiosfs-heal-%d-%d", os.Getpid(), healSeq.Add(1))
	d := startDaemon(t, mount, state, prefix)
	holder := &d
	t.Cleanup(func() {
		if (*holder).cmd.ProcessState == nil {
			(*holder).term()
		}
		if left := cgroupsLeft(prefix); len(left) > 0 {
			t.Errorf("cgroups left behind: %v", left)
		}
		os.RemoveAll(top)
	})
	return d, state
}

// healWait waits up to limit for ok, failing with what the daemon shows.
func healWait(t *testing.T, d *testDaemon, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\nheal/status:\n%s\nheal/history:\n%s\nagents/1/health:\n%s\nlog:\n%s",
				what, d.read("heal/status"), d.read("heal/history"), d.read("agents/1/health"), d.read("log"))
		}
	}
}

// watchEvents follows the daemon's events file from now until the test
// ends.
func watchEvents(t *testing.T, d *testDaemon) *syncBuffer {
	ev := exec.Command("cat", filepath.Join(d.mount, "events.follow"))
	ev.WaitDelay = 5 * time.Second
	out := &syncBuffer{}
	ev.Stdout = out
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ev.Process.Kill(); ev.Wait() })
	time.Sleep(200 * time.Millisecond) // let cat open the stream
	return out
}

// healEvent is the first line of events with every one of the parts.
func healEvent(events string, parts ...string) string {
	for _, l := range strings.Split(events, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l
		}
	}
	return ""
}

func restarts(d *testDaemon, id int) int {
	n, _ := strconv.Atoi(field(d.read(fmt.Sprintf("agents/%d/status", id)), "restarts"))
	return n
}

// TestHealCrashLoopBacksOff: a crash looper with restart=always is
// restarted at once while within the restart intensity (5 starts in
// 10 s), then backs off; the back-off shows in agents/N/health and the
// loop in heal/failures and heal/history. Then the daemon is killed with
// SIGKILL and started again on the same state: the failures, the history
// and the policy are still there.
func TestHealCrashLoopBacksOff(t *testing.T) {
	d, state := healDaemon(t)
	events := watchEvents(t, d)
	out, rc := d.sh(`echo 'spawn loop -- /bin/bash -c "sleep 0.3; exit 1"' > ctl && echo 'heal restart=always backoff=3s..6s' > agents/1/ctl`)
	if rc != 0 {
		t.Fatalf("spawn and policy: rc %d %s\n%s", rc, out, d.read("log"))
	}
	healWait(t, d, 15*time.Second, "the loop to back off", func() bool {
		return field(d.read("agents/1/health"), "state") == "backoff"
	})
	h := d.read("agents/1/health")
	t.Logf("agents/1/health in the back-off:\n%s", h)
	if field(h, "restart") != "always" || field(h, "starts") != "5" {
		t.Errorf("health during the back-off:\n%s", h)
	}
	if b, _ := strconv.ParseFloat(field(h, "backoff"), 64); b <= 0 || b > 3 {
		t.Errorf("backoff=%v, want 0 < backoff <= 3 s:\n%s", b, h)
	}
	n := restarts(d, 1)
	if n < 4 {
		t.Errorf("%d restarts before the back-off, want 4 (5 starts)", n)
	}
	if f := d.read("heal/failures"); !strings.Contains(f, "agent=1 kind=CrashLoop") {
		t.Errorf("heal/failures lacks the crash loop:\n%s", f)
	}
	hist := d.read("heal/history")
	if strings.Count(hist, "agent=1 cause=exit procedure=restart ") < 4 || !strings.Contains(hist, "agent=1 cause=CrashLoop procedure=restart-backoff") {
		t.Errorf("heal/history lacks the restarts and the back-off:\n%s", hist)
	}
	// How soon after each exit within the intensity the restart came, from
	// the events' own times (logged, not asserted: no timing asserts).
	var gaps []string
	var exitAt float64
	for _, l := range strings.Split(events.String(), "\n") {
		ts, _ := strconv.ParseFloat(field(l, "time"), 64)
		switch {
		case strings.Contains(l, "source=agent kind=exit agent=1 "):
			exitAt = ts
		case strings.Contains(l, "source=agent kind=restart agent=1 ") && exitAt > 0:
			gaps = append(gaps, fmt.Sprintf("%.0fms", (ts-exitAt)*1000))
			exitAt = 0
		}
	}
	t.Logf("exit to restart: %s", strings.Join(gaps, " "))
	// Nothing restarts it during the back-off; it is restarted after.
	time.Sleep(time.Second)
	if m := restarts(d, 1); m != n {
		t.Errorf("restarted during the back-off: %d -> %d restarts", n, m)
	}
	healWait(t, d, 10*time.Second, "a restart after the back-off", func() bool { return restarts(d, 1) > n })
	if ev := d.read("heal/status"); !strings.Contains(ev, "executor ") || field(ev, "save_errors") != "0" {
		t.Errorf("heal/status:\n%s", ev)
	}

	// --- kill -9, start again: what was learned is still there ---
	failures := d.read("heal/failures")
	hist = d.read("heal/history")
	if _, err := os.Stat(filepath.Join(state, "heal", "heal.json")); err != nil {
		t.Fatalf("no heal.json: %v", err)
	}
	// No more restarts, so the histories compared below stay still, and
	// the kill comes when the agent is down and no restart is under way:
	// a kill -9 in the middle of the agent engine's restart (its cgroup
	// made, its record not yet saved as running) leaves an empty cgroup
	// no record claims, which is the agent engine's gap, not heal's.
	d.sh(`echo 'heal off' > agents/1/ctl`)
	healWait(t, d, 5*time.Second, "the agent down", func() bool {
		return field(d.read("agents/1/status"), "state") == "exited" && field(d.read("heal/status"), "running") == "0"
	})
	hist = d.read("heal/history")
	failures = d.read("heal/failures")
	d.kill9()
	d2 := startDaemon(t, d.mount, d.state, d.prefix)
	*d = *d2 // the cleanup stops the new one
	if got := d.read("heal/failures"); got != failures {
		t.Errorf("heal/failures after kill -9:\n%s\nbefore:\n%s", got, failures)
	}
	got := d.read("heal/history")
	if strings.Count(got, "\n") != strings.Count(hist, "\n") || !strings.Contains(got, "procedure=restart-backoff") {
		t.Errorf("heal/history after kill -9:\n%s\nbefore:\n%s", got, hist)
	}
	if p := d.read("heal/procedures"); p == "" {
		t.Error("heal/procedures empty after the restart")
	}
	healWait(t, d, 5*time.Second, "agent 1 seen again", func() bool { return d.read("agents/1/health") != "-\n" })
	if h := d.read("agents/1/health"); field(h, "restart") != "off" {
		t.Errorf("the policy (heal off) did not survive kill -9:\n%s", h)
	}
}

// TestHealHungAgentRestarted: an agent that declares a heartbeat every
// second and stops beating is found hung and restarted.
func TestHealHungAgentRestarted(t *testing.T) {
	d, _ := healDaemon(t)
	events := watchEvents(t, d)
	out, rc := d.sh(`echo 'spawn hb -- /bin/bash -c "echo every=1s > \$AIOS_HEARTBEAT || exit 3; for i in 1 2 3; do sleep 1; echo beat > \$AIOS_HEARTBEAT; done; exec sleep 600"' > ctl && echo 'heal restart=on-failure' > agents/1/ctl`)
	if rc != 0 {
		t.Fatalf("spawn and policy: rc %d %s\n%s", rc, out, d.read("log"))
	}
	healWait(t, d, 5*time.Second, "the first beats", func() bool {
		hb := d.read("agents/1/heartbeat")
		return field(hb, "every") == "1.000" && field(hb, "heartbeat") != "-"
	})
	pid := field(d.read("agents/1/status"), "pid")
	start := time.Now()
	// restarts counts a restart as it begins; the new pid comes after.
	healWait(t, d, 20*time.Second, "the hung agent to be restarted", func() bool {
		st := d.read("agents/1/status")
		return field(st, "restarts") != "0" && field(st, "pid") != pid && field(st, "state") == "running"
	})
	took := time.Since(start)
	hist := d.read("heal/history")
	t.Logf("heal/history:\n%s", hist)
	if !strings.Contains(hist, "agent=1 cause=Hang procedure=") {
		t.Errorf("heal/history lacks the hang's recovery:\n%s", hist)
	}
	// It beat for ~3 s and was found within ~3 intervals of its last beat.
	if took < 2*time.Second {
		t.Errorf("restarted %v after the first beats: before it stopped beating", took)
	}
	t.Logf("restarted %.1fs after its first beats were seen", took.Seconds())
	// The action is an event with its reason; the agent engine's restart
	// names heal as its cause.
	healWait(t, d, 5*time.Second, "the action's event", func() bool {
		return healEvent(events.String(), "source=heal kind=action agent=1 ", "cause=Hang", "result=done", "reason=") != ""
	})
	if l := healEvent(events.String(), "source=agent kind=restart agent=1 ", "by=\"heal: Hang "); l == "" {
		t.Errorf("no restart event by heal:\n%s", events.String())
	}
}

// TestHealLeakerGivenMemory: an agent leaking 4 MiB/s towards its 48 MiB
// memmax, bound for 52 MiB, is given more memory before the kernel
// OOM-kills it: memory.limit_in_bytes rises, and the memory cgroup's
// oom_kill count stays 0 while its usage passes the old limit. The
// engine runs on its rules (mode rules) so that the recovery is the
// first procedure, raise-mem, not the bandit's draw.
func TestHealLeakerGivenMemory(t *testing.T) {
	d, _ := healDaemon(t)
	events := watchEvents(t, d)
	leak := `perl -e "my @a; for (1..26) { push @a, q(x) x (2<<20); select(undef, undef, undef, 0.5) } sleep 600"`
	out, rc := d.sh(`echo 'mode rules' > heal/ctl && echo 'spawn leak memmax=48M -- ` + leak + `' > ctl && echo 'heal restart=on-failure' > agents/1/ctl`)
	if rc != 0 {
		t.Fatalf("spawn and policy: rc %d %s\n%s", rc, out, d.read("log"))
	}
	status := d.read("agents/1/status")
	mem := cgroupPath(status, "memory")
	if mem == "" {
		t.Fatalf("status lacks the memory cgroup (this test expects the v1 memory controller):\n%s", status)
	}
	pid := field(status, "pid")
	oomKills := func() string {
		for _, l := range strings.Split(kernel(t, mem, "memory.oom_control"), "\n") {
			if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
				return v
			}
		}
		return "?"
	}
	healWait(t, d, 30*time.Second, "memmax raised", func() bool { return kernel(t, mem, "memory.limit_in_bytes") != "50331648" })
	if got := kernel(t, mem, "memory.limit_in_bytes"); got != "75497472" {
		t.Errorf("memory.limit_in_bytes = %s, want 75497472 (48 MiB x 1.5)", got)
	}
	if k := oomKills(); k != "0" {
		t.Errorf("oom_kill = %s when memmax was raised, want 0", k)
	}
	hist := d.read("heal/history")
	if !strings.Contains(hist, "agent=1 cause=MemoryExhaustion procedure=raise-mem") {
		t.Errorf("heal/history lacks raise-mem:\n%s", hist)
	}
	t.Logf("heal/history:\n%s", hist)
	healWait(t, d, 5*time.Second, "the raise's event", func() bool {
		return healEvent(events.String(), "source=heal kind=action agent=1 ", "procedure=raise-mem", "result=done", `note="raise:memmax*1.5: memmax 50331648 -> 75497472"`) != ""
	})
	m := d.read("metrics")
	if strings.Contains(m, `aiosfs_heal_actions_total{result="done"} 0`+"\n") {
		t.Errorf("metrics count no action done")
	}
	for _, want := range []string{`aiosfs_heal_actions_total{result="done"} `, `aiosfs_heal_agent_score{agent="1"}`, `aiosfs_heal_rules_mode 1`, `aiosfs_heal_save_errors_total 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The leak goes on past the old limit, and nothing is killed.
	healWait(t, d, 30*time.Second, "usage past the old limit", func() bool {
		u, _ := strconv.ParseInt(kernel(t, mem, "memory.usage_in_bytes"), 10, 64)
		return u > 50<<20
	})
	if k := oomKills(); k != "0" {
		t.Errorf("oom_kill = %s after the usage passed the old limit", k)
	}
	t.Logf("usage %s bytes, limit %s, oom_kill %s", kernel(t, mem, "memory.usage_in_bytes"), kernel(t, mem, "memory.limit_in_bytes"), oomKills())
	if st := d.read("agents/1/status"); field(st, "pid") != pid || field(st, "state") != "running" || field(st, "memmax") != "75497472" {
		t.Errorf("the leaker after the raise:\n%s", st)
	}
}

// TestHealCtlRefusals: bad heal/ctl input fails with the right errno and
// a reason in log, and changes nothing; heal/ctl is root's (EPERM for
// another user); an agent's heartbeat and heal verb are its owner's.
func TestHealCtlRefusals(t *testing.T) {
	d, _ := healDaemon(t)
	if out, rc := d.sh(`echo 'spawn web -- sleep 600' > ctl && echo 'spawn nob user=nobody -- sleep 600' > ctl && echo 'policy 1 restart=never' > heal/ctl`); rc != 0 {
		t.Fatalf("setup: rc %d %s\n%s", rc, out, d.read("log"))
	}
	healWait(t, d, 5*time.Second, "agent 1 seen", func() bool { return field(d.read("agents/1/health"), "restart") == "never" })
	// Both agents in heal's table before the snapshot: agent 2 is taken
	// in by the engine's next pass, which no write below causes.
	healWait(t, d, 5*time.Second, "both agents seen", func() bool { return field(d.read("heal/status"), "agents") == "2" })
	before := d.read("heal/status")
	for _, tc := range []struct{ script, stderr, logged string }{
		{`echo bogus > heal/ctl`, "Invalid argument", `unknown control message "bogus"`},
		{`echo 'mode sideways' > heal/ctl`, "Invalid argument", `bad mode "sideways"`},
		{`echo 'policy 1 restart=sometimes' > heal/ctl`, "Invalid argument", `bad restart "sometimes"`},
		{`echo 'policy 1 intensity=5' > heal/ctl`, "Invalid argument", `bad intensity "5"`},
		{`echo 'policy 1' > heal/ctl`, "Invalid argument", "no settings"},
		{`echo 'policy 99 restart=always' > heal/ctl`, "No such file or directory", "no such agent 99"},
		{`echo 'outcome 12345 ok' > heal/ctl`, "No such file or directory", "no action 12345"},
		{`echo 'reset x' > heal/ctl`, "Invalid argument", `bad agent "x"`},
		{`echo 'heal restart=sometimes' > agents/1/ctl`, "Invalid argument", `bad restart "sometimes"`},
		{`echo 'every=soon' > agents/1/heartbeat`, "Invalid argument", "soon"},
		{`echo 'hello' > agents/1/heartbeat`, "Invalid argument", `heartbeat "hello"`},
	} {
		out, rc := d.sh(tc.script)
		if rc == 0 || !strings.Contains(out, tc.stderr) {
			t.Errorf("%s: rc %d %q, want failure with %q", tc.script, rc, out, tc.stderr)
		}
		if log := d.read("log"); !strings.Contains(log, tc.logged) {
			t.Errorf("%s: log lacks %q:\n%s", tc.script, tc.logged, log)
		}
	}
	after := d.read("heal/status")
	// (not actions: a managed agent may be acted on meanwhile, e.g. given
	// CPU weight under the host's CPU pressure, which no write causes)
	for _, k := range []string{"mode", "agents", "failures"} {
		if field(after, k) != field(before, k) {
			t.Errorf("refused writes changed heal/status %s: %s -> %s", k, field(before, k), field(after, k))
		}
	}
	if h := d.read("agents/1/health"); field(h, "restart") != "never" {
		t.Errorf("refused writes changed agent 1's policy:\n%s", h)
	}
	if hb := d.read("agents/1/heartbeat"); field(hb, "heartbeat") != "-" {
		t.Errorf("a refused heartbeat counted as a beat: %s", hb)
	}

	// Another user: heal/ctl is root's; root's agent is not theirs.
	for _, tc := range []struct{ script, stderr string }{
		{`echo 'mode rules' > heal/ctl`, "Operation not permitted"},
		{`echo 'policy 2 restart=always' > heal/ctl`, "Operation not permitted"},
		{`echo beat > agents/1/heartbeat`, "Permission denied"},
		{`echo 'heal restart=always' > agents/1/ctl`, "Permission denied"},
	} {
		out, rc := d.sh(tc.script, 65534)
		if rc == 0 || !strings.Contains(out, tc.stderr) {
			t.Errorf("uid 65534: %s: rc %d %q, want failure with %q", tc.script, rc, out, tc.stderr)
		}
	}
	if st := d.read("heal/status"); field(st, "mode") != "learned" {
		t.Errorf("a non-root write changed the mode: %s", st)
	}
	// Their own agent's heartbeat and policy are theirs.
	if out, rc := d.sh(`echo 'every=2s' > agents/2/heartbeat && echo 'heal restart=always intensity=1/5s' > agents/2/ctl && cat agents/2/heartbeat`, 65534); rc != 0 || field(out, "every") != "2.000" {
		t.Errorf("the owner's heartbeat and policy: rc %d %q", rc, out)
	}
	healWait(t, d, 5*time.Second, "agent 2's policy", func() bool { return field(d.read("agents/2/health"), "restart") == "always" })

	// Root's good writes take and are saved.
	if out, rc := d.sh(`echo 'mode rules' > heal/ctl && echo save > heal/ctl && cat heal/status`); rc != 0 || field(out, "mode") != "rules" || field(out, "why") != "set by ctl" {
		t.Errorf("mode rules: rc %d %q", rc, out)
	}
	// The same files over 9P.
	self, _ := os.Executable()
	c := exec.Command(self, "cat", "unix!"+filepath.Join(d.state, "9p.sock"), "/heal/status")
	c.Env = append(os.Environ(), beDaemon+"=1")
	if b, err := c.CombinedOutput(); err != nil || !strings.HasPrefix(string(b), "mode=rules ") || !strings.Contains(string(b), "\nexecutor ") {
		t.Errorf("heal/status over 9P: %v %q", err, b)
	}
	if b, err := os.ReadFile(filepath.Join(d.state, "heal", "heal.json")); err != nil || !strings.Contains(string(b), `"rules":true`) || !strings.Contains(string(b), `"restart":"never"`) {
		t.Errorf("heal.json: %v\n%.300s", err, b)
	}
}

// TestHealFDLeakerRestarted: an agent leaking 20 fds/s toward its
// RLIMIT_NOFILE of 256 (read from /proc/PID/limits of its process) is
// restarted before it reaches it (rules mode: restart is FDExhaustion's
// first procedure), with fewer fds than its limit at the time. The limit
// is lowered by the agent's shell once it runs, as a real agent may.
func TestHealFDLeakerRestarted(t *testing.T) {
	d, _ := healDaemon(t)
	// It lowers its limit itself after half a second: the daemon has read
	// the old one by then and must see the new one.
	leak := `/bin/bash -c "sleep 0.5; ulimit -n 256; for i in \$(seq 1 230); do exec {fd}</dev/null; sleep 0.05; done; exec sleep 600"`
	out, rc := d.sh(`echo 'mode rules' > heal/ctl && echo 'spawn fdleak -- ` + leak + `' > ctl && echo 'heal restart=on-failure' > agents/1/ctl`)
	if rc != 0 {
		t.Fatalf("spawn and policy: rc %d %s\n%s", rc, out, d.read("log"))
	}
	healWait(t, d, 30*time.Second, "the leaker restarted", func() bool { return restarts(d, 1) >= 1 })
	hist := d.read("heal/history")
	t.Logf("heal/history:\n%s", hist)
	line := ""
	for _, l := range strings.Split(hist, "\n") {
		if strings.Contains(l, "agent=1 cause=FDExhaustion procedure=restart ") {
			line = l
			break
		}
	}
	if line == "" {
		t.Fatalf("heal/history lacks FDExhaustion's restart:\n%s", hist)
	}
	// The reason names the fds seen against the limit: below it.
	var fds, limit float64
	if _, err := fmt.Sscanf(field(line, "reason"), "fds %g of %g", &fds, &limit); err != nil || limit != 256 || fds >= limit {
		t.Errorf("reason %q: want fds below a limit of 256 (%v)", field(line, "reason"), err)
	}
	if f := d.read("heal/failures"); strings.Contains(f, "kind=FDExhaustion") {
		t.Errorf("an FD exhaustion was recorded: it was not averted:\n%s", f)
	}
}

// TestHealBackoffSurvivesKill9: a crash looper waiting out its back-off
// when the daemon is killed with SIGKILL is restarted by the next daemon
// when the back-off ends: the queued restart was saved (queue.json), and
// no exit event will come again for an agent already down.
func TestHealBackoffSurvivesKill9(t *testing.T) {
	d, _ := healDaemon(t)
	out, rc := d.sh(`echo 'spawn loop -- /bin/bash -c "sleep 0.3; exit 1"' > ctl && echo 'heal restart=always backoff=4s' > agents/1/ctl`)
	if rc != 0 {
		t.Fatalf("spawn and policy: rc %d %s\n%s", rc, out, d.read("log"))
	}
	healWait(t, d, 15*time.Second, "the loop to back off", func() bool {
		return field(d.read("agents/1/health"), "state") == "backoff"
	})
	n := restarts(d, 1)
	d.kill9()
	d2 := startDaemon(t, d.mount, d.state, d.prefix)
	*d = *d2
	healWait(t, d, 15*time.Second, "the restart after the back-off, by the new daemon", func() bool { return restarts(d, 1) > n })
	if log := d.read("log"); !strings.Contains(log, "heal: 1 queued restarts restored") {
		t.Errorf("log lacks the restored restart:\n%s", log)
	}
	// Quiet before the cleanup stops the daemon: no restart under way.
	d.sh(`echo 'heal off' > agents/1/ctl`)
	healWait(t, d, 5*time.Second, "the agent down", func() bool {
		return field(d.read("agents/1/status"), "state") == "exited" && field(d.read("heal/status"), "running") == "0"
	})
}

// TestHealDiskFillerForeseen: an agent filling the size-limited
// filesystem it works in (a 16 MiB tmpfs this test mounts and removes)
// gets a DiskExhaustion prediction in agents/N/health, with an ETA,
// before its writes fail with ENOSPC. The agent is only observed (no
// restart policy): this is the prediction, not a recovery.
func TestHealDiskFillerForeseen(t *testing.T) {
	d, _ := healDaemon(t)
	fsdir, err := os.MkdirTemp("", "aiosfs-heal-disk-")
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", fsdir).Run(); err != nil {
		t.Fatalf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		exec.Command("umount", "-l", fsdir).Run()
		os.Remove(fsdir)
	})
	// 256 KiB every 0.25 s: 1 MiB/s, full in about 16 s; on ENOSPC it
	// leaves a mark in the daemon's view by exiting 28.
	d.mustRun(`echo 'spawn filler dir=` + fsdir + ` -- /bin/bash -c "i=0; while head -c 262144 /dev/zero > f\$i; do i=\$((i+1)); sleep 0.25; done; exit 28"' > ctl`)
	var seen string
	healWait(t, d, 30*time.Second, "a DiskExhaustion prediction or the filler's end", func() bool {
		h := d.read("agents/1/health")
		for _, l := range strings.Split(h, "\n") {
			// every kind has a line; a prediction is one with an ETA and
			// a probability of at least a half
			if strings.HasPrefix(l, "failure=DiskExhaustion") && field(l, "eta") != "-" {
				if p, _ := strconv.ParseFloat(field(l, "p"), 64); p >= 0.5 {
					seen = l
					return true
				}
			}
		}
		return field(d.read("agents/1/status"), "state") == "exited"
	})
	if seen == "" {
		t.Fatalf("the filler ran out of space with no DiskExhaustion prediction:\n%s\n%s", d.read("agents/1/health"), d.read("agents/1/status"))
	}
	if st := field(d.read("agents/1/status"), "state"); st == "exited" {
		t.Errorf("the prediction came after the filler had run out of space: %s", seen)
	}
	var free syscall.Statfs_t
	syscall.Statfs(fsdir, &free)
	t.Logf("predicted with %d KiB left: %s", int64(free.Bavail)*int64(free.Bsize)/1024, seen)
	d.mustRun(`echo stop > agents/1/ctl`)
}

// TestHeartbeatAtOnce: a spawned agent's very first instruction may be
// its first beat. The agent engine puts agents/N in the tree before it
// starts the process, so the write cannot find no agents/N (it could
// when spawn launched first and added after).
func TestHeartbeatAtOnce(t *testing.T) {
	d, _ := healDaemon(t)
	const n = 8
	for i := 0; i < n; i++ {
		d.mustRun(`echo 'spawn hb` + strconv.Itoa(i) + ` -- /bin/sh -c "echo every=1s > \"\$AIOS_HEARTBEAT\" || exit 3; exec sleep 600"' > ctl`)
	}
	for i := 1; i <= n; i++ {
		a := "agents/" + strconv.Itoa(i)
		healWait(t, d, 5*time.Second, a+"'s first beat", func() bool {
			if st := d.read(a + "/status"); field(st, "state") != "running" {
				t.Fatalf("%s is not running (its first beat failed?):\n%s\nits output: %s", a, st, d.mustRun("cat "+a+"/log 2>&1 || true"))
			}
			return field(d.read(a+"/heartbeat"), "every") == "1.000"
		})
	}
}
