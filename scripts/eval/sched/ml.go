package main

// Autopilot's ML recommender (engines/sched/baseline_autopilot_ml.go):
// its knob is the weight ratio w_o/w_u, whose value at Google is not
// public. Its default point is chosen per data set and resource on the
// first half of each series' scored steps: the ratio with the least
// slack among those whose shortfall there is no higher than the moving
// window's (autopilot, the paper's defaults) on the same half — the
// ML recommender run as reliably as the moving window, as the paper
// compares them (§5). It is reported on the second half, which the
// choice has not seen; the frontiers and verdicts use all scored steps.

import (
	"fmt"
	"os"
	"text/tabwriter"
)

func named(cs []*curve, name string) *curve {
	for _, c := range cs {
		if c.name == name {
			return c
		}
	}
	return nil
}

// mlDefault sets autopilot-ml's default point from the first halves; if
// no ratio is as reliable as autopilot there, the most reliable one (the
// least shortfall, then the least slack).
func mlDefault(cs []*curve) {
	ml, ap := named(cs, "autopilot-ml"), named(cs, "autopilot")
	if ml == nil || ap == nil || ml.halves[0] == nil {
		return
	}
	s0 := ap.halves[0][ap.def].sf()
	best, lo := -1, -1
	for i, r := range ml.halves[0] {
		if r.sf() <= s0+1e-12 && (best < 0 || r.slack() < ml.halves[0][best].slack()) {
			best = i
		}
		if lo < 0 || r.sf() < ml.halves[0][lo].sf() || (r.sf() == ml.halves[0][lo].sf() && r.slack() < ml.halves[0][lo].slack()) {
			lo = i
		}
	}
	if best < 0 {
		best = lo
	}
	ml.def = best
}

// mlTable prints, per data set and resource, the chosen ratio and the
// two recommenders' default points on each half and on all steps.
func mlTable(names []string, cs [][]*curve) {
	fmt.Printf("## allocation: autopilot-ml (Autopilot's ML recommender) at its default w_o/w_u, chosen on the first half of each series (the least slack at no more shortfall than autopilot's there), reported on the second half\n\n")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "data\tw_o/w_u\t1st half: autopilot\tautopilot-ml\t2nd half: autopilot\tautopilot-ml\tall: autopilot-ml\t")
	for g, name := range names {
		ml, ap := named(cs[g], "autopilot-ml"), named(cs[g], "autopilot")
		if ml == nil || ap == nil {
			continue
		}
		cell := func(r simResult) string { return fmt.Sprintf("%.3f/%.4f", r.slack(), r.sf()) }
		mark := ""
		if ml.halves[0][ml.def].sf() > ap.halves[0][ap.def].sf()+1e-12 {
			mark = " †"
		}
		fmt.Fprintf(tw, "%s\t%g%s\t%s\t%s\t%s\t%s\t%s\t\n", name, ml.vals[ml.def], mark,
			cell(ap.halves[0][ap.def]), cell(ml.halves[0][ml.def]), cell(ap.halves[1][ap.def]), cell(ml.halves[1][ml.def]), cell(ml.pts[ml.def]))
	}
	tw.Flush()
	fmt.Printf("\n(slack/shortfall; the halves split each series' scored steps; models: decay half-lives 1, 4, 12, 48 h × margins 0, 5, 10, 15, 25, 50 %%; w_ΔL = w_Δm = 1 %% of use, ensemble half-life 12 h; †: no ratio as reliable as autopilot on the first half, the most reliable one)\n\n")
}
