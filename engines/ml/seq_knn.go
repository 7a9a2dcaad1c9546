package ml

import (
	"fmt"
	"math"
	"sort"
)

// GramKNN is a one-class nearest-neighbour model over bags of n-grams:
// each trace becomes a TF-IDF vector over its n-grams of every length
// 1..MaxN (term frequency log(1+count) when Sublinear, else the count;
// inverse document frequency idf = ln((1+D)/(1+df)) + 1 over the D
// training traces, so an n-gram never seen in training carries the
// largest weight, ln(1+D)+1), normalised to unit length. The anomaly of a
// trace is 1 − s_K, where s_K is its K-th highest cosine similarity to a
// training trace: 0 for a copy of a training trace, 1 for a trace sharing
// no n-gram with any.
//
// Why this model: a whole trace's mix of short call sequences is what
// separates an attack's process (a shell, a new user's tools, a brute
// forcer's loop) from the normal programs of the same host, and
// similarity to the nearest normal trace needs no assumption that normal
// traces form one cluster; it is exact, has no randomness and no
// training loop, and a trace can be scored incrementally (Stream).
type GramKNN struct {
	MaxN      int
	K         int
	Sublinear bool
	D         int
	IDF       map[uint64]float64
	post      map[uint64][]knnPost
	// Grams counts the training traces' MaxN-grams for the evidence.
	Grams *NgramCounts
}

type knnPost struct {
	doc int32
	w   float64
}

// NewGramKNN makes an empty model over n-grams 1..maxN (≤ MaxGram) with
// the K-th nearest neighbour's similarity as the score.
func NewGramKNN(maxN, k int, sublinear bool) (*GramKNN, error) {
	if maxN < 1 || maxN > MaxGram {
		return nil, fmt.Errorf("ml: n-gram length %d out of 1..%d", maxN, MaxGram)
	}
	if k < 1 {
		return nil, fmt.Errorf("ml: K %d must be ≥ 1", k)
	}
	g, _ := NewNgramCounts(maxN)
	return &GramKNN{MaxN: maxN, K: k, Sublinear: sublinear, Grams: g}, nil
}

// featKey is the key of the n-gram of length n ending the calls g.
func featKey(g []int) uint64 { return uint64(len(g))<<60 | GramKey(g) }

// bag counts every n-gram of length 1..maxN of tr.
func bag(tr []int, maxN int) map[uint64]int {
	b := map[uint64]int{}
	for i := range tr {
		for n := 1; n <= maxN && n <= i+1; n++ {
			b[featKey(tr[i+1-n:i+1])]++
		}
	}
	return b
}

func (m *GramKNN) tf(c int) float64 {
	if c <= 0 {
		return 0
	}
	if m.Sublinear {
		return math.Log1p(float64(c))
	}
	return float64(c)
}

func (m *GramKNN) idf(k uint64) float64 {
	if v, ok := m.IDF[k]; ok {
		return v
	}
	return math.Log(float64(1+m.D)) + 1
}

// Train builds the model from the normal traces (replacing any before).
func (m *GramKNN) Train(traces [][]int) error {
	if len(traces) < m.K {
		return fmt.Errorf("ml: %d training traces, fewer than K=%d", len(traces), m.K)
	}
	m.D = len(traces)
	bags := make([]map[uint64]int, len(traces))
	df := map[uint64]int{}
	for i, t := range traces {
		bags[i] = bag(t, m.MaxN)
		for k := range bags[i] {
			df[k]++
		}
		m.Grams.Add(t)
	}
	m.IDF = make(map[uint64]float64, len(df))
	for k, d := range df {
		m.IDF[k] = math.Log(float64(1+m.D)/float64(1+d)) + 1
	}
	m.post = map[uint64][]knnPost{}
	for i, b := range bags {
		keys := make([]uint64, 0, len(b))
		for k := range b {
			keys = append(keys, k)
		}
		// summed in key order, so the same traces give the same bits
		sort.Slice(keys, func(a, c int) bool { return keys[a] < keys[c] })
		var norm float64
		for _, k := range keys {
			w := m.tf(b[k]) * m.IDF[k]
			norm += w * w
		}
		norm = math.Sqrt(norm)
		if norm == 0 {
			continue
		}
		for _, k := range keys {
			m.post[k] = append(m.post[k], knnPost{int32(i), m.tf(b[k]) * m.IDF[k] / norm})
		}
	}
	return nil
}

// Score is the anomaly of a whole trace, 0..1.
func (m *GramKNN) Score(tr []int) float64 {
	s := m.Stream()
	for _, c := range tr {
		s.Push(c)
	}
	return s.Score()
}

// KNNStream scores a trace one call at a time: each call adds the
// n-grams that end at it, updating the dot products with every training
// trace through the inverted index, so a call costs the postings of at
// most MaxN n-grams, not a pass over the training set.
type KNNStream struct {
	m      *GramKNN
	last   []int
	counts map[uint64]int
	dots   []float64
	norm2  float64
	top    []float64
}

// Stream starts a stream at the start of a trace.
func (m *GramKNN) Stream() *KNNStream {
	return &KNNStream{m: m, counts: map[uint64]int{}, dots: make([]float64, m.D), top: make([]float64, 0, m.K)}
}

// Push takes the next call and returns the running anomaly of the trace so far.
func (s *KNNStream) Push(c int) float64 {
	s.last = append(s.last, c)
	if len(s.last) > s.m.MaxN {
		s.last = s.last[1:]
	}
	for n := 1; n <= len(s.last); n++ {
		k := featKey(s.last[len(s.last)-n:])
		old := s.counts[k]
		s.counts[k] = old + 1
		idf := s.m.idf(k)
		wo, wn := s.m.tf(old)*idf, s.m.tf(old+1)*idf
		s.norm2 += wn*wn - wo*wo
		if d := wn - wo; d != 0 {
			for _, p := range s.m.post[k] {
				s.dots[p.doc] += d * p.w
			}
		}
	}
	return s.Score()
}

// Score is the anomaly of the calls pushed so far (0 before any).
func (s *KNNStream) Score() float64 {
	if s.norm2 <= 0 {
		return 0
	}
	// the K highest dot products
	top := s.top[:0]
	for _, d := range s.dots {
		if len(top) < s.m.K {
			top = append(top, d)
			sort.Float64s(top)
		} else if d > top[0] {
			top[0] = d
			sort.Float64s(top)
		}
	}
	s.top = top
	sim := top[0] / math.Sqrt(s.norm2)
	if sim > 1 {
		sim = 1
	}
	return 1 - sim
}
