package ml

import (
	"math"
	"sort"
)

// AUC is the area under the ROC curve of scores where higher means more
// anomalous: the probability that a random positive scores above a
// random negative, ties counting one half (the Mann–Whitney U statistic
// over |pos|·|neg|). NaN when either side is empty.
func AUC(neg, pos []float64) float64 {
	if len(neg) == 0 || len(pos) == 0 {
		return math.NaN()
	}
	type sc struct {
		v   float64
		pos bool
	}
	all := make([]sc, 0, len(neg)+len(pos))
	for _, v := range neg {
		all = append(all, sc{v, false})
	}
	for _, v := range pos {
		all = append(all, sc{v, true})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	// average ranks (1-based) over ties, summed over positives
	var rankSum float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		r := float64(i+1+j) / 2
		for k := i; k < j; k++ {
			if all[k].pos {
				rankSum += r
			}
		}
		i = j
	}
	np, nn := float64(len(pos)), float64(len(neg))
	return (rankSum - np*(np+1)/2) / (np * nn)
}

// ThresholdAtFPR picks, from normal scores alone, the lowest threshold t
// such that at most a fraction fpr of them score above t (a trace is
// flagged when its score > t). With fewer than 1/fpr scores that is the
// highest score.
func ThresholdAtFPR(neg []float64, fpr float64) float64 {
	if len(neg) == 0 {
		return math.Inf(1)
	}
	s := append([]float64(nil), neg...)
	sort.Sort(sort.Reverse(sort.Float64Slice(s)))
	k := int(math.Floor(fpr * float64(len(s)))) // scores allowed above t
	if k >= len(s) {
		return math.Inf(-1)
	}
	return s[k]
}

// RateAbove is the fraction of scores above t.
func RateAbove(scores []float64, t float64) float64 {
	if len(scores) == 0 {
		return math.NaN()
	}
	n := 0
	for _, v := range scores {
		if v > t {
			n++
		}
	}
	return float64(n) / float64(len(scores))
}
