package mem

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand"
	"testing"
	"time"
)

var allPolicies = []string{LRU, LFU, ARC, S3FIFO, SIEVE, LIRS, Predictive, Adaptive}

// synth is a reference stream with phases: a looping scan larger than
// the cache (LRU's worst case, where frequency or scan resistance wins),
// then a skewed hot set (recency and frequency both work), then a shifting
// hot set (where LFU's old counts hurt and recency wins).
func synth(seed int64) []uint64 {
	r := rand.New(rand.NewSource(seed))
	var t []uint64
	for rep := 0; rep < 20; rep++ {
		for k := 0; k < 150; k++ {
			t = append(t, uint64(k))
		}
	}
	for i := 0; i < 20000; i++ {
		// Zipf-like: small keys much more often.
		k := uint64(r.ExpFloat64() * 30)
		t = append(t, 1000+k)
	}
	for phase := 0; phase < 10; phase++ {
		for i := 0; i < 3000; i++ {
			t = append(t, uint64(5000+phase*100+r.Intn(60)))
		}
	}
	return t
}

func TestPoliciesAgainstBelady(t *testing.T) {
	trace := synth(7)
	for _, size := range []int{16, 64, 128} {
		floor := Belady(trace, size)
		for _, name := range allPolicies {
			p, err := NewPolicy(name, size, 1)
			if err != nil {
				t.Fatal(err)
			}
			m := Replay(p, trace)
			if m < floor {
				t.Errorf("%s size %d: %d misses below Belady's %d", name, size, m, floor)
			}
			if p.Len() > size {
				t.Errorf("%s holds %d pages over capacity %d", name, p.Len(), size)
			}
			t.Logf("size=%d %s=%d belady=%d", size, name, m, floor)
		}
	}
}

func TestLRUKnown(t *testing.T) {
	p, _ := NewPolicy(LRU, 2, 1)
	var ev []uint64
	p.OnEvict(func(k uint64) { ev = append(ev, k) })
	hits := ""
	for _, k := range []uint64{1, 2, 1, 3, 2, 1} {
		if p.Access(k) {
			hits += "h"
		} else {
			hits += "m"
		}
	}
	// 1m 2m 1h 3m(evict 2) 2m(evict 1) 1m(evict 3)
	if hits != "mmhmmm" || len(ev) != 3 || ev[0] != 2 || ev[1] != 1 || ev[2] != 3 {
		t.Errorf("hits %s evictions %v", hits, ev)
	}
	if Belady([]uint64{1, 2, 1, 3, 2, 1}, 2) != 4 {
		t.Errorf("belady: %d", Belady([]uint64{1, 2, 1, 3, 2, 1}, 2))
	}
}

// Every eviction is reported once, and Contains agrees with the hook.
func TestEvictionHooks(t *testing.T) {
	trace := synth(3)
	for _, name := range allPolicies {
		p, _ := NewPolicy(name, 50, 1)
		res := map[uint64]bool{}
		p.OnEvict(func(k uint64) {
			if !res[k] {
				t.Fatalf("%s evicted %d which was not resident", name, k)
			}
			delete(res, k)
		})
		for _, k := range trace {
			p.Access(k)
			res[k] = true
			if !p.Contains(k) {
				t.Fatalf("%s: %d not resident right after access", name, k)
			}
		}
		if len(res) != p.Len() {
			t.Errorf("%s: hook says %d resident, policy %d", name, len(res), p.Len())
		}
	}
}

func TestDeterministic(t *testing.T) {
	trace := synth(11)
	for _, name := range []string{Predictive, Adaptive} {
		a, _ := NewPolicy(name, 64, 5)
		b, _ := NewPolicy(name, 64, 5)
		if x, y := Replay(a, trace), Replay(b, trace); x != y {
			t.Errorf("%s: %d vs %d misses with the same seed", name, x, y)
		}
	}
}

