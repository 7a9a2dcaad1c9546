package ml

// Path returns the ensemble's point forecast for each of the next k
// steps (out[i] is i+1 steps after the last sample): every forecaster's
// Predict at 1..k, mixed with the ensemble weights of the smallest
// configured horizon at or beyond the step, the weights Forecasts uses
// at those horizons. Only horizons already scored count (a horizon of h
// steps is first scored h samples in; until then its weights are all on
// the last value, which would paint the instant's sample over the rest
// of the path): beyond the longest scored one its weights carry on, and
// with none scored it is the last value throughout. It is read-only
// (no sample is scored or learned from) and is meant for callers that
// want the shape of the forecast between the horizons, such as the
// scheduler's host forecast that the healing engine places maintenance
// windows by. Nil before the first sample or for k < 1.
func (pr *Predictor) Path(k int) []float64 {
	if k < 1 || pr.t == 0 || len(pr.p.Horizons) == 0 {
		return nil
	}
	hs := make([]int, k)
	for i := range hs {
		hs[i] = i + 1
	}
	// scored are the indices of the horizons scored so far, ascending.
	var scored []int
	for j := range pr.p.Horizons {
		if pr.ens[j].n > 0 {
			scored = append(scored, j)
		}
	}
	if len(scored) == 0 {
		scored = []int{0} // all on the last value (reweight's rule)
	}
	out := make([]float64, k)
	tmp := make([]float64, k)
	for m, f := range pr.models {
		f.Predict(hs, tmp)
		c := 0
		for i, h := range hs {
			for c < len(scored)-1 && pr.p.Horizons[scored[c]] < h {
				c++
			}
			out[i] += pr.weight[scored[c]][m] * tmp[i]
		}
	}
	return out
}
