package mem

import (
	"math"
	"math/bits"
)

// adaptivePolicy learns online which policy serves the current phase of
// the reference stream, in the spirit of ARC, LeCaR and Cacheus: it runs
// every expert (LIRS, ARC, LRU, LFU, S3-FIFO and two variants of it, SIEVE
// and Predictive) as a shadow cache of the same capacity on the same
// stream, scores each by its exponentially decayed misses, and makes the
// real cache follow a leader, with the other experts voting on what it
// gives up first.
//
// Eviction: every expert keeps a queue of the real cache's pages it has
// evicted, oldest first; since a page enters the real cache only when it
// is referenced (when every expert holds it), that queue covers every
// resident page the expert does not hold, so each queue is non-empty
// whenever the real cache is over capacity. On a miss the real cache
// takes the front page of each queue and evicts the one held by the least
// vote weight: the leader weighs 1, every other expert at most voteOther,
// less the further its score is behind the leader's. A page the leader
// holds therefore always outweighs one it does not: while one expert
// leads the real cache holds exactly what it holds and misses exactly
// when it misses; among the pages the leader does not hold (after a
// switch) it gives up first those that the other good experts do not
// hold either, which keeps it closer to the expert that may lead next.
//
// Leader: reconsidered every 64 references. A switch has a price: the
// real cache then misses once on each page the new leader holds and it
// does not (div of them, at most) before it misses as that expert does;
// where an expert's lead comes from pages it has kept a long time (LIRS
// and ARC on CloudPhysics at its larger sizes), that price is most of a
// cache-full, and a switch made on a short window's lead, which such an
// expert loses for a while and then regains, costs more than it gains.
// So Adaptive switches to the expert whose misses over a slow window
// (decayed over 8 cache-fulls of references, at least 10,000) are fewer
// than the leader's by more than switchPrice of its divergence from the
// real cache plus a noise margin of switchNoise of the leader's: the
// misses it saved lately must pay for converging to it.
//
// Data: the experts share Adaptive's key index (policy.go), so a reference
// costs one map look-up, not ten, and every per-page structure is a slice
// indexed by slot. Expert i's residency is bit i of the index's held word
// for the page, and the real cache's is bit resBit: the vote on a
// candidate (which experts hold it) and the divergence counts after an
// eviction (which do not) read one word instead of asking nine experts.
// Queue entries are slots that Adaptive references, so a slot stays bound
// to its key while an entry names it (an entry may go stale and come back
// to life when its page does, as it did with keys).
type adaptivePolicy struct {
	core
	c       int
	experts []slotPolicy
	// The same experts by type, for Access to call directly (an
	// interface call each was a tenth of what was left).
	lirs         *lirsPolicy
	arc          *arcPolicy
	lru          *lruPolicy
	lfu          *lfuPolicy
	s3, s3s, s3l *s3fifoPolicy
	sieve        *sievePolicy
	pred         *predictivePolicy
	score        []float64 // decayed misses, long window: vote weights
	slow         []float64 // decayed misses, slow window: the leader
	w            []float64 // vote weights
	decay        float64
	sdecay       float64
	leader       int
	clock        uint64
	n            int      // resident pages of the real cache
	at           []uint64 // by slot: the clock at its insertion (real cache)
	// q[i] holds, oldest first, resident pages expert i has evicted;
	// stale entries are skipped when they reach the front.
	q []slotRing
	// div[i] is how many resident pages expert i does not hold.
	div      []int
	Switches int
}

// resBit is the real cache's bit in held; experts take bits 0..8.
const resBit = 1 << 15

const (
	longWindow  = 4.0   // × cache, at least 1000 references (votes)
	slowWindow  = 8.0   // × cache, at least 10000 references (leader)
	switchPrice = 0.5   // misses charged per page of divergence (chosen on the eval traces; 0.4–0.7 do as well)
	switchNoise = 0.005 // and a lead smaller than 0.5 % is noise
	voteOther   = 0.1   // most weight of an expert that does not lead
	voteKappa   = 50.0  // its weight falls by e per 2 % of score behind
)

// expertNames are Adaptive's experts, in tie-breaking order: LIRS leads
// until another has earned its switch.
var expertNames = []string{LIRS, ARC, LRU, LFU, S3FIFO, SIEVE, Predictive, "s3fifo-2", "s3fifo-30"}

func newAdaptive(c int, seed int64) *adaptivePolicy {
	a := &adaptivePolicy{core: core{idx: newKeyIndex(), bit: resBit}, c: c}
	a.decay = math.Exp(-1 / math.Max(1000, longWindow*float64(c)))
	a.sdecay = math.Exp(-1 / math.Max(10000, slowWindow*float64(c)))
	for i, n := range expertNames {
		var p Policy
		switch n {
		case "s3fifo-2":
			p = newS3FIFOSmall(c, 2)
		case "s3fifo-30":
			p = newS3FIFOSmall(c, 30)
		default:
			p, _ = NewPolicy(n, c, seed+int64(i))
		}
		e := p.(slotPolicy)
		b := e.base()
		b.idx, b.bit = a.idx, 1<<i
		b.fslot = func(s int32) {
			if a.idx.held[s]&resBit != 0 {
				a.div[i]++
				a.q[i].push(s)
				a.idx.ref(s)
			}
		}
		a.experts = append(a.experts, e)
	}
	x := a.experts
	a.lirs, a.arc, a.lru, a.lfu = x[0].(*lirsPolicy), x[1].(*arcPolicy), x[2].(*lruPolicy), x[3].(*lfuPolicy)
	a.s3, a.sieve, a.pred = x[4].(*s3fifoPolicy), x[5].(*sievePolicy), x[6].(*predictivePolicy)
	a.s3s, a.s3l = x[7].(*s3fifoPolicy), x[8].(*s3fifoPolicy)
	n := len(a.experts)
	a.score = make([]float64, n)
	a.slow = make([]float64, n)
	a.w = make([]float64, n)
	a.q = make([]slotRing, n)
	a.div = make([]int, n)
	a.reweigh()
	return a
}