// Adaptive follows the best expert: on the phased stream it is within a
// small margin of the best classic policy at each size, and it does
// switch leaders.
func TestAdaptiveTracksBest(t *testing.T) {
	trace := synth(7)
	for _, size := range []int{32, 100} {
		best := -1
		for _, name := range []string{LRU, LFU, ARC, S3FIFO, SIEVE} {
			p, _ := NewPolicy(name, size, 1)
			if m := Replay(p, trace); best < 0 || m < best {
				best = m
			}
		}
		p, _ := NewPolicy(Adaptive, size, 1)
		m := Replay(p, trace)
		t.Logf("size=%d adaptive=%d best_classic=%d switches=%d leader=%s", size, m, best, p.(*adaptivePolicy).Switches, p.(*adaptivePolicy).Leader())
		if float64(m) > 1.05*float64(best) {
			t.Errorf("size %d: adaptive %d misses, best classic %d", size, m, best)
		}
	}
}

// The predictive model learns: on a stream where every page of a loop
// comes back after a fixed gap longer than LRU can hold, mixed with
// one-off noise, it learns that looping pages are reused and noise is not,
// and beats LRU by a wide margin (LRU misses on every reference here).
func TestPredictiveLearns(t *testing.T) {
	var trace []uint64
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 40000; i++ {
		if i%2 == 0 {
			trace = append(trace, uint64(i%200)) // a loop of 100 pages
		} else {
			trace = append(trace, uint64(1000000+r.Intn(1000000))) // one-off noise
		}
	}
	lru, _ := NewPolicy(LRU, 120, 1)
	pr, _ := NewPolicy(Predictive, 120, 1)
	ml, mp := Replay(lru, trace), Replay(pr, trace)
	pp := pr.(*predictivePolicy)
	t.Logf("lru=%d predictive=%d trained=%d uncensored=%d", ml, mp, pp.Trained, pp.Uncensored)
	if pp.Trained == 0 {
		t.Errorf("the model was never trained")
	}
	if float64(mp) > 0.75*float64(ml) {
		t.Errorf("predictive %d misses, lru %d: want at most 75 %% of LRU's", mp, ml)
	}
}

// A frequently reused hot set survives a long one-pass scan that flushes
// LRU: the model learns that pages seen once are not reused.
func TestPredictiveScanResistant(t *testing.T) {
	var trace []uint64
	r := rand.New(rand.NewSource(2))
	scan := uint64(1 << 20)
	for i := 0; i < 60000; i++ {
		if i%3 == 0 {
			trace = append(trace, uint64(r.Intn(80))) // hot set of 80 pages
		} else {
			trace = append(trace, scan) // never reused
			scan++
		}
	}
	lru, _ := NewPolicy(LRU, 100, 1)
	pr, _ := NewPolicy(Predictive, 100, 1)
	ml, mp := Replay(lru, trace), Replay(pr, trace)
	t.Logf("lru=%d predictive=%d", ml, mp)
	if float64(mp) > 0.9*float64(ml) {
		t.Errorf("predictive %d misses, lru %d: want at most 90 %% of LRU's", mp, ml)
	}
}

func TestPrefetcherStride(t *testing.T) {
	p := NewPrefetcher(100)
	var got []PageRange
	for i := int64(0); i < 4; i++ {
		got = p.Observe(i*10, i*10+1)
	}
	if len(got) == 0 || got[0] != (PageRange{40, 41}) {
		t.Errorf("stride 10: %v", got)
	}
	// A repeated irregular sequence is learned as successors.
	q := NewPrefetcher(100)
	seq := []int64{5, 90, 17, 44, 3}
	var last []PageRange
	for rep := 0; rep < 3; rep++ {
		for _, s := range seq {
			last = q.Observe(s, s)
		}
	}
	if len(last) != 1 || last[0].First != 5 {
		t.Errorf("successor of 3: %v", last)
	}
}

func TestBadPolicy(t *testing.T) {
	if _, err := NewPolicy("mru", 10, 1); err == nil {
		t.Error("unknown policy accepted")
	}
	if _, err := NewPolicy(LRU, 0, 1); err == nil {
		t.Error("capacity 0 accepted")
	}
}

