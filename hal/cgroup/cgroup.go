// Package cgroup manages the agents' cgroups: one group per agent, created
// under the daemon's own cgroup (a delegated subtree) in every hierarchy the
// host has, on cgroup v2 or on the cgroup v1 hierarchies.
//
// Detection follows containerd/cgroups (cgroups.Mode()): a cgroup2 file
// system at Root is the unified hierarchy (v2); anything else is Legacy or
// Hybrid and uses the v1 hierarchies mounted at Root/<controller>. On a
// hybrid host (a cgroup2 mount at Root/unified next to the v1 mounts) each
// v1 group also gets a directory in the unified hierarchy: it has no
// controllers there, but it tracks the processes (cgroup.procs,
// cgroup.events) the way systemd's hybrid mode does.
//
// A group lives at <own cgroup>/<Prefix>/<name> in each hierarchy, where the
// own cgroup is the daemon's line for that hierarchy in /proc/self/cgroup.
// This package never writes to a cgroup it did not create: on v2 it enables
// controllers only in the Prefix cgroups, so the daemon's own cgroup must
// already delegate them (its cgroup.subtree_control, e.g. systemd's
// Delegate=yes); a controller that is not delegated makes the setters fail
// with ErrUnsupported.
//
// The plumbing is github.com/containerd/cgroups/v3 (cgroup1 and cgroup2).
// Files are written directly only where that library lacks something; each
// such place says why.
//
// Semantics that differ between the versions:
//
//   - SetWeight takes a cgroup v2 cpu.weight (1..10000, default 100). On v1
//     it writes cpu.shares = WeightToShares(w), the inverse of the standard
//     shares-to-weight conversion of runc and containerd
//     (cgroup2.ConvertCPUSharesToCgroupV2Value), so 100 <-> 1024, 1 <-> 2 and
//     10000 <-> 262144.
//   - SetMemHigh is memory.high on v2 (a throttling threshold). v1 has no
//     memory.high: the nearest thing, memory.soft_limit_in_bytes, is written
//     instead; it is only a reclaim target under global memory pressure and
//     never throttles.
//   - Freeze waits until the kernel reports the group frozen: v1
//     freezer.state FROZEN (not FREEZING), v2 cgroup.events "frozen 1". A
//     frozen v1 task shows "D (disk sleep)" in /proc/PID/status, a frozen v2
//     task "S (sleeping)".
//   - Kill writes cgroup.kill on v2; on v1 it freezes the group, sends
//     SIGKILL to each pid and thaws it (v1 tasks cannot die frozen). Either
//     way it returns once the group is empty, and leaves it thawed. Killed
//     children of the daemon leave cgroup.procs before they are reaped.
//
// Paths assume each cgroup file system is mounted at its root (the usual
// case, also inside a cgroup namespace); a bind mount of a subtree would
// need the mountinfo offset, which this package does not apply.
package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"golang.org/x/sys/unix"
)

// Defaults for Config.
const (
	DefaultRoot     = "/sys/fs/cgroup"
	DefaultProcSelf = "/proc/self/cgroup"
	DefaultPrefix   = "aiosfs"
)

// Sentinel errors; the errors returned wrap them (and fs.ErrExist,
// fs.ErrNotExist for Create and Load).
var (
	// ErrUnsupported: the host (or this group) lacks the controller or file.
	ErrUnsupported = errors.New("not supported by this host's cgroups")
	// ErrBusy: the group still has processes.
	ErrBusy = errors.New("cgroup still has processes")
	// ErrInvalid: a bad argument (name, pid, value out of range).
	ErrInvalid = errors.New("invalid argument")
)

// Config says where the cgroup file systems are and where the agents'
// groups go. Every root is a parameter so tests can use fixture trees.
type Config struct {
	Root     string // cgroup mount root, default /sys/fs/cgroup
	ProcSelf string // the daemon's /proc/self/cgroup, default /proc/self/cgroup
	Prefix   string // subtree under the daemon's own cgroup, default "aiosfs"
	Version  string // "", "v1" or "v2"; "" detects
}

