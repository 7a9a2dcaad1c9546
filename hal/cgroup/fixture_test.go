package cgroup

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// v2Fixture copies testdata/v2 (a fake cgroup2 root where the daemon runs
// in /daemon.slice and the groups "web" (cpu cpuset memory pids) and
// "bare" (no controllers) exist under aiosfs) so writes land in plain
// files of a scratch copy.
func v2Fixture(t *testing.T) (root string, m *Manager) {
	t.Helper()
	root = t.TempDir()
	if err := os.CopyFS(root, os.DirFS("testdata/v2")); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Root: root, ProcSelf: "testdata/proc_self_cgroup_v2", Prefix: "aiosfs", Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	return root, m
}

// The v2 file formats, against the fixture tree.
func TestV2FixtureFormats(t *testing.T) {
	root, m := v2Fixture(t)
	if m.Version() != "v2" {
		t.Fatalf("Version = %s", m.Version())
	}
	names, err := m.List()
	if err != nil || !reflect.DeepEqual(names, []string{"bare", "web"}) {
		t.Fatalf("List = %v, %v", names, err)
	}
	g, err := m.Load("web")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "daemon.slice/aiosfs/web")
	if p := g.Paths(); !reflect.DeepEqual(p, map[string]string{"unified": dir}) {
		t.Errorf("Paths = %v", p)
	}
	steps := []struct {
		name string
		do   func() error
		file string
		want string
	}{
		{"cpumax 0.5", func() error { return g.SetCPUMax(0.5, 0) }, "cpu.max", "50000 100000"},
		{"cpumax 2", func() error { return g.SetCPUMax(2, 0) }, "cpu.max", "200000 100000"},
		{"cpumax 0", func() error { return g.SetCPUMax(0, 0) }, "cpu.max", "max 100000"},
		{"cpumax 0.5 20ms", func() error { return g.SetCPUMax(0.5, 20*time.Millisecond) }, "cpu.max", "10000 20000"},
		{"weight 250", func() error { return g.SetWeight(250) }, "cpu.weight", "250"},
		{"cpus 0-1,3", func() error { return g.SetCpus("0-1,3") }, "cpuset.cpus", "0-1,3"},
		{"cpus inherit", func() error { return g.SetCpus("") }, "cpuset.cpus", ""},
		{"memmax 64M", func() error { return g.SetMemMax(64 << 20) }, "memory.max", "67108864"},
		{"memmax none", func() error { return g.SetMemMax(-1) }, "memory.max", "max"},
		{"memhigh 32M", func() error { return g.SetMemHigh(32 << 20) }, "memory.high", "33554432"},
		{"memhigh none", func() error { return g.SetMemHigh(-1) }, "memory.high", "max"},
		{"memmax 0", func() error { return g.SetMemMax(0) }, "memory.max", "0"},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		wantFile(t, filepath.Join(dir, s.file), s.want)
	}
	for name, err := range map[string]error{
		"weight 0":     g.SetWeight(0),
		"weight 10001": g.SetWeight(10001),
		"cpumax -1":    g.SetCPUMax(-1, 0),
		"period 2s":    g.SetCPUMax(1, 2*time.Second),
		"memmax -2":    g.SetMemMax(-2),
		"memhigh -5":   g.SetMemHigh(-5),
		"add 0":        g.Add(0),
	} {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}

	if err := g.SetMemMax(-1); err != nil {
		t.Fatal(err)
	}
	st, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		CPUUsageNs: 1500000000, NrPeriods: 40, NrThrottled: 3, ThrottledNs: 25000000,
		MemCurrent: 8388608, MemPeak: 16777216, MemLimit: -1, OOMKills: 1, Pids: 3,
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("Stats = %+v\nwant    %+v", st, want)
	}
	checkCounters(t, g, st)
	procs, err := g.Procs()
	if err != nil || !reflect.DeepEqual(procs, []int{101, 202}) {
		t.Errorf("Procs = %v, %v", procs, err)
	}
	if f, err := g.Frozen(); err != nil || f {
		t.Errorf("Frozen = %v, %v", f, err)
	}
	// Processes inside: Delete refuses and removes nothing.
	if err := g.Delete(); !errors.Is(err, ErrBusy) {
		t.Errorf("Delete with procs: %v, want ErrBusy", err)
	}
	if !exists(dir) {
		t.Error("Delete with procs removed the directory")
	}
}

