// Package mem is the adaptive memory manager. One learning core serves
// two things: the memory fabric (named regions that agents use, served as
// files, whose page cache the manager runs) and the agents' own process
// memory, whose hot and cold parts it learns from the kernel and acts on
// through the kernel (package hal/vm).
//
//	mem/
//	    ctl                 alloc free policy prefetch grant revoke tag untag lease
//	                        interval paging pressure save (root's) (read it for the table)
//	    status              one line: the manager as a whole
//	    cache               one line per region: policy, capacity, hits, misses
//	    prefetch            one line per region: the prefetch queue and its accuracy
//	    regions/NAME/
//	        data            the region's bytes, read and written at offsets
//	        info            one line: what the region is
//	        pattern         its learned access pattern
//	        ctl             policy prefetch cache grant revoke tag untag lease free
//	    find/TAG            the regions carrying tag TAG, one line each (ls find/ lists tags)
//	agents/N/mem/
//	    pattern wss hot policy decisions ctl   (see procmem.go; the agent owner's)
//
// What the analyzer learned of each agent (hot ranges, paging decisions
// and their outcomes, statistics) is kept in mem/agents/N.json (see
// procstate.go); the agents' paging policies and mem/ctl's paging
// settings in mem/settings.json (settings.go).
//
// Formats: one record per line, key=value in the order shown where each
// file is rendered, base units (bytes, seconds, fractions 0..1).
//
// Region kinds: ephemeral regions end when their lease runs out or their
// owner agent ends; persistent ones are files in the state directory
// (mem/NAME.data, NAME.meta, NAME.pattern) and come back at restart with
// their bytes and a cache warmed from the saved pattern; shared ones may
// be granted to several agents. Ephemeral and shared regions live in
// mem/tmp/ and are removed at restart.
//
// Space: a region's data file has its whole size allocated at alloc
// (fallocate; on a filesystem without it, a free-space check), so alloc
// fails with ENOSPC when the state filesystem cannot hold it, and a
// region's writes never meet ENOSPC later; a write across a region's end
// is refused (EFBIG), so no data file grows past its declared size. Each
// uid but root holds at most Config.Quota's bytes and regions, all kinds
// together (default 1 GiB in 16 regions); a region counts for its uid,
// its maker's or, with owner=N, agent N's (so root's alloc for a user's
// agent counts for that user). An alloc past them fails with EDQUOT and
// a message naming the uid's usage and quota.
//
// Saving tells the truth: every verb that changes what the state
// directory keeps (alloc, free, a region's policy prefetch cache grant
// revoke tag untag lease, mem/ctl's interval paging pressure, an agent's
// policy) writes it before the change takes effect, and a change that
// cannot be written is refused with the kernel's errno (ENOSPC, EROFS,
// EDQUOT, EIO, EPERM) and changes nothing, now or after a restart. An
// alloc is all or nothing: a region whose data cannot be reserved or
// whose metadata cannot be saved leaves no file and is never listed. The
// background saves nobody waits on (patterns each period, agents' state
// files) report a failure in the daemon's log and as an error event.
//
// Who may do what: alloc is anyone's, within their quota (owner=N only
// for an agent of the caller's); a region's verbs and data are its uid's
// and root's (data also for the uids of agents it is granted to);
// interval, paging, pressure and save are root's (EPERM). An agent's
// memory layout (agents/N/mem/pattern, hot, decisions, wss) is mode 0400,
// owned by the agent's uid, as /proc/PID/maps is the process owner's;
// agents/N/mem/ctl is 0600 and its verbs check the caller (EPERM).
package mem

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"aiosfs/ctl"
	"aiosfs/engines/bus"
	"aiosfs/fs"
	"aiosfs/hal/vm"
)

// AgentInfo is what the manager needs to know of an agent.
type AgentInfo struct {
	Alive    bool
	Uid, Gid uint32
	Pids     []int
	MemDir   string // its memory cgroup directory ("" unknown)
	// Sampled is the agent's latest telemetry sample, when the daemon
	// has one (nil: the engine reads what it needs from the kernel).
	// With it the engine skips smaps and clear_refs of a quiet agent
	// (procMem.quiet) and takes the agent's memory usage from it.
	Sampled *Sampled
	// MemLimit is the agent's memory hard limit as its record holds it,
	// in bytes (vm.Unlimited: none). It changes only through the agent
	// registry (agents/N/ctl, Apply), which the daemon reads it from; 0
	// is unknown, and the engine reads the cgroup's file.
	MemLimit int64
}

