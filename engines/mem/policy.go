package mem

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
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

// ---- the key index: dense slots shared by a policy's structures ----

// keyIndex numbers the keys a policy tracks with dense int32 slots, so
// that every per-page structure is a slice indexed by slot (linked by
// slot numbers) instead of a map from key to a heap node. A reference
// then costs one map look-up, in the index, whatever the policy keeps per
// page; nothing is allocated per page, and nothing holds a pointer for the
// garbage collector to trace or a write barrier to guard. Adaptive shares
// one index among its nine experts (each a bit of held): a reference costs
// it one map look-up instead of one per expert (the profile's largest
// item before, issue 15), and which experts hold a page is one load, which
// is what its vote on a victim and its divergence counts read.
//
// A slot stays bound to its key while anyone references it: a policy for
// each page it tracks (resident or a ghost), Adaptive for each page of its
// real cache and each entry of its queues. At zero the key leaves the map
// and the slot is reused. Slots name pages inside the package only; no
// decision depends on their numbers, so the misses and evictions are those
// of the map-based code they replace (TestPolicyFingerprints).
type keyIndex struct {
	m    slotTable
	keys []uint64 // slot -> key
	refs []int32  // slot -> how many hold it
	held []uint16 // slot -> bit b set while the policy with bit b holds the page resident
	free []int32
}

func newKeyIndex() *keyIndex { return &keyIndex{m: slotTable{seed: rand.Uint64()}} }

// slot is k's slot, a new one (referenced by no one yet) if k has none.
func (x *keyIndex) slot(k uint64) int32 {
	if s, ok := x.m.get(k); ok {
		return s
	}
	var s int32
	if n := len(x.free); n > 0 {
		s, x.free = x.free[n-1], x.free[:n-1]
		x.keys[s], x.held[s] = k, 0
	} else {
		s = int32(len(x.keys))
		x.keys = append(x.keys, k)
		x.refs = append(x.refs, 0)
		x.held = append(x.held, 0)
	}
	x.m.put(k, s)
	return s
}

func (x *keyIndex) ref(s int32) { x.refs[s]++ }

func (x *keyIndex) unref(s int32) {
	x.refs[s]--
	if x.refs[s] == 0 {
		x.drop(s)
	}
}

func (x *keyIndex) drop(s int32) {
	x.m.del(x.keys[s])
	x.free = append(x.free, s)
}

// slotTable is the index's map from key to slot: open addressing with
// linear probing in a power-of-two array kept at most half full, deletion
// by backward shift (no tombstones). A Go map cost about 20 ns a look-up
// here, most of Adaptive's remaining time once the experts shared one;
// this costs a hash (one multiplication) and, at half load, one or two
// probes in one cache line. The hash is seeded at random per index; a
// pattern of page numbers crafted to collide would only slow the cache
// of the region it reads. The table's layout decides nothing (no one
// iterates it), so misses do not depend on the seed.
type slotTable struct {
	e     []slotEnt
	mask  uint64
	shift uint8 // 64 - log2(len(e))
	n     int
	seed  uint64
}

type slotEnt struct {
	k uint64
	v int32 // slot+1; 0 is an empty cell
}

// home is k's first cell: Fibonacci hashing (the top bits of a product
// with 2^64/φ), which spreads runs of page numbers evenly, of the key
// xored with the seed.
func (t *slotTable) home(k uint64) uint64 {
	return ((k ^ t.seed) * 0x9e3779b97f4a7c15) >> t.shift
}

func (t *slotTable) get(k uint64) (int32, bool) {
	if t.n == 0 {
		return 0, false
	}
	for i := t.home(k); ; i = (i + 1) & t.mask {
		e := &t.e[i]
		if e.v == 0 {
			return 0, false
		}
		if e.k == k {
			return e.v - 1, true
		}
	}
}

// put adds k, which is absent.
func (t *slotTable) put(k uint64, s int32) {
	if 2*(t.n+1) > len(t.e) {
		old := t.e
		t.e = make([]slotEnt, max(16, 2*len(old)))
		t.mask = uint64(len(t.e) - 1)
		t.shift = uint8(64 - bits.TrailingZeros(uint(len(t.e))))
		for _, e := range old {
			if e.v != 0 {
				t.insert(e)
			}
		}
	}
	t.insert(slotEnt{k: k, v: s + 1})
	t.n++
}