func TestStreamLocality(t *testing.T) {
	seq := NewStreamAnalyzer(PageSize)
	for i := int64(0); i < 5000; i++ {
		seq.Access(i)
	}
	tmp := NewStreamAnalyzer(PageSize)
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 5000; i++ {
		tmp.Access(int64(r.Intn(50) * 10)) // a small hot set, never adjacent
	}
	rnd := NewStreamAnalyzer(PageSize)
	for i := 0; i < 5000; i++ {
		rnd.Access(int64(r.Intn(1 << 30)))
	}
	for _, c := range []struct {
		a    *StreamAnalyzer
		want string
	}{{seq, Spatial}, {tmp, Temporal}, {rnd, Random}} {
		if got := c.a.Locality(); got != c.want {
			sp, te := c.a.Fractions()
			t.Errorf("locality %s, want %s (spatial %.2f temporal %.2f)", got, c.want, sp, te)
		}
	}
	// Working set per period and hot ranges.
	a := NewStreamAnalyzer(PageSize)
	for i := int64(100); i < 110; i++ {
		a.Access(i)
		a.Access(i)
	}
	a.Tick(time.Unix(1, 0))
	if a.WSS() != 10*PageSize {
		t.Errorf("wss %d", a.WSS())
	}
	if h := a.Ranges(0.5); len(h) != 1 || h[0].First != 100 || h[0].Last != 109 {
		t.Errorf("hot ranges %v", h)
	}
}

// LIRS on a loop a little larger than the cache: LRU misses on every
// reference, while LIRS keeps its LIR set (99 % of the cache) and misses
// only on the rest of the loop, as the paper shows for looping patterns.
func TestLIRSLoop(t *testing.T) {
	const c, n = 100, 110
	var trace []uint64
	for i := 0; i < 50*n; i++ {
		trace = append(trace, uint64(i%n))
	}
	l, lru := newLIRS(c), newLRU(c)
	Replay(l, trace[:10*n])
	Replay(lru, trace[:10*n])
	ml, mu := Replay(l, trace[10*n:]), Replay(lru, trace[10*n:])
	perLoop := float64(ml) / 40
	t.Logf("misses per loop of %d: lirs %.1f, lru %.1f", n, perLoop, float64(mu)/40)
	if mu != 40*n {
		t.Fatalf("lru missed %d, want every one of %d", mu, 40*n)
	}
	// The LIR set is c-1 pages; the other n-(c-1) miss each loop.
	if want := float64(n - (c - 1)); perLoop > want {
		t.Errorf("lirs misses %.1f per loop, want at most %v", perLoop, want)
	}
}

// S3-FIFO's promotion threshold, by hand. Capacity 10 (a small FIFO of
// 1): page 1 is hit once, pages 2..10 fill the cache, 11 forces an
// eviction from the small FIFO's tail, page 1. libCacheSim's default
// (two hits) sends it to the ghost queue, so the next 1 misses (and goes
// straight to main): 12 misses. The one-hit variant moves it to main and
// evicts 2 instead, so the next 1 hits: 11 misses.
func TestS3FIFOPromotionThreshold(t *testing.T) {
	refs := []uint64{1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1}
	for name, want := range map[string]int{S3FIFO: 12, S3FIFO1: 11} {
		p, err := NewPolicy(name, 10, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := Replay(p, refs); got != want {
			t.Errorf("%s: %d misses, by hand %d", name, got, want)
		}
		if p.Name() != name {
			t.Errorf("name %q, want %q", p.Name(), name)
		}
	}
}

// The constant-time LFU evicts what the definition says: the least
// count, then the least recent; checked against a brute-force search on
// random streams.
func TestLFUMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for _, c := range []int{1, 3, 16} {
		p := newLFU(c)
		cnt, last := map[uint64]int{}, map[uint64]int{}
		for i := 0; i < 20000; i++ {
			k := uint64(r.ExpFloat64() * 12)
			_, want := cnt[k]
			if got := p.Access(k); got != want {
				t.Fatalf("c=%d ref %d key %d: hit %v, want %v", c, i, k, got, want)
			}
			if !want && len(cnt) >= c {
				var v uint64
				first := true
				for q := range cnt {
					if first || cnt[q] < cnt[v] || (cnt[q] == cnt[v] && last[q] < last[v]) {
						v, first = q, false
					}
				}
				delete(cnt, v)
				delete(last, v)
			}
			cnt[k]++
			last[k] = i
		}
	}
}

