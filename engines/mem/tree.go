package mem

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"aiosfs/ctl"
	"aiosfs/fs"
)

// Nodes is the mem/ directory.
func (e *Engine) Nodes() []fs.Node {
	ns := e.cfg.NS
	root := fs.Owner{}
	verbs := e.Verbs()
	for p, doc := range map[string]string{
		"/mem/ctl":      "the memory manager's verbs (read it for the table): alloc and root's settings",
		"/mem/status":   "the fabric's totals and settings, one record: status",
		"/mem/cache":    "the cache policies' hit rates and sizes: cacheText",
		"/mem/prefetch": "the prefetcher's state and accuracy: prefetchText",
		"/mem/regions":  "one directory per region NAME: ctl data info ...",
		"/mem/find":     "one file per tag: the regions carrying it",
	} {
		ns.Document(p, doc)
	}
	return []fs.Node{ns.StaticDir("/mem", 0555, root,
		// 0666: alloc is everyone's (within their quota); each verb
		// checks its caller (root's settings, a region's owner).
		ns.Ctl("/mem/ctl", 0666, root, verbs.Help, verbs.Exec),
		ns.Text("/mem/status", 0444, root, func(fs.Caller) ([]byte, error) { return []byte(e.status()), nil }),
		ns.Text("/mem/cache", 0444, root, func(fs.Caller) ([]byte, error) { return []byte(e.cacheText()), nil }),
		ns.Text("/mem/prefetch", 0444, root, func(fs.Caller) ([]byte, error) { return []byte(e.prefetchText()), nil }),
		ns.Dir("/mem/regions", 0555, root, func() ([]fs.Node, error) {
			var out []fs.Node
			for _, r := range e.list() {
				out = append(out, e.regionDir(r.meta.Name))
			}
			return out, nil
		}, func(name string) (fs.Node, error) {
			if _, err := e.region(name); err != nil {
				return nil, err
			}
			return e.regionDir(name), nil
		}),
		ns.Dir("/mem/find", 0555, root, func() ([]fs.Node, error) {
			seen := map[string]bool{}
			var out []fs.Node
			for _, r := range e.list() {
				e.mu.Lock()
				tags := append([]string(nil), r.meta.Tags...)
				e.mu.Unlock()
				for _, t := range tags {
					if !seen[t] {
						seen[t] = true
						out = append(out, e.findFile(t))
					}
				}
			}
			fs.SortNodes(out)
			return out, nil
		}, func(tag string) (fs.Node, error) {
			if validTag(tag) != nil {
				return nil, fs.ErrNotExist
			}
			return e.findFile(tag), nil
		}),
	)}
}

// findFile is find/TAG: a line per region with that tag, as in info.
// Any tag may be walked, so `cat find/x` of an unused tag prints nothing.
func (e *Engine) findFile(tag string) fs.Node {
	return e.cfg.NS.Text(path.Join("/mem/find", tag), 0444, fs.Owner{}, func(fs.Caller) ([]byte, error) {
		var b strings.Builder
		for _, r := range e.list() {
			e.mu.Lock()
			has := r.hasTag(tag)
			e.mu.Unlock()
			if has {
				b.WriteString(e.info(r))
			}
		}
		return []byte(b.String()), nil
	})
}

func (e *Engine) regionDir(name string) fs.Node {
	ns := e.cfg.NS
	dir := path.Join("/mem/regions", name)
	r, err := e.region(name)
	own := fs.Owner{}
	var size int64
	if err == nil {
		own = fs.Owner{Uid: r.meta.Uid, Gid: r.meta.Gid}
		size = r.meta.Size
	}
	rv := e.regionVerbs(false)
	get := func() (*Region, error) { return e.region(name) }
	data := &dataFile{e: e, name: name, attr: ns.Text(path.Join(dir, "data"), 0660, own, nil).Attr()}
	data.attr.Mode = 0660
	data.attr.Size = size
	return ns.StaticDir(dir, 0555, own,
		// The region's verbs are its uid's and root's (update, Free check
		// again): no group write bit that would only lead to EPERM.
		ns.Ctl(path.Join(dir, "ctl"), 0600, own, rv.Help, func(ctx context.Context, c fs.Caller, line string) error {
			return rv.Exec(context.WithValue(ctx, regionKey{}, name), c, line)
		}),
		data,
		ns.Text(path.Join(dir, "info"), 0444, own, func(fs.Caller) ([]byte, error) {
			r, err := get()
			if err != nil {
				return nil, err
			}
			return []byte(e.info(r)), nil
		}),
		ns.Text(path.Join(dir, "pattern"), 0444, own, func(fs.Caller) ([]byte, error) {
			r, err := get()
			if err != nil {
				return nil, err
			}
			return []byte(patternText(r.cache.Info())), nil
		}),
	)
}

