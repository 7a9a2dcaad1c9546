package cgroup

import (
	"errors"
	"io/fs"
	"path/filepath"

	"aiosfs/hal/kfile"
)

// Counters are the figures of a group the telemetry sampler reads on every
// pass, and nothing else: the CPU it used, how often it was throttled, its
// memory use and its OOM kills. Stats reads these and more through
// containerd's Stat (16 files on v1, four goroutines per call); Counters
// reads 4 files on v1 (cpuacct.usage, cpu.stat, memory.usage_in_bytes,
// memory.oom_control) and 3 on v2 (cpu.stat, memory.current,
// memory.events) with plain system calls (package kfile). In the profile
// of docs/cost.md containerd's Stat was 40 % of the daemon's CPU.
//
// A controller the group lacks, or a file missing from it, reads as 0, as
// in Stats. The error wraps fs.ErrNotExist when the group is gone.
type Counters struct {
	CPUUsageNs  uint64 // v1 cpuacct.usage; v2 cpu.stat usage_usec*1000
	NrThrottled uint64 // cpu.stat nr_throttled
	MemCurrent  uint64 // v1 memory.usage_in_bytes; v2 memory.current
	OOMKills    uint64 // v1 memory.oom_control oom_kill; v2 memory.events oom_kill
}

// CounterReader is what every Group of this package offers beyond the
// Group interface: the sampler's cheap reads. Callers type-assert for it,
// so fakes need not have it.
type CounterReader interface {
	// Counters reads the sampler's figures (see Counters).
	Counters() (Counters, error)
	// CPUUsage reads only the group's CPU usage in ns, one file: the
	// sampler's test of whether an agent ran at all since its last pass.
	CPUUsage() (uint64, error)
}

var (
	_ CounterReader = (*v1Group)(nil)
	_ CounterReader = (*v2Group)(nil)
)

// readUintFile reads a one-number file; found is false when it is missing.
func readUintFile(path string) (v uint64, found bool, err error) {
	err = kfile.Read(path, func(b []byte) error {
		var ok bool
		if v, ok = kfile.Uint(b); !ok {
			return errors.New("cgroup: " + path + ": not a number")
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	return v, err == nil, err
}

// readKeyedFile reads keys of a flat keyed file into the pointers (a key
// the file lacks leaves its pointer alone); found is false when the file
// is missing.
func readKeyedFile(path string, keys []string, out []*uint64) (found bool, err error) {
	err = kfile.Read(path, func(b []byte) error {
		for i, k := range keys {
			if v, ok := kfile.Keyed(b, k); ok {
				*out[i] = v
			}
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (g *v1Group) Counters() (Counters, error) {
	var c Counters
	var any bool
	var errs []error
	note := func(found bool, err error) {
		any = any || found
		if err != nil {
			errs = append(errs, err)
		}
	}
	if d, ok := g.paths["cpuacct"]; ok {
		v, found, err := readUintFile(filepath.Join(d, "cpuacct.usage"))
		c.CPUUsageNs = v
		note(found, err)
	}
	if d, ok := g.paths["cpu"]; ok {
		note(readKeyedFile(filepath.Join(d, "cpu.stat"), []string{"nr_throttled"}, []*uint64{&c.NrThrottled}))
	}
	if d, ok := g.paths["memory"]; ok {
		v, found, err := readUintFile(filepath.Join(d, "memory.usage_in_bytes"))
		c.MemCurrent = v
		note(found, err)
		note(readKeyedFile(filepath.Join(d, "memory.oom_control"), []string{"oom_kill"}, []*uint64{&c.OOMKills}))
	}
	if err := errors.Join(errs...); err != nil {
		return c, groupErr(g.name, "counters", err)
	}
	if !any && !g.anyExists() {
		return c, groupErr(g.name, "counters", fs.ErrNotExist)
	}
	return c, nil
}

func (g *v1Group) CPUUsage() (uint64, error) {
	d, ok := g.paths["cpuacct"]
	if !ok {
		return 0, unsupported(g.name, "cpu usage", "no cpuacct hierarchy")
	}
	v, found, err := readUintFile(filepath.Join(d, "cpuacct.usage"))
	if err == nil && !found {
		err = fs.ErrNotExist
	}
	return v, groupErr(g.name, "cpu usage", err)
}

func (g *v2Group) Counters() (Counters, error) {
	var c Counters
	var usec uint64
	found, err := readKeyedFile(filepath.Join(g.dir, "cpu.stat"), []string{"usage_usec", "nr_throttled"}, []*uint64{&usec, &c.NrThrottled})
	if err != nil {
		return c, groupErr(g.name, "counters", err)
	}
	if !found && !exists(g.dir) {
		return c, groupErr(g.name, "counters", fs.ErrNotExist)
	}
	c.CPUUsageNs = usec * 1000
	// Without the memory controller these files are absent: zeros.
	v, _, err1 := readUintFile(filepath.Join(g.dir, "memory.current"))
	c.MemCurrent = v
	_, err2 := readKeyedFile(filepath.Join(g.dir, "memory.events"), []string{"oom_kill"}, []*uint64{&c.OOMKills})
	return c, groupErr(g.name, "counters", errors.Join(err1, err2))
}

func (g *v2Group) CPUUsage() (uint64, error) {
	var usec uint64
	found, err := readKeyedFile(filepath.Join(g.dir, "cpu.stat"), []string{"usage_usec"}, []*uint64{&usec})
	if err == nil && !found {
		err = fs.ErrNotExist
	}
	return usec * 1000, groupErr(g.name, "cpu usage", err)
}