// Sampled is what the engine takes from an agent's telemetry sample.
type Sampled struct {
	Time       time.Time
	CPU        float64 // cores used over the sample's interval
	CPUSeconds float64 // cumulative CPU seconds of the agent's cgroup
	Mem        int64   // the memory cgroup's usage in bytes (0: unknown)
}

// Agents is the narrow view of the agent registry the manager uses.
type Agents interface {
	IDs() []int
	Agent(id int) (AgentInfo, error)
}

// Config is what the engine needs from the daemon.
type Config struct {
	StateDir string
	NS       *fs.NS
	Bus      *bus.Bus // may be nil
	Agents   Agents   // may be nil: no per-agent work
	Proc     vm.FS
	// Interval is the sampling period of the analyzers; 0 means 2s.
	Interval time.Duration
	// DefaultCache is a region's page cache when alloc gives no cache=;
	// 0 means 16 MiB (or the region's size if smaller).
	DefaultCache int64
	Seed         int64
	Logf         func(format string, args ...any)
	// Quota is the most region bytes and regions uid may hold, all
	// kinds together (see checkQuota); a negative value is no limit on
	// that one. Root is never asked: it has none. nil means DefaultQuota
	// (1 GiB in 16 regions for every uid).
	Quota func(uid uint32) (maxBytes int64, maxRegions int)
}

// minInterval is the shortest sampling period of the analyzers.
const minInterval = 50 * time.Millisecond

// Engine is the memory manager.
type Engine struct {
	cfg Config
	dir string // <state>/mem
	tmp string // <state>/mem/tmp
	// txMu serialises every change that is saved or makes files (alloc,
	// free, region verbs, mem/ctl's settings, agents' policies): each is
	// checked against, and edits, what the last one left. Taken before mu.
	txMu    sync.Mutex
	mu      sync.Mutex
	regions map[string]*Region
	procs   map[int]*procMem
	// Paging settings.
	paging    bool
	threshold float64 // PSI some avg10 that counts as pressure
	limitFrac float64 // usage/limit that counts as pressure
	interval  time.Duration
	ivChange  chan time.Duration
	lastPSI   vm.Pressure
	psiErr    error
	// readMu serialises agents' samples: the smaps reader and the
	// mapping slices it fills (scratch) are kept from one to the next.
	readMu  sync.Mutex
	smaps   *vm.SmapsReader
	scratch [][]vm.Mapping
	// quietPeriods counts agents' periods taken without reading smaps
	// (procMem.quiet), under mu.
	quietPeriods uint64
	// tun are the cost remedies in force (tuning.go), under mu.
	tun Tuning
}