// Stats is one reading of a group's counters, in base units. Figures of a
// controller the group lacks are zero and the controller is named in
// Missing.
type Stats struct {
	CPUUsageNs  uint64 // v1 cpuacct.usage; v2 cpu.stat usage_usec*1000
	NrPeriods   uint64 // cpu.stat nr_periods
	NrThrottled uint64 // cpu.stat nr_throttled
	ThrottledNs uint64 // v1 cpu.stat throttled_time; v2 throttled_usec*1000
	MemCurrent  uint64 // v1 memory.usage_in_bytes; v2 memory.current
	MemPeak     uint64 // v1 memory.max_usage_in_bytes; v2 memory.peak
	MemLimit    int64  // v1 memory.limit_in_bytes; v2 memory.max; -1 = none
	OOMKills    uint64 // v1 memory.oom_control oom_kill; v2 memory.events oom_kill
	Pids        uint64 // pids.current; without the pids controller, the number of tasks
	Missing     []string
}

// Group is one agent's cgroup in every hierarchy. Errors wrap
// ErrUnsupported (controller missing), ErrInvalid (bad argument), ErrBusy
// (processes remain) or fs.ErrNotExist (group gone).
type Group interface {
	Name() string
	// Paths maps a controller ("cpu", "cpuacct", "cpuset", "memory",
	// "freezer", "pids"; "unified" for the cgroup2 directory) to the
	// group's absolute directory, where the kernel's own files are.
	Paths() map[string]string
	// Add moves the process (all its threads) into the group in every
	// hierarchy.
	Add(pid int) error
	// Procs lists the pids in cgroup.procs (the group and any cgroups
	// below it), sorted.
	Procs() ([]int, error)
	// Freeze returns once the kernel reports the group frozen (v1
	// freezer.state FROZEN, v2 cgroup.events frozen 1); Thaw likewise.
	Freeze() error
	Thaw() error
	Frozen() (bool, error)
	// SetWeight sets a cgroup v2 cpu.weight, 1..10000 (default 100); v1
	// writes cpu.shares = WeightToShares(w).
	SetWeight(w uint64) error
	// SetCPUMax limits the group to cores CPUs, as a quota of
	// cores×period CPU time refilled every period (0: 100ms; the kernel
	// takes 1ms..1s); 0 cores lifts the limit. v2 cpu.max, v1
	// cpu.cfs_quota_us/cpu.cfs_period_us.
	SetCPUMax(cores float64, period time.Duration) error
	// SetCpus sets cpuset.cpus ("0-2,5"); "" gives back the parent's.
	SetCpus(list string) error
	// SetMemHigh sets v2 memory.high; v1 has none and gets
	// memory.soft_limit_in_bytes. -1 = no limit.
	SetMemHigh(bytes int64) error
	// SetMemMax sets v2 memory.max, v1 memory.limit_in_bytes. -1 = no
	// limit.
	SetMemMax(bytes int64) error
	Stats() (Stats, error)
	// Kill sends SIGKILL to every process and returns once the group is
	// empty (ErrBusy if it does not empty in time); the group is left
	// thawed.
	Kill() error
	// SetPidsMax sets pids.max, the most tasks the group may hold; -1
	// lifts the limit.
	SetPidsMax(n int64) error
	// Delete removes the group from every hierarchy; a group already
	// gone is fine, one with processes fails with ErrBusy.
	Delete() error
}

// Manager creates, finds and removes the agents' groups.
type Manager struct {
	mu      sync.Mutex
	root    string
	prefix  string
	version string
	v1      []v1Ctl    // v1: the controllers in use
	unified *hierarchy // v2: the hierarchy; v1 on a hybrid host: tracking only
}

// hierarchy is one mounted hierarchy and the daemon's cgroup in it.
type hierarchy struct {
	mount string // absolute mount directory
	own   string // the daemon's cgroup, as in /proc/self/cgroup ("/" at the root)
}

type v1Ctl struct {
	name cgroup1.Name
	hierarchy
}

// v1Controllers are the v1 hierarchies an agent's group uses.
var v1Controllers = []cgroup1.Name{cgroup1.Cpu, cgroup1.Cpuacct, cgroup1.Cpuset, cgroup1.Memory, cgroup1.Freezer, cgroup1.Pids}

