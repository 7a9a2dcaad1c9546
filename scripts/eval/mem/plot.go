package main

import (
	"fmt"
	"math"
	"os"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	evalplot "aiosfs/scripts/eval/plot"
)

var plotDir = evalplot.Flag()

// missCurves collects every trace's miss ratios by cache size for the
// figure: trace -> method -> size (as a fraction of distinct pages) ->
// miss ratio.
var missCurves = map[string]map[string]map[float64]float64{}
var missOrder []string

func addMiss(trace string, frac float64, method string, ratio float64) {
	if missCurves[trace] == nil {
		missCurves[trace] = map[string]map[float64]float64{}
		missOrder = append(missOrder, trace)
	}
	if missCurves[trace][method] == nil {
		missCurves[trace][method] = map[float64]float64{}
	}
	missCurves[trace][method][frac] = ratio
}

// writeMissPlot draws mem-miss-ratio.png: per trace, the miss ratio of
// every policy against the cache size, Belady's MIN dashed as the floor,
// Adaptive bold, Adaptive with the prefetcher dotted (Belady does not
// bound it).
func writeMissPlot() {
	if !evalplot.Enabled(*plotDir) || len(missOrder) == 0 {
		return
	}
	methods := append([]string{"belady"}, policies...)
	methods = append(methods, "adaptive+prefetch")
	var panels = missPanels(methods)
	if err := evalplot.Save(*plotDir, "mem-miss-ratio.png", 2, 5.2*vg.Inch, 3.6*vg.Inch, panels); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
	}
}

func missPanels(methods []string) (panels []*plot.Plot) {
	// One legend for all the panels (a method keeps its color in each),
	// where it hides the least.
	var pxs, pys [][]float64
	for _, trace := range missOrder {
		var xs, ys []float64
		for _, pts := range missCurves[trace] {
			for f, r := range pts {
				xs, ys = append(xs, math.Log(f)), append(ys, r)
			}
		}
		pxs, pys = append(pxs, xs), append(pys, ys)
	}
	legendAt := evalplot.EmptiestTopRight(pxs, pys)
	for ti, trace := range missOrder {
		p := evalplot.New(trace, "cache size (% of the trace's distinct pages, log)", "miss ratio")
		p.X.Scale = plot.LogScale{}
		var ticks evalplot.AtTicks
		var lines []evalplot.Line
		for i, m := range methods {
			pts := missCurves[trace][m]
			if len(pts) == 0 {
				continue
			}
			var xs []float64
			for f := range pts {
				xs = append(xs, f)
			}
			sort.Float64s(xs)
			l := evalplot.Line{Name: m, Style: i - 1, Points: true, Mark: -1}
			if len(ticks) == 0 {
				for _, f := range xs {
					ticks = append(ticks, 100*f)
				}
			}
			for _, f := range xs {
				l.X = append(l.X, 100*f)
				l.Y = append(l.Y, pts[f])
			}
			switch m {
			case "belady":
				l.Style, l.Dashed, l.Name = len(evalplot.Palette)-1, true, "belady (MIN)"
			case "adaptive":
				l.Bold = true
			case "adaptive+prefetch":
				l.Style, l.Dashed = 0, true
			}
			lines = append(lines, l)
		}
		p.X.Tick.Marker = ticks
		if ti == legendAt {
			p.Legend.Add("(every panel)")
		}
		if err := evalplot.AddLines(p, ti == legendAt, lines...); err != nil {
			fmt.Fprintln(os.Stderr, "plot:", err)
			continue
		}
		p.Y.Min = 0
		panels = append(panels, p)
	}
	return panels
}
