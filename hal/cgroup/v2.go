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

	"github.com/containerd/cgroups/v3/cgroup2"
)

// v2Controllers are the controllers an agent's group wants delegated.
var v2Controllers = []string{"cpu", "cpuset", "memory", "pids"}

// v2Group is a group in the unified hierarchy.
type v2Group struct {
	name string
	dir  string
	mgr  *cgroup2.Manager
	mu   sync.Mutex
}

// createV2 makes the Prefix levels (enabling in each the wanted
// controllers its parent delegates) and the group directory.
func (m *Manager) createV2(name string) (Group, error) {
	h := *m.unified
	levels := m.prefix
	if parent, _, nested := strings.Cut(name, "/"); nested {
		levels = filepath.Join(m.prefix, parent) // the parent delegates to its groups too
	}
	if err := m.ensureLevelsV2(h, levels); err != nil {
		return nil, groupErr(name, "create", err)
	}
	dir := filepath.Join(m.prefixDir(h), name)
	// Plain mkdir, not cgroup2.NewManager: that uses MkdirAll (no "exists"
	// error) and writes cgroup.subtree_control in every ancestor from the
	// mount point down, the daemon's own cgroup and the root included,
	// which this package must not change.
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, groupErr(name, "create", err)
	}
	g, err := m.loadV2(name)
	if err != nil {
		os.Remove(dir)
	}
	return g, err
}

// ensureLevelsV2 creates each level of levels (Prefix, or Prefix and a
// parent group) below the daemon's own
// cgroup and enables there the controllers of v2Controllers that are
// available to it. The subtree_control writes are done here, level by
// level, for the reason given in createV2. A controller that cannot be
// enabled is left out: the group's setters then report ErrUnsupported.
func (m *Manager) ensureLevelsV2(h hierarchy, levels string) error {
	dir := filepath.Join(h.mount, h.own)
	for _, c := range strings.Split(levels, "/") {
		dir = filepath.Join(dir, c)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		avail, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		if err != nil {
			continue // not a cgroup2 directory we can steer; setters will say so
		}
		on, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		for _, c := range v2Controllers {
			if hasWord(string(avail), c) && !hasWord(string(on), c) {
				_ = os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), filePerm)
			}
		}
	}
	return nil
}

func (m *Manager) loadV2(name string) (Group, error) {
	h := *m.unified
	group := filepath.Join(h.own, m.prefix, name)
	mgr, err := cgroup2.Load(group, cgroup2.WithMountpoint(h.mount))
	if err != nil {
		return nil, groupErr(name, "load", err)
	}
	return &v2Group{name: name, dir: filepath.Join(h.mount, group), mgr: mgr}, nil
}

func (g *v2Group) Name() string { return g.name }

func (g *v2Group) Paths() map[string]string { return map[string]string{"unified": g.dir} }

func (g *v2Group) Add(pid int) error {
	if err := checkPid(g.name, pid); err != nil {
		return err
	}
	return groupErr(g.name, fmt.Sprintf("add pid %d", pid), g.mgr.AddProc(uint64(pid)))
}

// Procs lists cgroup.procs of the group and of any cgroups below it.
func (g *v2Group) Procs() ([]int, error) {
	pids, err := procsTree(g.dir)
	return pids, groupErr(g.name, "procs", err)
}

// frozenEvent reads "frozen" from cgroup.events: the kernel's word that
// every task has stopped (cgroup.freeze only echoes what was asked).
func (g *v2Group) frozenEvent() (bool, error) {
	v, err := readKeyed(filepath.Join(g.dir, "cgroup.events"), "frozen")
	return v == 1, err
}

// setFreeze asks for the state through the library (which writes and
// re-reads cgroup.freeze) and then waits for cgroup.events to report it,
// which the library does not.
func (g *v2Group) setFreeze(op string, frozen bool) error {
	if !exists(filepath.Join(g.dir, "cgroup.freeze")) {
		if !exists(g.dir) {
			return groupErr(g.name, op, fs.ErrNotExist)
		}
		return unsupported(g.name, op, "no cgroup.freeze (kernel before 5.2)")
	}
	var err error
	if frozen {
		err = g.mgr.Freeze()
	} else {
		err = g.mgr.Thaw()
	}
	if err != nil {
		return groupErr(g.name, op, err)
	}
	err = pollUntil(freezeTimeout, func() (bool, error) {
		f, err := g.frozenEvent()
		return f == frozen, err
	})
	if errors.Is(err, os.ErrDeadlineExceeded) && frozen {
		g.mgr.Thaw()
		err = fmt.Errorf("cgroup.events not frozen after %v: %w", freezeTimeout, err)
	}
	return groupErr(g.name, op, err)
}