// New opens (and creates) <state>/mem, removes what ephemeral and shared
// regions left, and loads the persistent regions with warmed caches.
func New(cfg Config) (*Engine, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.DefaultCache <= 0 {
		cfg.DefaultCache = 16 << 20
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Proc == "" {
		cfg.Proc = "/proc"
	}
	e := &Engine{cfg: cfg, dir: filepath.Join(cfg.StateDir, "mem"), regions: map[string]*Region{},
		procs: map[int]*procMem{}, paging: true, threshold: 0.10, limitFrac: 0.90,
		interval: cfg.Interval, ivChange: make(chan time.Duration, 1), tun: DefaultTuning}
	e.tun.Every = max(e.tun.Every, 1)
	e.tmp = filepath.Join(e.dir, "tmp")
	e.smaps = cfg.Proc.NewSmapsReader()
	// Ephemeral and shared regions do not outlive the daemon.
	if err := os.RemoveAll(e.tmp); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(e.tmp, 0700); err != nil {
		return nil, err
	}
	// What was learned of the agents' memory first, then the settings
	// (agents' policies) on top; a damaged file must not keep the manager
	// down: say so and run on the defaults.
	e.loadProcs()
	if err := e.loadSettings(); err != nil {
		cfg.Logf("%v: starting with the default settings", err)
	}
	metas, _ := filepath.Glob(filepath.Join(e.dir, "*.meta"))
	sort.Strings(metas)
	for _, mp := range metas {
		if err := e.restore(mp); err != nil {
			cfg.Logf("mem: restore %s: %v", mp, err)
		}
	}
	enginesMu.Lock()
	engines[e] = true
	enginesMu.Unlock()
	return e, nil
}

func (e *Engine) restore(metaPath string) error {
	b, err := os.ReadFile(metaPath)
	if err != nil {
		return err
	}
	var m regionMeta
	if err := jsonUnmarshal(b, &m); err != nil {
		return err
	}
	if ValidName(m.Name) != nil || m.Kind != Persistent || m.Size <= 0 || m.Size > MaxRegionSize {
		return fmt.Errorf("bad metadata")
	}
	r, err := e.open(m, filepath.Join(e.dir, m.Name+".data"), false)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.regions[m.Name] = r
	e.mu.Unlock()
	n := r.cache.Warm(loadPattern(filepath.Join(e.dir, m.Name+".pattern")))
	e.publish("restore", bus.F("region", m.Name), bus.F("size", m.Size), bus.F("warmed_pages", n))
	return nil
}

func (e *Engine) publish(kind string, f ...bus.Field) { e.publishFor(0, kind, f...) }

// publishFor publishes an event about agent id, in the event's agent slot
// so that it reaches agents/N/events.
func (e *Engine) publishFor(id int, kind string, f ...bus.Field) {
	if e.cfg.Bus != nil {
		e.cfg.Bus.Publish(bus.Event{Source: "mem", Kind: kind, Agent: id, Fields: f})
	}
}

// open opens the backing file and builds the cache and starts the
// prefetcher; the caller adds the region to e.regions. create says
// whether the file must be new: a new file gets its whole size reserved
// on disk (reserve) before the region exists.
func (e *Engine) open(m regionMeta, path string, create bool) (*Region, error) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0600)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Region, error) {
		f.Close()
		if create {
			os.Remove(path)
		}
		return nil, err
	}
	if create {
		if err := reserve(f, m.Size); err != nil {
			return fail(fmt.Errorf("mem: region %s: reserving %s on the state filesystem: %w", m.Name, ctl.FormatSize(m.Size), err))
		}
	} else {
		if st, err := f.Stat(); err != nil || st.Size() != m.Size {
			if err := f.Truncate(m.Size); err != nil {
				return fail(err)
			}
		}
		// A region made sparse (by an older daemon) gets its blocks now;
		// fallocate keeps the bytes. If they do not fit it is served as
		// it is, and said so: its writes into holes may fail with ENOSPC.
		if err := unix.Fallocate(int(f.Fd()), 0, 0, m.Size); err != nil && !errors.Is(err, syscall.EOPNOTSUPP) {
			e.warn("restore", "region %s: its %s are not all reserved on the state filesystem (%v): writes may fail with ENOSPC", m.Name, ctl.FormatSize(m.Size), err)
		}
	}
	capPages := int((m.Cache + PageSize - 1) / PageSize)
	c, err := NewPageCache(f, m.Size, capPages, m.Policy, e.cfg.Seed)
	if err != nil {
		return fail(err)
	}
	c.SetPrefetch(m.Prefetch)
	r := &Region{meta: m, path: path, file: f, cache: c, stop: make(chan struct{})}
	go c.RunPrefetch(r.stop)
	return r, nil
}

// reserve gives a new data file its size with every block allocated
// (fallocate), so a region that does not fit the state filesystem fails
// at alloc with ENOSPC, not later at a write, and a region once made can
// always take its bytes: other regions filling the disk cannot turn its
// writes, or the daemon's state saves, into ENOSPC. A filesystem without
// fallocate (EOPNOTSUPP) gets a sparse file after a check that its free
// space holds the size, which is the best it allows.
func reserve(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EOPNOTSUPP) {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return err
	}
	if free := int64(st.Bavail) * st.Bsize; free < size {
		return fs.Errorf(syscall.ENOSPC, "%s free, %s asked", ctl.FormatSize(free), ctl.FormatSize(size))
	}
	return f.Truncate(size)
}

