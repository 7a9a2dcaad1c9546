package mem

import (
	"math"
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

type predEntry struct {
	key      uint64
	last     int64 // clock at the last reference
	g1, g2   int64 // the last two reuse gaps, 0 when unknown
	count    int64 // references while remembered
	slot     int   // index in resident, -1 when only remembered
	explorer bool
	cl       int8  // class at the last reference (class(e), kept)
	evCl     int8  // class when evicted
	evBin    int16 // age bin when evicted, -1 when not
}

// predictivePolicy is described above.
type predictivePolicy struct {
	hook
	c        int
	clock    int64
	m        map[uint64]*predEntry
	resident []*predEntry
	ghosts   []*predEntry // ring of remembered, non-resident pages
	gi       int
	rng      *rand.Rand
	hits     [predClasses][predBins]float64
	evicts   [predClasses][predBins]float64
	density  [predClasses][predBins]float64
	start    [predBins + 1]float64 // first age of each bin
	// Trained counts the model's recomputations; Uncensored counts the
	// evictions later corrected because the page came back while
	// remembered.
	Trained    int64
	Uncensored int64
}

func newPredictive(c int, seed int64) *predictivePolicy {
	p := &predictivePolicy{c: c, m: map[uint64]*predEntry{}, rng: rand.New(rand.NewSource(seed))}
	for b := range p.start {
		p.start[b] = math.Floor(predBinsPerDbl * (math.Exp2(float64(b)/predBinsPerDbl) - 1))
	}
	return p
}

func (p *predictivePolicy) Name() string { return Predictive }
func (p *predictivePolicy) Len() int     { return len(p.resident) }
func (p *predictivePolicy) Cap() int     { return p.c }
func (p *predictivePolicy) Contains(k uint64) bool {
	e, ok := p.m[k]
	return ok && e.slot >= 0
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

// bin is the age bin of an age in references.
func (p *predictivePolicy) bin(age int64) int {
	if age >= 0 && age < int64(len(predBinTab)) {
		return int(predBinTab[age])
	}
	return p.binSlow(age)
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
	// pages whose last two gaps sum to under c/32.
	gl := int(math.Log2(1 + 32*g/float64(p.c)))
	if gl >= predGaps {
		gl = predGaps - 1
	}
	f := int(math.Log2(float64(e.count - 1)))
	if f >= predFreqs {
		f = predFreqs - 1
	}
	return 1 + gl*predFreqs + f
}

func (p *predictivePolicy) Access(k uint64) bool {
	p.clock++
	if p.clock%predPeriod == 0 {
		p.retrain()
	}
	e, ok := p.m[k]
	hit := ok && e.slot >= 0
	if ok {
		gap := p.clock - e.last
		if hit {
			p.hits[e.cl][p.bin(gap)]++
			e.explorer = false
		} else if e.evBin >= 0 {
			// It came back after its eviction: had it been kept, this
			// would have been a hit at this age, not an eviction.
			ev := &p.evicts[e.evCl][e.evBin]
			*ev = math.Max(0, *ev-1)
			p.hits[e.evCl][p.bin(gap)]++
			p.Uncensored++
		}
		e.evBin = -1
		e.g2, e.g1 = e.g1, gap
	} else {
		e = &predEntry{key: k, slot: -1, evBin: -1}
		p.m[k] = e
	}
	e.last = p.clock
	e.count++
	e.cl = int8(p.class(e))
	if hit {
		return true
	}
	if len(p.resident) >= p.c {
		p.evictOne()
	}
	// Forgetting the oldest remembered page may have dropped e itself
	// from the map (it was remembered, not resident, until now).
	p.m[k] = e
	e.explorer = p.rng.Float64() < predExplore
	e.slot = len(p.resident)
	p.resident = append(p.resident, e)
	return false
}

// retrain recomputes every class's density from its histograms, then
// ages the histograms.
func (p *predictivePolicy) retrain() {
	for c := range p.density {
		var h, ev, life float64
		for b := predBins - 1; b >= 0; b-- {
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
	var victim *predEntry
	best, bestAge := math.Inf(1), int64(-1)
	n := len(p.resident)
	for i := 0; i < predSample && i < n; i++ {
		e := p.resident[p.rng.Intn(n)]
		age := p.clock - e.last
		d := p.density[e.cl][p.bin(age)]
		if e.explorer && age < int64(predExpAge*p.c) {
			d = math.Inf(1)
		}
		if d < best || (d == best && age > bestAge) {
			best, bestAge, victim = d, age, e
		}
	}
	victim.evCl, victim.evBin = victim.cl, int16(p.bin(bestAge))
	p.evicts[victim.evCl][victim.evBin]++
	last := p.resident[n-1]
	p.resident[victim.slot] = last
	last.slot = victim.slot
	p.resident = p.resident[:n-1]
	victim.slot = -1
	victim.explorer = false
	p.evicted(victim.key)
	p.remember(victim)
}

// remember keeps an evicted page's history in a FIFO bounded by
// predGhosts times the capacity; the oldest remembered page is forgotten.
func (p *predictivePolicy) remember(e *predEntry) {
	limit := predGhosts * p.c
	if len(p.ghosts) < limit {
		p.ghosts = append(p.ghosts, e)
		return
	}
	old := p.ghosts[p.gi]
	if cur, ok := p.m[old.key]; ok && cur == old && cur.slot < 0 {
		delete(p.m, old.key)
	}
	p.ghosts[p.gi] = e
	p.gi = (p.gi + 1) % limit
}
