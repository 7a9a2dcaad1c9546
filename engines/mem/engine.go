// Package mem is the adaptive memory manager. One learning core serves
// two things: the memory fabric (named regions that agents use, served as
// files, whose page cache the manager runs) and the agents' own process
// memory, whose hot and cold parts it learns from the kernel and acts on
// through the kernel (package hal/vm).
//
//	mem/
//	    ctl                 alloc free policy prefetch grant revoke tag untag lease
//	                        interval paging pressure save (read it for the table)
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
//	    pattern wss hot policy decisions ctl   (see procmem.go)
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
package mem

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

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
}

// minInterval is the shortest sampling period of the analyzers.
const minInterval = 50 * time.Millisecond

// Engine is the memory manager.
type Engine struct {
	cfg     Config
	dir     string // <state>/mem
	tmp     string // <state>/mem/tmp
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
		interval: cfg.Interval, ivChange: make(chan time.Duration, 1)}
	e.tmp = filepath.Join(e.dir, "tmp")
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
	n := r.cache.Warm(loadPattern(filepath.Join(e.dir, m.Name+".pattern")))
	e.publish("restore", bus.F("region", m.Name), bus.F("size", m.Size), bus.F("warmed_pages", n))
	return nil
}

func (e *Engine) publish(kind string, f ...bus.Field) {
	if e.cfg.Bus != nil {
		e.cfg.Bus.Publish(bus.Event{Source: "mem", Kind: kind, Fields: f})
	}
}

// open makes the backing file (sized, sparse) and the cache and starts
// the prefetcher. create says whether the file must be new.
func (e *Engine) open(m regionMeta, path string, create bool) (*Region, error) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0600)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || st.Size() != m.Size {
		if err := f.Truncate(m.Size); err != nil {
			f.Close()
			return nil, err
		}
	}
	capPages := int((m.Cache + PageSize - 1) / PageSize)
	c, err := NewPageCache(f, m.Size, capPages, m.Policy, e.cfg.Seed)
	if err != nil {
		f.Close()
		return nil, err
	}
	c.SetPrefetch(m.Prefetch)
	r := &Region{meta: m, path: path, file: f, cache: c, stop: make(chan struct{})}
	go c.RunPrefetch(r.stop)
	e.mu.Lock()
	e.regions[m.Name] = r
	e.mu.Unlock()
	return r, nil
}

// Alloc creates a region for caller c.
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
	e.mu.Lock()
	_, exists := e.regions[s.Name]
	e.mu.Unlock()
	if exists {
		return fs.Errorf(syscall.EEXIST, "region %q exists", s.Name)
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
			e.drop(r)
			return err
		}
	}
	e.publish("alloc", bus.F("region", s.Name), bus.F("size", s.Size), bus.F("kind", s.Kind), bus.F("owner", s.Owner))
	return nil
}

func (e *Engine) metaPath(name string) string { return filepath.Join(e.dir, name+".meta") }