func (t *slotTable) insert(e slotEnt) {
	i := t.home(e.k)
	for t.e[i].v != 0 {
		i = (i + 1) & t.mask
	}
	t.e[i] = e
}

// del removes k, which is present, moving back each later entry of its
// run that may take the freed cell (one whose home is not after it).
func (t *slotTable) del(k uint64) {
	i := t.home(k)
	for t.e[i].k != k || t.e[i].v == 0 {
		i = (i + 1) & t.mask
	}
	for j := i; ; {
		j = (j + 1) & t.mask
		if t.e[j].v == 0 {
			break
		}
		if (j-t.home(t.e[j].k))&t.mask >= (j-i)&t.mask {
			t.e[i] = t.e[j]
			i = j
		}
	}
	t.e[i] = slotEnt{}
	t.n--
}

// grow returns xs long enough to index slot s (the policies' per-slot
// slices follow the index's growth lazily).
func grow[T any](xs []T, s int32) []T {
	for int(s) >= len(xs) {
		if len(xs) < cap(xs) {
			xs = xs[:cap(xs)]
		} else {
			xs = append(xs[:cap(xs)], make([]T, max(16, len(xs)))...)
		}
	}
	return xs
}

// slotPolicy is a policy that runs on slots of a key index, alone (its
// own index, bit 1) or as one of Adaptive's experts (the shared index).
type slotPolicy interface {
	Policy
	access(s int32) bool
	base() *core
}

// core is what every policy keeps besides its algorithm: its index, its
// bit in held, and the eviction hooks (by key for the page cache, by slot
// for Adaptive).
type core struct {
	idx   *keyIndex
	bit   uint16
	f     func(uint64)
	fslot func(int32)
}

func newCore() core { return core{idx: newKeyIndex(), bit: 1} }

func (c *core) base() *core            { return c }
func (c *core) OnEvict(f func(uint64)) { c.f = f }
func (c *core) holds(s int32) bool     { return c.idx.held[s]&c.bit != 0 }
func (c *core) admit(s int32)          { c.idx.held[s] |= c.bit }
func (c *core) Contains(k uint64) bool {
	s, ok := c.idx.m.get(k)
	return ok && c.idx.held[s]&c.bit != 0
}

// evicted takes s out of the policy's resident set and tells the hook
// (the policy must not have given up its reference to s yet).
func (c *core) evicted(s int32) {
	c.idx.held[s] &^= c.bit
	if c.fslot != nil {
		c.fslot(s)
	} else if c.f != nil {
		c.f(c.idx.keys[s])
	}
}

// accessKey is Access for a policy on its own index. The slot is pinned
// (referenced) for the access: the policy may let go of the page's old
// entry on the way (S-3FIFO trimming the very ghost that is coming back)
// before it takes the page again, and its slot must not be reused
// meanwhile.
func accessKey(p slotPolicy, k uint64) bool {
	x := p.base().idx
	s := x.slot(k)
	x.ref(s)
	hit := p.access(s)
	x.unref(s)
	return hit
}

// ---- an intrusive doubly linked list of slots, shared by LRU, LFU, ARC,
// S3-FIFO, SIEVE and LIRS ----

// link is a slot's place on a list: the slots before and after it, -1 at
// the ends. The links live in the policy's per-slot slice; a list is only
// its ends and length.
type link struct{ prev, next int32 }

// ilist's front is the most recent.
type ilist struct {
	front, back int32
	n           int
}

func newIList() ilist { return ilist{front: -1, back: -1} }

func (l *ilist) pushFront(ln []link, s int32) {
	ln[s] = link{prev: -1, next: l.front}
	if l.front >= 0 {
		ln[l.front].prev = s
	} else {
		l.back = s
	}
	l.front = s
	l.n++
}

func (l *ilist) remove(ln []link, s int32) {
	p, n := ln[s].prev, ln[s].next
	if p >= 0 {
		ln[p].next = n
	} else {
		l.front = n
	}
	if n >= 0 {
		ln[n].prev = p
	} else {
		l.back = p
	}
	l.n--
}