// Quota limits: without Config.Quota, every uid but root may hold up to
// DefaultQuotaBytes of regions in up to DefaultQuotaRegions regions.
const (
	DefaultQuotaBytes   = 1 << 30
	DefaultQuotaRegions = 16
)

// DefaultQuota is the quota used when Config.Quota is nil.
func DefaultQuota(uid uint32) (maxBytes int64, maxRegions int) {
	return DefaultQuotaBytes, DefaultQuotaRegions
}

// checkQuota refuses (EDQUOT) a region of size bytes that would take uid
// over its quota. Every region counts, of every kind, by the uid it is
// charged to (its meta.Uid: its maker's, or its owner agent's). Root has
// no quota. The caller holds txMu, so two allocs cannot both pass.
func (e *Engine) checkQuota(uid uint32, name string, size int64) error {
	if uid == 0 {
		return nil
	}
	q := e.cfg.Quota
	if q == nil {
		q = DefaultQuota
	}
	maxBytes, maxRegions := q(uid)
	var used int64
	n := 0
	e.mu.Lock()
	for _, r := range e.regions {
		if r.meta.Uid == uid {
			used += r.meta.Size
			n++
		}
	}
	e.mu.Unlock()
	if maxRegions >= 0 && n+1 > maxRegions {
		return fs.Errorf(syscall.EDQUOT, "region %s: uid %d has %d regions (%s); its quota is %d regions of %s in all",
			name, uid, n, ctl.FormatSize(used), maxRegions, quotaSize(maxBytes))
	}
	if maxBytes >= 0 && size > maxBytes-used {
		return fs.Errorf(syscall.EDQUOT, "region %s: uid %d has %s in %d regions; %s more would pass its quota of %s (%d regions)",
			name, uid, ctl.FormatSize(used), n, ctl.FormatSize(size), quotaSize(maxBytes), maxRegions)
	}
	return nil
}

func quotaSize(n int64) string {
	if n < 0 {
		return "no limit"
	}
	return ctl.FormatSize(n)
}

// Alloc creates a region for caller c. It is all or nothing: a region
// that passes its uid's quota, fits the state filesystem (its bytes are
// reserved, see reserve) and, when persistent, has its metadata saved,
// exists; otherwise nothing of it does (no file left, not listed) and
// the error carries the errno: EDQUOT, ENOSPC, EROFS, EIO.
func (e *Engine) Alloc(c fs.Caller, s AllocSpec) error {
	m := regionMeta{Name: s.Name, Size: s.Size, Kind: s.Kind, Tags: s.Tags, Owner: s.Owner,
		Uid: c.Uid, Gid: c.Gid, Policy: Adaptive, Prefetch: true, Cache: s.Cache, Created: time.Now()}
	if s.Lease > 0 {
		m.Expires = time.Now().Add(s.Lease)
	}
	if m.Cache == 0 {
		m.Cache = min(e.cfg.DefaultCache, (s.Size+PageSize-1)/PageSize*PageSize)
	}
	if s.Owner != 0 {
		if e.cfg.Agents == nil {
			return fs.Errorf(syscall.ENOENT, "no such agent %d", s.Owner)
		}
		a, err := e.cfg.Agents.Agent(s.Owner)
		if err != nil {
			return err
		}
		if !a.Alive {
			return fs.Errorf(syscall.EBUSY, "agent %d is not running", s.Owner)
		}
		if c.Uid != 0 && c.Uid != a.Uid {
			return fs.Errorf(syscall.EPERM, "agent %d is not yours", s.Owner)
		}
		m.Uid, m.Gid = a.Uid, a.Gid
	}
	e.txMu.Lock()
	defer e.txMu.Unlock()
	if _, err := e.region(s.Name); err == nil {
		return fs.Errorf(syscall.EEXIST, "region %q exists", s.Name)
	}
	if err := e.checkQuota(m.Uid, s.Name, s.Size); err != nil {
		return err
	}
	path := filepath.Join(e.tmp, s.Name+".data")
	if s.Kind == Persistent {
		path = filepath.Join(e.dir, s.Name+".data")
		// A leftover data file without metadata (a crash between the two)
		// is not a region: start it afresh.
		os.Remove(path)
	}
	r, err := e.open(m, path, true)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fs.Errorf(syscall.EEXIST, "region %q exists", s.Name)
		}
		return err
	}
	if s.Kind == Persistent {
		if err := writeMeta(e.metaPath(s.Name), m); err != nil {
			e.close(r)
			return fmt.Errorf("mem: region %s not created, its metadata not saved: %w", s.Name, err)
		}
	}
	e.mu.Lock()
	e.regions[m.Name] = r
	e.mu.Unlock()
	e.publish("alloc", bus.F("region", s.Name), bus.F("size", s.Size), bus.F("kind", s.Kind), bus.F("owner", s.Owner))
	return nil
}

