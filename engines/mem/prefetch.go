package mem

// Prefetcher learns, from a region's demand requests, where the next
// request will fall: a stride (the same distance between request starts
// seen twice in a row: sequential, backward and strided scans) or, failing
// that, a learned successor (the request start that followed this one the
// last times it was seen: repeated irregular sequences such as an index
// walk). It proposes page ranges; the page cache queues them in a bounded
// queue and loads them ahead of demand.
type Prefetcher struct {
	lastFirst, lastDelta int64
	run                  int // requests in a row with lastDelta
	started              bool
	succ                 map[int64]succ
	maxSucc              int
	// Depth is how many predicted requests ahead are proposed at most.
	Depth int
}

type succ struct {
	next  int64
	count int
}

// NewPrefetcher remembers successors of at most maxSucc request starts.
func NewPrefetcher(maxSucc int) *Prefetcher {
	return &Prefetcher{succ: map[int64]succ{}, maxSucc: maxSucc, Depth: 4}
}

// PageRange is an inclusive range of page numbers.
type PageRange struct{ First, Last int64 }

// Observe records a demand request over pages [first, last] and returns
// the ranges predicted next, nearest first (nil when it has no basis).
func (p *Prefetcher) Observe(first, last int64) []PageRange {
	n := last - first
	var out []PageRange
	if p.started {
		d := first - p.lastFirst
		if d == p.lastDelta && d != 0 {
			p.run++
		} else {
			p.run = 0
		}
		p.lastDelta = d
		// Learn the successor of the previous request start.
		if s, ok := p.succ[p.lastFirst]; ok && s.next == first {
			s.count++
			p.succ[p.lastFirst] = s
		} else if ok || len(p.succ) < p.maxSucc {
			p.succ[p.lastFirst] = succ{next: first, count: 1}
		}
	}
	p.started = true
	p.lastFirst = first
	if p.run >= 1 {
		// A stride seen twice: go further ahead the longer it holds.
		depth := p.run
		if depth > p.Depth {
			depth = p.Depth
		}
		for k := int64(1); k <= int64(depth); k++ {
			f := first + k*p.lastDelta
			out = append(out, PageRange{f, f + n})
		}
		return out
	}
	if s, ok := p.succ[first]; ok && s.count >= 2 {
		out = append(out, PageRange{s.next, s.next + n})
	}
	return out
}

// Next is the range predicted for the next request, for `pattern`; ok is
// false when there is no prediction.
func (p *Prefetcher) Next(lastLen int64) (PageRange, bool) {
	if p.run >= 1 {
		f := p.lastFirst + p.lastDelta
		return PageRange{f, f + lastLen}, true
	}
	if s, ok := p.succ[p.lastFirst]; ok && s.count >= 2 {
		return PageRange{s.next, s.next + lastLen}, true
	}
	return PageRange{}, false
}
