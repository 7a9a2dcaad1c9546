package mem

import (
	"fmt"
	"math"
)

// Policy is a page-replacement policy over page keys with a fixed capacity
// in pages. Access records a demand reference and makes the page resident,
// evicting as needed; every eviction is told to the hook set with OnEvict,
// so the page cache can drop the bytes and Adaptive can follow an expert.
type Policy interface {
	Name() string
	Access(key uint64) (hit bool)
	Contains(key uint64) bool
	Len() int
	Cap() int
	OnEvict(func(key uint64))
}

// Policy names, as written to ctl and shown in files.
const (
	LRU    = "lru"
	LFU    = "lfu"
	ARC    = "arc"
	S3FIFO = "s3fifo"
	// S3FIFO1 is S3-FIFO promoting from the small FIFO on a single hit
	// there (the CacheLib port's reading of "accessed more than once",
	// counting the insertion), a baseline in eval only; S3FIFO promotes
	// on two hits, as libCacheSim's S3FIFO.c move-to-main-threshold=2
	// and the paper's Algorithm 1.
	S3FIFO1    = "s3fifo-1hit"
	SIEVE      = "sieve"
	LIRS       = "lirs"
	Predictive = "predictive"
	Adaptive   = "adaptive"
)

// CtlPolicies are the policies an operator picks with `policy`; the other
// classic ones serve as Adaptive's experts and as baselines in eval.
var CtlPolicies = []string{LRU, LFU, Predictive, Adaptive}

// NewPolicy builds a policy by name. seed fixes every random choice, so a
// run on the same trace gives the same misses.
func NewPolicy(name string, capacity int, seed int64) (Policy, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("cache capacity %d pages: need at least 1", capacity)
	}
	switch name {
	case LRU:
		return newLRU(capacity), nil
	case LFU:
		return newLFU(capacity), nil
	case ARC:
		return newARC(capacity), nil
	case S3FIFO:
		return newS3FIFO(capacity), nil
	case S3FIFO1:
		p := newS3FIFO(capacity)
		p.promote, p.name = 1, S3FIFO1
		return p, nil
	case SIEVE:
		return newSieve(capacity), nil
	case LIRS:
		return newLIRS(capacity), nil
	case Predictive:
		return newPredictive(capacity, seed), nil
	case Adaptive:
		return newAdaptive(capacity, seed), nil
	}
	return nil, fmt.Errorf("unknown policy %q (lru, lfu, arc, s3fifo, sieve, lirs, predictive, adaptive)", name)
}

type hook struct{ f func(uint64) }

func (h *hook) OnEvict(f func(uint64)) { h.f = f }
func (h *hook) evicted(k uint64) {
	if h.f != nil {
		h.f(k)
	}
}

// ---- an intrusive doubly linked list shared by LRU, ARC, S3-FIFO, SIEVE, LIRS ----

type lnode struct {
	key        uint64
	prev, next *lnode
	visited    bool // SIEVE; S3-FIFO uses freq
	freq       uint8
	where      uint8 // which list the node is on (ARC, S3-FIFO)
}

// list has a sentinel; front is most recent.
type list struct {
	root lnode
	n    int
}

func newList() *list {
	l := &list{}
	l.root.next, l.root.prev = &l.root, &l.root
	return l
}
func (l *list) pushFront(n *lnode) {
	n.prev, n.next = &l.root, l.root.next
	l.root.next.prev = n
	l.root.next = n
	l.n++
}
func (l *list) remove(n *lnode) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
	l.n--
}
func (l *list) back() *lnode {
	if l.n == 0 {
		return nil
	}
	return l.root.prev
}

// ---- LRU ----

type lruPolicy struct {
	hook
	cap int
	m   map[uint64]*lnode
	l   *list
}

func newLRU(c int) *lruPolicy { return &lruPolicy{cap: c, m: map[uint64]*lnode{}, l: newList()} }