func (e *Engine) metaPath(name string) string { return filepath.Join(e.dir, name+".meta") }

// close ends a region that was never listed (an alloc that failed): its
// prefetcher stops, its files go.
func (e *Engine) close(r *Region) {
	r.gone = true
	close(r.stop)
	r.file.Close()
	os.Remove(r.path)
	if r.meta.Kind == Persistent {
		os.Remove(e.metaPath(r.meta.Name))
	}
}

// drop ends a region: its handles fail with ENOENT, its files go. For a
// persistent region the metadata file goes first, and is the commit: a
// region without it is not restored, so if it cannot be removed (a
// read-only state filesystem) the region stays whole and the error is
// returned. The caller holds txMu.
func (e *Engine) drop(r *Region) error {
	e.mu.Lock()
	if r.gone {
		e.mu.Unlock()
		return nil
	}
	e.mu.Unlock()
	if r.meta.Kind == Persistent {
		if err := os.Remove(e.metaPath(r.meta.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("mem: region %s not freed, its metadata cannot be removed: %w", r.meta.Name, err)
		}
	}
	e.mu.Lock()
	r.gone = true
	delete(e.regions, r.meta.Name)
	e.mu.Unlock()
	close(r.stop)
	r.file.Close()
	if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		e.warn("free", "region %s: its data file %s stays: %v", r.meta.Name, r.path, err)
	}
	if r.meta.Kind == Persistent {
		os.Remove(filepath.Join(e.dir, r.meta.Name+".pattern"))
	}
	return nil
}

// warn is a failure nobody waits on (a background save, a file left
// behind): it goes to the daemon's log and, as an error event, to the
// bus, never nowhere.
func (e *Engine) warn(op, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.cfg.Logf("mem: %s: %s", op, msg)
	e.publish("error", bus.F("op", op), bus.F("err", msg))
}

// Free ends region name.
func (e *Engine) Free(c fs.Caller, name, why string) error {
	r, err := e.region(name)
	if err != nil {
		return err
	}
	if c.Uid != 0 && c.Uid != r.meta.Uid {
		return fs.Errorf(syscall.EPERM, "region %s is not yours", name)
	}
	e.txMu.Lock()
	err = e.drop(r)
	e.txMu.Unlock()
	if err != nil {
		return err
	}
	e.publish("free", bus.F("region", name), bus.F("reason", why))
	return nil
}

func (e *Engine) region(name string) (*Region, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.regions[name]
	if !ok {
		return nil, noRegion(name)
	}
	return r, nil
}

// mayUse: root, the region's uid, and the uids of agents it is granted to.
func (e *Engine) mayUse(r *Region, c fs.Caller) bool {
	if c.Uid == 0 || c.Uid == r.meta.Uid {
		return true
	}
	if e.cfg.Agents == nil {
		return false
	}
	e.mu.Lock()
	grants := append([]int(nil), r.meta.Grants...)
	e.mu.Unlock()
	for _, id := range grants {
		if a, err := e.cfg.Agents.Agent(id); err == nil && a.Uid == c.Uid {
			return true
		}
	}
	return false
}

