package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// v1Group is a group on the cgroup v1 hierarchies (plus, on a hybrid host,
// a process-tracking directory in the unified hierarchy).
type v1Group struct {
	name  string
	all   cgroup1.Cgroup                  // every hierarchy: Add, Stat, Delete
	ctl   map[cgroup1.Name]cgroup1.Cgroup // one hierarchy each: the setters
	order []cgroup1.Name                  // hierarchies present, Procs order
	paths map[string]string
	uni   *cgroup2.Manager // hybrid only
	mu    sync.Mutex       // freezer state changes and Kill
}

// v1Hierarchy is the cgroup1.Hierarchy of the controllers in use, rooted at
// Config.Root (the library's Default() finds the root in
// /proc/self/mountinfo and takes every controller).
func (m *Manager) v1Hierarchy() ([]cgroup1.Subsystem, error) {
	var ss []cgroup1.Subsystem
	for _, c := range m.v1 {
		switch c.name {
		case cgroup1.Cpu:
			ss = append(ss, cgroup1.NewCpu(m.root))
		case cgroup1.Cpuacct:
			ss = append(ss, cgroup1.NewCpuacct(m.root))
		case cgroup1.Cpuset:
			ss = append(ss, cgroup1.NewCpuset(m.root))
		case cgroup1.Memory:
			// Kernel-memory figures are not used (and the kmem files are
			// going away); swap accounting may be off.
			ss = append(ss, cgroup1.NewMemory(m.root, cgroup1.OptionalSwap(), cgroup1.IgnoreModules("kmem", "kmem.tcp")))
		case cgroup1.Freezer:
			ss = append(ss, cgroup1.NewFreezer(m.root))
		case cgroup1.Pids:
			ss = append(ss, cgroup1.NewPids(m.root))
		}
	}
	return ss, nil
}

// v1Path is the group's cgroup path in each hierarchy: the daemon's own
// cgroup there (from Config.ProcSelf) plus Prefix and name. The library's
// NestedPath does the same but reads /proc/self/cgroup and
// /proc/self/mountinfo itself, so it cannot take fixture roots.
func (m *Manager) v1Path(name string) cgroup1.Path {
	own := map[cgroup1.Name]string{}
	for _, c := range m.v1 {
		own[c.name] = c.own
	}
	return func(s cgroup1.Name) (string, error) {
		o, ok := own[s]
		if !ok {
			return "", cgroup1.ErrControllerNotActive
		}
		return filepath.Join(o, m.prefix, name), nil
	}
}

// openV1 creates (or, for Load, completes) the group in every hierarchy.
// cgroup1.New is idempotent (MkdirAll) and copies cpuset.cpus and
// cpuset.mems from the parent into new cpuset cgroups.
func (m *Manager) openV1(name string, create bool) (Group, error) {
	path := m.v1Path(name)
	g := &v1Group{name: name, ctl: map[cgroup1.Name]cgroup1.Cgroup{}, paths: map[string]string{}}
	for _, c := range m.v1 {
		g.paths[string(c.name)] = filepath.Join(m.prefixDir(c.hierarchy), name)
		g.order = append(g.order, c.name)
	}
	if m.unified != nil {
		g.paths["unified"] = filepath.Join(m.prefixDir(*m.unified), name)
	}
	undo := func() {
		if !create {
			return
		}
		for _, d := range g.paths {
			os.Remove(d)
		}
	}
	all, err := cgroup1.New(path, &specs.LinuxResources{}, cgroup1.WithHierarchy(m.v1Hierarchy))
	if err != nil {
		undo()
		return nil, groupErr(name, "create", err)
	}
	g.all = all
	for _, c := range m.v1 {
		one, err := cgroup1.Load(path, cgroup1.WithHierarchy(cgroup1.SingleSubsystem(m.v1Hierarchy, c.name)))
		if err != nil {
			undo()
			return nil, groupErr(name, "load "+string(c.name), err)
		}
		g.ctl[c.name] = one
	}
	if m.unified != nil {
		// Plain mkdir: cgroup2.NewManager would also write
		// cgroup.subtree_control in every ancestor, the daemon's own
		// cgroup and the root included.
		if err := os.MkdirAll(g.paths["unified"], 0o755); err != nil {
			undo()
			return nil, groupErr(name, "create unified", err)
		}
		uni, err := cgroup2.Load(filepath.Join(m.unified.own, m.prefix, name), cgroup2.WithMountpoint(m.unified.mount))
		if err != nil {
			undo()
			return nil, groupErr(name, "load unified", err)
		}
		g.uni = uni
	}
	return g, nil
}

