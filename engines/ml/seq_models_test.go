package ml

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// Training [1 2 3 4] with windows of 3 holds {123, 234}. The trace
// 1 2 3 5 1 2 3 4 has windows 123 235 351 512 123 234: mismatches
// 0 1 1 1 0 0, rate 3/6; at most 2 in any 2 windows (LFC 2/2) and 3 in
// any 4 (LFC 3/4).
func TestStideHandComputed(t *testing.T) {
	tr := []int{1, 2, 3, 5, 1, 2, 3, 4}
	for _, c := range []struct {
		frame int
		lfc   float64
	}{{2, 1}, {4, 0.75}} {
		s, err := NewStide(3, c.frame)
		if err != nil {
			t.Fatal(err)
		}
		s.Train([][]int{{1, 2, 3, 4}})
		r := s.Score(tr)
		if r.Windows != 6 || r.Mismatches != 3 || !near(r.MismatchRate, 0.5) || !near(r.LFC, c.lfc) {
			t.Errorf("frame %d: %+v, want 6 windows, 3 mismatches, rate .5, LFC %v", c.frame, r, c.lfc)
		}
		// the stream gives the same running answer, mismatch by mismatch
		st := s.Stream()
		want := []bool{false, false, false, true, true, true, false, false}
		for i, x := range tr {
			_, miss := st.Push(x)
			if miss != want[i] {
				t.Errorf("frame %d call %d: mismatch %v, want %v", c.frame, i, miss, want[i])
			}
		}
		if st.Result() != r {
			t.Errorf("stream %+v != score %+v", st.Result(), r)
		}
	}
	// a trace shorter than a window is one window of itself
	s, _ := NewStide(3, 2)
	s.Train([][]int{{7, 8}})
	if r := s.Score([]int{7, 8}); r.Mismatches != 0 || r.Windows != 1 {
		t.Errorf("short known trace: %+v", r)
	}
	if r := s.Score([]int{8, 7}); r.Mismatches != 1 {
		t.Errorf("short unknown trace: %+v", r)
	}
	if _, err := NewStide(MaxGram+1, 1); err == nil {
		t.Error("window longer than MaxGram accepted")
	}
}

