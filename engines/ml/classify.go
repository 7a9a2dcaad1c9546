package ml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Forest is a random-forest classifier (Breiman 2001): Trees CART trees,
// each grown on a bootstrap sample of the labelled rows, choosing at each
// node the best Gini split among Mtry features drawn at random. A
// prediction is the mean of the trees' leaf class distributions; its
// explanation is the per-feature contribution to the predicted class's
// probability along each tree's path (Saabas' decomposition: the change
// in the node's class distribution at each split is credited to the
// split's feature), averaged over trees. The contributions plus the
// root's prior sum to the probability.
type Forest struct {
	Classes  []string `json:"classes"`
	Features []string `json:"features"`
	Trees    []*CTree `json:"trees"`
}

// CTree is one classification tree in array form. Node i: a split on
// Feature[i] at Split[i] (x < Split goes Left) or, with Left[i] = -1, a
// leaf. Dist[i] is the class distribution of the training rows that
// reached node i (it sums to 1).
type CTree struct {
	Feature []int       `json:"f"`
	Split   []float64   `json:"s"`
	Left    []int       `json:"l"`
	Right   []int       `json:"r"`
	Dist    [][]float64 `json:"p"`
}

// ForestParams are the training knobs; zero fields take the defaults.
type ForestParams struct {
	Trees    int // default 60
	MaxDepth int // default 10
	MinLeaf  int // default 2
	Mtry     int // features tried per split; default sqrt(d)
	Seed     uint64
	// Weights per class (by index), to balance rare classes; nil: each
	// class weighted by 1/its frequency.
	Weights []float64
}

// TrainForest trains on rows with labels y (class indices into classes).
func TrainForest(rows [][]float64, y []int, classes, features []string, p ForestParams) (*Forest, error) {
	if len(rows) == 0 || len(rows) != len(y) {
		return nil, fmt.Errorf("ml: forest: %d rows, %d labels", len(rows), len(y))
	}
	d := len(rows[0])
	if len(features) != d {
		return nil, fmt.Errorf("ml: forest: %d feature names for %d columns", len(features), d)
	}
	k := len(classes)
	for _, c := range y {
		if c < 0 || c >= k {
			return nil, fmt.Errorf("ml: forest: label %d outside %d classes", c, k)
		}
	}
	if p.Trees <= 0 {
		p.Trees = 60
	}
	if p.MaxDepth <= 0 {
		p.MaxDepth = 10
	}
	if p.MinLeaf <= 0 {
		p.MinLeaf = 2
	}
	if p.Mtry <= 0 || p.Mtry > d {
		p.Mtry = int(math.Max(1, math.Round(math.Sqrt(float64(d)))))
	}
	w := p.Weights
	if w == nil {
		cnt := make([]float64, k)
		for _, c := range y {
			cnt[c]++
		}
		w = make([]float64, k)
		for c := range w {
			if cnt[c] > 0 {
				w[c] = float64(len(y)) / (float64(k) * cnt[c])
			}
		}
	}
	rng := rand.New(rand.NewPCG(p.Seed, 0xc1a55))
	f := &Forest{Classes: append([]string(nil), classes...), Features: append([]string(nil), features...)}
	g := grower{rows: rows, y: y, w: w, k: k, p: p, rng: rng}
	for t := 0; t < p.Trees; t++ {
		idx := make([]int, len(rows))
		for i := range idx {
			idx[i] = rng.IntN(len(rows))
		}
		tr := &CTree{}
		g.grow(tr, idx, 0)
		f.Trees = append(f.Trees, tr)
	}
	return f, nil
}

type grower struct {
	rows [][]float64
	y    []int
	w    []float64
	k    int
	p    ForestParams
	rng  *rand.Rand
}

func (g *grower) dist(idx []int) ([]float64, float64) {
	d := make([]float64, g.k)
	tot := 0.0
	for _, i := range idx {
		d[g.y[i]] += g.w[g.y[i]]
		tot += g.w[g.y[i]]
	}
	if tot > 0 {
		for c := range d {
			d[c] /= tot
		}
	}
	return d, tot
}

func gini(d []float64) float64 {
	s := 1.0
	for _, v := range d {
		s -= v * v
	}
	return s
}

