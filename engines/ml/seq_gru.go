package ml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// GRULM is a next-call language model of system calls: one GRU layer
// (Cho et al. 2014) reads the trace a call at a time and a softmax over
// the training vocabulary predicts the next call; a trace's anomaly is the
// negative log-likelihood (NLL) of its calls, as in Kim et al. 2016
// ("LSTM-based system call language modeling and robust ensemble
// method", arXiv 1611.01726), here with a GRU and far fewer units so
// that it trains on one core in seconds. Unlike the n-gram models its
// state is not a fixed window: it can carry what happened hundreds of
// calls before.
//
// Step t, with x the call just read and h the state (PyTorch's GRU):
//
//	r = σ(X_r[x] + W_r h + b_r)      z = σ(X_z[x] + W_z h + b_z)
//	n = tanh(X_n[x] + r ⊙ (W_n h + b_n))
//	h′ = (1 − z) ⊙ n + z ⊙ h         P(next | …) = softmax(O h′ + o)
//
// The input is one token, so the embedding and the input matrices are one
// table X (a row of 3H numbers per token): the same function as an
// embedding followed by a dense layer, at the cost of a lookup. Tokens
// are the training calls in increasing order, then "unseen call" and
// "start of trace"; the first call is predicted from the start token.
//
// Training: truncated back-propagation through time over segments of
// BPTT calls of one trace (the state carries over from one segment to the
// next, the gradient does not), one Adam step per segment with the
// gradient's norm clipped, traces in a shuffled order each epoch. The
// initial weights and the order come from a PCG seeded with Seed, and
// every sum runs in a fixed order, so the same traces and config give
// the same bits.
type GRULM struct {
	Cfg GRUConfig
	V   int // tokens: training calls + unseen + start
	H   int
	// Calls lists the training calls; Calls[i] is token i.
	Calls []int
	index map[int]int
	// P holds every parameter: X (V×3H), W (3H×H), b (3H), O (V×H), o (V).
	P                []float64
	x, w, b, out, ob []float64
	TrainLoss        []float64 // mean NLL per call, per epoch (training traces)
	unseenTok, stTok int
}

// GRUConfig sets a GRULM's size and training.
type GRUConfig struct {
	Hidden int     // H, units of state
	BPTT   int     // calls per truncated segment
	Epochs int     // passes over the training traces
	LR     float64 // Adam step size
	Clip   float64 // gradient norm clip (0: none)
	// Anneal decays the step size linearly from LR to 0 over the whole
	// training, so the last updates settle instead of jumping between
	// minima (the held-out NLL of a constant step size is noisy).
	Anneal bool
	Seed   uint64
	Win    int // score window, calls (MaxWin)
	// OnEpoch, when set, is called after each epoch (1-based) with the
	// model as it stands, e.g. to follow a held-out NLL; it must not
	// change the model.
	OnEpoch func(epoch int, m *GRULM)
}

// DefaultGRUConfig is the size and schedule used by the ADFA-LD eval:
// fixed before its first run, except Anneal, adopted afterwards because
// it lowered the calibration half's NLL a call from 1.51–1.61 to
// 1.31–1.33 (docs/syscall.md §4).
func DefaultGRUConfig() GRUConfig {
	return GRUConfig{Hidden: 32, BPTT: 50, Epochs: 4, LR: 0.01, Clip: 5, Anneal: true, Seed: 1, Win: 20}
}

