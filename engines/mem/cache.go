package mem

import (
	"io"
	"sort"
	"sync"
	"time"
)

// PageSize is the fabric's page: the unit of caching, prefetch and
// pattern analysis.
const PageSize = 4096

// Backing is a region's store: a file in the state directory.
type Backing interface {
	io.ReaderAt
	io.WriterAt
}

// CacheStats are a page cache's counters since it was made (or since its
// policy was changed). Demand counts only the reader's own requests.
type CacheStats struct {
	Hits, Misses     int64
	Evictions        int64
	PrefetchQueued   int64
	PrefetchIssued   int64 // pages loaded ahead of demand
	PrefetchUsed     int64 // of those, demanded before eviction
	PrefetchWasted   int64 // evicted unused
	PrefetchDropped  int64 // proposals refused by a full queue
	ReadNanos        int64 // time spent serving demand reads, for latency
	ReadOps          int64
	BackingReadBytes int64
}

// HitRatio is hits / (hits + misses), 0 with no accesses.
func (s CacheStats) HitRatio() float64 {
	if s.Hits+s.Misses == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Hits+s.Misses)
}

// PageCache is a region's bounded page cache. Which page leaves is the
// policy's choice; what is loaded ahead is the prefetcher's. A miss reads
// the page from the backing store. Writes go through to the backing store
// at once (and update a cached copy), so what a writer has written is on
// the backing file when its write returns: a `kill -9` of the daemon
// loses nothing of a persistent region.
type PageCache struct {
	mu       sync.Mutex
	back     Backing
	size     int64
	pages    map[int64][]byte
	pol      Policy
	polName  string
	seed     int64
	capPages int
	pf       *Prefetcher
	prefetch bool
	queue    []int64 // pages to load ahead, bounded by queueCap
	queueCap int
	pending  map[int64]bool // queued
	ahead    map[int64]bool // loaded by prefetch and not yet demanded
	an       *StreamAnalyzer
	stats    CacheStats
	kick     chan struct{}
	lastLen  int64
}

// NewPageCache makes a cache of capPages pages over back (size bytes).
func NewPageCache(back Backing, size int64, capPages int, policy string, seed int64) (*PageCache, error) {
	pol, err := NewPolicy(policy, capPages, seed)
	if err != nil {
		return nil, err
	}
	c := &PageCache{back: back, size: size, pages: map[int64][]byte{}, polName: policy, seed: seed,
		capPages: capPages, pf: NewPrefetcher(65536), prefetch: true, queueCap: 256,
		pending: map[int64]bool{}, ahead: map[int64]bool{}, an: NewStreamAnalyzer(PageSize),
		kick: make(chan struct{}, 1)}
	c.setPolicy(pol)
	return c, nil
}

func (c *PageCache) setPolicy(p Policy) {
	c.pol = p
	p.OnEvict(func(k uint64) {
		delete(c.pages, int64(k))
		c.stats.Evictions++
		if c.ahead[int64(k)] {
			delete(c.ahead, int64(k))
			c.stats.PrefetchWasted++
		}
	})
}

// SetPolicy replaces the policy (and capacity, when capPages > 0). The
// cached pages are dropped, the counters restart: a policy is measured on
// what it itself kept.
func (c *PageCache) SetPolicy(name string, capPages int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if capPages <= 0 {
		capPages = c.capPages
	}
	p, err := NewPolicy(name, capPages, c.seed)
	if err != nil {
		return err
	}
	c.polName, c.capPages = name, capPages
	c.pages = map[int64][]byte{}
	c.ahead = map[int64]bool{}
	c.queue, c.pending = nil, map[int64]bool{}
	c.stats = CacheStats{}
	c.setPolicy(p)
	return nil
}

// SetPrefetch turns prefetching on or off.
func (c *PageCache) SetPrefetch(on bool) {
	c.mu.Lock()
	c.prefetch = on
	if !on {
		c.queue, c.pending = nil, map[int64]bool{}
	}
	c.mu.Unlock()
}

// loadLocked makes page k resident, reading it from the backing store.
// demand says whether a reader asked for it (counted in hit/miss).
func (c *PageCache) loadLocked(k int64, demand bool) ([]byte, error) {
	hit := c.pol.Access(uint64(k))
	if demand {
		c.an.Access(k)
		if hit {
			c.stats.Hits++
			if c.ahead[k] {
				delete(c.ahead, k)
				c.stats.PrefetchUsed++
			}
		} else {
			c.stats.Misses++
		}
	}
	if b, ok := c.pages[k]; ok && hit {
		return b, nil
	}
	b := make([]byte, PageSize)
	off := k * PageSize
	n := int64(PageSize)
	if off+n > c.size {
		n = c.size - off
	}
	if _, err := c.back.ReadAt(b[:n], off); err != nil && err != io.EOF {
		return nil, err
	}
	c.stats.BackingReadBytes += n
	// The policy may have said "hit" for a page whose bytes a policy
	// change dropped; either way the page is resident now.
	if c.pol.Contains(uint64(k)) {
		c.pages[k] = b
	}
	return b, nil
}