func (g *v2Group) Freeze() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.setFreeze("freeze", true)
}

func (g *v2Group) Thaw() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.setFreeze("thaw", false)
}

func (g *v2Group) Frozen() (bool, error) {
	f, err := g.frozenEvent()
	return f, groupErr(g.name, "frozen", err)
}

// need checks that the group has controller c (its cgroup.controllers,
// i.e. the parent delegates it).
func (g *v2Group) need(op, c string) error {
	b, err := os.ReadFile(filepath.Join(g.dir, "cgroup.controllers"))
	if err != nil {
		return groupErr(g.name, op, err)
	}
	if !hasWord(string(b), c) {
		return unsupported(g.name, op, fmt.Sprintf("no %s controller in %s/cgroup.controllers (%q)", c, g.dir, strings.TrimSpace(string(b))))
	}
	return nil
}

func (g *v2Group) update(op, c string, r *cgroup2.Resources) error {
	if err := g.need(op, c); err != nil {
		return err
	}
	return groupErr(g.name, op, g.mgr.Update(r))
}

// writeFile writes a value the library cannot express (see callers).
func (g *v2Group) writeFile(op, c, file, value string) error {
	if err := g.need(op, c); err != nil {
		return err
	}
	return groupErr(g.name, op, os.WriteFile(filepath.Join(g.dir, file), []byte(value), filePerm))
}

// SetWeight writes cpu.weight.
func (g *v2Group) SetWeight(w uint64) error {
	if w < MinWeight || w > MaxWeight {
		return fmt.Errorf("cgroup %s: weight %d not in 1..10000: %w", g.name, w, ErrInvalid)
	}
	return g.update("weight", "cpu", &cgroup2.Resources{CPU: &cgroup2.CPU{Weight: &w}})
}

// SetCPUMax writes cpu.max "QUOTA PERIOD" (PERIOD 100000 for period 0),
// or "max PERIOD" for 0 cores.
func (g *v2Group) SetCPUMax(cores float64, periodD time.Duration) error {
	p, err := periodUs(periodD)
	if err != nil {
		return groupErr(g.name, "cpumax", err)
	}
	quota, err := coresToQuota(cores, p)
	if err != nil {
		return groupErr(g.name, "cpumax", err)
	}
	period := uint64(p)
	q := &quota
	if quota < 0 {
		q = nil // the library writes "max"
	}
	return g.update("cpumax", "cpu", &cgroup2.Resources{CPU: &cgroup2.CPU{Max: cgroup2.NewCPUMax(q, &period)}})
}

// SetCpus writes cpuset.cpus; an empty list gives the parent's CPUs back.
func (g *v2Group) SetCpus(list string) error {
	list = strings.TrimSpace(list)
	if list == "" {
		// The library skips empty values, and "" is how v2 says "inherit".
		return g.writeFile("cpus", "cpuset", "cpuset.cpus", "\n")
	}
	return g.update("cpus", "cpuset", &cgroup2.Resources{CPU: &cgroup2.CPU{Cpus: list}})
}

// setMem writes memory.high or memory.max; -1 is "max", which the
// library's int64 fields cannot say (it would write "-1", which the kernel
// rejects).
func (g *v2Group) setMem(op, file string, bytes int64, r *cgroup2.Memory) error {
	if err := checkBytes(op, bytes); err != nil {
		return groupErr(g.name, op, err)
	}
	if bytes < 0 {
		return g.writeFile(op, "memory", file, "max")
	}
	return g.update(op, "memory", &cgroup2.Resources{Memory: r})
}

func (g *v2Group) SetMemHigh(bytes int64) error {
	return g.setMem("memhigh", "memory.high", bytes, &cgroup2.Memory{High: &bytes})
}

func (g *v2Group) SetMemMax(bytes int64) error {
	return g.setMem("memmax", "memory.max", bytes, &cgroup2.Memory{Max: &bytes})
}

