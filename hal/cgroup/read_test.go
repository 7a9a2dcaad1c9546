package cgroup

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// What the setters write, ReadSettings reads back from the kernel, limits
// set and limits lifted, on a v1 group (every v1 hierarchy of the host)
// and on a v2 group (the cgroup2 mount: on a hybrid host it delegates no
// controller, and ReadSettings must say so in Missing).
func TestReadSettingsRoundTrip(t *testing.T) {
	requireRoot(t)
	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			cfg := Config{Version: v, Prefix: testPrefix()}
			if v == "v1" {
				requireV1(t, "cpu", "cpuset", "memory", "pids")
			} else {
				cfg.Root = cgroup2Mount(t)
			}
			m := newTestManager(t, cfg)
			g, err := m.Create("agent-1")
			if err != nil {
				t.Fatal(err)
			}
			cleanupGroup(t, g)

			// A new group: no limits.
			s, err := ReadSettings(g)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("new group: %+v", s)
			has := func(c string) bool { return !slices.Contains(s.Missing, c) }
			if has("cpu") && (s.Weight != 100 || s.CPUMax != 0 || s.CPUPeriod != 100*time.Millisecond) {
				t.Errorf("new group cpu: weight %d cpumax %v period %v; want 100, 0, 100ms", s.Weight, s.CPUMax, s.CPUPeriod)
			}
			if s.MemHigh != -1 || s.MemMax != -1 || s.PidsMax != -1 || s.Cpus != "" {
				t.Errorf("new group: %+v; want no limits", s)
			}
			if v == "v1" && len(s.Missing) != 0 {
				t.Errorf("v1 group misses %v", s.Missing)
			}

			// Limits set through the setters of the controllers there are.
			cpus := "0"
			set := []struct {
				ctl string
				do  func() error
			}{
				{"cpu", func() error { return g.SetWeight(500) }},
				{"cpu", func() error { return g.SetCPUMax(0.5, 20*time.Millisecond) }},
				{"cpuset", func() error { return g.SetCpus(cpus) }},
				{"memory", func() error { return g.SetMemHigh(32 << 20) }},
				{"memory", func() error { return g.SetMemMax(64 << 20) }},
			}
			for _, c := range set {
				if !has(c.ctl) {
					continue
				}
				if err := c.do(); err != nil {
					t.Fatal(err)
				}
			}
			if has("pids") {
				// No setter for it: the group is ours, so write the file.
				d := g.Paths()["pids"]
				if d == "" {
					d = g.Paths()["unified"]
				}
				if err := os.WriteFile(filepath.Join(d, "pids.max"), []byte("100"), 0); err != nil {
					t.Fatal(err)
				}
			}
			s, err = ReadSettings(g)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("limited group: %+v", s)
			if has("cpu") && (s.Weight != 500 || s.CPUMax != 0.5 || s.CPUPeriod != 20*time.Millisecond) {
				t.Errorf("cpu: weight %d cpumax %v period %v; want 500, 0.5, 20ms", s.Weight, s.CPUMax, s.CPUPeriod)
			}
			if has("cpuset") && s.Cpus != cpus && !parentHasOnly(t, g, cpus) {
				t.Errorf("cpus %q, want %q", s.Cpus, cpus)
			}
			if has("memory") && (s.MemHigh != 32<<20 || s.MemMax != 64<<20) {
				t.Errorf("memory: high %d max %d; want %d, %d", s.MemHigh, s.MemMax, 32<<20, 64<<20)
			}
			if has("pids") && s.PidsMax != 100 {
				t.Errorf("pids.max %d, want 100", s.PidsMax)
			}

			// Limits lifted read as none again.
			lift := []struct {
				ctl string
				do  func() error
			}{
				{"cpu", func() error { return g.SetCPUMax(0, 0) }},
				{"cpuset", func() error { return g.SetCpus("") }},
				{"memory", func() error { return g.SetMemHigh(-1) }},
				{"memory", func() error { return g.SetMemMax(-1) }},
			}
			for _, c := range lift {
				if has(c.ctl) {
					if err := c.do(); err != nil {
						t.Fatal(err)
					}
				}
			}
			s, err = ReadSettings(g)
			if err != nil {
				t.Fatal(err)
			}
			if s.CPUMax != 0 || s.Cpus != "" || s.MemHigh != -1 || s.MemMax != -1 {
				t.Errorf("after lifting: %+v", s)
			}

			if err := g.Delete(); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadSettings(g); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("ReadSettings of a deleted group: %v, want fs.ErrNotExist", err)
			}
		})
	}
}

