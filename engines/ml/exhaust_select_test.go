package ml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// theilSenSorted is TheilSen as it was before selection: a fresh slice of
// slopes and a sorted copy for each median. The reference the faster one
// must match bit for bit.
func theilSenSorted(t, y []float64) (a, b float64, ok bool) {
	n := len(t)
	if n != len(y) || n < 2 {
		return 0, 0, false
	}
	var slopes []float64
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			if dt := t[j] - t[i]; dt > 0 {
				slopes = append(slopes, (y[j]-y[i])/dt)
			}
		}
	}
	if len(slopes) == 0 {
		return 0, 0, false
	}
	med := exhaustMedian // the sorted-copy median TheilSen used
	b = med(slopes)
	res := make([]float64, n)
	for i := range t {
		res[i] = y[i] - b*t[i]
	}
	return med(res), b, true
}

// Windows of every shape the healing engine sees (a leak, a sawtooth,
// ties, a constant series, repeated times, odd and even counts of
// slopes, a NaN) give bit for bit the sort-based fit, and TimeToExhaust
// the same projection as the sort-based fit's.
func TestTheilSenSelect(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 2000 {
		n := 1 + r.IntN(64)
		ts := make([]float64, n)
		ys := make([]float64, n)
		now := 1.764e9
		for i := range ts {
			now += float64(r.IntN(3)) * 0.5 // repeated times too
			ts[i] = now
			switch trial % 5 {
			case 0:
				ys[i] = 1e6 + float64(i)*4096 + float64(r.IntN(3))*4096 // a leak with noise
			case 1:
				ys[i] = float64(i % 7) // a sawtooth
			case 2:
				ys[i] = float64(r.IntN(3)) // many ties
			case 3:
				ys[i] = 42 // constant
			default:
				ys[i] = r.NormFloat64()
				if r.IntN(50) == 0 {
					ys[i] = math.NaN()
				}
			}
		}
		a, b, ok := TheilSen(ts, ys)
		wa, wb, wok := theilSenSorted(ts, ys)
		if fmt.Sprint(a, b, ok) != fmt.Sprint(wa, wb, wok) {
			t.Fatalf("trial %d (n=%d): got %v %v %v, want %v %v %v", trial, n, a, b, ok, wa, wb, wok)
		}
		limit := 2e6
		got := TimeToExhaust(ts, ys, limit)
		want := Exhaustion{Level: ys[n-1], ETA: math.Inf(1)}
		if wok {
			if fit := wa + wb*ts[n-1]; fit > want.Level {
				want.Level = fit
			}
			want.Slope, want.Tau = wb, Monotonic(ts, ys)
		}
		want = want.project(limit)
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Fatalf("trial %d (n=%d): TimeToExhaust %+v, want %+v", trial, n, got, want)
		}
	}
}

// A full window of an idle agent's series (constant) and of a leak, as
// the healing engine fits them on every pass.
func BenchmarkTimeToExhaust(b *testing.B) {
	ts := make([]float64, 64)
	leak := make([]float64, 64)
	flat := make([]float64, 64)
	for i := range ts {
		ts[i] = 1.764e9 + float64(i)
		leak[i] = 1e6 + float64(i*4096+(i%3)*512)
		flat[i] = 12
	}
	b.Run("leak", func(b *testing.B) {
		for b.Loop() {
			TimeToExhaust(ts, leak, 2e6)
		}
	})
	b.Run("flat", func(b *testing.B) {
		for b.Loop() {
			TimeToExhaust(ts, flat, 1024)
		}
	})
	b.Run("leak-sorted", func(b *testing.B) {
		for b.Loop() {
			theilSenSorted(ts, leak)
			Monotonic(ts, leak)
		}
	})
}
