package cgroup

import (
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
)

// The v1 backend on this host's hierarchies, checked through the kernel's
// own files.
func TestV1Host(t *testing.T) {
	requireRoot(t)
	requireV1(t, "cpu", "cpuacct", "cpuset", "memory", "freezer", "pids")
	prefix := testPrefix()
	m := newTestManager(t, Config{Version: "v1", Prefix: prefix})
	g, err := m.Create("agent1")
	if err != nil {
		t.Fatal(err)
	}
	cleanupGroup(t, g)
	p := g.Paths()
	for _, c := range []string{"cpu", "cpuacct", "cpuset", "memory", "freezer", "pids"} {
		if !isCgroupDir(p[c]) {
			t.Fatalf("%s: %q is not a cgroup directory", c, p[c])
		}
		if filepath.Base(filepath.Dir(p[c])) != prefix {
			t.Errorf("%s: %s is not under the prefix", c, p[c])
		}
	}
	if cgroups.Mode() == cgroups.Hybrid && !isCgroupDir(p["unified"]) {
		t.Errorf("hybrid host: no unified directory (%q)", p["unified"])
	}

	s := startSleeper(t)
	if err := g.Add(s.pid); err != nil {
		t.Fatal(err)
	}
	for c, d := range p {
		if !containsPid(t, filepath.Join(d, "cgroup.procs"), s.pid) {
			t.Errorf("%s/cgroup.procs lacks pid %d", d, s.pid)
		}
		// The kernel's own view of where the process is.
		ctl := c
		if c == "unified" {
			ctl = ""
		}
		if got, want := procCgroup(t, s.pid, ctl), strings.TrimPrefix(d, m.root+"/"+c); got != want {
			t.Errorf("/proc/%d/cgroup %s: %s, want %s", s.pid, c, got, want)
		}
	}
	s.execSleep(t) // exec inside the group: its memory is charged here
	if procs, err := g.Procs(); err != nil || !reflect.DeepEqual(procs, []int{s.pid}) {
		t.Errorf("Procs = %v, %v; want [%d]", procs, err, s.pid)
	}

	if err := g.SetCPUMax(0.5, 0); err != nil {
		t.Fatal(err)
	}
	wantFile(t, p["cpu"]+"/cpu.cfs_quota_us", "50000")
	wantFile(t, p["cpu"]+"/cpu.cfs_period_us", "100000")
	if err := g.SetCPUMax(0, 0); err != nil {
		t.Fatal(err)
	}
	wantFile(t, p["cpu"]+"/cpu.cfs_quota_us", "-1")
	// A 20ms time slice: the same share, refilled five times as often.
	if err := g.SetCPUMax(0.5, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	wantFile(t, p["cpu"]+"/cpu.cfs_quota_us", "10000")
	wantFile(t, p["cpu"]+"/cpu.cfs_period_us", "20000")
	if err := g.SetCPUMax(0.5, 0); err != nil {
		t.Fatal(err)
	}
	wantFile(t, p["cpu"]+"/cpu.cfs_period_us", "100000")

	if err := g.SetMemMax(64 << 20); err != nil {
		t.Fatal(err)
	}
	wantFile(t, p["memory"]+"/memory.limit_in_bytes", "67108864")
	if err := g.SetMemHigh(32 << 20); err != nil {
		t.Fatal(err)
	}
	wantFile(t, p["memory"]+"/memory.soft_limit_in_bytes", "33554432")
	if err := g.SetMemHigh(-1); err != nil {
		t.Fatal(err)
	}
	if v, _ := strconv.ParseUint(readTrim(t, p["memory"]+"/memory.soft_limit_in_bytes"), 10, 64); limitFromKernel(v) != -1 {
		t.Errorf("SetMemHigh(-1): soft limit %d", v)
	}

	if err := g.SetCpus("0"); err != nil {
		t.Fatal(err)
	}
	wantFile(t, p["cpuset"]+"/cpuset.cpus", "0")
	if mems := readTrim(t, p["cpuset"]+"/cpuset.mems"); mems == "" || mems != readTrim(t, filepath.Dir(p["cpuset"])+"/cpuset.mems") {
		t.Errorf("cpuset.mems %q, not the parent's", mems)
	}

	if err := g.SetWeight(100); err != nil {
		t.Fatal(err)
	}
	wantFile(t, p["cpu"]+"/cpu.shares", "1024")
	if err := g.SetWeight(500); err != nil {
		t.Fatal(err)
	}
	wantFile(t, p["cpu"]+"/cpu.shares", strconv.FormatUint(WeightToShares(500), 10))
	if err := g.SetWeight(0); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetWeight(0): %v", err)
	}

	if err := g.Freeze(); err != nil {
		t.Fatal(err)
	}
	wantFile(t, p["freezer"]+"/freezer.state", "FROZEN")
	if f, err := g.Frozen(); err != nil || !f {
		t.Errorf("Frozen = %v, %v", f, err)
	}
	// The v1 freezer parks tasks in TASK_FROZEN, which /proc reports as
	// uninterruptible sleep.
	if st := procState(t, s.pid); st != "D (disk sleep)" {
		t.Errorf("frozen task state %q, want D (disk sleep)", st)
	}
	if err := g.Thaw(); err != nil {
		t.Fatal(err)
	}
	wantFile(t, p["freezer"]+"/freezer.state", "THAWED")
	if f, err := g.Frozen(); err != nil || f {
		t.Errorf("Frozen after Thaw = %v, %v", f, err)
	}
	// Thawed, sleep runs for a moment and goes back to sleep.
	if err := pollUntil(2*time.Second, func() (bool, error) {
		return strings.HasPrefix(procState(t, s.pid), "S"), nil
	}); err != nil {
		t.Errorf("thawed sleep state %q, want S (sleeping)", procState(t, s.pid))
	}

	st, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats %+v", st)
	if st.MemCurrent == 0 || st.MemPeak < st.MemCurrent || st.MemLimit != 64<<20 || st.CPUUsageNs == 0 || st.Pids != 1 || len(st.Missing) != 0 {
		t.Errorf("Stats = %+v", st)
	}
	if got := readTrim(t, p["memory"]+"/memory.usage_in_bytes"); got == "0" {
		t.Errorf("memory.usage_in_bytes = 0 after exec in the group")
	}

	if err := g.Delete(); !errors.Is(err, ErrBusy) {
		t.Errorf("Delete with a process: %v, want ErrBusy", err)
	}
	for _, d := range p {
		if !isCgroupDir(d) {
			t.Errorf("refused Delete removed %s", d)
		}
	}

	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	if how := s.waitGone(t); how != "signal: killed" {
		t.Errorf("sleeper ended with %q, want signal: killed", how)
	}
	if procs, err := g.Procs(); err != nil || len(procs) != 0 {
		t.Errorf("Procs after Kill = %v, %v", procs, err)
	}
	wantFile(t, p["freezer"]+"/freezer.state", "THAWED")

	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	for c, d := range p {
		if exists(d) {
			t.Errorf("Delete left %s (%s)", d, c)
		}
	}
	if err := g.Delete(); err != nil {
		t.Errorf("Delete of a deleted group: %v", err)
	}
	if err := g.Add(s.pid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Add to a deleted group: %v, want fs.ErrNotExist", err)
	}
	if _, err := g.Stats(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stats of a deleted group: %v, want fs.ErrNotExist", err)
	}
}