// Predictive's own copy of math/rand's generator gives math/rand's
// values: Intn over sizes that take each of its paths (powers of two,
// the rejection bound, sizes changing between calls), Float64 between.
func TestLFGMatchesMathRand(t *testing.T) {
	for _, seed := range []int64{0, 1, 5, -3, 1 << 40} {
		r := rand.New(rand.NewSource(seed))
		g := newLFG(seed)
		sizes := []int{1, 2, 3, 7, 64, 100, 1000, 1<<30 + 1, 1<<31 - 1, 12345}
		batch := make([]int32, 64)
		for i := 0; i < 20000; i++ {
			n := sizes[i%len(sizes)]
			switch i % 3 {
			case 0:
				if a, b := r.Intn(n), g.intn(n); a != b {
					t.Fatalf("seed %d draw %d: Intn(%d) %d, lfg %d", seed, i, n, a, b)
				}
			case 1:
				if a, b := r.Float64(), g.float64(); a != b {
					t.Fatalf("seed %d draw %d: Float64 %v, lfg %v", seed, i, a, b)
				}
			default:
				k := 1 + i%64
				g.intns(batch[:k], n)
				for j := range k {
					if a := r.Intn(n); a != int(batch[j]) {
						t.Fatalf("seed %d draw %d.%d: Intn(%d) %d, lfg %d", seed, i, j, n, a, batch[j])
					}
				}
			}
		}
	}
}

