package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Settings are a group's limits as the kernel has them, in the units of
// the Group setters. "No limit" reads as -1 for bytes and pids and as 0
// cores for CPU, as the setters take it.
type Settings struct {
	Weight    uint64        // cpu.weight 1..10000 (v1: SharesToWeight(cpu.shares)); 0 if unknown
	CPUMax    float64       // cores: quota/period; 0 = no limit
	CPUPeriod time.Duration // the CFS period (v1 cpu.cfs_period_us, v2 cpu.max's second field); 0 if unknown
	// Cpus is cpuset.cpus; "" when the group has its parent's CPUs (v2:
	// the file is empty; v1: the same list as the parent, which is what a
	// new v1 cpuset copies, and what SetCpus("") writes).
	Cpus    string
	MemHigh int64 // v2 memory.high, v1 memory.soft_limit_in_bytes; -1 = no limit
	MemMax  int64 // v2 memory.max, v1 memory.limit_in_bytes; -1 = no limit
	PidsMax int64 // pids.max; -1 = no limit
	// Missing names the controllers whose files the group lacks (the
	// host has no such hierarchy, or v2 does not delegate it); their
	// fields keep the "no limit" values.
	Missing []string
}

// ReadSettings reads g's limits back from the kernel files in g.Paths():
// what a daemon that lost its records finds an orphan group limited to.
// A v1 group (Paths has "cpu", "memory", ...) is read from the v1 files;
// otherwise the "unified" directory's v2 files are. The error wraps
// fs.ErrNotExist when the group is gone.
func ReadSettings(g Group) (Settings, error) {
	s := Settings{MemHigh: -1, MemMax: -1, PidsMax: -1}
	paths := g.Paths()
	uni := paths["unified"]
	anyDir := false
	for _, d := range paths {
		if exists(d) {
			anyDir = true
		}
	}
	if !anyDir {
		return s, groupErr(g.Name(), "read settings", fs.ErrNotExist)
	}
	// dir is where controller c's files are and whether they are v1's.
	dir := func(c string) (string, bool, bool) {
		if d, ok := paths[c]; ok {
			return d, true, true
		}
		if uni != "" {
			ctl, err := os.ReadFile(filepath.Join(uni, "cgroup.controllers"))
			if err == nil && hasWord(string(ctl), c) {
				return uni, false, true
			}
		}
		return "", false, false
	}
	var errs []error
	fail := func(what string, err error) {
		errs = append(errs, fmt.Errorf("%s: %w", what, err))
	}
	missing := func(c string) { s.Missing = append(s.Missing, c) }

	if d, v1, ok := dir("cpu"); !ok {
		missing("cpu")
	} else if v1 {
		if shares, err := readUint(filepath.Join(d, "cpu.shares")); err != nil {
			fail("cpu.shares", err)
		} else {
			s.Weight = SharesToWeight(shares)
		}
		quota, err1 := readInt(filepath.Join(d, "cpu.cfs_quota_us"))
		period, err2 := readInt(filepath.Join(d, "cpu.cfs_period_us"))
		if err := errors.Join(err1, err2); err != nil {
			fail("cpu.cfs_quota_us/cpu.cfs_period_us", err)
		} else {
			s.CPUMax, s.CPUPeriod = quotaToCores(quota, period)
		}
	} else {
		if w, err := readUint(filepath.Join(d, "cpu.weight")); err != nil {
			fail("cpu.weight", err)
		} else {
			s.Weight = w
		}
		if b, err := os.ReadFile(filepath.Join(d, "cpu.max")); err != nil {
			fail("cpu.max", err)
		} else if f := strings.Fields(string(b)); len(f) != 2 {
			fail("cpu.max", fmt.Errorf("bad line %q", b))
		} else {
			period, err := strconv.ParseInt(f[1], 10, 64)
			quota := int64(-1)
			if f[0] != "max" && err == nil {
				quota, err = strconv.ParseInt(f[0], 10, 64)
			}
			if err != nil {
				fail("cpu.max", err)
			} else {
				s.CPUMax, s.CPUPeriod = quotaToCores(quota, period)
			}
		}
	}

	if d, v1, ok := dir("cpuset"); !ok {
		missing("cpuset")
	} else if b, err := os.ReadFile(filepath.Join(d, "cpuset.cpus")); err != nil {
		fail("cpuset.cpus", err)
	} else {
		s.Cpus = strings.TrimSpace(string(b))
		if v1 {
			if p, err := os.ReadFile(filepath.Join(filepath.Dir(d), "cpuset.cpus")); err == nil && strings.TrimSpace(string(p)) == s.Cpus {
				s.Cpus = ""
			}
		}
	}

	if d, v1, ok := dir("memory"); !ok {
		missing("memory")
	} else {
		highF, maxF := "memory.high", "memory.max"
		if v1 {
			highF, maxF = "memory.soft_limit_in_bytes", "memory.limit_in_bytes"
		}
		if v, err := readBytes(filepath.Join(d, highF)); err != nil {
			fail(highF, err)
		} else {
			s.MemHigh = v
		}
		if v, err := readBytes(filepath.Join(d, maxF)); err != nil {
			fail(maxF, err)
		} else {
			s.MemMax = v
		}
	}

	if d, _, ok := dir("pids"); !ok {
		missing("pids")
	} else if v, err := readBytes(filepath.Join(d, "pids.max")); err != nil {
		fail("pids.max", err)
	} else {
		s.PidsMax = v
	}
	sort.Strings(s.Missing)
	if err := errors.Join(errs...); err != nil {
		return s, groupErr(g.Name(), "read settings", err)
	}
	return s, nil
}

// quotaToCores turns a CFS quota and period (µs) into cores and the
// period; a negative quota (v1 -1, v2 "max") is no limit.
func quotaToCores(quota, periodUs int64) (float64, time.Duration) {
	period := time.Duration(periodUs) * time.Microsecond
	if quota < 0 || periodUs <= 0 {
		return 0, period
	}
	// Rounded to 1e-6 cores: SetCPUMax rounds cores×period to whole µs.
	return math.Round(float64(quota)/float64(periodUs)*1e6) / 1e6, period
}

func readTrimmed(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

func readUint(path string) (uint64, error) {
	t, err := readTrimmed(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(t, 10, 64)
}

func readInt(path string) (int64, error) {
	t, err := readTrimmed(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(t, 10, 64)
}

// readBytes reads a byte or count limit: "max" (v2) and the huge values
// v1 shows for none (see limitFromKernel) are -1.
func readBytes(path string) (int64, error) {
	t, err := readTrimmed(path)
	if err != nil {
		return 0, err
	}
	if t == "max" {
		return -1, nil
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return 0, err
	}
	return limitFromKernel(v), nil
}