// ---- LRU ----

type lruPolicy struct {
	core
	cap int
	ln  []link // by slot
	l   ilist
}

func newLRU(c int) *lruPolicy { return &lruPolicy{core: newCore(), cap: c, l: newIList()} }

func (p *lruPolicy) Name() string         { return LRU }
func (p *lruPolicy) Len() int             { return p.l.n }
func (p *lruPolicy) Cap() int             { return p.cap }
func (p *lruPolicy) Access(k uint64) bool { return accessKey(p, k) }
func (p *lruPolicy) access(s int32) bool {
	if p.holds(s) {
		if p.l.front != s {
			p.l.remove(p.ln, s)
			p.l.pushFront(p.ln, s)
		}
		return true
	}
	if p.l.n >= p.cap {
		v := p.l.back
		p.l.remove(p.ln, v)
		p.evicted(v)
		p.idx.unref(v)
	}
	p.ln = grow(p.ln, s)
	p.idx.ref(s)
	p.admit(s)
	p.l.pushFront(p.ln, s)
	return false
}

// ---- LFU (ties broken by least recent) ----
//
// The page evicted is the least frequently referenced one, and among
// those the least recently referenced, as libCacheSim's LFU. O(1) per
// reference (Shah, Mitra and Matani's constant-time LFU): a chain of
// counts in ascending order, each with its pages newest first. Counts
// are nodes of a slice linked by index (fs[0] is the chain's sentinel),
// reused through spare; pages are slots.

type lfuFreq struct {
	f          uint64
	pages      ilist // newest first
	prev, next int32 // in the ascending chain of counts; 0 is the sentinel
}

type lfuPolicy struct {
	core
	cap   int
	n     int
	ln    []link    // by slot: place in its count's pages
	fq    []int32   // by slot: its count's node
	fs    []lfuFreq // fs[0].next is the least count
	spare []int32
}

func newLFU(c int) *lfuPolicy {
	return &lfuPolicy{core: newCore(), cap: c, fs: []lfuFreq{{pages: newIList()}}}
}

func (p *lfuPolicy) Name() string         { return LFU }
func (p *lfuPolicy) Len() int             { return p.n }
func (p *lfuPolicy) Cap() int             { return p.cap }
func (p *lfuPolicy) Access(k uint64) bool { return accessKey(p, k) }

// after returns the count f's node, following at (a node or the
// sentinel), made if there is none.
func (p *lfuPolicy) after(at int32, f uint64) int32 {
	nx := p.fs[at].next
	if nx != 0 && p.fs[nx].f == f {
		return nx
	}
	var q int32
	if n := len(p.spare); n > 0 {
		q, p.spare = p.spare[n-1], p.spare[:n-1]
	} else {
		q = int32(len(p.fs))
		p.fs = append(p.fs, lfuFreq{})
	}
	p.fs[q] = lfuFreq{f: f, pages: newIList(), prev: at, next: nx}
	p.fs[nx].prev = q
	p.fs[at].next = q
	return q
}

// unlinkIfEmpty takes an emptied count out of the chain.
func (p *lfuPolicy) unlinkIfEmpty(q int32) {
	if p.fs[q].pages.n == 0 {
		pr, nx := p.fs[q].prev, p.fs[q].next
		p.fs[pr].next = nx
		p.fs[nx].prev = pr
		p.spare = append(p.spare, q)
	}
}

func (p *lfuPolicy) access(s int32) bool {
	if p.holds(s) {
		q := p.fq[s]
		nq := p.after(q, p.fs[q].f+1)
		p.fs[q].pages.remove(p.ln, s)
		p.fs[nq].pages.pushFront(p.ln, s)
		p.fq[s] = nq
		p.unlinkIfEmpty(q)
		return true
	}
	if p.n >= p.cap {
		q := p.fs[0].next
		v := p.fs[q].pages.back // the least recent of the least count
		p.fs[q].pages.remove(p.ln, v)
		p.unlinkIfEmpty(q)
		p.n--
		p.evicted(v)
		p.idx.unref(v)
	}
	p.ln, p.fq = grow(p.ln, s), grow(p.fq, s)
	p.idx.ref(s)
	p.admit(s)
	q := p.after(0, 1)
	p.fs[q].pages.pushFront(p.ln, s)
	p.fq[s] = q
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
	core
	c     int
	p     float64 // target size of T1
	ln    []link  // by slot
	where []uint8 // by slot: its list, 0 when ARC does not know it
	ls    [inB2 + 1]ilist
}

