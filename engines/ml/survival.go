package ml

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Healing engine: a discrete-time hazard model, P(failure within the
// horizon | features now), as a logistic regression learned from the
// windows before recorded failures (positives: windows that ended within
// the horizon before a failure of that kind) and windows that did not
// (negatives). Until it has seen enough of both, the hand-set prior
// weights answer, so the engine works on day one and improves with its
// history.

// Hazard is one failure kind's model: p = σ(W·x + B).
type Hazard struct {
	W     []float64 `json:"w"`
	B     float64   `json:"b"`
	Pos   int       `json:"pos"` // positive windows it was fitted on
	Neg   int       `json:"neg"`
	Prior bool      `json:"prior"` // true while still the hand-set prior
}

// NewHazard returns a model with prior weights w and bias b.
func NewHazard(w []float64, b float64) *Hazard {
	return &Hazard{W: append([]float64(nil), w...), B: b, Prior: true}
}

// P is the probability of failure within the horizon for features x.
func (h *Hazard) P(x []float64) float64 {
	z := h.B
	for i, w := range h.W {
		if i < len(x) {
			z += w * x[i]
		}
	}
	return 1 / (1 + math.Exp(-z))
}

// MinFit is the fewest positives and negatives Fit needs to leave the prior.
const MinFit = 5

// Fit learns W and B by L2-regularised logistic regression (full-batch
// gradient descent from the prior, classes weighted to balance), seeded
// for a reproducible order. With fewer than MinFit of either class the
// model keeps its prior and Fit says why.
func (h *Hazard) Fit(x [][]float64, y []bool, seed uint64) error {
	var pos, neg int
	for _, v := range y {
		if v {
			pos++
		} else {
			neg++
		}
	}
	if pos < MinFit || neg < MinFit {
		return fmt.Errorf("hazard: %d positive and %d negative windows, need %d of each", pos, neg, MinFit)
	}
	d := len(h.W)
	prior := append([]float64(nil), h.W...)
	wp, wn := float64(len(y))/(2*float64(pos)), float64(len(y))/(2*float64(neg))
	idx := make([]int, len(y))
	for i := range idx {
		idx[i] = i
	}
	rng := rand.New(rand.NewPCG(seed, 0x5a7e))
	lr, lambda := 0.1, 0.01
	for epoch := 0; epoch < 400; epoch++ {
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		g := make([]float64, d)
		var gb float64
		for _, i := range idx {
			p := h.P(x[i])
			t, w := 0.0, wn
			if y[i] {
				t, w = 1, wp
			}
			e := w * (p - t)
			for k := 0; k < d && k < len(x[i]); k++ {
				g[k] += e * x[i][k]
			}
			gb += e
		}
		n := float64(len(y))
		for k := range h.W {
			h.W[k] -= lr * (g[k]/n + lambda*(h.W[k]-prior[k]))
		}
		h.B -= lr * gb / n
	}
	h.Pos, h.Neg, h.Prior = pos, neg, false
	return nil
}