// Order 1, α = 1, trained on 1 2 1 2 (start code S): contexts S:1, 1:2,
// 2:1; pairs S1:1, 12:2, 21:1; V = 2 calls + 1 = 3. P(1|S) = 2/4,
// P(2|1) = 3/5, P(3|1) = 1/5.
func TestMarkovHandComputed(t *testing.T) {
	m, err := NewMarkov(1, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	m.Train([][]int{{1, 2, 1, 2}})
	if m.V != 3 {
		t.Fatalf("V = %d, want 3", m.V)
	}
	r := m.Score([]int{1, 2})
	if want := (math.Log(2) - math.Log(0.6)) / 2; !near(r.MeanNLL, want) {
		t.Errorf("mean NLL %v, want %v", r.MeanNLL, want)
	}
	if want := math.Log(2); !near(r.MaxWin, want) {
		t.Errorf("max window NLL %v, want %v (window of 1 call)", r.MaxWin, want)
	}
	r = m.Score([]int{1, 3})
	if want := -math.Log(0.2); !near(r.MaxWin, want) {
		t.Errorf("unseen call: max %v, want %v", r.MaxWin, want)
	}
	// window 2 over 1 2 1 3: NLLs ln2, −ln.6, −ln(2/4), −ln.2 (P(1|2) = 2/4)
	m2, _ := NewMarkov(1, 1, 2)
	m2.Train([][]int{{1, 2, 1, 2}})
	st := m2.Stream()
	var last float64
	for _, c := range []int{1, 2, 1, 3} {
		_, last = st.Push(c)
	}
	if want := (math.Log(2) - math.Log(0.2)) / 2; !near(last, want) {
		t.Errorf("stream max window %v, want %v", last, want)
	}
	// a trace shorter than the window scores its mean
	if r := m2.Score([]int{1}); !near(r.MaxWin, math.Log(2)) {
		t.Errorf("short trace max window %v", r.MaxWin)
	}
	if _, err := NewMarkov(1, 0, 1); err == nil {
		t.Error("α = 0 accepted")
	}
}

// Unigrams, raw counts, training A = 1 1 and B = 2 2: D = 2, each call in
// one trace, idf = ln(3/2) + 1 for both. The query 1 2 has equal weights
// on 1 and 2, so its cosine with A (or B) is 1/√2.
func TestGramKNNHandComputed(t *testing.T) {
	m, err := NewGramKNN(1, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Train([][]int{{1, 1}, {2, 2}}); err != nil {
		t.Fatal(err)
	}
	if !near(m.IDF[featKey([]int{1})], math.Log(1.5)+1) {
		t.Errorf("idf %v", m.IDF[featKey([]int{1})])
	}
	for _, c := range []struct {
		tr   []int
		want float64
	}{{[]int{1, 2}, 1 - 1/math.Sqrt2}, {[]int{1}, 0}, {[]int{2, 2, 2}, 0}, {[]int{3}, 1}} {
		if got := m.Score(c.tr); !near(got, c.want) {
			t.Errorf("%v: %v, want %v", c.tr, got, c.want)
		}
	}
	// K = 2: the second nearest of 1 2 is as near as the first; of 1, B is orthogonal
	m2, _ := NewGramKNN(1, 2, false)
	m2.Train([][]int{{1, 1}, {2, 2}})
	if got := m2.Score([]int{1, 2}); !near(got, 1-1/math.Sqrt2) {
		t.Errorf("K=2, 1 2: %v", got)
	}
	if got := m2.Score([]int{1}); !near(got, 1) {
		t.Errorf("K=2, 1: %v", got)
	}
	// bigrams: a copy of a training trace scores 0; the stream's running
	// score matches a fresh score of each prefix
	m3, _ := NewGramKNN(2, 1, true)
	m3.Train([][]int{{1, 2, 3, 1, 2}, {4, 5, 4, 5}})
	if got := m3.Score([]int{1, 2, 3, 1, 2}); !near(got, 0) {
		t.Errorf("copy: %v", got)
	}
	tr := []int{4, 5, 1, 2, 9}
	st := m3.Stream()
	for i, c := range tr {
		if got, want := st.Push(c), m3.Score(tr[:i+1]); !near(got, want) {
			t.Errorf("prefix %d: stream %v, score %v", i+1, got, want)
		}
	}
	if err := m3.Train(nil); err == nil {
		t.Error("training on no traces accepted")
	}
}

// Training 3 4 3 4 (read write read write) holds bigrams 34:2, 43:1.
// The trace 3 4 5 4 3 has 34, 45, 54, 43 once each; the rarest three are
// 45 and 54 (never seen; 45 has the lower key) and then 43.
func TestRarestEvidence(t *testing.T) {
	c, _ := NewNgramCounts(2)
	c.Add([]int{3, 4, 3, 4})
	got := c.Rarest([]int{3, 4, 5, 4, 3}, 3)
	want := []struct {
		names string
		train uint32
	}{{"write,open", 0}, {"open,write", 0}, {"write,read", 1}}
	if len(got) != 3 {
		t.Fatalf("%d grams: %+v", len(got), got)
	}
	for i, w := range want {
		if got[i].Names != w.names || got[i].Training != w.train || got[i].Seen != 1 {
			t.Errorf("%d: %+v, want %s training %d", i, got[i], w.names, w.train)
		}
	}
	if SyscallName(11) != "execve" || SyscallName(9999) != "nr9999" {
		t.Errorf("names: %s %s", SyscallName(11), SyscallName(9999))
	}
}

// neg 0.1 0.4, pos 0.35 0.8: of the four pairs, positive above negative
// in three (0.35 < 0.4 is the miss), so AUC 3/4; a tie counts 1/2.
func TestAUCHandComputed(t *testing.T) {
	if got := AUC([]float64{0.1, 0.4}, []float64{0.35, 0.8}); !near(got, 0.75) {
		t.Errorf("AUC %v, want 0.75", got)
	}
	if got := AUC([]float64{1, 0}, []float64{1, 2}); !near(got, (1+0.5+1+1)/4) {
		t.Errorf("AUC with a tie %v, want 0.875", got)
	}
	if !math.IsNaN(AUC(nil, []float64{1})) {
		t.Error("AUC of no negatives is not NaN")
	}
	// 100 normal scores 1..100: at 1 % one (100) lies above the threshold 99; at 5 %, five above 95
	var neg []float64
	for i := 100; i >= 1; i-- {
		neg = append(neg, float64(i))
	}
	for _, c := range []struct{ fpr, t, rate float64 }{{0.01, 99, 0.01}, {0.05, 95, 0.05}} {
		th := ThresholdAtFPR(neg, c.fpr)
		if th != c.t || !near(RateAbove(neg, th), c.rate) {
			t.Errorf("fpr %v: threshold %v rate %v, want %v %v", c.fpr, th, RateAbove(neg, th), c.t, c.rate)
		}
	}
	// fewer than 1/fpr scores: the highest score, nothing above it
	if th := ThresholdAtFPR([]float64{3, 1, 2}, 0.01); th != 3 {
		t.Errorf("small set threshold %v", th)
	}
}

// Witten–Bell, order 1, trained on 1 2 (start code S): N = 2, V = 3;
// order 0 has count 2 and 2 distinct; contexts S and 1 count 1, 1
// distinct each. P(2 | 1): base (1+1)/(2+3) = .4; order 0 (1 + 2·.4)/4 =
// .45; order 1 (1 + 1·.45)/2 = .725. P(3 | 1): .2, then .4/4 = .1, then
// .1/2 = .05. A never-seen context (3) stops at order 0: P(1 | 3) = .45.
func TestInterpMarkovHandComputed(t *testing.T) {
	m, err := NewInterpMarkov(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	m.Train([][]int{{1, 2}})
	for _, c := range []struct {
		h    []int
		c    int
		want float64
	}{{[]int{1}, 2, 0.725}, {[]int{1}, 3, 0.05}, {[]int{3}, 1, 0.45}, {[]int{SeqOther}, 1, 0.725}} {
		if got := m.Prob(c.h, c.c); !near(got, c.want) {
			t.Errorf("P(%d | %v) = %v, want %v", c.c, c.h, got, c.want)
		}
	}
	r := m.Score([]int{1, 2})
	if want := -math.Log(0.725); !near(r.MeanNLL, want) || !near(r.MaxWin, want) {
		t.Errorf("score %+v, want mean and max %v", r, want)
	}
	st := m.Stream()
	st.Push(1)
	if nll, _ := st.Push(3); !near(nll, -math.Log(0.05)) {
		t.Errorf("stream NLL %v", nll)
	}
	// probabilities over the vocabulary and one unseen call sum to 1
	var sum float64
	for _, c := range []int{1, 2, 3} {
		sum += m.Prob([]int{1}, c)
	}
	if !near(sum, 1) {
		t.Errorf("P(· | 1) sums to %v", sum)
	}
}

// No model has randomness: training twice on the same traces gives
// bit-identical scores (map order must not leak into a sum).
func TestSeqModelsDeterministic(t *testing.T) {
	train := [][]int{{3, 4, 5, 6, 3, 4, 5, 6, 11}, {5, 6, 5, 6, 195, 221, 3}, {120, 114, 3, 4, 6}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}
	probe := []int{3, 4, 5, 6, 195, 120, 114, 3, 4, 9, 9, 10}
	score := func() []float64 {
		s, _ := NewStide(3, 4)
		s.Train(train)
		m, _ := NewMarkov(2, 0.1, 3)
		m.Train(train)
		w, _ := NewInterpMarkov(3, 3)
		w.Train(train)
		k, _ := NewGramKNN(3, 2, true)
		k.Train(train)
		ss, ms, ws := s.Score(probe), m.Score(probe), w.Score(probe)
		return []float64{ss.LFC, ss.MismatchRate, ms.MeanNLL, ms.MaxWin, ws.MeanNLL, ws.MaxWin, k.Score(probe)}
	}
	a := score()
	for i := 0; i < 20; i++ {
		b := score()
		for j := range a {
			if a[j] != b[j] {
				t.Fatalf("run %d score %d: %v != %v", i, j, b[j], a[j])
			}
		}
	}
}
