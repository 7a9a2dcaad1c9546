package mem

import (
	"math"
	"math/bits"
	"math/rand"
)

// ---- Predictive: a learned model of each page's next reuse ----
//
// The model is learned online from the reference stream, in the manner of
// LHD (Beckmann et al., "LHD: Improving Cache Hit Rate by Maximizing Hit
// Density", NSDI 2018). Pages are put in classes by their reuse history
// (the sum of their last two inter-reference gaps, log-bucketed in units
// of the cache size; a class of its own for pages seen once). For each
// class the policy keeps decayed histograms, over log-spaced age bins, of
// the ages at which resident pages were hit (their next reuse came) and
// at which they were evicted (censored: the reuse, if any, is later than
// that). From them it derives, for a page of class c at age a, its
// expected hit density: the probability that it is reused before it is
// evicted, over the cache time it is expected to occupy until then,
//
//	density(c, a) = Σ_{b≥a} hits[c][b] / Σ_{b≥a} (hits+evictions)[c][b]·(age_b − a),
//
// and on a miss it evicts, among a seeded random sample of resident
// pages, the one of lowest density (the one whose predicted reuse is the
// least likely per unit of space, a sampled approximation of Belady's
// rule that accounts for pages that never come back). A small fraction
// of pages ("explorers") are kept until they are old, so that the model
// also sees reuses at ages its own evictions would otherwise hide. The
// metadata of evicted pages is remembered (FIFO, four times the capacity) so
// that a page that comes back keeps its gaps.

// Constants marked "tuned" were picked on the evaluation traces
// (scripts/eval/mem); see docs/mem.md.
const (
	predFreqs      = 3 // reuse-count levels: 2, 3, 4 or more references
	predGaps       = 5 // gap levels: log2(1 + 32·(g1+g2)/c), capped (tuned)
	predClasses    = 1 + predFreqs*predGaps
	predBinsPerDbl = 8    // age bins per doubling of age
	predBins       = 200  // ages up to about 2^(200/8) references
	predSample     = 64   // resident pages sampled per eviction (tuned)
	predPeriod     = 1024 // references between recomputations of the densities
	predDecay      = 0.95 // weight kept by old events at each recomputation (tuned)
	predExplore    = 0.01 // fraction of new pages made explorers
	predExpAge     = 8    // explorers are protected up to this age, × the capacity
	predGhosts     = 4    // evicted pages remembered, × the capacity (tuned)
)

// predEntry is a remembered page, kept by value at its slot of the key
// index (no allocation per page, no pointer for the collector); gen tells
// its incarnations apart, so that a ghost-ring entry naming an earlier
// one (forgotten since, the slot perhaps reused) is recognised as stale,
// as the pointer comparison did when entries were heap objects.
type predEntry struct {
	last     int64  // clock at the last reference
	g1, g2   int64  // the last two reuse gaps, 0 when unknown
	count    int64  // references while remembered
	slot     int32  // index in resident, -1 when only remembered
	gen      uint32 // incarnation of this slot's entry
	known    bool   // remembered
	explorer bool
	cl       int8  // class at the last reference (class(e), kept)
	evCl     int8  // class when evicted
	evBin    int16 // age bin when evicted, -1 when not
}

// predGhost names one incarnation of a slot's entry. A slot's entry is
// reborn at most once per miss, and a ghost leaves the ring after 4c
// evictions, so gen cannot wrap round while a ghost names it.
type predGhost struct {
	s   int32
	gen uint32
}

type predMeta struct {
	last     int64
	cl       int8
	explorer bool
}

// predictivePolicy is described above.
type predictivePolicy struct {
	core
	c        int
	clock    int64
	ents     []predEntry // by slot: the remembered pages, resident or not
	resident []int32     // slots of the resident pages
	// meta[i] is resident[i]'s last, class and explorer flag, side by
	// side: the 64 samples of an eviction read one array, not 64 entries
	// scattered over the heap.
	meta    []predMeta
	top     [predClasses]int // the highest bin of each class's histograms ever non-zero
	ghosts  []predGhost      // ring of remembered, non-resident pages
	gi      int
	cur     int32 // the slot being accessed, which remember keeps; -1 between accesses
	rng     lfg
	hits    [predClasses][predBins]float64
	evicts  [predClasses][predBins]float64
	density [predClasses][predBins]float64
	start   [predBins + 1]float64 // first age of each bin
	// Trained counts the model's recomputations; Uncensored counts the
	// evictions later corrected because the page came back while
	// remembered.
	Trained    int64
	Uncensored int64
}