// update is a region verb's transaction: edit changes a copy of the
// region's metadata (or refuses); for a persistent region the copy is
// saved; only then does apply make it live (the cache's policy, size,
// prefetching) and the copy become the region's. A change that cannot be
// saved is refused with the save's errno and changes nothing. Only the
// region's owner (its uid) and root may change it (EPERM).
func (e *Engine) update(c fs.Caller, name string, edit func(m *regionMeta) error, apply func(r *Region, m regionMeta) error) error {
	r, err := e.region(name)
	if err != nil {
		return err
	}
	if c.Uid != 0 && c.Uid != r.meta.Uid {
		return fs.Errorf(syscall.EPERM, "region %s is not yours", name)
	}
	e.txMu.Lock()
	defer e.txMu.Unlock()
	e.mu.Lock()
	gone := r.gone
	m := r.meta
	m.Tags = append([]string(nil), m.Tags...)
	m.Grants = append([]int(nil), m.Grants...)
	e.mu.Unlock()
	if gone {
		return noRegion(name)
	}
	if err := edit(&m); err != nil {
		return err
	}
	if m.Kind == Persistent {
		if err := writeMeta(e.metaPath(name), m); err != nil {
			return fmt.Errorf("mem: region %s: not saved, nothing changed: %w", name, err)
		}
	}
	if apply != nil {
		if err := apply(r, m); err != nil {
			if m.Kind == Persistent {
				e.mu.Lock()
				old := r.meta
				e.mu.Unlock()
				if werr := writeMeta(e.metaPath(name), old); werr != nil {
					e.warn("update", "region %s: %s holds a change that failed: %v", name, e.metaPath(name), werr)
				}
			}
			return err
		}
	}
	e.mu.Lock()
	r.meta = m
	e.mu.Unlock()
	return nil
}

// ---- verbs ----