// parentHasOnly says whether g's parent cpuset is exactly cpus (a one-CPU
// host), in which case "0" and "the parent's" are the same setting.
func parentHasOnly(t *testing.T, g Group, cpus string) bool {
	d := g.Paths()["cpuset"]
	if d == "" {
		d = g.Paths()["unified"]
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(d), "cpuset.cpus.effective"))
	if err != nil {
		b, err = os.ReadFile(filepath.Join(filepath.Dir(d), "cpuset.cpus"))
	}
	return err == nil && string(b) == cpus+"\n"
}

// The v1 no-limit values are huge numbers, v2's are "max"; both read as
// -1, and a quota of -1 or "max" as no CPU limit.
func TestReadBytesAndQuota(t *testing.T) {
	dir := t.TempDir()
	for in, want := range map[string]int64{"max\n": -1, "9223372036854771712\n": -1, "67108864\n": 64 << 20, "0\n": 0} {
		p := filepath.Join(dir, "f")
		writeFile(t, p, in)
		if got, err := readBytes(p); err != nil || got != want {
			t.Errorf("readBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if c, p := quotaToCores(-1, 100000); c != 0 || p != 100*time.Millisecond {
		t.Errorf("quotaToCores(-1) = %v, %v", c, p)
	}
	if c, _ := quotaToCores(150000, 100000); c != 1.5 {
		t.Errorf("quotaToCores(150000, 100000) = %v", c)
	}
}

// fileGroup is a Group whose files are a fixture directory; only Name and
// Paths are used by ReadSettings.
type fileGroup struct {
	Group
	paths map[string]string
}

func (g fileGroup) Name() string             { return "fixture" }
func (g fileGroup) Paths() map[string]string { return g.paths }

// The v2 files, as a host that delegates every controller has them (this
// host's cgroup2 mount delegates none, so the round trip above cannot
// reach them).
func TestReadSettingsV2Files(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "agent-1")
	for f, v := range map[string]string{
		"cgroup.controllers": "cpuset cpu io memory pids\n",
		"cpu.weight":         "500\n",
		"cpu.max":            "10000 20000\n",
		"cpuset.cpus":        "0-1\n",
		"memory.high":        "33554432\n",
		"memory.max":         "max\n",
		"pids.max":           "max\n",
	} {
		writeFile(t, filepath.Join(dir, f), v)
	}
	s, err := ReadSettings(fileGroup{paths: map[string]string{"unified": dir}})
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{Weight: 500, CPUMax: 0.5, CPUPeriod: 20 * time.Millisecond, Cpus: "0-1", MemHigh: 32 << 20, MemMax: -1, PidsMax: -1}
	if s.Weight != want.Weight || s.CPUMax != want.CPUMax || s.CPUPeriod != want.CPUPeriod || s.Cpus != want.Cpus ||
		s.MemHigh != want.MemHigh || s.MemMax != want.MemMax || s.PidsMax != want.PidsMax || len(s.Missing) != 0 {
		t.Errorf("ReadSettings = %+v, want %+v", s, want)
	}
	// Unlimited CPU and an inherited cpuset (empty file).
	writeFile(t, filepath.Join(dir, "cpu.max"), "max 100000\n")
	writeFile(t, filepath.Join(dir, "cpuset.cpus"), "\n")
	writeFile(t, filepath.Join(dir, "cgroup.controllers"), "cpu cpuset\n")
	s, err = ReadSettings(fileGroup{paths: map[string]string{"unified": dir}})
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUMax != 0 || s.CPUPeriod != 100*time.Millisecond || s.Cpus != "" || s.MemMax != -1 || !slices.Equal(s.Missing, []string{"memory", "pids"}) {
		t.Errorf("ReadSettings = %+v", s)
	}
}
