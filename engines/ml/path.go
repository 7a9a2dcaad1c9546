package ml

// Path returns the ensemble's point forecast for each of the next k
// steps (out[i] is i+1 steps after the last sample): every forecaster's
// Predict at 1..k, mixed with the ensemble weights of the smallest
// configured horizon at or beyond the step (the longest beyond the last
// one), the weights Forecasts uses at those horizons. It is read-only
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
	out := make([]float64, k)
	tmp := make([]float64, k)
	for m, f := range pr.models {
		f.Predict(hs, tmp)
		j := 0
		for i, h := range hs {
			for j < len(pr.p.Horizons)-1 && pr.p.Horizons[j] < h {
				j++
			}
			out[i] += pr.weight[j][m] * tmp[i]
		}
	}
	return out
}