func joinInts(xs []int) string {
	if len(xs) == 0 {
		return "-"
	}
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = itoa(x)
	}
	return strings.Join(s, ",")
}

func orDash(xs []string) string {
	if len(xs) == 0 {
		return "-"
	}
	return strings.Join(xs, ",")
}

// info is regions/NAME/info and a line of find/TAG:
//
//	name=NAME size=BYTES kind=ephemeral|persistent|shared owner=N uid=N tags=a,b grants=1,2 lease=SECONDS policy=P prefetch=on|off cache=BYTES created=UNIX
//
// owner 0 is none; lease is the seconds left, "-" without one; tags and
// grants are "-" when empty.
func (e *Engine) info(r *Region) string {
	e.mu.Lock()
	m := r.meta
	m.Tags = append([]string(nil), m.Tags...)
	m.Grants = append([]int(nil), m.Grants...)
	e.mu.Unlock()
	lease := "-"
	if !m.Expires.IsZero() {
		lease = ff(max(0, time.Until(m.Expires).Seconds()))
	}
	return fmt.Sprintf("name=%s size=%d kind=%s owner=%d uid=%d tags=%s grants=%s lease=%s policy=%s prefetch=%s cache=%d created=%d\n",
		m.Name, m.Size, m.Kind, m.Owner, m.Uid, orDash(m.Tags), joinInts(m.Grants), lease, m.Policy, ctl.OnOff(m.Prefetch), m.Cache, m.Created.Unix())
}