// NewGRULM checks cfg and makes an untrained model (Train sizes it).
func NewGRULM(cfg GRUConfig) (*GRULM, error) {
	switch {
	case cfg.Hidden < 1:
		return nil, fmt.Errorf("ml: GRU hidden size %d must be ≥ 1", cfg.Hidden)
	case cfg.BPTT < 1:
		return nil, fmt.Errorf("ml: GRU BPTT length %d must be ≥ 1", cfg.BPTT)
	case cfg.Epochs < 0:
		return nil, fmt.Errorf("ml: GRU epochs %d must be ≥ 0", cfg.Epochs)
	case !(cfg.LR > 0):
		return nil, fmt.Errorf("ml: GRU learning rate %v must be > 0", cfg.LR)
	case cfg.Clip < 0:
		return nil, fmt.Errorf("ml: GRU clip %v must be ≥ 0", cfg.Clip)
	}
	if cfg.Win < 1 {
		cfg.Win = 1
	}
	return &GRULM{Cfg: cfg, H: cfg.Hidden}, nil
}

// init sizes the model for the vocabulary of traces and draws the
// initial weights, uniform in ±1/√H (PyTorch's default for a GRU).
func (m *GRULM) init(traces [][]int, rng *rand.Rand) {
	seen := map[int]bool{}
	for _, t := range traces {
		for _, c := range t {
			seen[c] = true
		}
	}
	m.Calls = m.Calls[:0]
	for c := range seen {
		m.Calls = append(m.Calls, c)
	}
	sort.Ints(m.Calls)
	m.index = make(map[int]int, len(m.Calls))
	for i, c := range m.Calls {
		m.index[c] = i
	}
	m.unseenTok, m.stTok = len(m.Calls), len(m.Calls)+1
	m.V = len(m.Calls) + 2
	H, V := m.H, m.V
	m.P = make([]float64, V*3*H+3*H*H+3*H+V*H+V)
	m.views(m.P, &m.x, &m.w, &m.b, &m.out, &m.ob)
	s := 1 / math.Sqrt(float64(H))
	for i := range m.P {
		m.P[i] = (2*rng.Float64() - 1) * s
	}
}

// views cuts a flat parameter-shaped slice into its five parts.
func (m *GRULM) views(p []float64, x, w, b, out, ob *[]float64) {
	H, V := m.H, m.V
	o := 0
	cut := func(n int) []float64 { s := p[o : o+n : o+n]; o += n; return s }
	*x, *w, *b, *out, *ob = cut(V*3*H), cut(3*H*H), cut(3*H), cut(V*H), cut(V)
}

func (m *GRULM) tok(c int) int {
	if i, ok := m.index[c]; ok {
		return i
	}
	return m.unseenTok
}

// dot is Σ a[i]·b[i] over len(a) (≤ len(b)) with four running sums:
// the additions of one sum wait on each other, four in flight do not,
// and the order is fixed, so the result is the same on every run.
func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func sigmoid(v float64) float64 { return 1 / (1 + math.Exp(-v)) }

// gruStep is one step's values, kept for the backward pass.
type gruStep struct {
	in, target int
	hprev      []float64 // H
	r, z, n    []float64 // H each
	whn        []float64 // W_n h + b_n, H
	h          []float64 // H
	p          []float64 // V: softmax of the next call
}

// step runs the cell: from state hprev and token in, writes the gates and
// the new state into s.
func (m *GRULM) step(s *gruStep, hprev []float64, in int) {
	H := m.H
	xr := m.x[in*3*H : in*3*H+3*H]
	for i := 0; i < 3*H; i++ {
		a := m.b[i] + dot(m.w[i*H:i*H+H], hprev)
		switch {
		case i < H:
			s.r[i] = sigmoid(xr[i] + a)
		case i < 2*H:
			s.z[i-H] = sigmoid(xr[i] + a)
		default:
			s.whn[i-2*H] = a
		}
	}
	for i := 0; i < H; i++ {
		n := math.Tanh(xr[2*H+i] + s.r[i]*s.whn[i])
		s.n[i] = n
		s.h[i] = (1-s.z[i])*n + s.z[i]*hprev[i]
	}
}