func (g *grower) grow(t *CTree, idx []int, depth int) int {
	n := len(t.Feature)
	dist, _ := g.dist(idx)
	t.Feature = append(t.Feature, -1)
	t.Split = append(t.Split, 0)
	t.Left = append(t.Left, -1)
	t.Right = append(t.Right, -1)
	t.Dist = append(t.Dist, dist)
	if depth >= g.p.MaxDepth || len(idx) < 2*g.p.MinLeaf || gini(dist) < 1e-12 {
		return n
	}
	d := len(g.rows[0])
	bestF, bestS, bestImp := -1, 0.0, gini(dist)-1e-9
	feats := g.rng.Perm(d)[:g.p.Mtry]
	type vy struct {
		v float64
		c int
	}
	buf := make([]vy, len(idx))
	for _, f := range feats {
		for j, i := range idx {
			buf[j] = vy{g.rows[i][f], g.y[i]}
		}
		sort.Slice(buf, func(a, b int) bool { return buf[a].v < buf[b].v })
		left := make([]float64, g.k)
		right := make([]float64, g.k)
		lt, rt := 0.0, 0.0
		for _, e := range buf {
			right[e.c] += g.w[e.c]
			rt += g.w[e.c]
		}
		for j := 0; j < len(buf)-1; j++ {
			c := buf[j].c
			left[c] += g.w[c]
			lt += g.w[c]
			right[c] -= g.w[c]
			rt -= g.w[c]
			if buf[j].v == buf[j+1].v || j+1 < g.p.MinLeaf || len(buf)-j-1 < g.p.MinLeaf {
				continue
			}
			gl, gr := 1.0, 1.0
			for c := 0; c < g.k; c++ {
				gl -= (left[c] / lt) * (left[c] / lt)
				gr -= (right[c] / rt) * (right[c] / rt)
			}
			imp := (lt*gl + rt*gr) / (lt + rt)
			if imp < bestImp {
				bestImp, bestF, bestS = imp, f, (buf[j].v+buf[j+1].v)/2
			}
		}
	}
	if bestF < 0 {
		return n
	}
	var l, r []int
	for _, i := range idx {
		if g.rows[i][bestF] < bestS {
			l = append(l, i)
		} else {
			r = append(r, i)
		}
	}
	t.Feature[n], t.Split[n] = bestF, bestS
	li := g.grow(t, l, depth+1)
	ri := g.grow(t, r, depth+1)
	t.Left[n], t.Right[n] = li, ri
	return n
}

// Prediction is a forest's answer for one row.
type Prediction struct {
	Class int       // argmax of Prob
	Prob  []float64 // per class, sums to 1
	// Contrib[f] is feature f's contribution to Prob[Class].
	Contrib []float64
}

// Predict classifies x: one pass down every tree for the class
// distribution, a second for the predicted class's contributions.
// Work is O(trees·depth).
func (f *Forest) Predict(x []float64) Prediction {
	p := f.Proba(x, nil)
	p.Contrib = f.Explain(x, p.Class)
	return p
}

// Proba is Predict without the contributions (Contrib nil): the first of
// its two passes, for a caller that explains only some answers (the
// threat detector explains a window only when it names an attack).
// prob, when it has room for every class, is used for Prob.
func (f *Forest) Proba(x []float64, prob []float64) Prediction {
	if cap(prob) >= len(f.Classes) {
		prob = prob[:len(f.Classes)]
		clear(prob)
	} else {
		prob = make([]float64, len(f.Classes))
	}
	p := Prediction{Prob: prob}
	for _, t := range f.Trees {
		n := 0
		for t.Left[n] >= 0 {
			if x[t.Feature[n]] < t.Split[n] {
				n = t.Left[n]
			} else {
				n = t.Right[n]
			}
		}
		for c, v := range t.Dist[n] {
			p.Prob[c] += v
		}
	}
	nt := float64(len(f.Trees))
	for c := range p.Prob {
		p.Prob[c] /= nt
		if p.Prob[c] > p.Prob[p.Class] {
			p.Class = c
		}
	}
	return p
}

// Top returns the indices of the n features with the largest positive
// contributions, largest first.
func (p Prediction) Top(n int) []int {
	var idx []int
	for i, v := range p.Contrib {
		if v > 0 {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return p.Contrib[idx[a]] > p.Contrib[idx[b]] })
	if len(idx) > n {
		idx = idx[:n]
	}
	return idx
}

// Check validates a decoded forest's shape so that scoring cannot index
// out of range or loop.
func (f *Forest) Check() error {
	k, d := len(f.Classes), len(f.Features)
	if k < 2 || d == 0 || len(f.Trees) == 0 {
		return fmt.Errorf("ml: forest: %d classes, %d features, %d trees", k, d, len(f.Trees))
	}
	for ti, t := range f.Trees {
		n := len(t.Feature)
		if n == 0 || len(t.Split) != n || len(t.Left) != n || len(t.Right) != n || len(t.Dist) != n {
			return fmt.Errorf("ml: forest tree %d: ragged arrays", ti)
		}
		for i := 0; i < n; i++ {
			if len(t.Dist[i]) != k {
				return fmt.Errorf("ml: forest tree %d node %d: distribution of %d classes", ti, i, len(t.Dist[i]))
			}
			if t.Left[i] < 0 {
				continue
			}
			if t.Left[i] <= i || t.Left[i] >= n || t.Right[i] <= i || t.Right[i] >= n || t.Feature[i] < 0 || t.Feature[i] >= d {
				return fmt.Errorf("ml: forest tree %d node %d: bad child or feature", ti, i)
			}
		}
	}
	return nil
}

// Explain returns the per-feature contributions to class c's
// probability for x (Saabas' decomposition, as in Predict).
func (f *Forest) Explain(x []float64, c int) []float64 {
	out := make([]float64, len(f.Features))
	nt := float64(len(f.Trees))
	for _, t := range f.Trees {
		n := 0
		for t.Left[n] >= 0 {
			next := t.Right[n]
			if x[t.Feature[n]] < t.Split[n] {
				next = t.Left[n]
			}
			out[t.Feature[n]] += (t.Dist[next][c] - t.Dist[n][c]) / nt
			n = next
		}
	}
	return out
}