// drop ends a region: its handles fail with ENOENT, its files go.
func (e *Engine) drop(r *Region) {
	e.mu.Lock()
	if r.gone {
		e.mu.Unlock()
		return
	}
	r.gone = true
	delete(e.regions, r.meta.Name)
	e.mu.Unlock()
	close(r.stop)
	r.file.Close()
	os.Remove(r.path)
	if r.meta.Kind == Persistent {
		os.Remove(e.metaPath(r.meta.Name))
		os.Remove(filepath.Join(e.dir, r.meta.Name+".pattern"))
	}
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
	e.drop(r)
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

// update changes a region's metadata under the lock and saves it when
// the region is persistent.
func (e *Engine) update(c fs.Caller, name string, f func(r *Region) error) error {
	r, err := e.region(name)
	if err != nil {
		return err
	}
	if c.Uid != 0 && c.Uid != r.meta.Uid {
		return fs.Errorf(syscall.EPERM, "region %s is not yours", name)
	}
	e.mu.Lock()
	err = f(r)
	m := r.meta
	e.mu.Unlock()
	if err != nil {
		return err
	}
	if m.Kind == Persistent {
		return writeMeta(e.metaPath(name), m)
	}
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
				return e.update(c, name, func(r *Region) error {
					if err := r.cache.SetPolicy(p, 0); err != nil {
						return err
					}
					r.meta.Policy = p
					return nil
				})
			})},
		{Name: "prefetch", Args: pre + "on|off", Min: n + 1, Max: n + 1, Doc: "prefetch learned sequences and strides",
			Run: e.onRegion(n, func(c fs.Caller, name string, a []string) error {
				on, err := parseOnOff(a[0])
				if err != nil {
					return err
				}
				return e.update(c, name, func(r *Region) error {
					r.cache.SetPrefetch(on)
					r.meta.Prefetch = on
					return nil
				})
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
				return e.update(c, name, func(r *Region) error {
					if err := r.cache.SetPolicy(r.meta.Policy, int((sz+PageSize-1)/PageSize)); err != nil {
						return err
					}
					r.meta.Cache = sz
					return nil
				})
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
				return e.update(c, name, func(r *Region) error {
					if r.meta.Kind != Shared {
						return fs.Errorf(syscall.EPERM, "region %s is %s, not shared", name, r.meta.Kind)
					}
					for _, g := range r.meta.Grants {
						if g == int(id) {
							return nil
						}
					}
					r.meta.Grants = append(r.meta.Grants, int(id))
					sort.Ints(r.meta.Grants)
					return nil
				})
			})},
		{Name: "revoke", Args: pre + "AGENT", Min: n + 1, Max: n + 1, Doc: "withdraw a grant",
			Run: e.onRegion(n, func(c fs.Caller, name string, a []string) error {
				id, err := ctl.ParseInt(a[0], 1, 1<<31-1)
				if err != nil {
					return err
				}
				return e.update(c, name, func(r *Region) error {
					for i, g := range r.meta.Grants {
						if g == int(id) {
							r.meta.Grants = append(r.meta.Grants[:i], r.meta.Grants[i+1:]...)
							return nil
						}
					}
					return fs.Errorf(syscall.ENOENT, "agent %d has no grant on %s", id, name)
				})
			})},
		{Name: "tag", Args: pre + "TAG", Min: n + 1, Max: n + 1, Doc: "add a searchable tag (see find/)",
			Run: e.onRegion(n, func(c fs.Caller, name string, a []string) error {
				if err := validTag(a[0]); err != nil {
					return err
				}
				return e.update(c, name, func(r *Region) error {
					if !r.hasTag(a[0]) {
						r.meta.Tags = append(r.meta.Tags, a[0])
					}
					return nil
				})
			})},
		{Name: "untag", Args: pre + "TAG", Min: n + 1, Max: n + 1, Doc: "remove a tag",
			Run: e.onRegion(n, func(c fs.Caller, name string, a []string) error {
				return e.update(c, name, func(r *Region) error {
					for i, t := range r.meta.Tags {
						if t == a[0] {
							r.meta.Tags = append(r.meta.Tags[:i], r.meta.Tags[i+1:]...)
							return nil
						}
					}
					return fs.Errorf(syscall.ENOENT, "region %s has no tag %q", name, a[0])
				})
			})},
		{Name: "lease", Args: pre + "DURATION", Min: n + 1, Max: n + 1, Doc: "the region ends DURATION from now",
			Run: e.onRegion(n, func(c fs.Caller, name string, a []string) error {
				d, err := ctl.ParseDuration(a[0])
				if err != nil {
					return err
				}
				return e.update(c, name, func(r *Region) error {
					if r.meta.Kind == Persistent {
						return ctl.Errorf("a persistent region has no lease")
					}
					r.meta.Expires = time.Now().Add(d)
					return nil
				})
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
			Doc: "create regions/NAME", Run: func(_ context.Context, c fs.Caller, a []string) error {
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
				e.mu.Lock()
				e.interval = d
				e.mu.Unlock()
				select {
				case e.ivChange <- d:
				default:
				}
				return e.savedAfter(nil)
			}},
		{Name: "paging", Args: "on|off", Min: 1, Max: 1, Root: true, Doc: "advise the kernel on agents' cold and hot ranges under pressure",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				on, err := parseOnOff(a[0])
				if err != nil {
					return err
				}
				e.mu.Lock()
				e.paging = on
				e.mu.Unlock()
				return e.savedAfter(nil)
			}},
		{Name: "pressure", Args: "FRACTION", Min: 1, Max: 1, Root: true, Doc: "PSI memory some avg10 that counts as pressure (default 0.1)",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				f, err := ctl.ParseFraction(a[0])
				if err != nil {
					return err
				}
				e.mu.Lock()
				e.threshold = f
				e.mu.Unlock()
				return e.savedAfter(nil)
			}},
		{Name: "save", Min: 0, Max: 0, Doc: "save the persistent regions' access patterns now",
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
		switch {
		case !m.Expires.IsZero() && now.After(m.Expires):
			e.drop(r)
			e.publish("expire", bus.F("region", m.Name), bus.F("reason", "lease"))
		case m.Owner != 0 && m.Kind == Ephemeral && !e.agentAlive(m.Owner):
			e.drop(r)
			e.publish("expire", bus.F("region", m.Name), bus.F("reason", fmt.Sprintf("owner %d ended", m.Owner)))
		}
	}
	if err := e.SavePatterns(); err != nil {
		e.cfg.Logf("mem: save patterns: %v", err)
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