// logits writes O h + o into dst and returns its log-sum-exp.
func (m *GRULM) logits(dst, h []float64) float64 {
	H := m.H
	mx := math.Inf(-1)
	for k := range dst {
		a := m.ob[k] + dot(m.out[k*H:k*H+H], h)
		dst[k] = a
		if a > mx {
			mx = a
		}
	}
	var s float64
	for _, a := range dst {
		s += math.Exp(a - mx)
	}
	return mx + math.Log(s)
}

func newSteps(n, H, V int) []gruStep {
	st := make([]gruStep, n)
	buf := make([]float64, n*(6*H+V))
	for i := range st {
		cut := func(k int) []float64 { s := buf[:k:k]; buf = buf[k:]; return s }
		st[i] = gruStep{hprev: cut(H), r: cut(H), z: cut(H), n: cut(H), whn: cut(H), h: cut(H), p: cut(V)}
	}
	return st
}

// segment runs forward over ins/targets from state h0 (updated in place
// to the final state), accumulates the gradient of the summed NLL into
// g, and returns the summed NLL.
func (m *GRULM) segment(st []gruStep, h0 []float64, ins, targets []int, g []float64) float64 {
	H, V := m.H, m.V
	var loss float64
	T := len(ins)
	for t := 0; t < T; t++ {
		s := &st[t]
		s.in, s.target = ins[t], targets[t]
		copy(s.hprev, h0)
		m.step(s, s.hprev, s.in)
		lse := m.logits(s.p, s.h)
		loss += lse - s.p[s.target]
		for k := range s.p {
			s.p[k] = math.Exp(s.p[k] - lse)
		}
		copy(h0, s.h)
	}
	var gx, gw, gb, gout, gob []float64
	m.views(g, &gx, &gw, &gb, &gout, &gob)
	dh := make([]float64, H)
	dnext := make([]float64, H)
	dah := make([]float64, 3*H)
	for t := T - 1; t >= 0; t-- {
		s := &st[t]
		copy(dh, dnext)
		// softmax + NLL: dlogit = p − onehot(target)
		for k := 0; k < V; k++ {
			d := s.p[k]
			if k == s.target {
				d--
			}
			gob[k] += d
			row := m.out[k*H : k*H+H]
			grow := gout[k*H : k*H+H]
			for j := 0; j < H; j++ {
				grow[j] += d * s.h[j]
				dh[j] += d * row[j]
			}
		}
		gxr := gx[s.in*3*H : s.in*3*H+3*H]
		for i := 0; i < H; i++ {
			z, n, r := s.z[i], s.n[i], s.r[i]
			dn := dh[i] * (1 - z)
			dz := dh[i] * (s.hprev[i] - n)
			dnext[i] = dh[i] * z
			dan := dn * (1 - n*n)
			dr := dan * s.whn[i]
			dar := dr * r * (1 - r)
			daz := dz * z * (1 - z)
			gxr[i] += dar
			gxr[H+i] += daz
			gxr[2*H+i] += dan
			dah[i], dah[H+i], dah[2*H+i] = dar, daz, dan*r
		}
		for i := 0; i < 3*H; i++ {
			d := dah[i]
			gb[i] += d
			row := m.w[i*H : i*H+H]
			grow := gw[i*H : i*H+H]
			for j := 0; j < H; j++ {
				grow[j] += d * s.hprev[j]
				dnext[j] += d * row[j]
			}
		}
	}
	return loss
}