// regionVerbs are the verbs on one region; with the region name first
// they are also mem/ctl's.
func (e *Engine) regionVerbs(named bool) ctl.Table {
	pre, n := "", 0
	if named {
		pre, n = "NAME ", 1
	}
	// wrap takes the region name from args[0] (mem/ctl) or from the
	// file (regions/NAME/ctl, where the caller passes it in).
	return ctl.Table{
		{Name: "policy", Args: pre + "lru|lfu|predictive|adaptive", Min: n + 1, Max: n + 1, Doc: "the region's cache policy (restarts its counters)",
			Run: e.onRegion(n, func(c fs.Caller, name string, a []string) error {
				p, err := parsePolicy(a[0])
				if err != nil {
					return err
				}
				return e.update(c, name, func(m *regionMeta) error { m.Policy = p; return nil },
					func(r *Region, _ regionMeta) error { return r.cache.SetPolicy(p, 0) })
			})},
		{Name: "prefetch", Args: pre + "on|off", Min: n + 1, Max: n + 1, Doc: "prefetch learned sequences and strides",
			Run: e.onRegion(n, func(c fs.Caller, name string, a []string) error {
				on, err := ctl.ParseOnOff(a[0])
				if err != nil {
					return err
				}
				return e.update(c, name, func(m *regionMeta) error { m.Prefetch = on; return nil },
					func(r *Region, _ regionMeta) error { r.cache.SetPrefetch(on); return nil })
			})},
		{Name: "cache", Args: pre + "SIZE", Min: n + 1, Max: n + 1, Doc: "the region's page cache size (restarts its counters)",
			Run: e.onRegion(n, func(c fs.Caller, name string, a []string) error {
				sz, err := ctl.ParseSize(a[0])
				if err != nil {
					return err
				}
				if sz < PageSize || sz > 16<<30 {
					return ctl.Errorf("bad cache size %q (want %d bytes .. 16G)", a[0], PageSize)
				}
				return e.update(c, name, func(m *regionMeta) error { m.Cache = sz; return nil },
					func(r *Region, m regionMeta) error { return r.cache.SetPolicy(m.Policy, int((sz+PageSize-1)/PageSize)) })
			})},
		{Name: "grant", Args: pre + "AGENT", Min: n + 1, Max: n + 1, Doc: "let agent AGENT's uid use a shared region",
			Run: e.onRegion(n, func(c fs.Caller, name string, a []string) error {
				id, err := ctl.ParseInt(a[0], 1, 1<<31-1)
				if err != nil {
					return err
				}
				if e.cfg.Agents == nil {
					return fs.Errorf(syscall.ENOENT, "no such agent %d", id)
				}
				if _, err := e.cfg.Agents.Agent(int(id)); err != nil {
					return err
				}
				return e.update(c, name, func(m *regionMeta) error {
					if m.Kind != Shared {
						return fs.Errorf(syscall.EPERM, "region %s is %s, not shared", name, m.Kind)
					}
					for _, g := range m.Grants {
						if g == int(id) {
							return nil
						}
					}
					m.Grants = append(m.Grants, int(id))
					sort.Ints(m.Grants)
					return nil
				}, nil)
			})},
		{Name: "revoke", Args: pre + "AGENT", Min: n + 1, Max: n + 1, Doc: "withdraw a grant",
			Run: e.onRegion(n, func(c fs.Caller, name string, a []string) error {
				id, err := ctl.ParseInt(a[0], 1, 1<<31-1)
				if err != nil {
					return err
				}
				return e.update(c, name, func(m *regionMeta) error {
					for i, g := range m.Grants {
						if g == int(id) {
							m.Grants = append(m.Grants[:i], m.Grants[i+1:]...)
							return nil
						}
					}
					return fs.Errorf(syscall.ENOENT, "agent %d has no grant on %s", id, name)
				}, nil)
			})},
		{Name: "tag", Args: pre + "TAG", Min: n + 1, Max: n + 1, Doc: "add a searchable tag (see find/)",
			Run: e.onRegion(n, func(c fs.Caller, name string, a []string) error {
				if err := validTag(a[0]); err != nil {
					return err
				}
				return e.update(c, name, func(m *regionMeta) error {
					if !slices.Contains(m.Tags, a[0]) {
						m.Tags = append(m.Tags, a[0])
					}
					return nil
				}, nil)
			})},
		{Name: "untag", Args: pre + "TAG", Min: n + 1, Max: n + 1, Doc: "remove a tag",
			Run: e.onRegion(n, func(c fs.Caller, name string, a []string) error {
				return e.update(c, name, func(m *regionMeta) error {
					for i, t := range m.Tags {
						if t == a[0] {
							m.Tags = append(m.Tags[:i], m.Tags[i+1:]...)
							return nil
						}
					}
					return fs.Errorf(syscall.ENOENT, "region %s has no tag %q", name, a[0])
				}, nil)
			})},
		{Name: "lease", Args: pre + "DURATION", Min: n + 1, Max: n + 1, Doc: "the region ends DURATION from now",
			Run: e.onRegion(n, func(c fs.Caller, name string, a []string) error {
				d, err := ctl.ParseDuration(a[0])
				if err != nil {
					return err
				}
				return e.update(c, name, func(m *regionMeta) error {
					if m.Kind == Persistent {
						return ctl.Errorf("a persistent region has no lease")
					}
					m.Expires = time.Now().Add(d)
					return nil
				}, nil)
			})},
		{Name: "free", Args: strings.TrimSpace(pre), Min: n, Max: n, Doc: "end the region now (a persistent one's file goes too)",
			Run: e.onRegion(n, func(c fs.Caller, name string, _ []string) error {
				return e.Free(c, name, "free")
			})},
	}
}

// onRegion adapts a region verb: with n == 1 the region is args[0].
func (e *Engine) onRegion(n int, f func(c fs.Caller, name string, a []string) error) func(context.Context, fs.Caller, []string) error {
	return func(ctx context.Context, c fs.Caller, a []string) error {
		name, _ := ctx.Value(regionKey{}).(string)
		if n == 1 {
			name, a = a[0], a[1:]
		}
		return f(c, name, a)
	}
}

type regionKey struct{}