func newARC(c int) *arcPolicy {
	a := &arcPolicy{core: newCore(), c: c}
	for i := range a.ls {
		a.ls[i] = newIList()
	}
	return a
}

func (a *arcPolicy) Name() string         { return ARC }
func (a *arcPolicy) Len() int             { return a.ls[inT1].n + a.ls[inT2].n }
func (a *arcPolicy) Cap() int             { return a.c }
func (a *arcPolicy) Access(k uint64) bool { return accessKey(a, k) }

func (a *arcPolicy) move(s int32, to uint8) {
	if w := a.where[s]; w != 0 {
		a.ls[w].remove(a.ln, s)
	}
	a.where[s] = to
	a.ls[to].pushFront(a.ln, s)
	if to <= inT2 {
		a.admit(s)
	}
}

// ghost moves the LRU page of T1 or T2 to its ghost list.
func (a *arcPolicy) ghost(from, to uint8) {
	v := a.ls[from].back
	a.move(v, to)
	a.evicted(v)
}

// replace moves the LRU page of T1 or T2 to its ghost list.
func (a *arcPolicy) replace(hitB2 bool) {
	t1, t2 := a.ls[inT1].n, a.ls[inT2].n
	if t1 > 0 && (float64(t1) > a.p || (hitB2 && float64(t1) == a.p)) {
		a.ghost(inT1, inB1)
	} else if t2 > 0 {
		a.ghost(inT2, inB2)
	} else if t1 > 0 {
		a.ghost(inT1, inB1)
	}
}

// drop forgets the LRU page of a ghost list.
func (a *arcPolicy) drop(w uint8) {
	v := a.ls[w].back
	a.ls[w].remove(a.ln, v)
	a.where[v] = 0
	a.idx.unref(v)
}

func (a *arcPolicy) access(s int32) bool {
	if a.holds(s) {
		a.move(s, inT2)
		return true
	}
	a.ln, a.where = grow(a.ln, s), grow(a.where, s)
	c := float64(a.c)
	b1, b2 := a.ls[inB1].n, a.ls[inB2].n
	switch a.where[s] {
	case inB1:
		d := 1.0
		if b1 > 0 && b2 > b1 {
			d = float64(b2) / float64(b1)
		}
		a.p = math.Min(c, a.p+d)
		a.replace(false)
		a.move(s, inT2)
		return false
	case inB2:
		d := 1.0
		if b2 > 0 && b1 > b2 {
			d = float64(b1) / float64(b2)
		}
		a.p = math.Max(0, a.p-d)
		a.replace(true)
		a.move(s, inT2)
		return false
	}
	// A page in no list.
	t1 := a.ls[inT1].n
	l1 := t1 + b1
	if l1 == a.c {
		if t1 < a.c {
			a.drop(inB1)
			a.replace(false)
		} else {
			v := a.ls[inT1].back
			a.ls[inT1].remove(a.ln, v)
			a.where[v] = 0
			a.evicted(v)
			a.idx.unref(v)
		}
	} else if total := l1 + a.ls[inT2].n + b2; total >= a.c {
		if total == 2*a.c {
			a.drop(inB2)
		}
		a.replace(false)
	}
	a.idx.ref(s)
	a.move(s, inT1)
	return false
}

// ---- S3-FIFO (Yang et al., SOSP 2023) ----

const (
	inSmall = iota + 1
	inMain
	inGhost
)

type s3fifoPolicy struct {
	core
	name              string
	promote           uint8 // hits in the small FIFO that move a page to main
	c, smallCap       int
	ln                []link  // by slot
	where, freq       []uint8 // by slot; where is 0 when it does not know the page
	small, main, ghst ilist
}

func newS3FIFO(c int) *s3fifoPolicy { return newS3FIFOSmall(c, 10) }

