package mem

import (
	"time"

	"aiosfs/hal/vm"
)

// What reading a busy agent's smaps every K ticks (Tuning.Every) costs
// the analyzer's figures, measured on reference traces by the analyzer's
// own update (procMem.update): scripts/eval/mem -sampling prints it.

// RefTrace is one agent's memory references over time at the grain the
// analyzer sees: mappings of Pages pages each, and per tick of the
// engine the distinct (mapping, page) pairs referenced in it. A page
// once referenced stays resident (no reclaim).
type RefTrace struct {
	Name  string
	Pages []int       // pages of each mapping
	Ticks [][]PageRef // per tick, the pages referenced in it
}

// PageRef is one page of one mapping of a RefTrace.
type PageRef struct{ Map, Page int32 }

// SamplingResult is what EvalSampling measured, summed over the periods
// it scored: each ends at a tick t, where the analyzer's state is what
// paging would act on, and is judged against the ticks (t, t+horizon].
type SamplingResult struct {
	Every, Periods int
	// PickTouched is the share of the analyzer's picks (the 4 coldest
	// mappings by the ranking in use, what Page advises first) that are
	// referenced within the horizon: a pageout that comes back.
	PickTouched float64
	// ColdFound is the share of the resident bytes not referenced within
	// the horizon (safe to page out) that the analyzer lists cold;
	// ColdWrong the share of the bytes it lists cold that are referenced
	// within it.
	ColdFound, ColdWrong float64
	// WSS is the mean of the wss figure (bytes referenced in a period)
	// over the scored periods.
	WSS float64
}

// EvalSampling replays tr through the analyzer with a period of every
// ticks and scores the periods that end at a tick in [from, to) with a
// horizon of horizon ticks after it (periods whose horizon passes the
// trace's end are not scored).
func EvalSampling(tr RefTrace, every, horizon, from, to int) SamplingResult {
	every = max(every, 1)
	res := SamplingResult{Every: every}
	pm := newProcMem(1)
	pm.every = every
	nm := len(tr.Pages)
	resident := make([][]bool, nm)
	stamp := make([][]int, nm) // period (1-based) that last counted the page
	for i, p := range tr.Pages {
		resident[i] = make([]bool, p)
		stamp[i] = make([]int, p)
	}
	rss := make([]uint64, nm)
	refd := make([]uint64, nm)
	var picks, pickTouched int
	var safe, found, coldBytes, wrong, wss float64
	period := 1
	t0 := time.Unix(1_000_000, 0)
	maps := make([]vm.Mapping, nm)
	for t, refs := range tr.Ticks {
		for _, r := range refs {
			if !resident[r.Map][r.Page] {
				resident[r.Map][r.Page] = true
				rss[r.Map] += PageSize
			}
			if stamp[r.Map][r.Page] != period {
				stamp[r.Map][r.Page] = period
				refd[r.Map] += PageSize
			}
		}
		if (t+1)%every != 0 {
			continue
		}
		for i := range maps {
			start := uint64(i+1) << 32
			maps[i] = vm.Mapping{Start: start, End: start + uint64(tr.Pages[i])*PageSize, Path: "/trace",
				Rss: rss[i], Referenced: refd[i]}
			refd[i] = 0
		}
		pm.update([]read{{pid: 1, maps: maps}}, nil, t0.Add(time.Duration(t)*2*time.Second))
		period++
		if t < from || t >= to || t+horizon >= len(tr.Ticks) {
			continue
		}
		future := map[int32]bool{}
		for _, refs := range tr.Ticks[t+1 : t+1+horizon] {
			for _, r := range refs {
				future[r.Map] = true
			}
		}
		res.Periods++
		wss += float64(pm.wss)
		rank := pm.ranking()
		for _, k := range pm.coldTop(rank, 4) {
			picks++
			if future[int32(k.start>>32)-1] {
				pickTouched++
			}
		}
		for i := range nm {
			if rss[i] > 0 && !future[int32(i)] {
				safe += float64(rss[i])
			}
		}
		for _, st := range pm.cold(rank) {
			coldBytes += float64(st.m.Rss)
			if future[int32(st.m.Start>>32)-1] {
				wrong += float64(st.m.Rss)
			} else {
				found += float64(st.m.Rss)
			}
		}
	}
	if picks > 0 {
		res.PickTouched = float64(pickTouched) / float64(picks)
	}
	if safe > 0 {
		res.ColdFound = found / safe
	}
	if coldBytes > 0 {
		res.ColdWrong = wrong / coldBytes
	}
	if res.Periods > 0 {
		res.WSS = wss / float64(res.Periods)
	}
	return res
}