// New reads the daemon's own cgroups and the host's hierarchies.
func New(cfg Config) (*Manager, error) {
	if cfg.Root == "" {
		cfg.Root = DefaultRoot
	}
	if cfg.ProcSelf == "" {
		cfg.ProcSelf = DefaultProcSelf
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if err := validPrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	m := &Manager{root: filepath.Clean(cfg.Root), prefix: filepath.Clean(cfg.Prefix)}
	version := cfg.Version
	if version == "" {
		switch detectMode(m.root) {
		case cgroups.Unified:
			version = "v2"
		case cgroups.Legacy, cgroups.Hybrid:
			version = "v1"
		default:
			return nil, fmt.Errorf("cgroup: no cgroup file system at %s: %w", m.root, ErrUnsupported)
		}
	}
	own, unifiedOwn, err := cgroups.ParseCgroupFileUnified(cfg.ProcSelf)
	if err != nil {
		return nil, fmt.Errorf("cgroup: read own cgroups: %w", err)
	}
	switch version {
	case "v2":
		if unifiedOwn == "" {
			return nil, fmt.Errorf("cgroup: %s has no cgroup v2 (0::) line: %w", cfg.ProcSelf, ErrUnsupported)
		}
		m.unified = &hierarchy{mount: m.root, own: unifiedOwn}
	case "v1":
		for _, name := range v1Controllers {
			p, ok := own[string(name)]
			if !ok || !isCgroupDir(filepath.Join(m.root, string(name))) {
				continue
			}
			m.v1 = append(m.v1, v1Ctl{name: name, hierarchy: hierarchy{mount: filepath.Join(m.root, string(name)), own: p}})
		}
		if len(m.v1) == 0 {
			return nil, fmt.Errorf("cgroup: no cgroup v1 hierarchy under %s: %w", m.root, ErrUnsupported)
		}
		// Hybrid host: the cgroup2 mount next to the v1 ones.
		if u := filepath.Join(m.root, "unified"); unifiedOwn != "" && isCgroupDir(u) {
			m.unified = &hierarchy{mount: u, own: unifiedOwn}
		}
	default:
		return nil, fmt.Errorf("cgroup: version %q (want v1 or v2): %w", cfg.Version, ErrInvalid)
	}
	m.version = version
	return m, nil
}

// detectMode is cgroups.Mode() for a root given as a parameter: the
// library's Mode() only ever looks at /sys/fs/cgroup, so it is used as is
// for that root and mirrored for any other.
func detectMode(root string) cgroups.CGMode {
	if root == DefaultRoot {
		return cgroups.Mode()
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return cgroups.Unavailable
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return cgroups.Unified
	}
	if err := unix.Statfs(filepath.Join(root, "unified"), &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return cgroups.Hybrid
	}
	return cgroups.Legacy
}

// isCgroupDir says whether dir looks like a cgroup (every cgroup directory,
// v1 or v2, has cgroup.procs).
func isCgroupDir(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "cgroup.procs"))
	return err == nil
}

// Version is "v1" or "v2".
func (m *Manager) Version() string { return m.version }

// prefixDir is the Prefix directory in a hierarchy.
func (m *Manager) prefixDir(h hierarchy) string {
	return filepath.Join(h.mount, h.own, m.prefix)
}

// hierarchies lists every hierarchy a group has a directory in.
func (m *Manager) hierarchies() []hierarchy {
	var hs []hierarchy
	for _, c := range m.v1 {
		hs = append(hs, c.hierarchy)
	}
	if m.unified != nil {
		hs = append(hs, *m.unified)
	}
	return hs
}

// ParentPrefix begins the name of a parent group: a directory under Prefix
// that holds other groups (one user's agents, user-UID, the way systemd's
// user-UID.slice holds a user's sessions) rather than processes.
const ParentPrefix = "user-"