// newS3FIFOSmall gives the small FIFO pct percent of the cache (the paper
// uses 10); Adaptive also runs 2 % and 30 % variants as experts.
func newS3FIFOSmall(c, pct int) *s3fifoPolicy {
	s := c * pct / 100
	if s < 1 {
		s = 1
	}
	return &s3fifoPolicy{core: newCore(), name: S3FIFO, promote: 2, c: c, smallCap: s,
		small: newIList(), main: newIList(), ghst: newIList()}
}

func (p *s3fifoPolicy) Name() string         { return p.name }
func (p *s3fifoPolicy) Len() int             { return p.small.n + p.main.n }
func (p *s3fifoPolicy) Cap() int             { return p.c }
func (p *s3fifoPolicy) Access(k uint64) bool { return accessKey(p, k) }

func (p *s3fifoPolicy) access(s int32) bool {
	if p.holds(s) {
		if p.freq[s] < 3 {
			p.freq[s]++
		}
		return true
	}
	for p.small.n+p.main.n >= p.c {
		p.evict()
	}
	p.ln, p.where, p.freq = grow(p.ln, s), grow(p.where, s), grow(p.freq, s)
	// Look only now: evicting may have trimmed the ghost queue.
	if p.where[s] == inGhost { // ghost hit: straight to main
		p.ghst.remove(p.ln, s)
		p.where[s], p.freq[s] = inMain, 0
		p.main.pushFront(p.ln, s)
		p.admit(s)
		return false
	}
	p.idx.ref(s)
	p.where[s], p.freq[s] = inSmall, 0
	p.small.pushFront(p.ln, s)
	p.admit(s)
	return false
}

// evict removes exactly one resident page: from the small FIFO when it is
// over its tenth (pages referenced twice there move to main instead), else
// from main, where a referenced page gets another round.
func (p *s3fifoPolicy) evict() {
	for {
		if p.small.n > 0 && (p.small.n >= p.smallCap || p.main.n == 0) {
			t := p.small.back
			p.small.remove(p.ln, t)
			if p.freq[t] >= p.promote {
				p.where[t], p.freq[t] = inMain, 0
				p.main.pushFront(p.ln, t)
				continue
			}
			p.where[t], p.freq[t] = inGhost, 0
			p.ghst.pushFront(p.ln, t)
			g := int32(-1)
			if p.ghst.n > p.c-p.smallCap {
				g = p.ghst.back
				p.ghst.remove(p.ln, g)
				p.where[g] = 0
			}
			p.evicted(t)
			if g >= 0 {
				p.idx.unref(g) // after the hook, which may be told of g itself
			}
			return
		}
		t := p.main.back
		p.main.remove(p.ln, t)
		if p.freq[t] > 0 {
			p.freq[t]--
			p.main.pushFront(p.ln, t)
			continue
		}
		p.where[t] = 0
		p.evicted(t)
		p.idx.unref(t)
		return
	}
}

// ---- SIEVE (Zhang et al., NSDI 2024) ----

type sievePolicy struct {
	core
	c       int
	ln      []link // by slot
	visited []bool // by slot
	l       ilist
	hand    int32 // -1: start from the back
}

func newSieve(c int) *sievePolicy {
	return &sievePolicy{core: newCore(), c: c, l: newIList(), hand: -1}
}

func (p *sievePolicy) Name() string         { return SIEVE }
func (p *sievePolicy) Len() int             { return p.l.n }
func (p *sievePolicy) Cap() int             { return p.c }
func (p *sievePolicy) Access(k uint64) bool { return accessKey(p, k) }
func (p *sievePolicy) access(s int32) bool {
	if p.holds(s) {
		p.visited[s] = true
		return true
	}
	if p.l.n >= p.c {
		h := p.hand
		if h < 0 {
			h = p.l.back
		}
		for p.visited[h] {
			p.visited[h] = false
			h = p.ln[h].prev
			if h < 0 {
				h = p.l.back
			}
		}
		p.hand = p.ln[h].prev
		p.l.remove(p.ln, h)
		p.evicted(h)
		p.idx.unref(h)
	}
	p.ln, p.visited = grow(p.ln, s), grow(p.visited, s)
	p.idx.ref(s)
	p.admit(s)
	p.visited[s] = false
	p.l.pushFront(p.ln, s)
	return false
}