// ReadAt serves a demand read of p at off. Past the end is EOF (0, nil).
func (c *PageCache) ReadAt(p []byte, off int64) (int, error) {
	start := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if off >= c.size || len(p) == 0 {
		return 0, nil
	}
	end := off + int64(len(p))
	if end > c.size {
		end = c.size
	}
	n := 0
	for pos := off; pos < end; {
		k := pos / PageSize
		b, err := c.loadLocked(k, true)
		if err != nil {
			return n, err
		}
		in := pos - k*PageSize
		m := copy(p[n:end-off], b[in:])
		n += m
		pos += int64(m)
	}
	c.observeLocked(off/PageSize, (end-1)/PageSize)
	c.stats.ReadNanos += time.Since(start).Nanoseconds()
	c.stats.ReadOps++
	return n, nil
}

// WriteAt writes p at off through to the backing store and into the
// cached pages it covers. The caller has checked the bounds.
func (c *PageCache) WriteAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.back.WriteAt(p, off)
	if err != nil {
		return n, err
	}
	end := off + int64(n)
	for k := off / PageSize; k*PageSize < end; k++ {
		c.an.Access(k)
		b, ok := c.pages[k]
		if !ok {
			continue
		}
		ps := k * PageSize
		lo, hi := max(off, ps), min(end, ps+PageSize)
		copy(b[lo-ps:hi-ps], p[lo-off:hi-off])
	}
	return n, nil
}

// observeLocked feeds a demand request to the prefetcher and queues what
// it predicts, dropping proposals beyond the queue's bound.
func (c *PageCache) observeLocked(first, last int64) {
	c.lastLen = last - first
	rs := c.pf.Observe(first, last)
	if !c.prefetch {
		return
	}
	maxPage := (c.size - 1) / PageSize
	queued := false
	for _, r := range rs {
		for k := r.First; k <= r.Last; k++ {
			if k < 0 || k > maxPage || c.pending[k] || c.pol.Contains(uint64(k)) {
				continue
			}
			// Never prefetch more than a quarter of the cache ahead, or
			// prefetch would evict what demand still needs.
			if len(c.queue) >= c.queueCap || len(c.queue) >= c.capPages/4+1 {
				c.stats.PrefetchDropped++
				continue
			}
			c.queue = append(c.queue, k)
			c.pending[k] = true
			c.stats.PrefetchQueued++
			queued = true
		}
	}
	if queued {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// RunPrefetch loads queued pages until stop is closed.
func (c *PageCache) RunPrefetch(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-c.kick:
		}
		for c.prefetchOne() {
		}
	}
}

// prefetchOne loads the oldest queued page; false when the queue is empty.
func (c *PageCache) prefetchOne() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return false
	}
	k := c.queue[0]
	c.queue = c.queue[1:]
	delete(c.pending, k)
	if c.pol.Contains(uint64(k)) {
		return true
	}
	if _, err := c.loadLocked(k, false); err == nil {
		c.ahead[k] = true
		c.stats.PrefetchIssued++
	}
	return true
}

// Warm loads pages (a saved pattern, hottest first) up to the capacity,
// as prefetches: a restart begins with what was hot before it.
func (c *PageCache) Warm(pages []int64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range pages {
		if n >= c.capPages {
			break
		}
		if k < 0 || k*PageSize >= c.size || c.pol.Contains(uint64(k)) {
			continue
		}
		if _, err := c.loadLocked(k, false); err == nil {
			c.ahead[k] = true
			n++
		}
	}
	return n
}

// Hot returns the cached pages ordered hottest first by the analyzer's
// decayed scores (ties by page number), for saving the pattern.
func (c *PageCache) Hot() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	pages := make([]int64, 0, len(c.pages))
	for k := range c.pages {
		pages = append(pages, k)
	}
	sort.Slice(pages, func(i, j int) bool {
		si, sj := c.an.score[pages[i]], c.an.score[pages[j]]
		if si != sj {
			return si > sj
		}
		return pages[i] < pages[j]
	})
	return pages
}

// CacheInfo is a snapshot for files.
type CacheInfo struct {
	Policy, Leader string
	CapPages       int
	Resident       int
	Prefetch       bool
	Queued         int
	Stats          CacheStats
	Next           PageRange
	HasNext        bool
	WSS            int64
	Locality       string
	Spatial        float64
	Temporal       float64
	Frequency      float64
	Total          int64
	Hot, Cold      []ScoredRange
	History        []WSSPoint
}

// Info snapshots the cache and its analyzer.
func (c *PageCache) Info() CacheInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := CacheInfo{Policy: c.polName, Leader: c.polName, CapPages: c.capPages, Resident: len(c.pages),
		Prefetch: c.prefetch, Queued: len(c.queue), Stats: c.stats, WSS: c.an.WSS(),
		Locality: c.an.Locality(), Frequency: c.an.Frequency, Total: c.an.Total, History: c.an.History()}
	if a, ok := c.pol.(*adaptivePolicy); ok {
		i.Leader = a.Leader()
	}
	i.Spatial, i.Temporal = c.an.Fractions()
	i.Next, i.HasNext = c.pf.Next(c.lastLen)
	i.Hot = c.an.Ranges(0.5)
	i.Cold = c.an.Cold(0.05)
	return i
}

// Tick closes the analyzer's sampling period.
func (c *PageCache) Tick(now time.Time) {
	c.mu.Lock()
	c.an.Tick(now)
	c.mu.Unlock()
}
