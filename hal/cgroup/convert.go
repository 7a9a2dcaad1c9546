package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3/cgroup2"

	"aiosfs/hal/kfile"
)

// CPUPeriodUs is the CFS period a CPU limit uses unless told another
// (100 ms, the kernel's default). MinCPUPeriod and MaxCPUPeriod are the
// kernel's bounds on a period (1 ms and 1 s): the quota refills once a
// period, so a short one bounds how long a throttled group waits and a
// long one lets a burst run longer before it is stopped.
const (
	CPUPeriodUs  = 100000
	MinCPUPeriod = time.Millisecond
	MaxCPUPeriod = time.Second
)

// periodUs checks a CFS period (0: CPUPeriodUs) and returns it in µs.
func periodUs(period time.Duration) (int64, error) {
	if period == 0 {
		return CPUPeriodUs, nil
	}
	if period < MinCPUPeriod || period > MaxCPUPeriod {
		return 0, fmt.Errorf("cgroup: cpu period %v not in 1ms..1s: %w", period, ErrInvalid)
	}
	return period.Microseconds(), nil
}

// Weight bounds of cgroup v2 cpu.weight and the v1 cpu.shares range the
// standard conversion covers.
const (
	MinWeight = 1
	MaxWeight = 10000
	minShares = 2
	maxShares = 262144
)

// SharesToWeight is the standard v1 cpu.shares -> v2 cpu.weight
// conversion of runc, crun and containerd
// (cgroup2.ConvertCPUSharesToCgroupV2Value): a quadratic in log2(shares)
// through (2, 1), (1024, 100) and (262144, 10000), rounded up.
func SharesToWeight(shares uint64) uint64 {
	return cgroup2.ConvertCPUSharesToCgroupV2Value(shares)
}

// WeightToShares inverts SharesToWeight: the largest cpu.shares in
// [2, 262144] that SharesToWeight maps to w, so that
// SharesToWeight(WeightToShares(w)) == w for every weight (each one is
// reachable). The conversion rounds up, so the largest preimage is the
// point where the curve meets w exactly: 1 -> 2, 100 -> 1024 (both
// defaults), 10000 -> 262144. Out-of-range weights are clamped to
// [1, 10000].
//
// Closed form for reference: shares = 2^l with
// l = (-125 + sqrt(125^2 + 2448*(log10(w) + 7/34))) / 2; the search below
// uses the library's own function so the two directions cannot drift.
func WeightToShares(w uint64) uint64 {
	w = min(max(w, MinWeight), MaxWeight)
	// Smallest s with SharesToWeight(s) > w, minus one.
	lo, hi := uint64(minShares), uint64(maxShares)+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if SharesToWeight(mid) > w {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo - 1
}

// CheckCPUMax reports whether SetCPUMax would take cores over period,
// so that a spawn or ctl line can be refused before anything changes.
func CheckCPUMax(cores float64, period time.Duration) error {
	p, err := periodUs(period)
	if err == nil {
		_, err = coresToQuota(cores, p)
	}
	return err
}

// coresToQuota turns a CPU limit in cores into a CFS quota for a period
// of periodUs: 0 means no limit (-1). The kernel takes a quota of at
// least 1000us, so the least limit is 0.01 cores at 100 ms and 0.1 at
// 10 ms.
func coresToQuota(cores float64, periodUs int64) (int64, error) {
	if math.IsNaN(cores) || math.IsInf(cores, 0) || cores < 0 {
		return 0, fmt.Errorf("cgroup: cpu limit %v cores: %w", cores, ErrInvalid)
	}
	if cores == 0 {
		return -1, nil
	}
	q := math.Round(cores * float64(periodUs))
	if q < 1000 {
		return 0, fmt.Errorf("cgroup: cpu limit %v cores is below the kernel's least quota of 1ms per %v period (%v cores): %w",
			cores, time.Duration(periodUs)*time.Microsecond, 1000/float64(periodUs), ErrInvalid)
	}
	if q > 1<<40 {
		return 0, fmt.Errorf("cgroup: cpu limit %v cores: %w", cores, ErrInvalid)
	}
	return int64(q), nil
}

// cpuMaxString is the v2 cpu.max line for a quota from coresToQuota.
func cpuMaxString(quota, periodUs int64) string {
	p := strconv.FormatInt(periodUs, 10)
	if quota < 0 {
		return "max " + p
	}
	return strconv.FormatInt(quota, 10) + " " + p
}

// checkBytes accepts a memory limit: -1 (none) or >= 0.
func checkBytes(what string, b int64) error {
	if b < -1 {
		return fmt.Errorf("cgroup: %s %d bytes: %w", what, b, ErrInvalid)
	}
	return nil
}

// limitFromKernel turns a memory limit as read into -1 for "no limit":
// v1 shows no limit as PAGE_COUNTER_MAX pages (9223372036854771712 with 4k
// pages), v2 as "max" (the library reads it as MaxUint64). Anything above
// 2^62 bytes is taken as no limit.
func limitFromKernel(v uint64) int64 {
	if v > 1<<62 {
		return -1
	}
	return int64(v)
}

// parseKeyed parses a flat keyed file ("key value" lines: cgroup.events,
// memory.events, cpu.stat).
func parseKeyed(data string) (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("cgroup: bad keyed line %q", line)
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("cgroup: bad keyed line %q: %w", line, err)
		}
		out[f[0]] = v
	}
	return out, nil
}