// SetPidsMax writes pids.max ("max" for -1).
func (g *v2Group) SetPidsMax(n int64) error {
	v := "max"
	switch {
	case n >= 0:
		v = strconv.FormatInt(n, 10)
	case n < -1:
		return fmt.Errorf("cgroup %s: pids.max %d: %w", g.name, n, ErrInvalid)
	}
	return g.writeFile("pidsmax", "pids", "pids.max", v)
}

func (g *v2Group) Stats() (Stats, error) {
	var s Stats
	ctl, err := os.ReadFile(filepath.Join(g.dir, "cgroup.controllers"))
	if err != nil {
		// The library's Stat reads a missing cgroup as zeros.
		return s, groupErr(g.name, "stats", err)
	}
	m, err := g.mgr.StatFiltered(cgroup2.StatCPU | cgroup2.StatMemory | cgroup2.StatMemoryEvents | cgroup2.StatPids)
	if err != nil {
		return s, groupErr(g.name, "stats", err)
	}
	if m.CPU != nil {
		// usage_usec is in every cgroup's cpu.stat; the throttling
		// figures need the cpu controller.
		s.CPUUsageNs = m.CPU.UsageUsec * 1000
		s.NrPeriods = m.CPU.NrPeriods
		s.NrThrottled = m.CPU.NrThrottled
		s.ThrottledNs = m.CPU.ThrottledUsec * 1000
	}
	if !hasWord(string(ctl), "cpu") {
		s.Missing = append(s.Missing, "cpu")
	}
	if hasWord(string(ctl), "memory") && m.Memory != nil {
		s.MemCurrent = m.Memory.Usage
		s.MemPeak = m.Memory.MaxUsage
		s.MemLimit = limitFromKernel(m.Memory.UsageLimit)
		if m.MemoryEvents != nil {
			s.OOMKills = m.MemoryEvents.OomKill
		}
	} else {
		s.Missing = append(s.Missing, "memory")
	}
	if hasWord(string(ctl), "pids") && m.Pids != nil {
		s.Pids = m.Pids.Current
	} else {
		// pids.current counts tasks; so does cgroup.threads.
		n, err := countLines(filepath.Join(g.dir, "cgroup.threads"))
		if err != nil {
			return s, groupErr(g.name, "stats", err)
		}
		s.Pids = n
	}
	sort.Strings(s.Missing)
	return s, nil
}

// Kill writes cgroup.kill (kernel 5.14+) through the library, thaws the
// group if it was frozen and waits until it is empty. Without cgroup.kill it freezes, kills each pid
// and thaws itself: the library's own fallback also wait(2)s for each
// killed process, which would reap the daemon's own children behind the
// back of whoever started them.
func (g *v2Group) Kill() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !exists(g.dir) {
		return groupErr(g.name, "kill", fs.ErrNotExist)
	}
	if exists(filepath.Join(g.dir, "cgroup.kill")) {
		if err := g.mgr.Kill(); err != nil {
			return groupErr(g.name, "kill", err)
		}
		// SIGKILL ends frozen v2 tasks too, but an empty group left frozen
		// would freeze the next process added to it (a restart); v1 must
		// thaw to kill at all, so both leave the group thawed.
		if b, err := os.ReadFile(filepath.Join(g.dir, "cgroup.freeze")); err == nil && strings.TrimSpace(string(b)) == "1" {
			if err := g.setFreeze("kill: thaw", false); err != nil {
				return err
			}
		}
	} else {
		_ = g.setFreeze("kill: freeze", true)
		pids, err := g.Procs()
		if err == nil {
			err = killPids(pids)
		}
		if terr := g.setFreeze("kill: thaw", false); terr != nil && !errors.Is(terr, ErrUnsupported) {
			return terr
		}
		if err != nil {
			return groupErr(g.name, "kill", err)
		}
	}
	return waitEmpty(g.name, g.Procs)
}

// Delete removes the group. A group already gone is not an error; a group
// with processes is (ErrBusy).
func (g *v2Group) Delete() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !exists(g.dir) {
		return nil
	}
	pids, err := g.Procs()
	if err != nil {
		return err
	}
	if len(pids) > 0 {
		return fmt.Errorf("cgroup %s: delete: pids %v: %w", g.name, pids, ErrBusy)
	}
	return groupErr(g.name, "delete", g.mgr.Delete())
}