func (g *v1Group) Name() string { return g.name }

func (g *v1Group) Paths() map[string]string {
	out := make(map[string]string, len(g.paths))
	for k, v := range g.paths {
		out[k] = v
	}
	return out
}

// Add moves pid into the group in every hierarchy.
func (g *v1Group) Add(pid int) error {
	if err := checkPid(g.name, pid); err != nil {
		return err
	}
	if err := g.all.AddProc(uint64(pid)); err != nil {
		return groupErr(g.name, fmt.Sprintf("add pid %d", pid), err)
	}
	if g.uni != nil {
		if err := g.uni.AddProc(uint64(pid)); err != nil {
			return groupErr(g.name, fmt.Sprintf("add pid %d (unified)", pid), err)
		}
	}
	return nil
}

// Procs lists the pids in cgroup.procs of the group (and of any cgroups an
// agent made below it), read from the first hierarchy of memory, pids,
// freezer, cpu, cpuacct, cpuset that the host has.
func (g *v1Group) Procs() ([]int, error) {
	for _, n := range []cgroup1.Name{cgroup1.Memory, cgroup1.Pids, cgroup1.Freezer, cgroup1.Cpu, cgroup1.Cpuacct, cgroup1.Cpuset} {
		if _, ok := g.ctl[n]; ok {
			pids, err := g.procsIn(n)
			return pids, groupErr(g.name, "procs", err)
		}
	}
	return nil, unsupported(g.name, "procs", "no hierarchy")
}

func (g *v1Group) procsIn(n cgroup1.Name) ([]int, error) {
	dir, ok := g.paths[string(n)]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return procsTree(dir)
}

// procsAll is the union of the pids in every hierarchy; Kill and Delete
// use it so a process half moved (or moved out of one hierarchy by
// someone else) is not missed.
func (g *v1Group) procsAll() ([]int, error) {
	var pids []int
	for _, n := range g.order {
		p, err := g.procsIn(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		pids = append(pids, p...)
	}
	if g.uni != nil && exists(g.paths["unified"]) {
		p, err := g.uni.Procs(true)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, x := range p {
			pids = append(pids, int(x))
		}
	}
	return sortedUnique(pids), nil
}

// setFreezer writes freezer.state and waits until the kernel reports that
// state. The library's Freeze/Thaw do the same but loop without a deadline,
// and a task in uninterruptible sleep can keep a group FREEZING for ever;
// here a freeze that does not complete in freezeTimeout is undone (THAWED)
// and reported.
func (g *v1Group) setFreezer(op, want string) error {
	dir, ok := g.paths[string(cgroup1.Freezer)]
	if !ok {
		return unsupported(g.name, op, "no freezer hierarchy")
	}
	f := filepath.Join(dir, "freezer.state")
	last := ""
	err := pollUntil(freezeTimeout, func() (bool, error) {
		if err := os.WriteFile(f, []byte(want), filePerm); err != nil {
			return false, err
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return false, err
		}
		last = strings.TrimSpace(string(b))
		return last == want, nil
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if want == "FROZEN" {
			os.WriteFile(f, []byte("THAWED"), filePerm)
		}
		return groupErr(g.name, op, fmt.Errorf("freezer.state still %s after %v: %w", last, freezeTimeout, err))
	}
	return groupErr(g.name, op, err)
}

func (g *v1Group) Freeze() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.setFreezer("freeze", "FROZEN")
}

func (g *v1Group) Thaw() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.setFreezer("thaw", "THAWED")
}