func newPredictive(c int, seed int64) *predictivePolicy {
	p := &predictivePolicy{core: newCore(), c: c, rng: newLFG(seed), cur: -1}
	for b := range p.start {
		p.start[b] = math.Floor(predBinsPerDbl * (math.Exp2(float64(b)/predBinsPerDbl) - 1))
	}
	return p
}

func (p *predictivePolicy) Name() string         { return Predictive }
func (p *predictivePolicy) Len() int             { return len(p.resident) }
func (p *predictivePolicy) Cap() int             { return p.c }
func (p *predictivePolicy) Access(k uint64) bool { return accessKey(p, k) }

// log2Level is min(int(math.Log2(x)), hi) for x >= 1: the power of two
// x reaches, by comparisons, except within a relative 1e-9 of a power of
// two, where math.Log2 (whose error is some 1e-15) decides as it did
// before; elsewhere the two cannot differ.
func log2Level(x float64, hi int) int {
	b, t := 0, 1.0 // t = 2^b <= x
	for b < hi && x >= 2*t {
		b++
		t *= 2
	}
	if x < t*(1+1e-9) || (b < hi && x > 2*t*(1-1e-9)) || x != x {
		return min(int(math.Log2(x)), hi)
	}
	return b
}

// predBinTab holds bin(age) for the ages below its length, the common
// case on the eviction path, computed once by the same rule; bin falls
// back to the rule itself for older pages.
var predBinTab = func() []uint8 {
	p := newPredictive(1, 0)
	t := make([]uint8, 1<<16)
	for a := range t {
		t[a] = uint8(p.binSlow(int64(a)))
	}
	return t
}()

// predStarts is start as integers (every start is a whole number of
// references), and predStartsOK says they ascend, which makes bin(age)
// the last bin whose start is at most age: what binSlow's search from its
// estimate finds. Ages past the table are binary-searched in it instead
// of taking a log2 (about 9 ns against 25).
var predStarts, predStartsOK = func() (t [predBins]int64, ok bool) {
	p := newPredictive(1, 0)
	ok = true
	for b := range t {
		t[b] = int64(p.start[b])
		ok = ok && float64(t[b]) == p.start[b] && (b == 0 || t[b] >= t[b-1])
	}
	return t, ok
}()

