package ml

import (
	"encoding/json"
	"fmt"
	"math"
)

// Baseline is a streaming robust per-feature baseline of one agent's
// normal behaviour: an exponentially weighted mean and variance per
// feature (Welford's update with a forgetting factor), where each new
// value is first clipped to mean ± Clip·sd so that a burst cannot drag
// the baseline toward itself. Memory and work per update are O(features),
// whatever the agent's age: the window is bounded by the half-life.
//
// Z gives robust z-scores: (x-mean)/max(sd, floor), where floor keeps a
// feature that has always been 0 (no forks, say) from turning its first
// fork into an infinite score; the floor is Floor[i] when set, else
// 5% of |mean| plus MinScale.
type Baseline struct {
	HalfLife float64   // in updates; default 120
	Clip     float64   // clip new values to mean ± Clip·sd once warm; default 4
	Warm     int       // updates before Z is trusted (Ready); default 20
	MinScale float64   // absolute floor on the scale; default 1e-3
	Floor    []float64 // optional per-feature scale floors (same units as the feature)

	N    int       `json:"n"`
	Mean []float64 `json:"mean"`
	Var  []float64 `json:"var"`
}

// NewBaseline returns a Baseline of d features with the defaults.
func NewBaseline(d int) *Baseline {
	return &Baseline{HalfLife: 120, Clip: 4, Warm: 20, MinScale: 1e-3,
		Mean: make([]float64, d), Var: make([]float64, d)}
}

// Dim is the number of features.
func (b *Baseline) Dim() int { return len(b.Mean) }

// Ready reports whether enough has been seen for Z to mean something.
func (b *Baseline) Ready() bool { return b.N >= b.Warm }

// Update folds x (len Dim) into the baseline. Non-finite values are
// ignored feature by feature.
func (b *Baseline) Update(x []float64) {
	if len(x) != len(b.Mean) {
		panic(fmt.Sprintf("ml: baseline of %d features updated with %d", len(b.Mean), len(x)))
	}
	b.N++
	alpha := 1 / float64(b.N) // plain Welford while young
	if hl := b.halfLife(); float64(b.N) > hl {
		alpha = 1 - math.Exp2(-1/hl)
	}
	for i, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		if b.N > b.Warm && b.Clip > 0 {
			sd := b.scale(i)
			lo, hi := b.Mean[i]-b.Clip*sd, b.Mean[i]+b.Clip*sd
			v = math.Max(lo, math.Min(hi, v))
		}
		if b.N == 1 {
			b.Mean[i] = v
			b.Var[i] = 0
			continue
		}
		d := v - b.Mean[i]
		b.Mean[i] += alpha * d
		b.Var[i] = (1 - alpha) * (b.Var[i] + alpha*d*d)
	}
}

func (b *Baseline) halfLife() float64 {
	if b.HalfLife <= 0 {
		return 120
	}
	return b.HalfLife
}

func (b *Baseline) scale(i int) float64 {
	f := b.MinScale
	if f <= 0 {
		f = 1e-3
	}
	if i < len(b.Floor) && b.Floor[i] > 0 {
		f = math.Max(f, b.Floor[i])
	} else {
		f = math.Max(f, 0.05*math.Abs(b.Mean[i]))
	}
	return math.Max(math.Sqrt(b.Var[i]), f)
}

// Z writes the robust z-score of every feature of x into out (len Dim)
// and returns out. Before any update every z is 0.
func (b *Baseline) Z(x, out []float64) []float64 {
	if out == nil {
		out = make([]float64, len(b.Mean))
	}
	for i := range b.Mean {
		if b.N == 0 || math.IsNaN(x[i]) || math.IsInf(x[i], 0) {
			out[i] = 0
			continue
		}
		out[i] = (x[i] - b.Mean[i]) / b.scale(i)
	}
	return out
}

// AnomalyScore maps z-scores to 0..1: the largest positive z (only
// increases are suspicious: an agent doing less is not a threat), passed
// through 1-exp(-(z-k)/k) above k, 0 below. k = 3 by default.
func AnomalyScore(z []float64, k float64) (score float64, worst int) {
	if k <= 0 {
		k = 3
	}
	worst = -1
	m := 0.0
	for i, v := range z {
		if v > m {
			m, worst = v, i
		}
	}
	if m <= k {
		return 0, worst
	}
	return 1 - math.Exp(-(m-k)/k), worst
}

// MarshalJSON/UnmarshalJSON keep the parameters with the state so that a
// saved baseline resumes exactly.
type baselineJSON struct {
	HalfLife, Clip, MinScale float64
	Warm                     int
	Floor                    []float64 `json:",omitempty"`
	N                        int
	Mean, Var                []float64
}

func (b *Baseline) MarshalJSON() ([]byte, error) {
	return json.Marshal(baselineJSON{b.HalfLife, b.Clip, b.MinScale, b.Warm, b.Floor, b.N, b.Mean, b.Var})
}

func (b *Baseline) UnmarshalJSON(p []byte) error {
	var j baselineJSON
	if err := json.Unmarshal(p, &j); err != nil {
		return err
	}
	if len(j.Mean) != len(j.Var) || j.N < 0 {
		return fmt.Errorf("ml: baseline: mean has %d features, var %d", len(j.Mean), len(j.Var))
	}
	for i := range j.Var {
		if j.Var[i] < 0 || math.IsNaN(j.Var[i]) || math.IsNaN(j.Mean[i]) {
			return fmt.Errorf("ml: baseline: feature %d: bad mean/var", i)
		}
	}
	*b = Baseline{HalfLife: j.HalfLife, Clip: j.Clip, MinScale: j.MinScale, Warm: j.Warm, Floor: j.Floor, N: j.N, Mean: j.Mean, Var: j.Var}
	return nil
}

// Clip bounds every value of x to [lo[i], hi[i]] in place: the
// sanitiser's outlier clip applied before training.
func ClipRows(rows [][]float64, lo, hi []float64) {
	for _, r := range rows {
		for i := range r {
			if math.IsNaN(r[i]) || math.IsInf(r[i], 0) {
				r[i] = 0
			}
			if i < len(lo) && r[i] < lo[i] {
				r[i] = lo[i]
			}
			if i < len(hi) && r[i] > hi[i] {
				r[i] = hi[i]
			}
		}
	}
}

// Quantiles returns, per column, the q-th quantile of rows (0..1).
func Quantiles(rows [][]float64, q float64) []float64 {
	if len(rows) == 0 {
		return nil
	}
	d := len(rows[0])
	out := make([]float64, d)
	col := make([]float64, len(rows))
	for j := 0; j < d; j++ {
		for i, r := range rows {
			col[i] = r[j]
		}
		out[j] = quantile(col, q)
	}
	return out
}

func quantile(x []float64, q float64) float64 {
	s := append([]float64(nil), x...)
	sortFloats(s)
	if len(s) == 0 {
		return 0
	}
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	f := pos - float64(i)
	return s[i]*(1-f) + s[i+1]*f
}