func (p *lruPolicy) Name() string           { return LRU }
func (p *lruPolicy) Len() int               { return p.l.n }
func (p *lruPolicy) Cap() int               { return p.cap }
func (p *lruPolicy) Contains(k uint64) bool { _, ok := p.m[k]; return ok }
func (p *lruPolicy) Access(k uint64) bool {
	if n, ok := p.m[k]; ok {
		p.l.remove(n)
		p.l.pushFront(n)
		return true
	}
	if p.l.n >= p.cap {
		v := p.l.back()
		p.l.remove(v)
		delete(p.m, v.key)
		p.evicted(v.key)
	}
	n := &lnode{key: k}
	p.m[k] = n
	p.l.pushFront(n)
	return false
}

// ---- LFU (ties broken by least recent) ----
//
// The page evicted is the least frequently referenced one, and among
// those the least recently referenced, as libCacheSim's LFU. O(1) per
// reference (Shah, Mitra and Matani's constant-time LFU): a chain of
// counts in ascending order, each with its pages newest first.

type lfuEntry struct {
	key        uint64
	fq         *lfuFreq
	prev, next *lfuEntry
}

// lfuFreq is one count's pages, a circular list newest first, and its
// place in the ascending chain of counts.
type lfuFreq struct {
	f          uint64
	root       lfuEntry
	n          int
	prev, next *lfuFreq
}

func (q *lfuFreq) pushFront(e *lfuEntry) {
	e.prev, e.next, e.fq = &q.root, q.root.next, q
	q.root.next.prev = e
	q.root.next = e
	q.n++
}

func (q *lfuFreq) remove(e *lfuEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	q.n--
}

type lfuPolicy struct {
	hook
	cap   int
	n     int
	m     map[uint64]*lfuEntry
	chain lfuFreq // sentinel: chain.next is the least count
	spare []*lfuFreq
}

func newLFU(c int) *lfuPolicy {
	p := &lfuPolicy{cap: c, m: map[uint64]*lfuEntry{}}
	p.chain.prev, p.chain.next = &p.chain, &p.chain
	return p
}

func (p *lfuPolicy) Name() string           { return LFU }
func (p *lfuPolicy) Len() int               { return p.n }
func (p *lfuPolicy) Cap() int               { return p.cap }
func (p *lfuPolicy) Contains(k uint64) bool { _, ok := p.m[k]; return ok }

// after returns the count f's node, following at (a node or the
// sentinel), made if there is none.
func (p *lfuPolicy) after(at *lfuFreq, f uint64) *lfuFreq {
	if nx := at.next; nx != &p.chain && nx.f == f {
		return nx
	}
	var q *lfuFreq
	if n := len(p.spare); n > 0 {
		q, p.spare = p.spare[n-1], p.spare[:n-1]
	} else {
		q = new(lfuFreq)
	}
	q.f, q.n = f, 0
	q.root.prev, q.root.next = &q.root, &q.root
	q.prev, q.next = at, at.next
	at.next.prev = q
	at.next = q
	return q
}

// unlinkIfEmpty takes an emptied count out of the chain.
func (p *lfuPolicy) unlinkIfEmpty(q *lfuFreq) {
	if q.n == 0 {
		q.prev.next, q.next.prev = q.next, q.prev
		q.prev, q.next = nil, nil
		p.spare = append(p.spare, q)
	}
}

func (p *lfuPolicy) Access(k uint64) bool {
	if e, ok := p.m[k]; ok {
		q := e.fq
		nq := p.after(q, q.f+1)
		q.remove(e)
		nq.pushFront(e)
		p.unlinkIfEmpty(q)
		return true
	}
	var e *lfuEntry
	if p.n >= p.cap {
		q := p.chain.next
		v := q.root.prev // the least recent of the least count
		q.remove(v)
		p.unlinkIfEmpty(q)
		p.n--
		delete(p.m, v.key)
		p.evicted(v.key)
		e = v // reused for the new page
	} else {
		e = new(lfuEntry)
	}
	e.key = k
	p.m[k] = e
	p.after(&p.chain, 1).pushFront(e)
	p.n++
	return false
}