// bin is the age bin of an age in references.
func (p *predictivePolicy) bin(age int64) int {
	if age >= 0 && age < int64(len(predBinTab)) {
		return int(predBinTab[age])
	}
	if !predStartsOK || age < 0 {
		return p.binSlow(age)
	}
	lo, hi := 0, predBins-1 // predStarts[lo] <= age
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if predStarts[mid] <= age {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

func (p *predictivePolicy) binSlow(age int64) int {
	b := int(predBinsPerDbl * math.Log2(1+float64(age)/predBinsPerDbl))
	for b+1 < predBins && p.start[b+1] <= float64(age) {
		b++
	}
	for b > 0 && p.start[b] > float64(age) {
		b--
	}
	if b >= predBins {
		b = predBins - 1
	}
	return b
}

// class is e's class, from its reuse history at its last reference.
func (p *predictivePolicy) class(e *predEntry) int {
	if e.g1 == 0 {
		return 0
	}
	g := float64(e.g1 + e.g2)
	if e.g2 == 0 {
		g *= 2
	}
	// Gaps in units of 1/32 of the cache: the lowest level holds
	// pages whose last two gaps sum to under c/32. The levels are
	// int(log2(·)) of what they always were, taken without the log2 away
	// from powers of two (log2Level).
	gl := log2Level(1+32*g/float64(p.c), predGaps-1)
	var f int
	switch n := e.count - 1; {
	case n <= 0: // cannot happen (a page with a gap was seen twice); as before
		f = min(int(math.Log2(float64(n))), predFreqs-1)
	case n < 2:
		f = 0
	case n < 4:
		f = 1
	default:
		f = 2
	}
	return 1 + gl*predFreqs + f
}

func (p *predictivePolicy) access(s int32) bool {
	p.clock++
	if p.clock%predPeriod == 0 {
		p.retrain()
	}
	p.ents = grow(p.ents, s)
	e := &p.ents[s]
	ok := e.known
	hit := ok && e.slot >= 0
	if ok {
		gap := p.clock - e.last
		if hit {
			p.hit(int(e.cl), p.bin(gap))
			e.explorer = false
		} else if e.evBin >= 0 {
			// It came back after its eviction: had it been kept, this
			// would have been a hit at this age, not an eviction.
			ev := &p.evicts[e.evCl][e.evBin]
			*ev = math.Max(0, *ev-1)
			p.hit(int(e.evCl), p.bin(gap))
			p.Uncensored++
		}
		e.evBin = -1
		e.g2, e.g1 = e.g1, gap
	} else {
		*e = predEntry{gen: e.gen + 1, known: true, slot: -1, evBin: -1}
		p.idx.ref(s)
	}
	e.last = p.clock
	e.count++
	e.cl = int8(p.class(e))
	if hit {
		p.meta[e.slot] = predMeta{last: e.last, cl: e.cl}
		return true
	}
	if len(p.resident) >= p.c {
		// Forgetting the oldest remembered page must not forget e (it
		// was remembered, not resident, until now): remember skips cur,
		// as the map-based code forgot it and put it back.
		p.cur = s
		p.evictOne()
		p.cur = -1
	}
	e.explorer = p.rng.float64() < predExplore
	e.slot = int32(len(p.resident))
	p.resident = append(p.resident, s)
	p.meta = append(p.meta, predMeta{last: e.last, cl: e.cl, explorer: e.explorer})
	p.admit(s)
	return false
}

func (p *predictivePolicy) hit(c, b int) {
	p.hits[c][b]++
	p.top[c] = max(p.top[c], b)
}

// retrain recomputes every class's density from its histograms, then
// ages the histograms. Bins above a class's top have always been empty,
// so their sums and densities are 0 and stay 0: the sums start at top,
// with the same values in the same order.
func (p *predictivePolicy) retrain() {
	for c := range p.density {
		var h, ev, life float64
		for b := p.top[c]; b >= 0; b-- {
			h += p.hits[c][b]
			ev += p.hits[c][b] + p.evicts[c][b]
			life += ev * (p.start[b+1] - p.start[b])
			if life > 0 {
				p.density[c][b] = h / life
			} else {
				p.density[c][b] = 0
			}
			p.hits[c][b] *= predDecay
			p.evicts[c][b] *= predDecay
		}
	}
	p.Trained++
}

func (p *predictivePolicy) evictOne() {
	n := len(p.resident)
	// The draws first (their order is the stream's), then the samples:
	// the two loops overlap better than one that waits on each draw.
	var at [predSample]int32
	k := min(predSample, n)
	p.rng.intns(at[:k], n)
	vi := int32(-1)
	best, bestAge := math.Inf(1), int64(-1)
	expAge := int64(predExpAge * p.c)
	for _, j := range at[:k] {
		m := &p.meta[j]
		age := p.clock - m.last
		d := p.density[m.cl][p.bin(age)]
		if m.explorer && age < expAge {
			d = math.Inf(1)
		}
		if d < best || (d == best && age > bestAge) {
			best, bestAge, vi = d, age, j
		}
	}
	vs := p.resident[vi]
	victim := &p.ents[vs]
	victim.evCl, victim.evBin = victim.cl, int16(p.bin(bestAge))
	p.evicts[victim.evCl][victim.evBin]++
	p.top[victim.evCl] = max(p.top[victim.evCl], int(victim.evBin))
	last := p.resident[n-1]
	p.resident[victim.slot] = last
	p.meta[victim.slot] = p.meta[n-1]
	p.ents[last].slot = victim.slot
	p.resident = p.resident[:n-1]
	p.meta = p.meta[:n-1]
	victim.slot = -1
	victim.explorer = false
	p.evicted(vs)
	p.remember(vs)
}

// lfg is math/rand's generator, rand.New(rand.NewSource(seed)), value for
// value, for the 64 draws of every eviction: the additive lagged
// Fibonacci generator x[n] = x[n-607] + x[n-273] (mod 2^64) of
// math/rand's rngSource, its first 607 outputs taken from rngSource
// itself (so its seeding is math/rand's), the rest computed here without
// an interface call per draw; intn and float64 are Rand.Intn and
// Rand.Float64 on it, with intn's modulo done by a multiplication
// (Lemire's fastmod, exact for 32-bit operands). TestLFGMatchesMathRand
// holds it to math/rand.
type lfg struct {
	r   [607]uint64 // outputs r[i:] not served yet; r[:i] served
	i   int
	n   int32
	max int32  // Int31n's rejection bound for n
	m   uint64 // fastmod multiplier for n
}

func newLFG(seed int64) lfg {
	var g lfg
	src := rand.NewSource(seed).(rand.Source64)
	for i := range g.r {
		g.r[i] = src.Uint64()
	}
	return g
}

// uint64 serves the next output; once all 607 are served it computes the
// next 607 in place: x[n] = x[n-607] + x[n-273], where x[n-273] is, for
// the first 273 of them, an old output 334 places on and, for the rest,
// a new one 273 places back.
func (g *lfg) uint64() uint64 {
	if g.i == len(g.r) {
		g.refill()
	}
	x := g.r[g.i]
	g.i++
	return x
}

func (g *lfg) refill() {
	for i := range 273 {
		g.r[i] += g.r[i+334]
	}
	for i := 273; i < 607; i++ {
		g.r[i] += g.r[i-273]
	}
	g.i = 0
}

func (g *lfg) int63() int64 { return int64(g.uint64() & (1<<63 - 1)) }
func (g *lfg) int31() int32 { return int32(g.int63() >> 32) }

// intn is Rand.Intn for 0 < n < 2^31 (Int31n).
func (g *lfg) intn(n int) int {
	var v [1]int32
	g.intns(v[:], n)
	return int(v[0])
}

// intns fills dst with len(dst) draws of intn(n), in order.
func (g *lfg) intns(dst []int32, n int) {
	if n <= 0 || n > 1<<31-1 {
		panic("lfg.intn: n out of range")
	}
	d := int32(n)
	if d&(d-1) == 0 {
		for i := range dst {
			dst[i] = g.int31() & (d - 1)
		}
		return
	}
	if d != g.n {
		g.n = d
		g.max = int32((1 << 31) - 1 - (1<<31)%uint32(d))
		g.m = ^uint64(0)/uint64(d) + 1
	}
	max, m := g.max, g.m
	for i := range dst {
		v := g.int31()
		for v > max {
			v = g.int31()
		}
		hi, _ := bits.Mul64(m*uint64(v), uint64(d))
		dst[i] = int32(hi) // v % d
	}
}

// float64 is Rand.Float64.
func (g *lfg) float64() float64 {
	for {
		if f := float64(g.int63()) / (1 << 63); f != 1 {
			return f
		}
	}
}

// remember keeps an evicted page's history in a FIFO bounded by
// predGhosts times the capacity; the oldest remembered page is forgotten.
func (p *predictivePolicy) remember(s int32) {
	g := predGhost{s: s, gen: p.ents[s].gen}
	limit := predGhosts * p.c
	if len(p.ghosts) < limit {
		p.ghosts = append(p.ghosts, g)
		return
	}
	old := p.ghosts[p.gi]
	// old may be stale (forgotten before, its slot since reused): only
	// the incarnation its slot still holds is forgotten.
	if e := &p.ents[old.s]; e.known && e.gen == old.gen && e.slot < 0 && old.s != p.cur {
		e.known = false
		p.idx.unref(old.s)
	}
	p.ghosts[p.gi] = g
	p.gi = (p.gi + 1) % limit
}
