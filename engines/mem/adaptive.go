package mem

import (
	"math"
)

// adaptivePolicy learns online which policy serves the current phase of
// the reference stream, in the spirit of ARC, LeCaR and Cacheus: it runs
// every expert (LRU, LFU, ARC, S3-FIFO and variants, SIEVE, Predictive)
// as a shadow cache of the same capacity on the same stream, scores each
// by its exponentially decayed misses, and lets them vote on what the
// real cache evicts.
//
// Each expert's vote weighs exp(-kappa·(score/best score - 1)), so the
// leader counts 1 and an expert 10 % behind it little. On a miss the real
// cache evicts, among the pages that some expert has evicted while the
// real cache held them (the oldest such page of each expert), the one
// held by the least total weight of experts; ties go to the leader's. So
// while one expert leads clearly the real cache holds exactly what it
// holds; when two are close the real cache keeps the pages both keep and
// gives up first the pages that only the weaker ones keep; and after a
// phase change it already holds much of what the new leader holds.
type adaptivePolicy struct {
	hook
	c       int
	experts []Policy
	score   []float64 // decayed misses
	w       []float64 // vote weights
	decay   float64
	leader  int
	clock   uint64
	// resident pages of the real cache, with their insertion clock.
	res map[uint64]uint64
	// q[i] holds, oldest first, resident pages expert i has evicted:
	// every resident page expert i does not hold is on it (a page enters
	// the real cache only when referenced, when every expert holds it).
	// Stale entries are skipped when they reach the front.
	q        [][]uint64
	Switches int
}

var tuneWin, tuneMin, tuneKappa = 4.0, 1000.0, 30.0

// expertNames are Adaptive's experts, in tie-breaking order.
var expertNames = []string{ARC, LRU, LFU, S3FIFO, SIEVE, Predictive, "s3fifo-2", "s3fifo-30"}

var expertOrders = map[string][]string{
	"base":    {ARC, LRU, LFU, S3FIFO, SIEVE, Predictive, "s3fifo-2", "s3fifo-30"},
	"s3first": {S3FIFO, ARC, LRU, LFU, SIEVE, Predictive, "s3fifo-2", "s3fifo-30"},
	"plus5":   {ARC, LRU, LFU, S3FIFO, SIEVE, Predictive, "s3fifo-2", "s3fifo-30", "s3fifo-5"},
	"s2first": {"s3fifo-2", ARC, LRU, LFU, S3FIFO, SIEVE, Predictive, "s3fifo-30"},
}

func newAdaptive(c int, seed int64) *adaptivePolicy {
	a := &adaptivePolicy{c: c, res: map[uint64]uint64{}}
	// The window is a few cache-fulls of references: long enough to
	// measure a policy on this working set, short enough to see a phase.
	w := tuneWin * float64(c)
	if w < tuneMin {
		w = tuneMin
	}
	a.decay = math.Exp(-1 / w)
	for i, n := range expertNames {
		var p Policy
		switch n {
		case "s3fifo-2":
			p = newS3FIFOSmall(c, 2)
		case "s3fifo-5":
			p = newS3FIFOSmall(c, 5)
		case "s3fifo-30":
			p = newS3FIFOSmall(c, 30)
		default:
			p, _ = NewPolicy(n, c, seed+int64(i))
		}
		i := i
		p.OnEvict(func(k uint64) {
			if _, ok := a.res[k]; ok {
				a.q[i] = append(a.q[i], k)
			}
		})
		a.experts = append(a.experts, p)
	}
	a.score = make([]float64, len(a.experts))
	a.w = make([]float64, len(a.experts))
	a.q = make([][]uint64, len(a.experts))
	a.reweigh()
	return a
}

func (a *adaptivePolicy) Name() string { return Adaptive }
func (a *adaptivePolicy) Len() int     { return len(a.res) }
func (a *adaptivePolicy) Cap() int     { return a.c }
func (a *adaptivePolicy) Contains(k uint64) bool {
	_, ok := a.res[k]
	return ok
}

// Leader is the expert with the most vote weight now.
func (a *adaptivePolicy) Leader() string { return a.experts[a.leader].Name() }

func (a *adaptivePolicy) Access(k uint64) bool {
	a.clock++
	_, hit := a.res[k]
	for i, p := range a.experts {
		a.score[i] *= a.decay
		if !p.Access(k) {
			a.score[i]++
		}
	}
	if !hit {
		a.res[k] = a.clock
		for len(a.res) > a.c {
			a.evictOne()
		}
	}
	if a.clock%64 == 0 {
		a.reweigh()
	}
	return hit
}

func (a *adaptivePolicy) reweigh() {
	best := a.leader
	for i := range a.experts {
		if a.score[i] < a.score[best] {
			best = i
		}
	}
	if best != a.leader {
		a.leader = best
		a.Switches++
	}
	min := a.score[best] + 1
	for i := range a.w {
		a.w[i] = math.Exp(-tuneKappa * ((a.score[i]+1)/min - 1))
	}
}

func (a *adaptivePolicy) head(i int) (uint64, bool) {
	for len(a.q[i]) > 0 {
		k := a.q[i][0]
		if _, ok := a.res[k]; ok && !a.experts[i].Contains(k) {
			return k, true
		}
		a.q[i] = a.q[i][1:]
	}
	return 0, false
}

func (a *adaptivePolicy) evictOne() {
	n := len(a.experts)
	var victim uint64
	found := false
	bestH := math.Inf(1)
	for j := 0; j < n; j++ {
		i := (a.leader + j) % n
		k, ok := a.head(i)
		if !ok {
			continue
		}
		h := 0.0
		for e, p := range a.experts {
			if p.Contains(k) {
				h += a.w[e]
			}
		}
		if h < bestH {
			victim, bestH, found = k, h, true
		}
	}
	if !found {
		// Cannot happen (each expert holds at most Cap pages), but stay
		// a cache of Cap pages regardless: drop the oldest.
		var at uint64 = math.MaxUint64
		for k, t := range a.res {
			if t < at {
				victim, at = k, t
			}
		}
	}
	delete(a.res, victim)
	a.evicted(victim)
}