// ---- ARC (Megiddo and Modha, FAST 2003) ----

const (
	inT1 = iota + 1
	inT2
	inB1
	inB2
)

type arcPolicy struct {
	hook
	c              int
	p              float64 // target size of T1
	m              map[uint64]*lnode
	t1, t2, b1, b2 *list
}

func newARC(c int) *arcPolicy {
	return &arcPolicy{c: c, m: map[uint64]*lnode{}, t1: newList(), t2: newList(), b1: newList(), b2: newList()}
}

func (a *arcPolicy) Name() string { return ARC }
func (a *arcPolicy) Len() int     { return a.t1.n + a.t2.n }
func (a *arcPolicy) Cap() int     { return a.c }
func (a *arcPolicy) Contains(k uint64) bool {
	n, ok := a.m[k]
	return ok && (n.where == inT1 || n.where == inT2)
}

func (a *arcPolicy) listOf(w uint8) *list {
	switch w {
	case inT1:
		return a.t1
	case inT2:
		return a.t2
	case inB1:
		return a.b1
	}
	return a.b2
}

func (a *arcPolicy) move(n *lnode, to uint8) {
	if n.where != 0 {
		a.listOf(n.where).remove(n)
	}
	n.where = to
	a.listOf(to).pushFront(n)
}

// replace moves the LRU page of T1 or T2 to its ghost list.
func (a *arcPolicy) replace(hitB2 bool) {
	if a.t1.n > 0 && (float64(a.t1.n) > a.p || (hitB2 && float64(a.t1.n) == a.p)) {
		v := a.t1.back()
		a.move(v, inB1)
		a.evicted(v.key)
	} else if a.t2.n > 0 {
		v := a.t2.back()
		a.move(v, inB2)
		a.evicted(v.key)
	} else if a.t1.n > 0 {
		v := a.t1.back()
		a.move(v, inB1)
		a.evicted(v.key)
	}
}

func (a *arcPolicy) drop(l *list) {
	v := l.back()
	l.remove(v)
	delete(a.m, v.key)
}

func (a *arcPolicy) Access(k uint64) bool {
	n, ok := a.m[k]
	if ok && (n.where == inT1 || n.where == inT2) {
		a.move(n, inT2)
		return true
	}
	c := float64(a.c)
	if ok && n.where == inB1 {
		d := 1.0
		if a.b1.n > 0 && a.b2.n > a.b1.n {
			d = float64(a.b2.n) / float64(a.b1.n)
		}
		a.p = math.Min(c, a.p+d)
		a.replace(false)
		a.move(n, inT2)
		return false
	}
	if ok && n.where == inB2 {
		d := 1.0
		if a.b2.n > 0 && a.b1.n > a.b2.n {
			d = float64(a.b1.n) / float64(a.b2.n)
		}
		a.p = math.Max(0, a.p-d)
		a.replace(true)
		a.move(n, inT2)
		return false
	}
	// A page in no list.
	l1 := a.t1.n + a.b1.n
	if l1 == a.c {
		if a.t1.n < a.c {
			a.drop(a.b1)
			a.replace(false)
		} else {
			v := a.t1.back()
			a.t1.remove(v)
			delete(a.m, v.key)
			a.evicted(v.key)
		}
	} else if total := l1 + a.t2.n + a.b2.n; total >= a.c {
		if total == 2*a.c {
			a.drop(a.b2)
		}
		a.replace(false)
	}
	n = &lnode{key: k}
	a.m[k] = n
	a.move(n, inT1)
	return false
}

// ---- S3-FIFO (Yang et al., SOSP 2023) ----

const (
	inSmall = iota + 1
	inMain
	inGhost
)

type s3fifoPolicy struct {
	hook
	name              string
	promote           uint8 // hits in the small FIFO that move a page to main
	c, smallCap       int
	m                 map[uint64]*lnode
	small, main, ghst *list
}