// Groups go under the daemon's own cgroup in each hierarchy: here the
// memory hierarchy, where the test process is not at the root.
func TestV1HostUnderOwnCgroup(t *testing.T) {
	requireRoot(t)
	requireV1(t, "memory")
	own, _, err := cgroups.ParseCgroupFileUnified("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	mem := own["memory"]
	t.Logf("own memory cgroup %s", mem)
	prefix := testPrefix()
	m := newTestManager(t, Config{Version: "v1", Prefix: prefix})
	g, err := m.Create("agent2")
	if err != nil {
		t.Fatal(err)
	}
	cleanupGroup(t, g)
	ownDir := filepath.Join(DefaultRoot, "memory", mem)
	got := g.Paths()["memory"]
	if want := filepath.Join(ownDir, prefix, "agent2"); got != want {
		t.Errorf("memory path %s, want %s", got, want)
	}
	if !strings.HasPrefix(got, ownDir+"/") {
		t.Errorf("memory path %s is not below the own cgroup %s", got, ownDir)
	}
	s := startSleeper(t)
	if err := g.Add(s.pid); err != nil {
		t.Fatal(err)
	}
	if got, want := procCgroup(t, s.pid, "memory"), filepath.Join(mem, prefix, "agent2"); got != want {
		t.Errorf("/proc/%d/cgroup memory: %s, want %s", s.pid, got, want)
	}
	// Kill of a frozen group: the tasks die once thawed, and the group is
	// left thawed.
	if requireFreezer := isCgroupDir(filepath.Join(DefaultRoot, "freezer")); requireFreezer {
		if err := g.Freeze(); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	if how := s.waitGone(t); how != "signal: killed" {
		t.Errorf("sleeper ended with %q", how)
	}
	if f, err := g.Frozen(); err == nil && f {
		t.Error("group still frozen after Kill")
	}
}

// The v2 backend on this host's cgroup2 mount (on a hybrid host the
// unified mount, which has no controllers: the setters must say so).
func TestV2Host(t *testing.T) {
	requireRoot(t)
	root := cgroup2Mount(t)
	prefix := testPrefix()
	m := newTestManager(t, Config{Root: root, Version: "v2", Prefix: prefix})
	g, err := m.Create("agent1")
	if err != nil {
		t.Fatal(err)
	}
	cleanupGroup(t, g)
	dir := g.Paths()["unified"]
	if !isCgroupDir(dir) || filepath.Base(filepath.Dir(dir)) != prefix {
		t.Fatalf("Paths = %v", g.Paths())
	}
	if _, err := m.Create("agent1"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Create: %v, want fs.ErrExist", err)
	}

	s := startSleeper(t)
	if err := g.Add(s.pid); err != nil {
		t.Fatal(err)
	}
	if !containsPid(t, dir+"/cgroup.procs", s.pid) {
		t.Errorf("cgroup.procs lacks %d", s.pid)
	}
	if got, want := procCgroup(t, s.pid, ""), strings.TrimPrefix(dir, root); got != want {
		t.Errorf("/proc/%d/cgroup 0::%s, want %s", s.pid, got, want)
	}
	s.execSleep(t)
	if procs, err := g.Procs(); err != nil || !reflect.DeepEqual(procs, []int{s.pid}) {
		t.Errorf("Procs = %v, %v", procs, err)
	}

	if err := g.Freeze(); err != nil {
		t.Fatal(err)
	}
	wantFile(t, dir+"/cgroup.freeze", "1")
	if v, err := readKeyed(dir+"/cgroup.events", "frozen"); err != nil || v != 1 {
		t.Errorf("cgroup.events frozen = %d, %v", v, err)
	}
	if f, err := g.Frozen(); err != nil || !f {
		t.Errorf("Frozen = %v, %v", f, err)
	}
	// The v2 freezer traps tasks in the signal path: /proc shows them
	// sleeping, not in D as the v1 freezer does.
	st := procState(t, s.pid)
	t.Logf("v2-frozen task state: %s", st)
	if !strings.HasPrefix(st, "S") {
		t.Errorf("v2-frozen task state %q, want S (sleeping)", st)
	}
	if err := g.Thaw(); err != nil {
		t.Fatal(err)
	}
	wantFile(t, dir+"/cgroup.freeze", "0")
	if v, err := readKeyed(dir+"/cgroup.events", "frozen"); err != nil || v != 0 {
		t.Errorf("cgroup.events frozen after Thaw = %d, %v", v, err)
	}

	// Setters: what the mount delegates must work, the rest must say
	// ErrUnsupported.
	ctl := readTrim(t, dir+"/cgroup.controllers")
	t.Logf("controllers in the group: %q", ctl)
	for _, c := range []struct {
		ctl, name, file, want string
		do                    func() error
	}{
		{"cpu", "cpumax", "cpu.max", "50000 100000", func() error { return g.SetCPUMax(0.5, 0) }},
		{"cpu", "weight", "cpu.weight", "200", func() error { return g.SetWeight(200) }},
		{"cpuset", "cpus", "cpuset.cpus", "0", func() error { return g.SetCpus("0") }},
		{"memory", "memmax", "memory.max", "67108864", func() error { return g.SetMemMax(64 << 20) }},
		{"memory", "memhigh", "memory.high", "33554432", func() error { return g.SetMemHigh(32 << 20) }},
	} {
		err := c.do()
		if hasWord(ctl, c.ctl) {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			} else {
				wantFile(t, filepath.Join(dir, c.file), c.want)
			}
		} else if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s without the %s controller: %v, want ErrUnsupported", c.name, c.ctl, err)
		}
	}
	stats, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats %+v", stats)
	if stats.CPUUsageNs == 0 || stats.Pids != 1 {
		t.Errorf("Stats = %+v", stats)
	}
	if !hasWord(ctl, "memory") && !slices.Contains(stats.Missing, "memory") {
		t.Errorf("Stats.Missing %v lacks memory", stats.Missing)
	}

	if err := g.Delete(); !errors.Is(err, ErrBusy) {
		t.Errorf("Delete with a process: %v, want ErrBusy", err)
	}
	// Kill of a frozen group (cgroup.kill reaches frozen tasks); the
	// group is left thawed.
	if err := g.Freeze(); err != nil {
		t.Fatal(err)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	if how := s.waitGone(t); how != "signal: killed" {
		t.Errorf("sleeper ended with %q", how)
	}
	wantFile(t, dir+"/cgroup.freeze", "0")
	if v, err := readKeyed(dir+"/cgroup.events", "populated"); err != nil || v != 0 {
		t.Errorf("cgroup.events populated after Kill = %d, %v", v, err)
	}
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	if exists(dir) {
		t.Errorf("Delete left %s", dir)
	}
}

// A restarted daemon finds its groups: Create, then a fresh Manager
// Lists and Loads them; Close removes the Prefix once they are gone.
func TestRestartHost(t *testing.T) {
	requireRoot(t)
	if cgroups.Mode() == cgroups.Unavailable {
		t.Skip("host has no cgroups")
	}
	prefix := testPrefix()
	cfg := Config{Prefix: prefix} // detect, as the daemon does
	m1 := newTestManager(t, cfg)
	g1, err := m1.Create("keep")
	if err != nil {
		t.Fatal(err)
	}
	cleanupGroup(t, g1)
	if err := g1.SetMemMax(128 << 20); err != nil && !errors.Is(err, ErrUnsupported) {
		t.Fatal(err)
	}

	m2 := newTestManager(t, cfg)
	if m2.Version() != m1.Version() {
		t.Fatalf("versions %s, %s", m1.Version(), m2.Version())
	}
	names, err := m2.List()
	if err != nil || !reflect.DeepEqual(names, []string{"keep"}) {
		t.Fatalf("List = %v, %v", names, err)
	}
	g2, err := m2.Load("keep")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g2.Paths(), g1.Paths()) {
		t.Errorf("Load paths %v, Create paths %v", g2.Paths(), g1.Paths())
	}
	if _, err := m2.Create("keep"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create of an existing group: %v", err)
	}
	if _, err := m2.Load("gone"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing group: %v", err)
	}
	// Close keeps a Prefix with groups.
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range g2.Paths() {
		if !exists(d) {
			t.Errorf("Close removed %s", d)
		}
	}
	if err := g2.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range g1.Paths() {
		if exists(filepath.Dir(d)) {
			t.Errorf("Close left the prefix %s", filepath.Dir(d))
		}
	}
	t.Logf("version %s, paths %v", m1.Version(), g1.Paths())
}
