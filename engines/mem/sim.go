package mem

import (
	"bufio"
	"compress/gzip"
	"container/heap"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Replay runs a reference trace through p and returns its demand misses.
func Replay(p Policy, trace []uint64) (misses int) {
	for _, k := range trace {
		if !p.Access(k) {
			misses++
		}
	}
	return misses
}

// Belady returns the misses of Belady's MIN on trace with capacity c: on
// a miss with a full cache it evicts the page whose next reference is
// furthest away. It needs the future, so it is the floor the online
// policies are measured against, never a policy.
func Belady(trace []uint64, c int) (misses int) {
	next := make([]int, len(trace))
	seen := map[uint64]int{}
	for i := len(trace) - 1; i >= 0; i-- {
		if j, ok := seen[trace[i]]; ok {
			next[i] = j
		} else {
			next[i] = math.MaxInt
		}
		seen[trace[i]] = i
	}
	// Max-heap of (next use, key) with lazy deletion: an entry is live
	// only while it matches the page's current next use.
	cur := map[uint64]int{}
	h := &nextHeap{}
	for i, k := range trace {
		if _, ok := cur[k]; ok {
			cur[k] = next[i]
			heap.Push(h, nextUse{next[i], k})
			continue
		}
		misses++
		if len(cur) >= c {
			for {
				e := heap.Pop(h).(nextUse)
				if n, ok := cur[e.key]; ok && n == e.at {
					delete(cur, e.key)
					break
				}
			}
		}
		cur[k] = next[i]
		heap.Push(h, nextUse{next[i], k})
	}
	return misses
}

type nextUse struct {
	at  int
	key uint64
}
type nextHeap []nextUse

func (h nextHeap) Len() int           { return len(h) }
func (h nextHeap) Less(i, j int) bool { return h[i].at > h[j].at }
func (h nextHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nextHeap) Push(x any)        { *h = append(*h, x.(nextUse)) }
func (h *nextHeap) Pop() any          { o := *h; e := o[len(o)-1]; *h = o[:len(o)-1]; return e }

// ReadTrace reads a trace: one page or block number per line (decimal),
// blank lines and lines starting with '#' skipped; a name ending in .gz is
// gunzipped.
func ReadTrace(name string) ([]uint64, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(name, ".gz") {
		z, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		defer z.Close()
		r = z
	}
	return ParseTrace(r)
}

// ParseTrace parses the trace format of ReadTrace.
func ParseTrace(r io.Reader) ([]uint64, error) {
	var out []uint64
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		if i := strings.IndexAny(s, " \t,"); i >= 0 {
			s = s[:i]
		}
		k, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("trace line %d: %w", n, err)
		}
		out = append(out, k)
	}
	return out, sc.Err()
}

// ReplayPrefetch runs trace through p with the fabric's prefetcher in
// front: after each demand reference the predicted pages are loaded (as
// the page cache's prefetch worker would, here synchronously so the run
// is deterministic), at most limit pages per reference. It returns the
// demand misses and how many prefetched pages were used before eviction.
func ReplayPrefetch(p Policy, trace []uint64, limit int) (misses, issued, used int) {
	pf := NewPrefetcher(65536)
	ahead := map[uint64]bool{}
	p.OnEvict(func(k uint64) { delete(ahead, k) })
	for _, k := range trace {
		if p.Access(k) {
			if ahead[k] {
				used++
				delete(ahead, k)
			}
		} else {
			misses++
		}
		n := 0
		for _, r := range pf.Observe(int64(k), int64(k)) {
			for q := r.First; q <= r.Last && n < limit; q++ {
				if q < 0 || p.Contains(uint64(q)) {
					continue
				}
				p.Access(uint64(q))
				ahead[uint64(q)] = true
				issued++
				n++
			}
		}
	}
	return misses, issued, used
}
