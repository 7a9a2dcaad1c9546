package mem

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Locality classes.
const (
	Temporal = "temporal" // the same pages again within a short window
	Spatial  = "spatial"  // the next access lands next to the last one
	Random   = "random"   // neither
)

// StreamAnalyzer sees every page access of a fabric region and learns its
// pattern: working-set size per sampling period, per-page access
// frequency (decayed each period), hot and cold ranges and locality.
type StreamAnalyzer struct {
	pageSize int64
	lastPage int64
	started  bool
	// Decayed fractions of accesses that were near the previous one
	// (spatial) and that re-touched a page seen in the last window
	// (temporal).
	spatial, temporal float64
	recent            map[int64]int64 // page -> access index, pruned to window
	idx               int64
	window            int64
	// Per period.
	touched  map[int64]bool
	accesses int64
	// Decayed per-page scores.
	score map[int64]float64
	// History of (time, wss bytes).
	hist      []WSSPoint
	maxHist   int
	lastTick  time.Time
	Frequency float64 // accesses per second over the last period
	Total     int64
}

// WSSPoint is one working-set sample.
type WSSPoint struct {
	Time  time.Time
	Bytes int64
}

// NewStreamAnalyzer returns an analyzer for pages of pageSize bytes.
func NewStreamAnalyzer(pageSize int64) *StreamAnalyzer {
	return &StreamAnalyzer{pageSize: pageSize, recent: map[int64]int64{}, window: 4096,
		touched: map[int64]bool{}, score: map[int64]float64{}, maxHist: 120}
}

// Access records one access to page.
func (a *StreamAnalyzer) Access(page int64) {
	a.idx++
	a.Total++
	a.accesses++
	const alpha = 0.01
	near, again := 0.0, 0.0
	if a.started && absI(page-a.lastPage) <= 2 && page != a.lastPage {
		near = 1
	}
	if at, ok := a.recent[page]; ok && a.idx-at <= a.window {
		again = 1
	}
	a.spatial += alpha * (near - a.spatial)
	a.temporal += alpha * (again - a.temporal)
	a.recent[page] = a.idx
	if int64(len(a.recent)) > 2*a.window {
		for k, at := range a.recent {
			if a.idx-at > a.window {
				delete(a.recent, k)
			}
		}
	}
	a.started = true
	a.lastPage = page
	a.touched[page] = true
	a.score[page]++
}

// Locality is the learned class.
func (a *StreamAnalyzer) Locality() string {
	// Spatial first: a loop over a range is both, and its sequence is
	// what prefetch can use.
	switch {
	case a.spatial >= 0.5:
		return Spatial
	case a.temporal >= 0.5:
		return Temporal
	case a.spatial >= 0.3:
		return Spatial
	}
	return Random
}

// Tick closes a sampling period: records the working set, the access
// rate and decays page scores (halving each period).
func (a *StreamAnalyzer) Tick(now time.Time) {
	if !a.lastTick.IsZero() {
		if dt := now.Sub(a.lastTick).Seconds(); dt > 0 {
			a.Frequency = float64(a.accesses) / dt
		}
	}
	a.lastTick = now
	a.hist = append(a.hist, WSSPoint{now, int64(len(a.touched)) * a.pageSize})
	if len(a.hist) > a.maxHist {
		a.hist = a.hist[1:]
	}
	a.touched = map[int64]bool{}
	a.accesses = 0
	for k, v := range a.score {
		if v *= 0.5; v < 0.01 {
			delete(a.score, k)
		} else {
			a.score[k] = v
		}
	}
}

// WSS is the working set in bytes: the pages touched in the last closed
// period, or in the current one when it has touched more already (a
// burst that began after the last tick).
func (a *StreamAnalyzer) WSS() int64 {
	cur := int64(len(a.touched)) * a.pageSize
	if len(a.hist) == 0 {
		return cur
	}
	return max(cur, a.hist[len(a.hist)-1].Bytes)
}

// History returns the working-set samples, oldest first.
func (a *StreamAnalyzer) History() []WSSPoint { return append([]WSSPoint(nil), a.hist...) }

// ScoredRange is a range of pages with its summed decayed score.
type ScoredRange struct {
	PageRange
	Score float64
}

// Ranges merges scored pages into contiguous ranges; hot ones (score at
// least min) sorted by score, highest first.
func (a *StreamAnalyzer) Ranges(min float64) []ScoredRange {
	var pages []int64
	for k, v := range a.score {
		if v >= min {
			pages = append(pages, k)
		}
	}
	sort.Slice(pages, func(i, j int) bool { return pages[i] < pages[j] })
	var out []ScoredRange
	for _, p := range pages {
		if n := len(out); n > 0 && out[n-1].Last == p-1 {
			out[n-1].Last = p
			out[n-1].Score += a.score[p]
			continue
		}
		out = append(out, ScoredRange{PageRange{p, p}, a.score[p]})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Score > out[j].Score })
	return out
}

// Cold returns ranges among pages that were touched and have decayed to a
// low score: seen before, unused lately.
func (a *StreamAnalyzer) Cold(max float64) []ScoredRange {
	var pages []int64
	for k, v := range a.score {
		if v < max {
			pages = append(pages, k)
		}
	}
	sort.Slice(pages, func(i, j int) bool { return pages[i] < pages[j] })
	var out []ScoredRange
	for _, p := range pages {
		if n := len(out); n > 0 && out[n-1].Last == p-1 {
			out[n-1].Last = p
			out[n-1].Score += a.score[p]
			continue
		}
		out = append(out, ScoredRange{PageRange{p, p}, a.score[p]})
	}
	return out
}

// Fractions are the learned spatial and temporal shares, for `pattern`.
func (a *StreamAnalyzer) Fractions() (spatial, temporal float64) { return a.spatial, a.temporal }

func absI(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func ff(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "0"
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.4f", x), "0"), ".")
}