// Create makes the group <own cgroup>/<Prefix>/<name> in every hierarchy.
// name is one group name, or PARENT/NAME for a group inside a parent group
// (created on the way if missing). It fails (wrapping fs.ErrExist) if the
// group exists in any of them.
func (m *Manager) Create(name string) (Group, error) {
	if err := validGroupPath(name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range m.hierarchies() {
		d := filepath.Join(m.prefixDir(h), name)
		if _, err := os.Lstat(d); err == nil {
			return nil, fmt.Errorf("cgroup: create %s: %s: %w", name, d, fs.ErrExist)
		}
	}
	if m.version == "v2" {
		return m.createV2(name)
	}
	return m.openV1(name, true)
}

// Load opens an existing group (after a daemon restart). A v1 group found
// in only some hierarchies (a crash during Create) gets its missing
// directories back.
func (m *Manager) Load(name string) (Group, error) {
	if err := validGroupPath(name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	found := false
	for _, h := range m.hierarchies() {
		if fi, err := os.Stat(filepath.Join(m.prefixDir(h), name)); err == nil && fi.IsDir() {
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("cgroup: load %s: %w", name, fs.ErrNotExist)
	}
	if m.version == "v2" {
		return m.loadV2(name)
	}
	return m.openV1(name, false)
}

// List returns the names of the groups under Prefix, in any hierarchy,
// sorted: the groups inside a parent group (ParentPrefix) as PARENT/NAME,
// and not the parent itself.
func (m *Manager) List() ([]string, error) {
	seen := map[string]bool{}
	for _, h := range m.hierarchies() {
		ents, err := os.ReadDir(m.prefixDir(h))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cgroup: list: %w", err)
		}
		for _, e := range ents {
			if !e.IsDir() || validName(e.Name()) != nil {
				continue
			}
			if !strings.HasPrefix(e.Name(), ParentPrefix) {
				seen[e.Name()] = true
				continue
			}
			kids, err := os.ReadDir(filepath.Join(m.prefixDir(h), e.Name()))
			if err != nil {
				continue // removed meanwhile
			}
			for _, k := range kids {
				if k.IsDir() && validName(k.Name()) == nil {
					seen[e.Name()+"/"+k.Name()] = true
				}
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Close removes the Prefix cgroups (each level of a nested Prefix, never
// the daemon's own cgroup) where they are empty; groups that still exist
// keep them.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, h := range m.hierarchies() {
		if ents, err := os.ReadDir(m.prefixDir(h)); err == nil {
			for _, e := range ents {
				if e.IsDir() && strings.HasPrefix(e.Name(), ParentPrefix) {
					unix.Rmdir(filepath.Join(m.prefixDir(h), e.Name())) // in use: kept, as the prefix is
				}
			}
		}
		for p := m.prefix; p != "." && p != "/"; p = filepath.Dir(p) {
			d := filepath.Join(h.mount, h.own, p)
			err := unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) {
				continue
			}
			if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
				break // still in use; so are the levels above
			}
			errs = append(errs, fmt.Errorf("cgroup: close: rmdir %s: %w", d, err))
			break
		}
	}
	return errors.Join(errs...)
}

// validName accepts a group name: 1..128 of [A-Za-z0-9_@-]. No dots, so a
// name can never collide with an interface file (cpu.max, cgroup.procs).
func validName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("cgroup: group name %q: %w", name, ErrInvalid)
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '@':
		default:
			return fmt.Errorf("cgroup: group name %q: bad character %q: %w", name, r, ErrInvalid)
		}
	}
	return nil
}

// validGroupPath accepts a group name, or PARENT/NAME where PARENT is a
// parent group's name (ParentPrefix...).
func validGroupPath(p string) error {
	parent, name, nested := strings.Cut(p, "/")
	if !nested {
		return validName(p)
	}
	if !strings.HasPrefix(parent, ParentPrefix) {
		return fmt.Errorf("cgroup: group %q: %q is not a parent group: %w", p, parent, ErrInvalid)
	}
	if err := validName(parent); err != nil {
		return err
	}
	return validName(name)
}

// Parent returns the parent group name (ParentPrefix...), creating it in
// every hierarchy if it is missing. Its setters bound every group inside
// it together: that is how one user's agents share one quota.
func (m *Manager) Parent(name string) (Group, error) {
	if !strings.HasPrefix(name, ParentPrefix) {
		return nil, fmt.Errorf("cgroup: parent %q must begin with %q: %w", name, ParentPrefix, ErrInvalid)
	}
	g, err := m.Load(name)
	if err == nil {
		return g, nil
	}
	g, err = m.Create(name)
	if errors.Is(err, fs.ErrExist) { // made meanwhile
		return m.Load(name)
	}
	return g, err
}

// RemoveParent removes a parent group that holds no group any more; one
// still in use is left, and that is not an error.
func (m *Manager) RemoveParent(name string) error {
	if !strings.HasPrefix(name, ParentPrefix) || validName(name) != nil {
		return fmt.Errorf("cgroup: parent %q: %w", name, ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range m.hierarchies() {
		err := unix.Rmdir(filepath.Join(m.prefixDir(h), name))
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.ENOTEMPTY) {
			return fmt.Errorf("cgroup: remove parent %s: %w", name, err)
		}
	}
	return nil
}

// validPrefix accepts a relative path of valid names.
func validPrefix(p string) error {
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("cgroup: prefix %q must be relative: %w", p, ErrInvalid)
	}
	for _, c := range strings.Split(p, "/") {
		if err := validName(c); err != nil {
			return fmt.Errorf("cgroup: prefix %q: %w", p, err)
		}
	}
	return nil
}
