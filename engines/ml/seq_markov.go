package ml

import (
	"fmt"
	"math"
)

// Markov is an order-K Markov model of system calls with add-α
// (Lidstone) smoothing:
//
//	P(c | h) = (n(h,c) + α) / (n(h) + α·V)
//
// where h is the K calls before c (the start of a trace is padded with a
// start code, SeqOther), n counts the training traces' (K+1)-grams and
// K-gram contexts, and V is the number of distinct calls in training plus
// one for every unseen call. The negative log-likelihood of a call is
// −ln P (nats). Two trace scores: MeanNLL over every call, and MaxWin, the
// highest mean NLL over any Win consecutive calls (the whole trace's mean
// when it is shorter). It has no randomness.
type Markov struct {
	K     int
	Alpha float64
	Win   int
	V     int
	Ctx   map[uint64]uint32
	Pair  map[uint64]uint32
	vocab map[int]bool
	// Grams counts the (K+1)-grams of training for the evidence.
	Grams *NgramCounts
}

// NewMarkov makes an empty model of order k (1..MaxGram-1), smoothing
// alpha > 0 and score window win ≥ 1.
func NewMarkov(k int, alpha float64, win int) (*Markov, error) {
	if k < 1 || k+1 > MaxGram {
		return nil, fmt.Errorf("ml: Markov order %d out of 1..%d", k, MaxGram-1)
	}
	if !(alpha > 0) {
		return nil, fmt.Errorf("ml: Markov smoothing %v must be > 0", alpha)
	}
	if win < 1 {
		win = 1
	}
	g, _ := NewNgramCounts(k + 1)
	return &Markov{K: k, Alpha: alpha, Win: win, Ctx: map[uint64]uint32{}, Pair: map[uint64]uint32{}, vocab: map[int]bool{}, Grams: g}, nil
}

// Train counts the traces' transitions; it may be called more than once.
func (m *Markov) Train(traces [][]int) {
	for _, t := range traces {
		h := m.start()
		for _, c := range t {
			m.vocab[c] = true
			hk := GramKey(h)
			m.Ctx[hk]++
			m.Pair[hk<<GramBits|gramCode(c)]++
			h = append(h[1:], c)
		}
		m.Grams.Add(t)
	}
	m.V = len(m.vocab) + 1
}

func (m *Markov) start() []int {
	h := make([]int, m.K)
	for i := range h {
		h[i] = SeqOther
	}
	return h
}

// NLL is −ln P(c | h) for a context h of K calls.
func (m *Markov) NLL(h []int, c int) float64 {
	hk := GramKey(h)
	num := float64(m.Pair[hk<<GramBits|gramCode(c)]) + m.Alpha
	den := float64(m.Ctx[hk]) + m.Alpha*float64(m.V)
	return -math.Log(num / den)
}

// MarkovScore is one trace's result.
type MarkovScore struct {
	Calls   int
	MeanNLL float64
	MaxWin  float64
}

// Score runs a stream over tr.
func (m *Markov) Score(tr []int) MarkovScore {
	s := m.Stream()
	for _, c := range tr {
		s.Push(c)
	}
	return s.Result()
}

// MarkovStream scores a trace one call at a time.
type MarkovStream struct {
	m      *Markov
	h      []int
	ring   []float64
	pos    int
	winSum float64
	sum    float64
	n      int
	maxWin float64
}

// Stream starts a stream at the start of a trace.
func (m *Markov) Stream() *MarkovStream {
	return &MarkovStream{m: m, h: m.start(), ring: make([]float64, m.Win)}
}

// Push takes the next call and returns its NLL and the running MaxWin.
func (s *MarkovStream) Push(c int) (nll, maxWin float64) {
	nll = s.m.NLL(s.h, c)
	s.h = append(s.h[1:], c)
	return nll, s.add(nll)
}

// add takes one call's NLL into the means and returns the running MaxWin.
func (s *MarkovStream) add(nll float64) float64 {
	s.sum += nll
	s.n++
	s.winSum += nll - s.ring[s.pos]
	s.ring[s.pos] = nll
	s.pos = (s.pos + 1) % len(s.ring)
	if s.n >= len(s.ring) {
		if v := s.winSum / float64(len(s.ring)); v > s.maxWin {
			s.maxWin = v
		}
	}
	return s.Result().MaxWin
}

// Result is the score of the calls pushed so far.
func (s *MarkovStream) Result() MarkovScore {
	r := MarkovScore{Calls: s.n}
	if s.n == 0 {
		return r
	}
	r.MeanNLL = s.sum / float64(s.n)
	r.MaxWin = s.maxWin
	if s.n < len(s.ring) {
		r.MaxWin = r.MeanNLL
	}
	return r
}
