package cgroup

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3"
)

// Ceiling is the tightest limit a process's own cgroups put on it: the
// least memory limit, pids limit and CPU bandwidth on the way from its
// cgroup up to the root of each hierarchy, the way the kernel applies them.
// An agent started for a caller gets no more than this, so aiosfs cannot
// be used to step out of the cgroup a user was put in.
type Ceiling struct {
	MemMax int64   // bytes; -1 none
	Pids   int64   // tasks; -1 none
	CPUMax float64 // cores; 0 none
}

// None is a ceiling that limits nothing.
var None = Ceiling{MemMax: -1, Pids: -1}

// CeilingOf reads the ceiling of the process whose /proc/PID/cgroup is
// cgroupFile. Limits are read in the hierarchies this Manager uses (the v1
// controllers, or v2); a file it cannot read limits nothing, since the
// kernel would not apply it either.
func (m *Manager) CeilingOf(cgroupFile string) (Ceiling, error) {
	own, unifiedOwn, err := cgroups.ParseCgroupFileUnified(cgroupFile)
	if err != nil {
		return None, err
	}
	c := None
	for _, h := range m.v1 {
		rel, ok := own[string(h.name)]
		if !ok {
			continue
		}
		switch string(h.name) {
		case "memory":
			up(h.mount, rel, func(dir string) {
				c.MemMax = minLimit(c.MemMax, readLimit(filepath.Join(dir, "memory.limit_in_bytes")))
			})
		case "pids":
			up(h.mount, rel, func(dir string) { c.Pids = minLimit(c.Pids, readLimit(filepath.Join(dir, "pids.max"))) })
		case "cpu":
			up(h.mount, rel, func(dir string) {
				q := readLimit(filepath.Join(dir, "cpu.cfs_quota_us"))
				p := readLimit(filepath.Join(dir, "cpu.cfs_period_us"))
				if q > 0 && p > 0 {
					c.CPUMax = minCores(c.CPUMax, float64(q)/float64(p))
				}
			})
		}
	}
	if m.version == "v2" && m.unified != nil && unifiedOwn != "" {
		up(m.unified.mount, unifiedOwn, func(dir string) {
			c.MemMax = minLimit(c.MemMax, readLimit(filepath.Join(dir, "memory.max")))
			c.Pids = minLimit(c.Pids, readLimit(filepath.Join(dir, "pids.max")))
			if b, err := os.ReadFile(filepath.Join(dir, "cpu.max")); err == nil {
				f := strings.Fields(string(b))
				if len(f) == 2 && f[0] != "max" {
					q, e1 := strconv.ParseFloat(f[0], 64)
					p, e2 := strconv.ParseFloat(f[1], 64)
					if e1 == nil && e2 == nil && q > 0 && p > 0 {
						c.CPUMax = minCores(c.CPUMax, q/p)
					}
				}
			}
		})
	}
	return c, nil
}

// up calls f on the directory of rel in the hierarchy mounted at mount and
// on each ancestor, up to and including the mount.
func up(mount, rel string, f func(dir string)) {
	rel = filepath.Clean("/" + rel)
	for {
		f(filepath.Join(mount, rel))
		if rel == "/" {
			return
		}
		rel = filepath.Dir(rel)
	}
}

// readLimit reads a one-number limit file: "max", a missing file or a
// value past 2^62 (v1's "no limit" is PAGE_COUNTER_MAX pages) are -1.
func readLimit(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > 1<<62 {
		return -1
	}
	return v
}

// minLimit is the tighter of two limits where -1 is none.
func minLimit(a, b int64) int64 {
	switch {
	case a < 0:
		return b
	case b < 0:
		return a
	}
	return min(a, b)
}

// minCores is the tighter of two bandwidths where 0 is none.
func minCores(a, b float64) float64 {
	if a <= 0 {
		return b
	}
	if b <= 0 {
		return a
	}
	return math.Min(a, b)
}