// status is mem/status, one line:
//
//	regions=N bytes=N cache_capacity=BYTES cache_resident=BYTES hits=N misses=N hit_ratio=F prefetch_issued=N prefetch_used=N paging=on|off pressure_threshold=F psi_some_avg10=F interval=SECONDS agents=N
//
// psi_some_avg10 is "-" where the kernel has no PSI.
func (e *Engine) status() string {
	var bytes, capB, res, hits, miss, pi, pu int64
	rs := e.list()
	for _, r := range rs {
		i := r.cache.Info()
		bytes += r.meta.Size
		capB += int64(i.CapPages) * PageSize
		res += int64(i.Resident) * PageSize
		hits += i.Stats.Hits
		miss += i.Stats.Misses
		pi += i.Stats.PrefetchIssued
		pu += i.Stats.PrefetchUsed
	}
	ratio := 0.0
	if hits+miss > 0 {
		ratio = float64(hits) / float64(hits+miss)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	psi := "-"
	if e.psiErr == nil {
		psi = ff(e.lastPSI.Avg10)
	}
	return fmt.Sprintf("regions=%d bytes=%d cache_capacity=%d cache_resident=%d hits=%d misses=%d hit_ratio=%s prefetch_issued=%d prefetch_used=%d paging=%s pressure_threshold=%s psi_some_avg10=%s interval=%s agents=%d\n",
		len(rs), bytes, capB, res, hits, miss, ff(ratio), pi, pu, ctl.OnOff(e.paging), ff(e.threshold), psi, ff(e.interval.Seconds()), len(e.procs))
}

// cacheText is mem/cache, one line per region:
//
//	region=NAME policy=P leader=L capacity=BYTES resident=BYTES hits=N misses=N hit_ratio=F evictions=N read_ops=N read_latency=SECONDS backing_read=BYTES
//
// leader is the expert Adaptive follows now (the policy itself otherwise);
// read_latency is the mean time to serve one demand read in the cache.
func (e *Engine) cacheText() string {
	var b strings.Builder
	for _, r := range e.list() {
		i := r.cache.Info()
		s := i.Stats
		lat := 0.0
		if s.ReadOps > 0 {
			lat = float64(s.ReadNanos) / float64(s.ReadOps) / 1e9
		}
		fmt.Fprintf(&b, "region=%s policy=%s leader=%s capacity=%d resident=%d hits=%d misses=%d hit_ratio=%s evictions=%d read_ops=%d read_latency=%.9f backing_read=%d\n",
			r.meta.Name, i.Policy, i.Leader, int64(i.CapPages)*PageSize, int64(i.Resident)*PageSize, s.Hits, s.Misses, ff(s.HitRatio()), s.Evictions, s.ReadOps, lat, s.BackingReadBytes)
	}
	return b.String()
}

// prefetchText is mem/prefetch, one line per region:
//
//	region=NAME prefetch=on|off queued=N issued=N used=N wasted=N dropped=N accuracy=F next_offset=BYTES next_length=BYTES
//
// counts are pages; accuracy is used/issued; next_* is the predicted next
// request ("-" when there is no prediction).
func (e *Engine) prefetchText() string {
	var b strings.Builder
	for _, r := range e.list() {
		i := r.cache.Info()
		s := i.Stats
		acc := 0.0
		if s.PrefetchIssued > 0 {
			acc = float64(s.PrefetchUsed) / float64(s.PrefetchIssued)
		}
		no, nl := "-", "-"
		if i.HasNext {
			no, nl = fmt.Sprint(i.Next.First*PageSize), fmt.Sprint((i.Next.Last-i.Next.First+1)*PageSize)
		}
		fmt.Fprintf(&b, "region=%s prefetch=%s queued=%d issued=%d used=%d wasted=%d dropped=%d accuracy=%s next_offset=%s next_length=%s\n",
			r.meta.Name, ctl.OnOff(i.Prefetch), i.Queued, s.PrefetchIssued, s.PrefetchUsed, s.PrefetchWasted, s.PrefetchDropped, ff(acc), no, nl)
	}
	return b.String()
}

// patternText is regions/NAME/pattern:
//
//	accesses=N frequency=PER_SECOND wss=BYTES locality=temporal|spatial|random spatial=F temporal=F next_offset=BYTES next_length=BYTES
//	hot offset=BYTES length=BYTES score=F        (up to 8, hottest first)
//	cold offset=BYTES length=BYTES               (up to 8, lowest address first)
//	wss time=UNIX bytes=BYTES                    (one per period, oldest first)
func patternText(i CacheInfo) string {
	var b strings.Builder
	no, nl := "-", "-"
	if i.HasNext {
		no, nl = fmt.Sprint(i.Next.First*PageSize), fmt.Sprint((i.Next.Last-i.Next.First+1)*PageSize)
	}
	fmt.Fprintf(&b, "accesses=%d frequency=%s wss=%d locality=%s spatial=%s temporal=%s next_offset=%s next_length=%s\n",
		i.Total, ff(i.Frequency), i.WSS, i.Locality, ff(i.Spatial), ff(i.Temporal), no, nl)
	for n, h := range i.Hot {
		if n == 8 {
			break
		}
		fmt.Fprintf(&b, "hot offset=%d length=%d score=%s\n", h.First*PageSize, (h.Last-h.First+1)*PageSize, ff(h.Score))
	}
	sort.Slice(i.Cold, func(x, y int) bool { return i.Cold[x].First < i.Cold[y].First })
	for n, c := range i.Cold {
		if n == 8 {
			break
		}
		fmt.Fprintf(&b, "cold offset=%d length=%d\n", c.First*PageSize, (c.Last-c.First+1)*PageSize)
	}
	for _, p := range i.History {
		fmt.Fprintf(&b, "wss time=%.3f bytes=%d\n", float64(p.Time.UnixMilli())/1000, p.Bytes)
	}
	return b.String()
}

// RegionStat is one region's numbers, for the daemon's metrics.
type RegionStat struct {
	Name, Kind, Policy string
	Size               int64
	Info               CacheInfo
}

// RegionStats returns every region's numbers, by name.
func (e *Engine) RegionStats() []RegionStat {
	var out []RegionStat
	for _, r := range e.list() {
		e.mu.Lock()
		m := r.meta
		e.mu.Unlock()
		out = append(out, RegionStat{Name: m.Name, Kind: m.Kind, Policy: m.Policy, Size: m.Size, Info: r.cache.Info()})
	}
	return out
}

// AgentStat is one agent's learned memory numbers, for metrics.
type AgentStat struct {
	ID        int
	WSS, Rss  int64
	Decisions int
}

// AgentStats returns the sampled agents' numbers, by agent number.
func (e *Engine) AgentStats() []AgentStat {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []AgentStat
	for id, pm := range e.procs {
		out = append(out, AgentStat{ID: id, WSS: pm.wss, Rss: pm.rss, Decisions: len(pm.decisions)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