// Verbs is mem/ctl's table.
func (e *Engine) Verbs() ctl.Table {
	t := ctl.Table{
		{Name: "alloc", Args: "NAME SIZE [ephemeral|persistent|shared] [tag=T ...] [lease=DUR] [owner=N] [cache=SIZE]", Min: 2, Max: -1,
			Doc: "create regions/NAME (its bytes reserved on disk; within the uid's quota)", Run: func(_ context.Context, c fs.Caller, a []string) error {
				s, err := ParseAlloc(a)
				if err != nil {
					return err
				}
				return e.Alloc(c, s)
			}},
	}
	t = append(t, e.regionVerbs(true)...)
	t = append(t, ctl.Table{
		{Name: "interval", Args: "DURATION", Min: 1, Max: 1, Root: true, Doc: "sampling period of the analyzers",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				d, err := ctl.ParseDuration(a[0])
				if err != nil {
					return err
				}
				if d < minInterval {
					return ctl.Errorf("interval %s below 50ms", d)
				}
				return e.commitSettings(func(s *savedSettings) error { s.Interval = d; return nil }, func() {
					e.interval = d
					select {
					case e.ivChange <- d:
					default:
					}
				})
			}},
		{Name: "paging", Args: "on|off", Min: 1, Max: 1, Root: true, Doc: "advise the kernel on agents' cold and hot ranges under pressure",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				on, err := ctl.ParseOnOff(a[0])
				if err != nil {
					return err
				}
				return e.commitSettings(func(s *savedSettings) error { s.Paging = on; return nil }, func() { e.paging = on })
			}},
		{Name: "pressure", Args: "FRACTION", Min: 1, Max: 1, Root: true, Doc: "PSI memory some avg10 that counts as pressure (default 0.1)",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				f, err := ctl.ParseFraction(a[0])
				if err != nil {
					return err
				}
				return e.commitSettings(func(s *savedSettings) error { s.Pressure = f; return nil }, func() { e.threshold = f })
			}},
		{Name: "save", Min: 0, Max: 0, Root: true, Doc: "save the persistent regions' access patterns now",
			Run: func(context.Context, fs.Caller, []string) error { return e.SavePatterns() }},
	}...)
	return t
}

// SavePatterns writes every persistent region's hot pages for warming.
func (e *Engine) SavePatterns() error {
	var errs []error
	for _, r := range e.list() {
		if r.meta.Kind == Persistent {
			errs = append(errs, savePattern(filepath.Join(e.dir, r.meta.Name+".pattern"), r.cache.Hot()))
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) list() []*Region {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*Region, 0, len(e.regions))
	for _, r := range e.regions {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].meta.Name < out[j].meta.Name })
	return out
}

// ---- background work ----

// Run samples the analyzers, ends expired regions and runs paging, every
// interval, until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	e.mu.Lock()
	iv := e.interval
	e.mu.Unlock()
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-e.ivChange:
			t.Reset(d)
		case now := <-t.C:
			e.Tick(now)
		}
	}
}

// Tick is one period of background work.
func (e *Engine) Tick(now time.Time) {
	for _, r := range e.list() {
		r.cache.Tick(now)
		e.mu.Lock()
		m := r.meta
		e.mu.Unlock()
		why := ""
		switch {
		case !m.Expires.IsZero() && now.After(m.Expires):
			why = "lease"
		case m.Owner != 0 && m.Kind == Ephemeral && !e.agentAlive(m.Owner):
			why = fmt.Sprintf("owner %d ended", m.Owner)
		}
		if why != "" {
			// Only regions with no file to keep expire (leases are not
			// for persistent ones): dropping them cannot fail.
			e.txMu.Lock()
			e.drop(r)
			e.txMu.Unlock()
			e.publish("expire", bus.F("region", m.Name), bus.F("reason", why))
		}
	}
	if err := e.SavePatterns(); err != nil {
		e.warn("save-patterns", "%v (restarts warm from the last saved patterns)", err)
	}
	e.sampleAgents(now)
}

func (e *Engine) agentAlive(id int) bool {
	if e.cfg.Agents == nil {
		return false
	}
	a, err := e.cfg.Agents.Agent(id)
	return err == nil && a.Alive
}

// Close stops the prefetchers, saves the patterns and what was learned of
// the agents' memory, and closes the files.
func (e *Engine) Close() error {
	enginesMu.Lock()
	delete(engines, e)
	enginesMu.Unlock()
	err := e.SavePatterns()
	e.saveProcs()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.regions {
		if !r.gone {
			r.gone = true
			close(r.stop)
			r.file.Close()
		}
	}
	e.regions = map[string]*Region{}
	return err
}