// Predictive's fast paths compute what the rule they replace computes:
// the age bin (table, then binary search) against binSlow at every
// bin's edges and beyond, and log2Level against int(math.Log2) capped,
// around every power of two it can see and between.
func TestPredictiveFastPathsMatchRule(t *testing.T) {
	p := newPredictive(1, 0)
	check := func(age int64) {
		if age < 0 {
			return
		}
		if a, b := p.bin(age), p.binSlow(age); a != b {
			t.Fatalf("bin(%d) = %d, the rule says %d", age, a, b)
		}
	}
	for b := 0; b <= predBins; b++ {
		for d := int64(-3); d <= 3; d++ {
			check(int64(p.start[b]) + d)
		}
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 200000; i++ {
		check(r.Int63n(1 << 28))
	}
	for hi := 0; hi <= 6; hi++ {
		want := func(x float64) int { return min(int(math.Log2(x)), hi) }
		for k := 0; k <= 10; k++ {
			c := math.Ldexp(1, k)
			x := c
			for j := 0; j < 2000; j++ {
				x = math.Nextafter(x, 0)
			}
			for j := 0; j < 4000; j++ {
				if a, b := log2Level(x, hi), want(x); a != b && x >= 1 {
					t.Fatalf("log2Level(%v, %d) = %d, int(math.Log2) %d", x, hi, a, b)
				}
				x = math.Nextafter(x, math.Inf(1))
			}
		}
		for i := 0; i < 100000; i++ {
			x := 1 + r.Float64()*r.Float64()*100
			if a, b := log2Level(x, hi), want(x); a != b {
				t.Fatalf("log2Level(%v, %d) = %d, int(math.Log2) %d", x, hi, a, b)
			}
		}
	}
}

// The key index's table agrees with a map through inserts and deletes
// (by backward shift) in every pattern of collision a small table sees.
func TestSlotTable(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for _, span := range []int{8, 40, 1000} {
		tb := slotTable{seed: r.Uint64()}
		ref := map[uint64]int32{}
		for i := 0; i < 50000; i++ {
			k := uint64(r.Intn(span)) * 4096
			if s, ok := ref[k]; ok {
				if got, ok := tb.get(k); !ok || got != s {
					t.Fatalf("span %d op %d: get(%d) = %d %v, want %d", span, i, k, got, ok, s)
				}
				if r.Intn(2) == 0 {
					tb.del(k)
					delete(ref, k)
				}
			} else {
				if _, ok := tb.get(k); ok {
					t.Fatalf("span %d op %d: %d found after its delete", span, i, k)
				}
				ref[k] = int32(i)
				tb.put(k, int32(i))
			}
			if tb.n != len(ref) {
				t.Fatalf("span %d: %d entries, want %d", span, tb.n, len(ref))
			}
		}
		for k, s := range ref {
			if got, ok := tb.get(k); !ok || got != s {
				t.Fatalf("span %d: get(%d) = %d %v at the end, want %d", span, k, got, ok, s)
			}
		}
	}
}

// TestPolicyFingerprints holds every policy to the exact hits and
// evictions, in order, of the map-based code the key index replaced
// (main at 6c3c846, before issue 15's speed-up): an FNV-1a hash over each
// reference's hit or miss and each evicted key, on the synthetic streams
// and the recorded traces at four sizes. A change of data structure must
// leave these alone; a change of policy changes them on purpose, and the
// table with it.
func TestPolicyFingerprints(t *testing.T) {
	trs := map[string][]uint64{"synth7": synth(7), "phased3": phased(3, 64)}
	for _, tn := range []string{"sqlite-mixed", "sqlite-oltp", "sqlite-scan"} {
		tr, err := ReadTrace("../../testdata/mem/" + tn + ".trace")
		if err != nil {
			t.Fatal(err)
		}
		trs[tn] = tr
	}
	for key, want := range policyFingerprints {
		var tn, name string
		var size int
		fmt.Sscanf(key, "%s %d %s", &tn, &size, &name)
		p, err := NewPolicy(name, size, 1)
		if err != nil {
			t.Fatal(err)
		}
		h := fnv.New64a()
		var b [9]byte
		p.OnEvict(func(k uint64) {
			b[0] = 'e'
			binary.LittleEndian.PutUint64(b[1:], k)
			h.Write(b[:])
		})
		for _, k := range trs[tn] {
			if p.Access(k) {
				h.Write([]byte{'h'})
			} else {
				h.Write([]byte{'m'})
			}
		}
		if got := h.Sum64(); got != want {
			t.Errorf("%s: fingerprint %016x, want %016x", key, got, want)
		}
	}
}

var policyFingerprints = map[string]uint64{
	"synth7 1 s3fifo-1hit":          0x1479861878f2cfa8,
	"synth7 1 lru":                  0x1479861878f2cfa8,
	"synth7 1 lfu":                  0x1479861878f2cfa8,
	"synth7 1 arc":                  0x1479861878f2cfa8,
	"synth7 1 s3fifo":               0x1479861878f2cfa8,
	"synth7 1 sieve":                0x1479861878f2cfa8,
	"synth7 1 lirs":                 0xb0835f8a0c1f9397,
	"synth7 1 predictive":           0x1479861878f2cfa8,
	"synth7 1 adaptive":             0x1479861878f2cfa8,
	"synth7 8 s3fifo-1hit":          0xa624d0a1fbd20c10,
	"synth7 8 lru":                  0xf0c8c91a1a03fcf0,
	"synth7 8 lfu":                  0x529eaca0e626cf83,
	"synth7 8 arc":                  0xb7073f1f35738467,
	"synth7 8 s3fifo":               0x3be34f0c16e4cc2d,
	"synth7 8 sieve":                0x6a0eb326efcd645f,
	"synth7 8 lirs":                 0x10619ff8ce7e7fdf,
	"synth7 8 predictive":           0xdfa4a05a2a91a3a6,
	"synth7 8 adaptive":             0x1a09b0ec5062bff0,
	"synth7 100 s3fifo-1hit":        0xa611b97404bb1d43,
	"synth7 100 lru":                0x63a3c66bf669b3eb,
	"synth7 100 lfu":                0x5a355aa575797034,
	"synth7 100 arc":                0x82fc786b0272374b,
	"synth7 100 s3fifo":             0xd3b862b0afafed20,
	"synth7 100 sieve":              0x850e9c7a276abedf,
	"synth7 100 lirs":               0x755f96bd7aa61b81,
	"synth7 100 predictive":         0x672784efbd383d74,
	"synth7 100 adaptive":           0xaff04c3e9ae9a5bb,
	"synth7 1000 s3fifo-1hit":       0x9832b77653bdce50,
	"synth7 1000 lru":               0x9832b77653bdce50,
	"synth7 1000 lfu":               0x9832b77653bdce50,
	"synth7 1000 arc":               0x9832b77653bdce50,
	"synth7 1000 s3fifo":            0x9832b77653bdce50,
	"synth7 1000 sieve":             0x9832b77653bdce50,
	"synth7 1000 lirs":              0x9832b77653bdce50,
	"synth7 1000 predictive":        0x9832b77653bdce50,
	"synth7 1000 adaptive":          0x9832b77653bdce50,
	"phased3 1 s3fifo-1hit":         0x965c16a21dffe4b9,
	"phased3 1 lru":                 0x965c16a21dffe4b9,
	"phased3 1 lfu":                 0x965c16a21dffe4b9,
	"phased3 1 arc":                 0x965c16a21dffe4b9,
	"phased3 1 s3fifo":              0x965c16a21dffe4b9,
	"phased3 1 sieve":               0x965c16a21dffe4b9,
	"phased3 1 lirs":                0x0c714e2e793f8fbb,
	"phased3 1 predictive":          0x965c16a21dffe4b9,
	"phased3 1 adaptive":            0x965c16a21dffe4b9,
	"phased3 8 s3fifo-1hit":         0x7d93e92215ec995d,
	"phased3 8 lru":                 0x937dfd30c5f3fc8c,
	"phased3 8 lfu":                 0x5279b49a27281bda,
	"phased3 8 arc":                 0x0073362bd5d3a620,
	"phased3 8 s3fifo":              0x9c0b179cf759972f,
	"phased3 8 sieve":               0x26718922dfacd875,
	"phased3 8 lirs":                0x9b3423216a88f6c1,
	"phased3 8 predictive":          0xf0ca5854c979cc2e,
	"phased3 8 adaptive":            0xd7fc05b476c3f9d9,
	"phased3 100 s3fifo-1hit":       0x3820a8e345f44089,
	"phased3 100 lru":               0x0b1403d315958c51,
	"phased3 100 lfu":               0x4a045cb9596e7e3e,
	"phased3 100 arc":               0x7c5f4169209fa186,
	"phased3 100 s3fifo":            0xf05ad6d4ad04a57a,
	"phased3 100 sieve":             0xcf35e9b56013b965,
	"phased3 100 lirs":              0xbe5b8a3b85ccc8bb,
	"phased3 100 predictive":        0xc4dcb243815f8179,
	"phased3 100 adaptive":          0xf279c2b0d1af926e,
	"phased3 1000 s3fifo-1hit":      0x557f3442a9d4523d,
	"phased3 1000 lru":              0xb6a8b63393de0e9e,
	"phased3 1000 lfu":              0xbaa0a646ffcd297b,
	"phased3 1000 arc":              0xc66f7ad429e0bbb8,
	"phased3 1000 s3fifo":           0x0a6b15238e4ec66c,
	"phased3 1000 sieve":            0xd0747a052e82d280,
	"phased3 1000 lirs":             0x71ef2c1f82b466f3,
	"phased3 1000 predictive":       0x3ec8dd549fdc2bf9,
	"phased3 1000 adaptive":         0xadab855e7b2fd2b1,
	"sqlite-mixed 1 s3fifo-1hit":    0xd23d1fd4aa4ce1b0,
	"sqlite-mixed 1 lru":            0xd23d1fd4aa4ce1b0,
	"sqlite-mixed 1 lfu":            0xd23d1fd4aa4ce1b0,
	"sqlite-mixed 1 arc":            0xd23d1fd4aa4ce1b0,
	"sqlite-mixed 1 s3fifo":         0xd23d1fd4aa4ce1b0,
	"sqlite-mixed 1 sieve":          0xd23d1fd4aa4ce1b0,
	"sqlite-mixed 1 lirs":           0x67d5fe3b75665bfd,
	"sqlite-mixed 1 predictive":     0xd23d1fd4aa4ce1b0,
	"sqlite-mixed 1 adaptive":       0xd23d1fd4aa4ce1b0,
	"sqlite-mixed 8 s3fifo-1hit":    0x0461a214871d0efc,
	"sqlite-mixed 8 lru":            0xe1ed2e37303031ec,
	"sqlite-mixed 8 lfu":            0x8ccd52e036084142,
	"sqlite-mixed 8 arc":            0x014b9b0a20120869,
	"sqlite-mixed 8 s3fifo":         0x43217b933aafe4c7,
	"sqlite-mixed 8 sieve":          0x873ca35901345039,
	"sqlite-mixed 8 lirs":           0xf0723a120d6b1b66,
	"sqlite-mixed 8 predictive":     0x21866b100be2ae76,
	"sqlite-mixed 8 adaptive":       0x33388411899a2a17,
	"sqlite-mixed 100 s3fifo-1hit":  0xfe2170959f5f35fe,
	"sqlite-mixed 100 lru":          0x8ea8bfffe6238b98,
	"sqlite-mixed 100 lfu":          0x2d97cdf3032dc0cc,
	"sqlite-mixed 100 arc":          0xa5b790f4de8723ce,
	"sqlite-mixed 100 s3fifo":       0x18d4be55601e310b,
	"sqlite-mixed 100 sieve":        0x2d97cdf3032dc0cc,
	"sqlite-mixed 100 lirs":         0xbcf64a00b0ea2450,
	"sqlite-mixed 100 predictive":   0xaa047061bd93c689,
	"sqlite-mixed 100 adaptive":     0x408b6c4910a8af84,
	"sqlite-mixed 1000 s3fifo-1hit": 0x331e20c118ff576b,
	"sqlite-mixed 1000 lru":         0xe1d597793089b424,
	"sqlite-mixed 1000 lfu":         0x331e20c118ff576b,
	"sqlite-mixed 1000 arc":         0x331e20c118ff576b,
	"sqlite-mixed 1000 s3fifo":      0x3947d05191a66b21,
	"sqlite-mixed 1000 sieve":       0x331e20c118ff576b,
	"sqlite-mixed 1000 lirs":        0xc68f22ca354c996b,
	"sqlite-mixed 1000 predictive":  0x09ae147c699e80bb,
	"sqlite-mixed 1000 adaptive":    0xc68f22ca354c996b,
	"sqlite-oltp 1 s3fifo-1hit":     0x2f616ba459cd0125,
	"sqlite-oltp 1 lru":             0x2f616ba459cd0125,
	"sqlite-oltp 1 lfu":             0x2f616ba459cd0125,
	"sqlite-oltp 1 arc":             0x2f616ba459cd0125,
	"sqlite-oltp 1 s3fifo":          0x2f616ba459cd0125,
	"sqlite-oltp 1 sieve":           0x2f616ba459cd0125,
	"sqlite-oltp 1 lirs":            0xb3a3c67276f05932,
	"sqlite-oltp 1 predictive":      0x2f616ba459cd0125,
	"sqlite-oltp 1 adaptive":        0x2f616ba459cd0125,
	"sqlite-oltp 8 s3fifo-1hit":     0x0e87e087d7113151,
	"sqlite-oltp 8 lru":             0xc31b0828c73b0526,
	"sqlite-oltp 8 lfu":             0x5c97cf874473ca4a,
	"sqlite-oltp 8 arc":             0x26bb79d81c703c6f,
	"sqlite-oltp 8 s3fifo":          0x3e979493f83dfee8,
	"sqlite-oltp 8 sieve":           0x75de406e4a0ce503,
	"sqlite-oltp 8 lirs":            0x4a71db6173b29f3d,
	"sqlite-oltp 8 predictive":      0xaf6ddaf60f602df6,
	"sqlite-oltp 8 adaptive":        0x399fc2c948528460,
	"sqlite-oltp 100 s3fifo-1hit":   0x5ad45ef1ff03ead4,
	"sqlite-oltp 100 lru":           0x4616b09367d565b3,
	"sqlite-oltp 100 lfu":           0x81ebee6f9e15ede0,
	"sqlite-oltp 100 arc":           0x20e5fe9d4b455e1a,
	"sqlite-oltp 100 s3fifo":        0xa69bfc87b6a3ee21,
	"sqlite-oltp 100 sieve":         0x81ebee6f9e15ede0,
	"sqlite-oltp 100 lirs":          0x2aa8e0c1f6141c2b,
	"sqlite-oltp 100 predictive":    0x0e9cb6d24ec72fa9,
	"sqlite-oltp 100 adaptive":      0x2aa8e0c1f6141c2b,
	"sqlite-oltp 1000 s3fifo-1hit":  0x5ac0c1898ad862e9,
	"sqlite-oltp 1000 lru":          0x5ac0c1898ad862e9,
	"sqlite-oltp 1000 lfu":          0x5ac0c1898ad862e9,
	"sqlite-oltp 1000 arc":          0x5ac0c1898ad862e9,
	"sqlite-oltp 1000 s3fifo":       0x5ac0c1898ad862e9,
	"sqlite-oltp 1000 sieve":        0x5ac0c1898ad862e9,
	"sqlite-oltp 1000 lirs":         0x5ac0c1898ad862e9,
	"sqlite-oltp 1000 predictive":   0x5ac0c1898ad862e9,
	"sqlite-oltp 1000 adaptive":     0x5ac0c1898ad862e9,
	"sqlite-scan 1 s3fifo-1hit":     0xc47f3fdd3f822485,
	"sqlite-scan 1 lru":             0xc47f3fdd3f822485,
	"sqlite-scan 1 lfu":             0xc47f3fdd3f822485,
	"sqlite-scan 1 arc":             0xc47f3fdd3f822485,
	"sqlite-scan 1 s3fifo":          0xc47f3fdd3f822485,
	"sqlite-scan 1 sieve":           0xc47f3fdd3f822485,
	"sqlite-scan 1 lirs":            0x9f43e3f9856dba4a,
	"sqlite-scan 1 predictive":      0xc47f3fdd3f822485,
	"sqlite-scan 1 adaptive":        0xc47f3fdd3f822485,
	"sqlite-scan 8 s3fifo-1hit":     0xf1cffd4aca14ed38,
	"sqlite-scan 8 lru":             0x79d761c4f4c17aba,
	"sqlite-scan 8 lfu":             0x33a6431a621d498c,
	"sqlite-scan 8 arc":             0x376dae2431313ed8,
	"sqlite-scan 8 s3fifo":          0x3e50ba9b588ace6c,
	"sqlite-scan 8 sieve":           0x6d9f09de5e84c4e2,
	"sqlite-scan 8 lirs":            0x884709e6ddac6373,
	"sqlite-scan 8 predictive":      0x8cb49dc9c5d81c23,
	"sqlite-scan 8 adaptive":        0x884709e6ddac6373,
	"sqlite-scan 100 s3fifo-1hit":   0xa76d24c27f85b523,
	"sqlite-scan 100 lru":           0x0dcf3bca62d0fba3,
	"sqlite-scan 100 lfu":           0xef4f0fefc47cba97,
	"sqlite-scan 100 arc":           0x917dec35be078105,
	"sqlite-scan 100 s3fifo":        0x08da19d6ce248298,
	"sqlite-scan 100 sieve":         0x87577a447941dc33,
	"sqlite-scan 100 lirs":          0x461f5a96c36d7595,
	"sqlite-scan 100 predictive":    0x6d046962d602c83e,
	"sqlite-scan 100 adaptive":      0x461f5a96c36d7595,
	"sqlite-scan 1000 s3fifo-1hit":  0xb6ed282d06e20db9,
	"sqlite-scan 1000 lru":          0x6180db2795cef2d2,
	"sqlite-scan 1000 lfu":          0x0eceac68fd27ee2f,
	"sqlite-scan 1000 arc":          0x8d643f8c95d90b0e,
	"sqlite-scan 1000 s3fifo":       0xaf649fbc25d8c05b,
	"sqlite-scan 1000 sieve":        0x76c954074749adb5,
	"sqlite-scan 1000 lirs":         0xd60bf7bb655ffc7c,
	"sqlite-scan 1000 predictive":   0x86538c6e28f9e192,
	"sqlite-scan 1000 adaptive":     0xd60bf7bb655ffc7c,
}