// readKeyed reads one value of a flat keyed file.
func readKeyed(path, key string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	kv, err := parseKeyed(string(data))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	v, ok := kv[key]
	if !ok {
		return 0, fmt.Errorf("cgroup: %s has no %q", path, key)
	}
	return v, nil
}

// parsePids parses cgroup.procs, tasks or cgroup.threads: one pid a line.
// It is on the sampler's path (every agent, every pass), so it walks the
// bytes rather than making a Scanner and a string per line.
func parsePids(data string) ([]int, error) {
	return appendPids(nil, []byte(data))
}

// appendPids appends the pids of a cgroup.procs file's bytes to pids.
func appendPids(pids []int, b []byte) ([]int, error) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		p := 0
		for _, c := range line {
			if c < '0' || c > '9' || p > 1<<40 {
				return nil, fmt.Errorf("cgroup: bad pid %q", line)
			}
			p = p*10 + int(c-'0')
		}
		if p <= 0 {
			return nil, fmt.Errorf("cgroup: bad pid %q", line)
		}
		pids = append(pids, p)
	}
	return pids, nil
}

// countLines counts the pids in a cgroup.threads or tasks file.
func countLines(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	p, err := parsePids(string(data))
	return uint64(len(p)), err
}

// sortedUnique sorts pids and drops repeats.
func sortedUnique(pids []int) []int {
	sort.Ints(pids)
	out := pids[:0]
	for i, p := range pids {
		if i == 0 || p != pids[i-1] {
			out = append(out, p)
		}
	}
	return out
}

// hasWord says whether a space-separated list (cgroup.controllers) holds w.
func hasWord(list, w string) bool {
	for _, f := range strings.Fields(list) {
		if f == w {
			return true
		}
	}
	return false
}

// procsTree reads cgroup.procs of dir and of every cgroup below it. It is
// on the hot path (the sampler and the reaper ask every agent every pass),
// so it reads cgroup.procs with plain system calls (package kfile) and
// looks for sub-cgroups only when the directory's link count says there
// are some: on cgroupfs a directory has 2 links plus one per
// subdirectory, so nlink 2 means none (one lstat instead of a getdents of
// the cgroup's dozens of control files). Any other count, including the
// 1 some file systems report for "unknown", reads the directory, with
// entry types from getdents rather than what the library's Processes
// does, a filepath.Walk that lstats every control file.
func procsTree(dir string) ([]int, error) {
	var pids []int
	err := kfile.Read(filepath.Join(dir, "cgroup.procs"), func(b []byte) error {
		var perr error
		pids, perr = appendPids(nil, b)
		return perr
	})
	if errors.Is(err, os.ErrNotExist) {
		// A fixture cgroup may lack the file; a gone cgroup lacks the dir.
		if _, serr := os.Stat(dir); serr == nil {
			err = nil
		}
	}
	if err != nil {
		return nil, err
	}
	if n, err := kfile.Nlink(dir); err == nil && n == 2 {
		return sortedUnique(pids), nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		sub, err := procsTree(filepath.Join(dir, e.Name()))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		pids = append(pids, sub...)
	}
	return sortedUnique(pids), nil
}
