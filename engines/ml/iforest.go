package ml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

func sortFloats(s []float64) { sort.Float64s(s) }

// IForest is an isolation forest (Liu, Ting and Zhou, "Isolation
// Forest", ICDM 2008): Trees random trees, each grown on a subsample of
// Sample rows without replacement to depth ceil(log2 Sample), splitting
// on a random feature at a uniform random value between the node's
// minimum and maximum. An anomaly is isolated in few splits; the score of
// x is s(x) = 2^(-E[h(x)]/c(Sample)), where h is the path length with
// c(size) added at an unsplit leaf of size rows, and c(n) = 2H(n-1) -
// 2(n-1)/n is the average path length of an unsuccessful BST search.
// s near 1: anomaly; s at or below 0.5: normal.
type IForest struct {
	Sample int      `json:"sample"`
	Trees  []*ITree `json:"trees"`
}

// ITree is one isolation tree in array form: node i splits on Feature[i]
// at Split[i], children Left[i] and Right[i]; a leaf has Left[i] = -1 and
// Size[i] rows.
type ITree struct {
	Feature []int     `json:"f"`
	Split   []float64 `json:"s"`
	Left    []int     `json:"l"`
	Right   []int     `json:"r"`
	Size    []int     `json:"n"`
}

// C is c(n), the expected path length of an unsuccessful search in a
// binary search tree of n keys.
func C(n int) float64 {
	switch {
	case n <= 1:
		return 0
	case n == 2:
		return 1
	}
	h := math.Log(float64(n-1)) + 0.5772156649015329 // H(n-1) ≈ ln(n-1) + γ
	return 2*h - 2*float64(n-1)/float64(n)
}

// TrainIForest grows trees trees (default 100) on subsamples of sample
// rows (default 256, capped at len(rows)), deterministic under seed.
func TrainIForest(rows [][]float64, trees, sample int, seed uint64) (*IForest, error) {
	if len(rows) < 2 {
		return nil, fmt.Errorf("ml: isolation forest needs at least 2 rows, got %d", len(rows))
	}
	if trees <= 0 {
		trees = 100
	}
	if sample <= 0 {
		sample = 256
	}
	if sample > len(rows) {
		sample = len(rows)
	}
	rng := rand.New(rand.NewPCG(seed, 0x1f0e57))
	limit := int(math.Ceil(math.Log2(float64(sample))))
	f := &IForest{Sample: sample}
	idx := make([]int, len(rows))
	for t := 0; t < trees; t++ {
		for i := range idx {
			idx[i] = i
		}
		// partial Fisher-Yates: the first sample entries are the subsample
		for i := 0; i < sample; i++ {
			j := i + rng.IntN(len(idx)-i)
			idx[i], idx[j] = idx[j], idx[i]
		}
		tr := &ITree{}
		sub := append([]int(nil), idx[:sample]...)
		tr.grow(rows, sub, 0, limit, rng)
		f.Trees = append(f.Trees, tr)
	}
	return f, nil
}

func (t *ITree) node() int {
	t.Feature = append(t.Feature, -1)
	t.Split = append(t.Split, 0)
	t.Left = append(t.Left, -1)
	t.Right = append(t.Right, -1)
	t.Size = append(t.Size, 0)
	return len(t.Feature) - 1
}

func (t *ITree) grow(rows [][]float64, idx []int, depth, limit int, rng *rand.Rand) int {
	n := t.node()
	t.Size[n] = len(idx)
	if depth >= limit || len(idx) <= 1 {
		return n
	}
	d := len(rows[idx[0]])
	// pick a random feature among those that vary here
	perm := rng.Perm(d)
	for _, f := range perm {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, i := range idx {
			v := rows[i][f]
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		if !(hi > lo) {
			continue
		}
		s := lo + rng.Float64()*(hi-lo)
		var l, r []int
		for _, i := range idx {
			if rows[i][f] < s {
				l = append(l, i)
			} else {
				r = append(r, i)
			}
		}
		t.Feature[n], t.Split[n] = f, s
		li := t.grow(rows, l, depth+1, limit, rng)
		ri := t.grow(rows, r, depth+1, limit, rng)
		t.Left[n], t.Right[n] = li, ri
		return n
	}
	return n // every feature constant: a leaf
}

func (t *ITree) path(x []float64) float64 {
	n, h := 0, 0.0
	for t.Left[n] >= 0 {
		if x[t.Feature[n]] < t.Split[n] {
			n = t.Left[n]
		} else {
			n = t.Right[n]
		}
		h++
	}
	return h + C(t.Size[n])
}

// Score is s(x) in 0..1.
func (f *IForest) Score(x []float64) float64 {
	if len(f.Trees) == 0 {
		return 0
	}
	sum := 0.0
	for _, t := range f.Trees {
		sum += t.path(x)
	}
	e := sum / float64(len(f.Trees))
	return math.Exp2(-e / C(f.Sample))
}

// Check validates a decoded forest's shape against dim features so that
// a damaged or hostile model cannot index out of range at scoring time.
func (f *IForest) Check(dim int) error {
	if f.Sample < 2 || len(f.Trees) == 0 {
		return fmt.Errorf("ml: isolation forest: sample %d, %d trees", f.Sample, len(f.Trees))
	}
	for k, t := range f.Trees {
		n := len(t.Feature)
		if n == 0 || len(t.Split) != n || len(t.Left) != n || len(t.Right) != n || len(t.Size) != n {
			return fmt.Errorf("ml: isolation tree %d: ragged arrays", k)
		}
		for i := 0; i < n; i++ {
			if t.Left[i] < 0 {
				continue
			}
			// children come after their parent: no cycles
			if t.Left[i] <= i || t.Left[i] >= n || t.Right[i] <= i || t.Right[i] >= n || t.Feature[i] < 0 || t.Feature[i] >= dim {
				return fmt.Errorf("ml: isolation tree %d node %d: bad child or feature", k, i)
			}
		}
	}
	return nil
}