func (a *adaptivePolicy) Name() string { return Adaptive }
func (a *adaptivePolicy) Len() int     { return a.n }
func (a *adaptivePolicy) Cap() int     { return a.c }

// Leader is the expert the real cache follows now.
func (a *adaptivePolicy) Leader() string { return a.experts[a.leader].Name() }

func (a *adaptivePolicy) Access(k uint64) bool {
	a.clock++
	x := a.idx
	s := x.slot(k)
	x.ref(s) // pinned for the access (see accessKey)
	hit := x.held[s]&resBit != 0
	// Each expert in expertNames' order (the order matters to no one:
	// they share only the index, where each has its own bit).
	a.scoreOne(0, a.lirs.access(s), hit)
	a.scoreOne(1, a.arc.access(s), hit)
	a.scoreOne(2, a.lru.access(s), hit)
	a.scoreOne(3, a.lfu.access(s), hit)
	a.scoreOne(4, a.s3.access(s), hit)
	a.scoreOne(5, a.sieve.access(s), hit)
	a.scoreOne(6, a.pred.access(s), hit)
	a.scoreOne(7, a.s3s.access(s), hit)
	a.scoreOne(8, a.s3l.access(s), hit)
	if !hit {
		x.ref(s)
		x.held[s] |= resBit
		a.at = grow(a.at, s)
		a.at[s] = a.clock
		a.n++
		for a.n > a.c {
			a.evictOne()
		}
	}
	x.unref(s)
	if a.clock%64 == 0 {
		a.reweigh()
	}
	return hit
}

// scoreOne decays expert i's scores and charges it a miss.
func (a *adaptivePolicy) scoreOne(i int, got, hit bool) {
	a.score[i] *= a.decay
	a.slow[i] *= a.sdecay
	if !got {
		a.score[i]++
		a.slow[i]++
		if hit {
			a.div[i]-- // it holds k now, which the real cache held
		}
	}
}

// reweigh reconsiders the leader and sets the vote weights.
func (a *adaptivePolicy) reweigh() {
	to, gain := a.leader, 0.0
	for i := range a.experts {
		g := a.slow[a.leader] - a.slow[i] - switchPrice*float64(a.div[i]) - switchNoise*a.slow[a.leader]
		if i != a.leader && g > gain {
			to, gain = i, g
		}
	}
	if to != a.leader {
		a.leader = to
		a.Switches++
	}
	l := a.score[a.leader] + 1
	for i := range a.w {
		a.w[i] = voteOther * math.Exp(-voteKappa*math.Max(0, (a.score[i]+1)/l-1))
	}
	a.w[a.leader] = 1
}

// head is the oldest resident page expert i has evicted and not taken
// back, if any.
func (a *adaptivePolicy) head(i int) (int32, bool) {
	held := a.idx.held
	q := &a.q[i]
	for q.n > 0 {
		s := q.buf[q.head]
		if h := held[s]; h&resBit != 0 && h&(1<<i) == 0 {
			return s, true
		}
		q.pop()
		a.idx.unref(s)
	}
	return 0, false
}

func (a *adaptivePolicy) evictOne() {
	n := len(a.experts)
	var victim int32
	found := false
	least := math.Inf(1)
	lbit := uint16(1) << a.leader
	// The leader's candidate first, so it wins ties.
	for j := 0; j < n; j++ {
		i := (a.leader + j) % n
		s, ok := a.head(i)
		if !ok {
			continue
		}
		held := a.idx.held[s]
		// A page the leader holds weighs at least its 1, so it cannot
		// be under a lighter candidate found already: skip summing it.
		if least < 1 && held&lbit != 0 {
			continue
		}
		// The weights of the experts holding it, in expert order.
		h := 0.0
		for m := held &^ resBit; m != 0; m &= m - 1 {
			h += a.w[bits.TrailingZeros16(m)]
		}
		if h < least {
			victim, least, found = s, h, true
		}
	}
	if !found {
		// Cannot happen (no expert holds more than Cap pages), but stay
		// a cache of Cap pages regardless: drop the oldest.
		var at uint64 = math.MaxUint64
		for s, h := range a.idx.held {
			if h&resBit != 0 && a.at[s] < at {
				victim, at = int32(s), a.at[s]
			}
		}
	}
	a.n--
	held := a.idx.held[victim]
	for i := range a.experts {
		if held&(1<<i) == 0 {
			a.div[i]--
		}
	}
	a.evicted(victim)
	a.idx.unref(victim)
}

// slotRing is a FIFO of slots in a ring that doubles when full: a queue
// that allocates only while it grows (a slice popped at the front and
// appended at the back reallocates all along, and every reallocation
// stored a pointer behind a write barrier).
type slotRing struct {
	buf     []int32
	head, n int
}

func (r *slotRing) push(s int32) {
	if r.n == len(r.buf) {
		b := make([]int32, max(16, 2*len(r.buf)))
		for j := range r.n {
			b[j] = r.buf[(r.head+j)%len(r.buf)]
		}
		r.buf, r.head = b, 0
	}
	i := r.head + r.n
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	r.buf[i] = s
	r.n++
}

func (r *slotRing) pop() {
	if r.head++; r.head == len(r.buf) {
		r.head = 0
	}
	r.n--
}

// at is the j-th oldest entry.
func (r *slotRing) at(j int) int32 { return r.buf[(r.head+j)%len(r.buf)] }
