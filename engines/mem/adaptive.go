package mem

import (
	"math"
	"sort"
)

// adaptivePolicy learns online which policy serves the current phase of
// the reference stream, in the spirit of ARC, LeCaR and Cacheus: it runs
// every expert (LRU, LFU, ARC, S3-FIFO, SIEVE and Predictive) as a shadow
// cache of the same capacity on the same stream, scores each by its
// exponentially decayed misses, and makes the real cache follow the
// current leader.
//
// Following works without copying: on a miss the real cache evicts a
// resident page that the leader no longer holds (one always exists, since
// the leader holds the new page and only Cap pages). So while one expert
// leads, the real cache holds exactly what it holds and misses exactly
// when it misses; after a switch it converges to the new leader's set one
// miss at a time. The leader changes only when another expert's decayed
// misses are below the leader's by a margin, so noise does not thrash it.
type adaptivePolicy struct {
	hook
	c       int
	experts []Policy
	score   []float64 // decayed misses
	decay   float64
	leader  int
	clock   uint64
	// resident pages of the real cache, with their insertion clock so a
	// rebuild after a switch is deterministic.
	res map[uint64]uint64
	// out is the queue of resident pages the leader has evicted, oldest
	// first; stale entries are skipped when popped.
	out      []uint64
	Switches int
	margin   float64
}

// expertNames are Adaptive's experts, in tie-breaking order.
var expertNames = []string{ARC, LRU, LFU, S3FIFO, SIEVE, Predictive, "s3fifo-2", "s3fifo-30"}

func newAdaptive(c int, seed int64) *adaptivePolicy {
	a := &adaptivePolicy{c: c, res: map[uint64]uint64{}, margin: 0.97}
	// The window is a few cache-fulls of references: long enough to
	// measure a policy on this working set, short enough to see a phase.
	w := float64(4 * c)
	if w < 1000 {
		w = 1000
	}
	a.decay = math.Exp(-1 / w)
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
		i := i
		p.OnEvict(func(k uint64) {
			if i == a.leader {
				if _, ok := a.res[k]; ok {
					a.out = append(a.out, k)
				}
			}
		})
		a.experts = append(a.experts, p)
	}
	a.score = make([]float64, len(a.experts))
	return a
}

func (a *adaptivePolicy) Name() string { return Adaptive }
func (a *adaptivePolicy) Len() int     { return len(a.res) }
func (a *adaptivePolicy) Cap() int     { return a.c }
func (a *adaptivePolicy) Contains(k uint64) bool {
	_, ok := a.res[k]
	return ok
}

// Leader is the expert the real cache follows now.
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
	// Reconsider the leader every so often, not on each reference.
	if a.clock%64 == 0 {
		best := a.leader
		for i := range a.experts {
			if a.score[i] < a.score[best] {
				best = i
			}
		}
		if best != a.leader && a.score[best] < a.margin*a.score[a.leader] {
			a.switchTo(best)
		}
	}
	return hit
}

func (a *adaptivePolicy) evictOne() {
	lead := a.experts[a.leader]
	for len(a.out) > 0 {
		k := a.out[0]
		a.out = a.out[1:]
		if _, ok := a.res[k]; ok && !lead.Contains(k) {
			delete(a.res, k)
			a.evicted(k)
			return
		}
	}
	// The queue ran dry (only right after a switch rebuilt it short):
	// take the oldest resident page the leader does not hold.
	var victim uint64
	var at uint64 = math.MaxUint64
	for k, t := range a.res {
		if !lead.Contains(k) && t < at {
			victim, at = k, t
		}
	}
	if at == math.MaxUint64 {
		for k, t := range a.res {
			if t < at {
				victim, at = k, t
			}
		}
	}
	delete(a.res, victim)
	a.evicted(victim)
}

func (a *adaptivePolicy) switchTo(i int) {
	a.leader = i
	a.Switches++
	lead := a.experts[i]
	type kt struct{ k, t uint64 }
	var q []kt
	for k, t := range a.res {
		if !lead.Contains(k) {
			q = append(q, kt{k, t})
		}
	}
	sort.Slice(q, func(x, y int) bool { return q[x].t < q[y].t })
	a.out = a.out[:0]
	for _, e := range q {
		a.out = append(a.out, e.k)
	}
}
