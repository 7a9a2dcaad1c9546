package mem

// LIRS (Jiang and Zhang, SIGMETRICS 2002) ranks pages by inter-reference
// recency (IRR): how many other pages were referenced between a page's
// last two references. Pages of low IRR (LIR) hold 99 % of the cache; the
// other 1 % holds high-IRR (HIR) pages in a FIFO, Q, which is where
// evictions come from. The recency stack S remembers recently referenced
// pages, resident or not, and always has a LIR page at its bottom: a page
// referenced again while it is still in S has an IRR below the bottom LIR
// page's recency, so it becomes LIR and that page HIR. Its strength is
// keeping a large set of pages that come back at long but regular
// intervals, which recency and frequency policies both lose to bursts of
// new pages (CloudPhysics at 20 % of its blocks: 0.519 misses per
// reference against ARC's 0.568).
//
// Pages are slots of the key index; each has two places (S and Q), kept
// in two link slices, and its state in a flag byte. Residency is the
// policy's bit in the index (held), as for every policy.

const (
	lirsKnown = 1 << iota // in S or Q (the paper's entry exists)
	lirsLIR
	lirsInS
	lirsInQ
)

type lirsPolicy struct {
	core
	c, lirCap          int
	sl, ql             []link  // by slot: places in S and Q
	fl                 []uint8 // by slot: lirs* flags
	s, q               ilist   // fronts: S's top, Q's newest
	lirN, resN, nonRes int
}

func newLIRS(c int) *lirsPolicy {
	return &lirsPolicy{core: newCore(), c: c, lirCap: c - max(1, c/100), s: newIList(), q: newIList()}
}

func (p *lirsPolicy) Name() string         { return LIRS }
func (p *lirsPolicy) Len() int             { return p.resN }
func (p *lirsPolicy) Cap() int             { return p.c }
func (p *lirsPolicy) Access(k uint64) bool { return accessKey(p, k) }

// toTopS puts n on S's top, from wherever it was on S.
func (p *lirsPolicy) toTopS(n int32) {
	if p.fl[n]&lirsInS != 0 {
		p.s.remove(p.sl, n)
	}
	p.fl[n] |= lirsInS
	p.s.pushFront(p.sl, n)
}

func (p *lirsPolicy) offS(n int32) {
	p.s.remove(p.sl, n)
	p.fl[n] &^= lirsInS
}

// forgetSlot drops what LIRS knows of a non-resident page.
func (p *lirsPolicy) forgetSlot(n int32) {
	p.fl[n] = 0
	p.idx.unref(n)
}

// ---- the algorithm ----

// prune pops HIR pages off S's bottom until a LIR page is there; the
// non-resident ones are forgotten.
func (p *lirsPolicy) prune() {
	for n := p.s.back; n >= 0 && p.fl[n]&lirsLIR == 0; n = p.s.back {
		p.offS(n)
		if !p.holds(n) {
			p.nonRes--
			p.forgetSlot(n)
		}
	}
}

// demote makes S's bottom LIR page a resident HIR page in Q.
func (p *lirsPolicy) demote() {
	n := p.s.back
	if n < 0 {
		return
	}
	p.offS(n)
	p.fl[n] &^= lirsLIR
	p.lirN--
	p.fl[n] |= lirsInQ
	p.q.pushFront(p.ql, n)
	p.prune()
}

func (p *lirsPolicy) access(e int32) bool {
	if p.holds(e) {
		f := p.fl[e]
		switch {
		case f&lirsLIR != 0:
			bottom := p.s.back == e
			p.toTopS(e)
			if bottom {
				p.prune()
			}
		case f&lirsInS != 0: // a resident HIR page with a low IRR: it becomes LIR
			p.toTopS(e)
			p.q.remove(p.ql, e)
			p.fl[e] = p.fl[e]&^lirsInQ | lirsLIR
			p.lirN++
			p.demote()
		default:
			p.fl[e] |= lirsInS | lirsInQ
			p.s.pushFront(p.sl, e)
			if f&lirsInQ != 0 {
				p.q.remove(p.ql, e)
			}
			p.q.pushFront(p.ql, e)
		}
		return true
	}
	if p.resN >= p.c {
		p.evict()
	}
	p.sl, p.ql, p.fl = grow(p.sl, e), grow(p.ql, e), grow(p.fl, e)
	if p.fl[e]&lirsKnown != 0 {
		p.nonRes-- // a non-resident HIR page still in S
	} else {
		p.fl[e] = lirsKnown
		p.idx.ref(e)
	}
	p.admit(e)
	p.resN++
	switch {
	case p.lirN < p.lirCap: // the LIR set is not full (at the start)
		p.fl[e] |= lirsLIR
		p.lirN++
		p.toTopS(e)
	case p.fl[e]&lirsInS != 0:
		p.fl[e] |= lirsLIR
		p.lirN++
		p.toTopS(e)
		p.demote()
	default:
		p.fl[e] |= lirsInS | lirsInQ
		p.s.pushFront(p.sl, e)
		p.q.pushFront(p.ql, e)
	}
	p.forget()
	return false
}

// evict drops Q's oldest page (S's bottom LIR page first goes to Q when Q
// is empty, as in a cache too small for a HIR part); one still in S stays
// there as a non-resident HIR page.
func (p *lirsPolicy) evict() {
	n := p.q.back
	if n < 0 {
		p.demote()
		n = p.q.back
	}
	p.q.remove(p.ql, n)
	p.fl[n] &^= lirsInQ
	p.resN--
	if p.fl[n]&lirsInS != 0 {
		p.nonRes++
		p.evicted(n)
	} else {
		p.evicted(n)
		p.forgetSlot(n)
	}
}

// forget bounds the non-resident pages remembered in S to twice the cache
// (the paper leaves S unbounded), the oldest first.
func (p *lirsPolicy) forget() {
	for n := p.s.back; n >= 0 && p.nonRes > 2*p.c; {
		up := p.sl[n].prev
		if !p.holds(n) {
			p.offS(n)
			p.forgetSlot(n)
			p.nonRes--
		}
		n = up
	}
}
