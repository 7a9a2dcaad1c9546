package ml

import (
	"math"
	"math/rand/v2"
	"testing"
)

// grammar makes traces of a small deterministic-ish language: an "open"
// (5) then 1..4 "read" (3), a "write" (4) and a "close" (6), repeated; a
// long-range rule ties the number of reads to the call before the open
// (a "stat" 195 means 2 reads, an "fstat" 197 means 3).
func grammar(rng *rand.Rand, n int) [][]int {
	var out [][]int
	for i := 0; i < n; i++ {
		var t []int
		for k := 0; k < 6; k++ {
			head, reads := 195, 2
			if rng.IntN(2) == 1 {
				head, reads = 197, 3
			}
			t = append(t, head, 5)
			for r := 0; r < reads; r++ {
				t = append(t, 3)
			}
			t = append(t, 4, 6)
		}
		out = append(out, t)
	}
	return out
}

func testGRUConfig() GRUConfig {
	return GRUConfig{Hidden: 8, BPTT: 16, Epochs: 15, LR: 0.02, Clip: 5, Seed: 3, Win: 5}
}

// The model learns the grammar: its in-grammar traces score a far lower
// mean NLL than the same calls shuffled, and an unseen call costs more
// than any call of the grammar.
func TestGRULearnsGrammar(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	train := grammar(rng, 60)
	m, err := NewGRULM(testGRUConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Train(train); err != nil {
		t.Fatal(err)
	}
	if l := m.TrainLoss; len(l) != 15 || !(l[len(l)-1] < l[0]) {
		t.Fatalf("training loss did not fall: %v", l)
	}
	var in, shuf float64
	test := grammar(rng, 20)
	for _, tr := range test {
		in += m.Score(tr).MeanNLL
		s := append([]int(nil), tr...)
		rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
		shuf += m.Score(s).MeanNLL
	}
	in /= float64(len(test))
	shuf /= float64(len(test))
	t.Logf("mean NLL in grammar %.3f, shuffled %.3f; training loss %.3f → %.3f", in, shuf, m.TrainLoss[0], m.TrainLoss[len(m.TrainLoss)-1])
	// The grammar's own entropy is ln 2 a block (the head) over 8.5 calls
	// a block, ≈ 0.08 nats a call; a model that has not learnt the
	// long-range rule pays ln 2 again at the third read, ≈ 0.16. Below
	// 0.14 means it carries the head across the open and two reads.
	// Shuffled: well over 1.
	if !(in < 0.14 && shuf > 3*in) {
		t.Errorf("mean NLL in grammar %.3f, shuffled %.3f: want < 0.14 and > 3×", in, shuf)
	}
	nll := m.NLLs([]int{195, 5, 3, 999})
	if !(nll[3] > 2*math.Max(nll[1], nll[2])) {
		t.Errorf("NLLs %v: the unseen call 999 should cost most", nll)
	}
	// the stream and the whole-trace score agree
	st := m.Stream()
	for _, c := range test[0] {
		st.Push(c)
	}
	if st.Result() != m.Score(test[0]) {
		t.Errorf("stream %+v != score %+v", st.Result(), m.Score(test[0]))
	}
}

// The same seed gives the same bits; another seed another model.
func TestGRUDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 5))
	train := grammar(rng, 20)
	cfg := testGRUConfig()
	cfg.Epochs = 3
	a, _ := NewGRULM(cfg)
	b, _ := NewGRULM(cfg)
	if err := a.Train(train); err != nil {
		t.Fatal(err)
	}
	if err := b.Train(train); err != nil {
		t.Fatal(err)
	}
	for i := range a.P {
		if a.P[i] != b.P[i] {
			t.Fatalf("parameter %d differs: %v vs %v", i, a.P[i], b.P[i])
		}
	}
	if a.Score(train[0]) != b.Score(train[0]) {
		t.Error("same seed, different scores")
	}
	cfg.Seed++
	c, _ := NewGRULM(cfg)
	_ = c.Train(train)
	if c.Score(train[0]) == a.Score(train[0]) {
		t.Error("another seed gave the same score")
	}
}

// The analytic gradient of a segment's summed NLL matches central
// differences for every parameter of a tiny net (H = 3, 3 calls).
func TestGRUGradientCheck(t *testing.T) {
	cfg := GRUConfig{Hidden: 3, BPTT: 8, Epochs: 0, LR: 0.01, Seed: 7, Win: 1}
	m, _ := NewGRULM(cfg)
	if err := m.Train([][]int{{10, 11, 12}}); err != nil {
		t.Fatal(err)
	}
	// larger weights than the init, so that the gates are not all ½
	rng := rand.New(rand.NewPCG(8, 9))
	for i := range m.P {
		m.P[i] = rng.NormFloat64()
	}
	ins := []int{m.stTok, 0, 1, 2, m.unseenTok, 1}
	tg := []int{0, 1, 2, m.unseenTok, 1, 0}
	h0 := []float64{0.3, -0.2, 0.5}
	loss := func(g []float64) float64 {
		h := append([]float64(nil), h0...)
		if g == nil {
			g = make([]float64, len(m.P))
		}
		return m.segment(newSteps(len(ins), m.H, m.V), h, ins, tg, g)
	}
	g := make([]float64, len(m.P))
	loss(g)
	const e = 1e-5
	worst := 0.0
	for i := range m.P {
		old := m.P[i]
		m.P[i] = old + e
		lp := loss(nil)
		m.P[i] = old - e
		lm := loss(nil)
		m.P[i] = old
		num := (lp - lm) / (2 * e)
		rel := math.Abs(num-g[i]) / math.Max(1e-6, math.Abs(num)+math.Abs(g[i]))
		if rel > worst {
			worst = rel
		}
		if rel > 1e-5 {
			t.Errorf("parameter %d: analytic %.8g, numeric %.8g", i, g[i], num)
		}
	}
	t.Logf("%d parameters, worst relative error %.2g", len(m.P), worst)
}

func TestGRUBadConfig(t *testing.T) {
	for _, c := range []GRUConfig{
		{Hidden: 0, BPTT: 1, Epochs: 1, LR: 0.1},
		{Hidden: 1, BPTT: 0, Epochs: 1, LR: 0.1},
		{Hidden: 1, BPTT: 1, Epochs: -1, LR: 0.1},
		{Hidden: 1, BPTT: 1, Epochs: 1, LR: 0},
		{Hidden: 1, BPTT: 1, Epochs: 1, LR: 0.1, Clip: -1},
	} {
		if _, err := NewGRULM(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	m, _ := NewGRULM(testGRUConfig())
	if err := m.Train([][]int{{}, nil}); err == nil {
		t.Error("training on no calls accepted")
	}
}

// BenchmarkGRUTrainEpoch is one epoch over 50 traces of 400 calls from a
// vocabulary of 100, at the eval's default size.
func BenchmarkGRUTrainEpoch(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	tr := make([][]int, 50)
	for i := range tr {
		tr[i] = make([]int, 400)
		for j := range tr[i] {
			tr[i][j] = rng.IntN(100)
		}
	}
	cfg := DefaultGRUConfig()
	cfg.Epochs = 1
	for b.Loop() {
		m, _ := NewGRULM(cfg)
		if err := m.Train(tr); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/20000, "ns/call")
}