// A group without controllers degrades with ErrUnsupported, and its Stats
// say what is missing.
func TestV2FixtureNoControllers(t *testing.T) {
	root, m := v2Fixture(t)
	g, err := m.Load("bare")
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"weight":  g.SetWeight(100),
		"cpumax":  g.SetCPUMax(1, 0),
		"cpus":    g.SetCpus("0"),
		"cpus ''": g.SetCpus(""),
		"memhigh": g.SetMemHigh(1 << 20),
		"memmax":  g.SetMemMax(-1),
	} {
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	for _, f := range []string{"cpu.weight", "cpu.max", "cpuset.cpus", "memory.max", "memory.high"} {
		if exists(filepath.Join(root, "daemon.slice/aiosfs/bare", f)) {
			t.Errorf("unsupported setter wrote %s", f)
		}
	}
	st, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{CPUUsageNs: 10000, Pids: 0, Missing: []string{"cpu", "memory"}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	checkCounters(t, g, st)
}

// Create, exists, restart (a fresh Manager Loads and Lists), Delete, Close
// on the fixture.
func TestV2FixtureLifecycle(t *testing.T) {
	root, m := v2Fixture(t)
	if _, err := m.Create("web"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create existing: %v, want fs.ErrExist", err)
	}
	if _, err := m.Create("bad.name"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Create bad name: %v", err)
	}
	if _, err := m.Load("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load missing: %v, want fs.ErrNotExist", err)
	}
	g, err := m.Create("fresh")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "daemon.slice/aiosfs/fresh")
	if g.Paths()["unified"] != dir || !exists(dir) {
		t.Fatalf("Create made %v", g.Paths())
	}
	m2, err := New(Config{Root: root, ProcSelf: "testdata/proc_self_cgroup_v2", Prefix: "aiosfs", Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	names, _ := m2.List()
	if !reflect.DeepEqual(names, []string{"bare", "fresh", "web"}) {
		t.Errorf("List after restart = %v", names)
	}
	g2, err := m2.Load("fresh")
	if err != nil || !reflect.DeepEqual(g2.Paths(), g.Paths()) {
		t.Fatalf("Load after restart: %v, %v", g2, err)
	}
	if err := g2.Delete(); err != nil {
		t.Fatal(err)
	}
	if exists(dir) {
		t.Error("Delete left the directory")
	}
	if err := g.Delete(); err != nil {
		t.Errorf("Delete of a group already gone: %v", err)
	}
	if _, err := g.(CounterReader).Counters(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Counters of a gone group: %v, want fs.ErrNotExist", err)
	}
	if _, err := g.Stats(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stats of a deleted group: %v", err)
	}
	// Close keeps a Prefix that still has groups.
	if err := m2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if !exists(filepath.Join(root, "daemon.slice/aiosfs/web")) {
		t.Error("Close removed a Prefix with groups")
	}
}

// Creating a Prefix enables the delegated controllers in it (and only in
// cgroups it created: the daemon's own cgroup is left alone).
func TestV2FixtureEnablesControllers(t *testing.T) {
	root, _ := v2Fixture(t)
	m, err := New(Config{Root: root, ProcSelf: "testdata/proc_self_cgroup_v2", Prefix: "new/agents", Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(root, "daemon.slice")
	before := readTrim(t, filepath.Join(own, "cgroup.subtree_control"))
	// In a real cgroup2 tree each new directory has cgroup.controllers;
	// here the test provides them.
	writeFile(t, filepath.Join(own, "new/cgroup.controllers"), "cpuset cpu memory pids\n")
	writeFile(t, filepath.Join(own, "new/agents/cgroup.controllers"), "cpu memory\n")
	if _, err := m.Create("a1"); err != nil {
		t.Fatal(err)
	}
	// Plain files keep only the last write; the kernel would add up the
	// "+ctl" writes.
	wantFile(t, filepath.Join(own, "new/cgroup.subtree_control"), "+pids")
	wantFile(t, filepath.Join(own, "new/agents/cgroup.subtree_control"), "+memory")
	wantFile(t, filepath.Join(own, "cgroup.subtree_control"), before)
	if !exists(filepath.Join(own, "new/agents/a1")) {
		t.Error("group not created")
	}
}

// v1Fixture builds a tree of v1 hierarchies: the daemon at the root of
// each but memory (/daemon), the prefix "aiosfs" and the group "web" in
// every hierarchy. The files the setters write are created here, readable:
// containerd's cgroup1 creates missing files with mode 0 (on a cgroup file
// system they always exist), which only root could read back.
func v1Fixture(t *testing.T) (root, procSelf string) {
	t.Helper()
	root = t.TempDir()
	files := map[string][]string{
		"cpu":     {"cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"},
		"cpuacct": nil,
		"cpuset":  {"cpuset.cpus", "cpuset.mems"},
		"memory":  {"memory.limit_in_bytes", "memory.soft_limit_in_bytes"},
		"freezer": {"freezer.state"},
		"pids":    nil,
	}
	for c, names := range files {
		own := root + "/" + c
		if c == "memory" {
			own += "/daemon"
		}
		writeFile(t, filepath.Join(root, c, "cgroup.procs"), "")
		for _, d := range []string{own + "/aiosfs", own + "/aiosfs/web"} {
			for _, f := range names {
				writeFile(t, filepath.Join(d, f), "")
			}
		}
	}
	writeFile(t, filepath.Join(root, "cpuset/cpuset.cpus"), "0-3\n")
	writeFile(t, filepath.Join(root, "cpuset/cpuset.mems"), "0\n")
	procSelf = filepath.Join(t.TempDir(), "cgroup")
	writeFile(t, procSelf, "6:freezer:/\n5:pids:/\n4:memory:/daemon\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n")
	return root, procSelf
}

// The v1 formats, against the fixture tree.
func TestV1Fixture(t *testing.T) {
	root, procSelf := v1Fixture(t)
	m, err := New(Config{Root: root, ProcSelf: procSelf, Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create("web"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create existing: %v", err)
	}
	g, err := m.Load("web")
	if err != nil {
		t.Fatal(err)
	}
	p := g.Paths()
	want := map[string]string{
		"cpu": root + "/cpu/aiosfs/web", "cpuacct": root + "/cpuacct/aiosfs/web",
		"cpuset": root + "/cpuset/aiosfs/web", "memory": root + "/memory/daemon/aiosfs/web",
		"freezer": root + "/freezer/aiosfs/web", "pids": root + "/pids/aiosfs/web",
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("Paths = %v\nwant %v", p, want)
	}
	for _, d := range p {
		if !exists(d) {
			t.Errorf("%s not created", d)
		}
	}
	// A new cpuset cgroup gets its parent's cpus and mems.
	wantFile(t, root+"/cpuset/aiosfs/cpuset.mems", "0")
	wantFile(t, p["cpuset"]+"/cpuset.cpus", "0-3")
	wantFile(t, p["cpuset"]+"/cpuset.mems", "0")

	steps := []struct {
		name string
		do   func() error
		file string
		want string
	}{
		{"weight 100", func() error { return g.SetWeight(100) }, "cpu/cpu.shares", "1024"},
		{"weight 1", func() error { return g.SetWeight(1) }, "cpu/cpu.shares", "2"},
		{"weight 10000", func() error { return g.SetWeight(10000) }, "cpu/cpu.shares", "262144"},
		{"cpumax 1.5", func() error { return g.SetCPUMax(1.5, 0) }, "cpu/cpu.cfs_quota_us", "150000"},
		{"cpumax period", func() error { return nil }, "cpu/cpu.cfs_period_us", "100000"},
		{"cpumax 0", func() error { return g.SetCPUMax(0, 0) }, "cpu/cpu.cfs_quota_us", "-1"},
		{"cpumax 0.5 20ms", func() error { return g.SetCPUMax(0.5, 20*time.Millisecond) }, "cpu/cpu.cfs_quota_us", "10000"},
		{"cpumax 20ms period", func() error { return nil }, "cpu/cpu.cfs_period_us", "20000"},
		{"memmax 64M", func() error { return g.SetMemMax(64 << 20) }, "memory/memory.limit_in_bytes", "67108864"},
		{"memmax none", func() error { return g.SetMemMax(-1) }, "memory/memory.limit_in_bytes", "-1"},
		{"memhigh 1M", func() error { return g.SetMemHigh(1 << 20) }, "memory/memory.soft_limit_in_bytes", "1048576"},
		{"cpus 1", func() error { return g.SetCpus("1") }, "cpuset/cpuset.cpus", "1"},
		{"cpus parent", func() error { return g.SetCpus("") }, "cpuset/cpuset.cpus", "0-3"},
		{"freeze", g.Freeze, "freezer/freezer.state", "FROZEN"},
		{"thaw", g.Thaw, "freezer/freezer.state", "THAWED"},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		ctl, file := filepath.Split(s.file)
		wantFile(t, filepath.Join(p[filepath.Clean(ctl)], file), s.want)
	}

	// Stats reads the v1 files.
	files := map[string]string{
		"cpuacct/cpuacct.usage":              "123456789",
		"cpuacct/cpuacct.usage_percpu":       "100000000 23456789",
		"cpuacct/cpuacct.stat":               "user 10\nsystem 2\n",
		"cpu/cpu.stat":                       "nr_periods 10\nnr_throttled 2\nthrottled_time 3000000\n",
		"memory/memory.stat":                 "cache 0\nrss 4096\n",
		"memory/memory.usage_in_bytes":       "4096",
		"memory/memory.max_usage_in_bytes":   "8192",
		"memory/memory.failcnt":              "0",
		"memory/memory.limit_in_bytes":       "9223372036854771712",
		"memory/memory.oom_control":          "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
		"pids/pids.current":                  "2",
		"pids/pids.max":                      "max",
		"freezer/freezer.state":              "FROZEN",
		"memory/memory.soft_limit_in_bytes":  "1048576",
		"memory/memory.memsw.usage_in_bytes": "must be ignored: no swap accounting at the root",
		"memory/memory.kmem.usage_in_bytes":  "must be ignored: kmem is not read",
	}
	for f, v := range files {
		ctl, file := filepath.Split(f)
		writeFile(t, filepath.Join(p[filepath.Clean(ctl)], file), v)
	}
	st, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	wantSt := Stats{CPUUsageNs: 123456789, NrPeriods: 10, NrThrottled: 2, ThrottledNs: 3000000,
		MemCurrent: 4096, MemPeak: 8192, MemLimit: -1, OOMKills: 3, Pids: 2}
	if !reflect.DeepEqual(st, wantSt) {
		t.Errorf("Stats = %+v\nwant    %+v", st, wantSt)
	}
	checkCounters(t, g, st)
	if f, err := g.Frozen(); err != nil || !f {
		t.Errorf("Frozen with FROZEN = %v, %v", f, err)
	}
	writeFile(t, filepath.Join(p["freezer"], "freezer.state"), "FREEZING")
	if f, err := g.Frozen(); err != nil || f {
		t.Errorf("Frozen with FREEZING = %v, %v (want false)", f, err)
	}

	// Create makes the group in every hierarchy. In a fixture only root
	// can: the library re-reads the cpuset files it has just created with
	// mode 0. (The host tests create groups on the real hierarchies.)
	if os.Geteuid() == 0 {
		g3, err := m.Create("new")
		if err != nil {
			t.Fatal(err)
		}
		for c, d := range g3.Paths() {
			if !exists(d) || filepath.Base(d) != "new" {
				t.Errorf("Create: %s %s", c, d)
			}
		}
		wantFile(t, g3.Paths()["cpuset"]+"/cpuset.mems", "0")
		if err := g3.Delete(); err != nil {
			t.Fatal(err)
		}
	}
	// Restart: a fresh Manager finds and loads it.
	m2, err := New(Config{Root: root, ProcSelf: procSelf, Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if names, err := m2.List(); err != nil || !reflect.DeepEqual(names, []string{"web"}) {
		t.Errorf("List = %v, %v", names, err)
	}
	// A group half created (crash) is completed by Load.
	if err := os.RemoveAll(p["pids"]); err != nil {
		t.Fatal(err)
	}
	g2, err := m2.Load("web")
	if err != nil {
		t.Fatal(err)
	}
	if !exists(p["pids"]) || !reflect.DeepEqual(g2.Paths(), p) {
		t.Errorf("Load did not restore the pids directory: %v", g2.Paths())
	}
	// Procs of a fixture without cgroup.procs in the group: none.
	if procs, err := g2.Procs(); err != nil || len(procs) != 0 {
		t.Errorf("Procs = %v, %v", procs, err)
	}
	writeFile(t, filepath.Join(p["memory"], "cgroup.procs"), "42\n")
	if procs, err := g2.Procs(); err != nil || !reflect.DeepEqual(procs, []int{42}) {
		t.Errorf("Procs = %v, %v", procs, err)
	}
	if err := g2.Delete(); !errors.Is(err, ErrBusy) {
		t.Errorf("Delete with a pid: %v, want ErrBusy", err)
	}
	if err := os.Remove(filepath.Join(p["memory"], "cgroup.procs")); err != nil {
		t.Fatal(err)
	}
	if err := g2.Delete(); err != nil {
		t.Fatal(err)
	}
	for c, d := range p {
		if exists(d) {
			t.Errorf("Delete left %s (%s)", d, c)
		}
	}
	if err := g.Delete(); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if names, _ := m.List(); len(names) != 0 {
		t.Errorf("List after Delete = %v", names)
	}
}

// A v1 host lacking hierarchies: the group has what there is, and the
// rest reports ErrUnsupported.
func TestV1FixtureMissingControllers(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "memory/cgroup.procs"), "")
	procSelf := filepath.Join(t.TempDir(), "cgroup")
	writeFile(t, procSelf, "4:memory:/\n1:cpu:/\n")
	m, err := New(Config{Root: root, ProcSelf: procSelf, Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.Create("x")
	if err != nil {
		t.Fatal(err)
	}
	if p := g.Paths(); len(p) != 1 || p["memory"] == "" {
		t.Errorf("Paths = %v", p)
	}
	for name, err := range map[string]error{
		"weight": g.SetWeight(100),
		"cpumax": g.SetCPUMax(1, 0),
		"cpus":   g.SetCpus("0"),
		"freeze": g.Freeze(),
		"thaw":   g.Thaw(),
	} {
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
	if _, err := g.Frozen(); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Frozen: %v", err)
	}
	if err := g.SetMemMax(1 << 20); err != nil {
		t.Errorf("memmax: %v", err)
	}
	writeFile(t, filepath.Join(g.Paths()["memory"], "tasks"), "7\n8\n")
	st, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st.Missing, []string{"cpu", "cpuacct", "memory"}) || st.Pids != 2 {
		t.Errorf("Stats = %+v", st)
	}
	checkCounters(t, g, st)
}