// Frozen is true only for FROZEN (not FREEZING).
func (g *v1Group) Frozen() (bool, error) {
	dir, ok := g.paths[string(cgroup1.Freezer)]
	if !ok {
		return false, unsupported(g.name, "frozen", "no freezer hierarchy")
	}
	b, err := os.ReadFile(filepath.Join(dir, "freezer.state"))
	if err != nil {
		return false, groupErr(g.name, "frozen", err)
	}
	return strings.TrimSpace(string(b)) == "FROZEN", nil
}

// update applies resources to one hierarchy.
func (g *v1Group) update(op string, n cgroup1.Name, r *specs.LinuxResources) error {
	c, ok := g.ctl[n]
	if !ok {
		return unsupported(g.name, op, "no "+string(n)+" hierarchy")
	}
	return groupErr(g.name, op, c.Update(r))
}

// SetWeight writes cpu.shares = WeightToShares(w).
func (g *v1Group) SetWeight(w uint64) error {
	if w < MinWeight || w > MaxWeight {
		return fmt.Errorf("cgroup %s: weight %d not in 1..10000: %w", g.name, w, ErrInvalid)
	}
	shares := WeightToShares(w)
	return g.update("weight", cgroup1.Cpu, &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares}})
}

// SetCPUMax writes cpu.cfs_period_us (100000 for period 0) and
// cpu.cfs_quota_us (-1 for no limit).
func (g *v1Group) SetCPUMax(cores float64, periodD time.Duration) error {
	p, err := periodUs(periodD)
	if err != nil {
		return groupErr(g.name, "cpumax", err)
	}
	quota, err := coresToQuota(cores, p)
	if err != nil {
		return groupErr(g.name, "cpumax", err)
	}
	period := uint64(p)
	return g.update("cpumax", cgroup1.Cpu, &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}})
}

// SetCpus writes cpuset.cpus; cpuset.mems is copied from the parent when
// it is still empty (a v1 cpuset takes no task without both). An empty
// list means the parent's CPUs.
func (g *v1Group) SetCpus(list string) error {
	list = strings.TrimSpace(list)
	if list == "" {
		dir, ok := g.paths[string(cgroup1.Cpuset)]
		if !ok {
			return unsupported(g.name, "cpus", "no cpuset hierarchy")
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "cpuset.cpus"))
		if err != nil {
			return groupErr(g.name, "cpus", err)
		}
		list = strings.TrimSpace(string(b))
	}
	return g.update("cpus", cgroup1.Cpuset, &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: list}})
}

// SetMemHigh writes memory.soft_limit_in_bytes: v1 has no memory.high.
// The soft limit is only a reclaim target under global memory pressure; it
// does not throttle the group.
func (g *v1Group) SetMemHigh(bytes int64) error {
	if err := checkBytes("memhigh", bytes); err != nil {
		return groupErr(g.name, "memhigh", err)
	}
	return g.update("memhigh", cgroup1.Memory, &specs.LinuxResources{Memory: &specs.LinuxMemory{Reservation: &bytes}})
}

// SetMemMax writes memory.limit_in_bytes (-1 for no limit).
func (g *v1Group) SetMemMax(bytes int64) error {
	if err := checkBytes("memmax", bytes); err != nil {
		return groupErr(g.name, "memmax", err)
	}
	return g.update("memmax", cgroup1.Memory, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &bytes}})
}

// SetPidsMax writes pids.max (-1 lifts the limit). Written directly: the
// library writes only limits above 0 and cannot say "max".
func (g *v1Group) SetPidsMax(n int64) error {
	if n < -1 {
		return fmt.Errorf("cgroup %s: pids.max %d: %w", g.name, n, ErrInvalid)
	}
	dir, ok := g.paths[string(cgroup1.Pids)]
	if !ok {
		return unsupported(g.name, "pidsmax", "no pids hierarchy")
	}
	v := "max"
	if n >= 0 {
		v = strconv.FormatInt(n, 10)
	}
	return groupErr(g.name, "pidsmax", os.WriteFile(filepath.Join(dir, "pids.max"), []byte(v), filePerm))
}

