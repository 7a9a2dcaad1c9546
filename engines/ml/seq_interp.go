package ml

import (
	"fmt"
	"math"
)

// InterpMarkov is an order-K Markov model of system calls with
// Witten–Bell interpolation across every order 0..K (Witten and Bell
// 1991; Chen and Goodman 1998): with c(h) the count of context h,
// c(h,w) of the call w after it and u(h) the number of distinct calls
// seen after it,
//
//	P(w | h) = (c(h,w) + u(h)·P(w | h′)) / (c(h) + u(h))
//
// where h′ is h less its oldest call, a context never seen falls through
// to P(w | h′), and the order −1 base is add-one over the training
// vocabulary plus one unseen call: P(w) = (c(w)+1)/(N+V). Unlike add-α
// at one order, a long context that was seen rarely borrows from the
// shorter ones, so a model of high order generalises instead of calling
// every new context unseen. Scores as Markov: mean NLL per call and the
// highest mean over Win calls. It has no randomness.
type InterpMarkov struct {
	K     int
	Win   int
	V     int
	N     uint64
	ctx   map[uint64]*wbCtx
	pair  map[uint64]uint32
	uni   map[int]uint32
	Grams *NgramCounts
}

type wbCtx struct {
	count    uint32
	distinct uint32
}

// NewInterpMarkov makes an empty model of order k (1..MaxGram-1) and
// score window win.
func NewInterpMarkov(k, win int) (*InterpMarkov, error) {
	if k < 1 || k+1 > MaxGram {
		return nil, fmt.Errorf("ml: Markov order %d out of 1..%d", k, MaxGram-1)
	}
	if win < 1 {
		win = 1
	}
	g, _ := NewNgramCounts(k + 1)
	return &InterpMarkov{K: k, Win: win, ctx: map[uint64]*wbCtx{}, pair: map[uint64]uint32{}, uni: map[int]uint32{}, Grams: g}, nil
}

// ctxKey keys a context of len(h) calls (0 allowed) apart from other lengths.
func ctxKey(h []int) uint64 { return uint64(len(h))<<60 | GramKey(h) }

// Train counts the traces; it may be called more than once.
func (m *InterpMarkov) Train(traces [][]int) {
	for _, t := range traces {
		h := padStart(m.K)
		for _, c := range t {
			m.uni[c]++
			m.N++
			for j := 0; j <= m.K; j++ {
				hj := h[m.K-j:]
				ck := ctxKey(hj)
				// the pair key carries the context length j in its top
				// bits; j+1 ≤ MaxGram calls fit below them
				pk := uint64(j)<<60 | (GramKey(hj)<<GramBits | gramCode(c))
				cx := m.ctx[ck]
				if cx == nil {
					cx = &wbCtx{}
					m.ctx[ck] = cx
				}
				if m.pair[pk] == 0 {
					cx.distinct++
				}
				m.pair[pk]++
				cx.count++
			}
			h = append(h[1:], c)
		}
		m.Grams.Add(t)
	}
	m.V = len(m.uni) + 1
}

func padStart(k int) []int {
	h := make([]int, k)
	for i := range h {
		h[i] = SeqOther
	}
	return h
}

// Prob is P(c | h) for a context h of K calls.
func (m *InterpMarkov) Prob(h []int, c int) float64 {
	p := (float64(m.uni[c]) + 1) / (float64(m.N) + float64(m.V))
	for j := 0; j <= m.K && j <= len(h); j++ {
		hj := h[len(h)-j:]
		cx := m.ctx[ctxKey(hj)]
		if cx == nil {
			break // a longer context containing an unseen one is unseen too
		}
		n := float64(m.pair[uint64(j)<<60|(GramKey(hj)<<GramBits|gramCode(c))])
		p = (n + float64(cx.distinct)*p) / (float64(cx.count) + float64(cx.distinct))
	}
	return p
}

// Score runs a stream over tr.
func (m *InterpMarkov) Score(tr []int) MarkovScore {
	s := m.Stream()
	for _, c := range tr {
		s.Push(c)
	}
	return s.Result()
}

// Stream starts a stream at the start of a trace; it reuses MarkovStream's
// windowing with this model's probabilities.
func (m *InterpMarkov) Stream() *InterpStream {
	return &InterpStream{m: m, h: padStart(m.K), w: &MarkovStream{ring: make([]float64, m.Win)}}
}

// InterpStream scores a trace one call at a time.
type InterpStream struct {
	m *InterpMarkov
	h []int
	w *MarkovStream
}

// Push takes the next call and returns its NLL and the running MaxWin.
func (s *InterpStream) Push(c int) (nll, maxWin float64) {
	nll = -math.Log(s.m.Prob(s.h, c))
	s.h = append(s.h[1:], c)
	return nll, s.w.add(nll)
}

// Result is the score of the calls pushed so far.
func (s *InterpStream) Result() MarkovScore { return s.w.Result() }
