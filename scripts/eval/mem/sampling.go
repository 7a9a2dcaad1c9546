package main

import (
	"fmt"
	"math/rand"
	"os"

	"aiosfs/engines/mem"
)

// -sampling: what reading a busy agent's smaps every K ticks of the
// memory engine (mem.Tuning.Every) costs the analyzer's paging and
// prediction figures, on reference traces at the grain the analyzer sees
// (mappings, and the pages referenced in each tick):
//
//   - generated agents (genTrace): 24 mappings each, steady, periodic,
//     bursty, phased and start-up-only ones, 900 ticks (30 minutes at the
//     default 2 s);
//   - the block and page traces of the cache evaluation, cut into
//     mappings of 64 pages and 600 ticks of equal numbers of references.
//
// K is chosen on one part and reported on the other: the generated
// agents of seeds 1-8 and the first half of each recorded trace's ticks
// (tune), then seeds 9-16 and the second halves (report). The rule: the
// largest K whose mean pick_touched and cold_wrong are at most 2 points
// above K=1's and whose cold_found is at most 5 points below. Output, one
// line per part and K (figures are means over that part's traces; see
// mem.SamplingResult):
//
//	sampling part=tune|report every=K traces=N periods=N pick_touched=F cold_found=F cold_wrong=F wss_vs_every1=F
//	summary sampling chosen_every=K rule="..."
//
// wss_vs_every1 is the wss figure's mean against K=1's: a period of K
// ticks counts what K ticks referenced.
const (
	samplingHorizon = 5 // ticks after a period that judge it (10 s at 2 s)
	samplingMaxK    = 6
)

type samplingPart struct {
	traces   []mem.RefTrace
	from, to []int // scored ticks of each trace
}

func runSampling(recorded []tr) {
	var tune, report samplingPart
	for seed := int64(1); seed <= 16; seed++ {
		t := genTrace(seed, 900)
		p := &tune
		if seed > 8 {
			p = &report
		}
		p.traces = append(p.traces, t)
		p.from, p.to = append(p.from, 0), append(p.to, len(t.Ticks))
	}
	for _, r := range recorded {
		refs, err := mem.ReadTrace(r.path)
		if err != nil || len(refs) == 0 {
			fmt.Printf("sampling trace=%s skipped=%q\n", r.name, fmt.Sprint(err))
			continue
		}
		t := chopTrace(r.name, refs, 64, 600)
		h := len(t.Ticks) / 2
		tune.traces, tune.from, tune.to = append(tune.traces, t), append(tune.from, 0), append(tune.to, h)
		report.traces, report.from, report.to = append(report.traces, t), append(report.from, h), append(report.to, len(t.Ticks))
	}
	type fig struct{ pick, found, wrong, wssRatio float64 }
	eval := func(name string, p samplingPart) []fig {
		figs := make([]fig, samplingMaxK+1)
		base := make([]float64, len(p.traces))
		for k := 1; k <= samplingMaxK; k++ {
			var f fig
			periods := 0
			for i, t := range p.traces {
				r := mem.EvalSampling(t, k, samplingHorizon, p.from[i], p.to[i])
				if k == 1 {
					base[i] = r.WSS
				}
				periods += r.Periods
				f.pick += r.PickTouched
				f.found += r.ColdFound
				f.wrong += r.ColdWrong
				if base[i] > 0 {
					f.wssRatio += r.WSS / base[i]
				}
			}
			n := float64(len(p.traces))
			f = fig{f.pick / n, f.found / n, f.wrong / n, f.wssRatio / n}
			figs[k] = f
			fmt.Printf("sampling part=%s every=%d traces=%d periods=%d pick_touched=%.4f cold_found=%.4f cold_wrong=%.4f wss_vs_every1=%.2f\n",
				name, k, len(p.traces), periods, f.pick, f.found, f.wrong, f.wssRatio)
		}
		return figs
	}
	if len(tune.traces) == 0 {
		fmt.Fprintln(os.Stderr, "sampling: no traces")
		return
	}
	tf := eval("tune", tune)
	chosen := 1
	for k := 2; k <= samplingMaxK; k++ {
		if tf[k].pick <= tf[1].pick+0.02 && tf[k].wrong <= tf[1].wrong+0.02 && tf[k].found >= tf[1].found-0.05 {
			chosen = k
		}
	}
	rf := eval("report", report)
	fmt.Printf("summary sampling chosen_every=%d rule=%q report: pick_touched %.4f -> %.4f cold_found %.4f -> %.4f cold_wrong %.4f -> %.4f\n",
		chosen, "largest K with pick_touched and cold_wrong <= K=1's + 0.02 and cold_found >= K=1's - 0.05, on the tune part",
		rf[1].pick, rf[chosen].pick, rf[1].found, rf[chosen].found, rf[1].wrong, rf[chosen].wrong)
}

// genTrace is a generated agent: 24 mappings of 64-1024 pages, each
// with a behaviour: steady (a hot set every tick), periodic (every 2-15
// ticks), bursty (a touch with probability 0.02-0.3 a tick), phased
// (on for 10-60 ticks, off for 20-200) or start-up only (the first 5
// ticks); each touch references 5-50 % of a hot set of 10-100 % of the
// mapping.
func genTrace(seed int64, ticks int) mem.RefTrace {
	rng := rand.New(rand.NewSource(seed))
	const nm = 24
	t := mem.RefTrace{Name: fmt.Sprintf("gen-%d", seed), Ticks: make([][]mem.PageRef, ticks)}
	for m := range nm {
		pages := 64 + rng.Intn(961)
		t.Pages = append(t.Pages, pages)
		hot := rng.Perm(pages)[:max(1, int(float64(pages)*(0.1+0.9*rng.Float64())))]
		frac := 0.05 + 0.45*rng.Float64()
		kind := rng.Intn(5)
		per, prob := 2+rng.Intn(14), 0.02+0.28*rng.Float64()
		on, off := 10+rng.Intn(51), 20+rng.Intn(181)
		phase := rng.Intn(on + off)
		for tick := range ticks {
			var touch bool
			switch kind {
			case 0:
				touch = true
			case 1:
				touch = tick%per == 0
			case 2:
				touch = rng.Float64() < prob
			case 3:
				touch = (tick+phase)%(on+off) < on
			case 4:
				touch = tick < 5
			}
			if !touch {
				continue
			}
			for _, p := range hot {
				if rng.Float64() < frac {
					t.Ticks[tick] = append(t.Ticks[tick], mem.PageRef{Map: int32(m), Page: int32(p)})
				}
			}
		}
	}
	return t
}

// chopTrace cuts a page-reference trace into mappings of per pages (by
// page number) and ticks equal shares of its references.
func chopTrace(name string, refs []uint64, per, ticks int) mem.RefTrace {
	idx := map[uint64]int32{} // mapping number -> index
	t := mem.RefTrace{Name: name, Ticks: make([][]mem.PageRef, ticks)}
	seen := make([]map[mem.PageRef]bool, ticks)
	for i, r := range refs {
		tick := i * ticks / len(refs)
		m, ok := idx[r/uint64(per)]
		if !ok {
			m = int32(len(t.Pages))
			idx[r/uint64(per)] = m
			t.Pages = append(t.Pages, per)
		}
		pr := mem.PageRef{Map: m, Page: int32(r % uint64(per))}
		if seen[tick] == nil {
			seen[tick] = map[mem.PageRef]bool{}
		}
		if !seen[tick][pr] {
			seen[tick][pr] = true
			t.Ticks[tick] = append(t.Ticks[tick], pr)
		}
	}
	return t
}