func (g *v1Group) Stats() (Stats, error) {
	var s Stats
	if !g.anyExists() {
		return s, groupErr(g.name, "stats", fs.ErrNotExist)
	}
	m, err := g.all.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return s, groupErr(g.name, "stats", err)
	}
	if _, ok := g.ctl[cgroup1.Cpuacct]; ok {
		s.CPUUsageNs = m.CPU.Usage.Total
	} else {
		s.Missing = append(s.Missing, string(cgroup1.Cpuacct))
	}
	if _, ok := g.ctl[cgroup1.Cpu]; ok {
		s.NrPeriods = m.CPU.Throttling.Periods
		s.NrThrottled = m.CPU.Throttling.ThrottledPeriods
		s.ThrottledNs = m.CPU.Throttling.ThrottledTime
	} else {
		s.Missing = append(s.Missing, string(cgroup1.Cpu))
	}
	if _, ok := g.ctl[cgroup1.Memory]; ok && m.Memory != nil && m.Memory.Usage != nil {
		s.MemCurrent = m.Memory.Usage.Usage
		s.MemPeak = m.Memory.Usage.Max
		s.MemLimit = limitFromKernel(m.Memory.Usage.Limit)
		if m.MemoryOomControl != nil {
			s.OOMKills = m.MemoryOomControl.OomKill
		}
	} else {
		s.Missing = append(s.Missing, string(cgroup1.Memory))
	}
	if _, ok := g.ctl[cgroup1.Pids]; ok && m.Pids != nil {
		s.Pids = m.Pids.Current
	} else {
		// pids.current counts tasks; so does the tasks file.
		n, err := countLines(filepath.Join(g.paths[string(g.order[0])], "tasks"))
		if err != nil {
			return s, groupErr(g.name, "stats", err)
		}
		s.Pids = n
	}
	sort.Strings(s.Missing)
	return s, nil
}

// Kill freezes the group (so nothing forks meanwhile), sends SIGKILL to
// every pid, thaws it so the tasks can die, and waits until it is empty.
// Without a freezer hierarchy it repeats the kill round until nothing is
// left. cgroup1 has no Kill.
func (g *v1Group) Kill() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, freezer := g.paths[string(cgroup1.Freezer)]
	if freezer {
		// Best effort: a task that cannot freeze can still be killed.
		_ = g.setFreezer("kill: freeze", "FROZEN")
	}
	pids, err := g.procsAll()
	if err != nil {
		if freezer {
			g.setFreezer("kill: thaw", "THAWED")
		}
		return groupErr(g.name, "kill", err)
	}
	kerr := killPids(pids)
	if freezer {
		if err := g.setFreezer("kill: thaw", "THAWED"); err != nil {
			return err
		}
	}
	if kerr != nil {
		return groupErr(g.name, "kill", kerr)
	}
	return waitEmpty(g.name, g.procsAll)
}

func (g *v1Group) anyExists() bool {
	for _, d := range g.paths {
		if exists(d) {
			return true
		}
	}
	return false
}

// Delete removes the group from every hierarchy. A group already gone is
// not an error; a group with processes is (ErrBusy), and nothing is
// removed then.
func (g *v1Group) Delete() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.anyExists() {
		return nil
	}
	pids, err := g.procsAll()
	if err != nil {
		return groupErr(g.name, "delete", err)
	}
	if len(pids) > 0 {
		return fmt.Errorf("cgroup %s: delete: pids %v: %w", g.name, pids, ErrBusy)
	}
	if err := g.all.Delete(); err != nil && !errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return groupErr(g.name, "delete", err)
	}
	// The library's Delete skips a hierarchy whose directory it finds
	// gone, and the group may have been reloaded after a partial delete.
	for _, n := range g.order {
		if d := g.paths[string(n)]; exists(d) {
			if err := os.Remove(d); err != nil {
				return groupErr(g.name, "delete", err)
			}
		}
	}
	if g.uni != nil && exists(g.paths["unified"]) {
		if err := g.uni.Delete(); err != nil {
			return groupErr(g.name, "delete unified", err)
		}
	}
	return nil
}