// Train fits the model to the normal traces (replacing any before).
func (m *GRULM) Train(traces [][]int) error {
	n := 0
	for _, t := range traces {
		n += len(t)
	}
	if n == 0 {
		return fmt.Errorf("ml: GRU: no calls to train on")
	}
	rng := rand.New(rand.NewPCG(m.Cfg.Seed, 0x67a11))
	m.init(traces, rng)
	H, T := m.H, m.Cfg.BPTT
	g := make([]float64, len(m.P))
	mo := make([]float64, len(m.P))
	ve := make([]float64, len(m.P))
	st := newSteps(T, H, m.V)
	h := make([]float64, H)
	ins, tg := make([]int, 0, T), make([]int, 0, T)
	const b1, b2, eps = 0.9, 0.999, 1e-8
	steps, total := 0, 0
	for _, t := range traces {
		total += (len(t) + T - 1) / T
	}
	total *= m.Cfg.Epochs
	m.TrainLoss = m.TrainLoss[:0]
	for ep := 0; ep < m.Cfg.Epochs; ep++ {
		var sum float64
		for _, ti := range rng.Perm(len(traces)) {
			tr := traces[ti]
			clear(h)
			prev := m.stTok
			for s := 0; s < len(tr); s += T {
				e := min(s+T, len(tr))
				ins, tg = ins[:0], tg[:0]
				for _, c := range tr[s:e] {
					ins = append(ins, prev)
					tg = append(tg, m.tok(c))
					prev = m.tok(c)
				}
				clear(g)
				sum += m.segment(st, h, ins, tg, g)
				// the mean over the segment, clipped by norm
				k := 1 / float64(len(ins))
				var nrm float64
				for i := range g {
					g[i] *= k
					nrm += g[i] * g[i]
				}
				if nrm = math.Sqrt(nrm); m.Cfg.Clip > 0 && nrm > m.Cfg.Clip {
					k = m.Cfg.Clip / nrm
					for i := range g {
						g[i] *= k
					}
				}
				steps++
				c1 := 1 - math.Pow(b1, float64(steps))
				c2 := 1 - math.Pow(b2, float64(steps))
				lr := m.Cfg.LR * math.Sqrt(c2) / c1
				if m.Cfg.Anneal {
					lr *= 1 - float64(steps-1)/float64(total)
				}
				for i, gi := range g {
					mo[i] = b1*mo[i] + (1-b1)*gi
					ve[i] = b2*ve[i] + (1-b2)*gi*gi
					m.P[i] -= lr * mo[i] / (math.Sqrt(ve[i]) + eps)
				}
			}
		}
		m.TrainLoss = append(m.TrainLoss, sum/float64(n))
		if m.Cfg.OnEpoch != nil {
			m.Cfg.OnEpoch(ep+1, m)
		}
	}
	return nil
}

// GRUStream scores a trace one call at a time.
type GRUStream struct {
	m   *GRULM
	s   gruStep
	h   []float64
	lse float64
	w   *MarkovStream
}

// Stream starts a stream at the start of a trace (the model must be trained).
func (m *GRULM) Stream() *GRUStream {
	if m.P == nil {
		panic("ml: GRULM scored before Train")
	}
	H := m.H
	s := &GRUStream{m: m, s: newSteps(1, H, m.V)[0], h: make([]float64, H), w: &MarkovStream{ring: make([]float64, m.Cfg.Win)}}
	s.advance(m.stTok)
	return s
}

func (s *GRUStream) advance(tok int) {
	s.m.step(&s.s, s.h, tok)
	copy(s.h, s.s.h)
	s.lse = s.m.logits(s.s.p, s.h)
}

// Push takes the next call and returns its NLL (nats) under the model
// and the running highest mean NLL over Win calls.
func (s *GRUStream) Push(c int) (nll, maxWin float64) {
	tok := s.m.tok(c)
	nll = s.lse - s.s.p[tok]
	s.advance(tok)
	return nll, s.w.add(nll)
}

// Result is the score of the calls pushed so far.
func (s *GRUStream) Result() MarkovScore { return s.w.Result() }

// NLLs is the NLL of every call of tr, in order.
func (m *GRULM) NLLs(tr []int) []float64 {
	s := m.Stream()
	out := make([]float64, len(tr))
	for i, c := range tr {
		out[i], _ = s.Push(c)
	}
	return out
}

// Score runs a stream over tr.
func (m *GRULM) Score(tr []int) MarkovScore {
	s := m.Stream()
	for _, c := range tr {
		s.Push(c)
	}
	return s.Result()
}