func newS3FIFO(c int) *s3fifoPolicy { return newS3FIFOSmall(c, 10) }

// newS3FIFOSmall gives the small FIFO pct percent of the cache (the paper
// uses 10); Adaptive also runs 2 % and 30 % variants as experts.
func newS3FIFOSmall(c, pct int) *s3fifoPolicy {
	s := c * pct / 100
	if s < 1 {
		s = 1
	}
	return &s3fifoPolicy{name: S3FIFO, promote: 2, c: c, smallCap: s, m: map[uint64]*lnode{}, small: newList(), main: newList(), ghst: newList()}
}

func (p *s3fifoPolicy) Name() string { return p.name }
func (p *s3fifoPolicy) Len() int     { return p.small.n + p.main.n }
func (p *s3fifoPolicy) Cap() int     { return p.c }
func (p *s3fifoPolicy) Contains(k uint64) bool {
	n, ok := p.m[k]
	return ok && n.where != inGhost
}

func (p *s3fifoPolicy) Access(k uint64) bool {
	if n, ok := p.m[k]; ok && n.where != inGhost {
		if n.freq < 3 {
			n.freq++
		}
		return true
	}
	for p.small.n+p.main.n >= p.c {
		p.evict()
	}
	// Look up again: evicting may have trimmed the ghost queue.
	if n, ok := p.m[k]; ok { // ghost hit: straight to main
		p.ghst.remove(n)
		n.where, n.freq = inMain, 0
		p.main.pushFront(n)
		return false
	}
	n := &lnode{key: k, where: inSmall}
	p.m[k] = n
	p.small.pushFront(n)
	return false
}

// evict removes exactly one resident page: from the small FIFO when it is
// over its tenth (pages referenced twice there move to main instead), else
// from main, where a referenced page gets another round.
func (p *s3fifoPolicy) evict() {
	for {
		if p.small.n > 0 && (p.small.n >= p.smallCap || p.main.n == 0) {
			t := p.small.back()
			p.small.remove(t)
			if t.freq >= p.promote {
				t.where, t.freq = inMain, 0
				p.main.pushFront(t)
				continue
			}
			t.where, t.freq = inGhost, 0
			p.ghst.pushFront(t)
			if p.ghst.n > p.c-p.smallCap {
				g := p.ghst.back()
				p.ghst.remove(g)
				delete(p.m, g.key)
			}
			p.evicted(t.key)
			return
		}
		t := p.main.back()
		p.main.remove(t)
		if t.freq > 0 {
			t.freq--
			p.main.pushFront(t)
			continue
		}
		delete(p.m, t.key)
		p.evicted(t.key)
		return
	}
}

// ---- SIEVE (Zhang et al., NSDI 2024) ----

type sievePolicy struct {
	hook
	c    int
	m    map[uint64]*lnode
	l    *list
	hand *lnode
}

func newSieve(c int) *sievePolicy { return &sievePolicy{c: c, m: map[uint64]*lnode{}, l: newList()} }

func (p *sievePolicy) Name() string           { return SIEVE }
func (p *sievePolicy) Len() int               { return p.l.n }
func (p *sievePolicy) Cap() int               { return p.c }
func (p *sievePolicy) Contains(k uint64) bool { _, ok := p.m[k]; return ok }
func (p *sievePolicy) Access(k uint64) bool {
	if n, ok := p.m[k]; ok {
		n.visited = true
		return true
	}
	if p.l.n >= p.c {
		h := p.hand
		if h == nil || h == &p.l.root {
			h = p.l.back()
		}
		for h.visited {
			h.visited = false
			h = h.prev
			if h == &p.l.root {
				h = p.l.back()
			}
		}
		p.hand = h.prev
		p.l.remove(h)
		delete(p.m, h.key)
		p.evicted(h.key)
	}
	n := &lnode{key: k}
	p.m[k] = n
	p.l.pushFront(n)
	return false
}
