package main

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"aiosfs/engines/ml"
	evalplot "aiosfs/scripts/eval/plot"
)

// The figures (PNG) this evaluation draws next to its tables, into
// -plots (default $AIOS_PLOTS, else eval-out):
//
//	sched-forecast.png  one series of several data sets: the truth, the
//	                    ensemble's point forecast 5 steps ahead and its
//	                    p90 and p99 as bands (with the p90's coverage)
//	sched-frontier.png  per data set and resource, every allocator's
//	                    slack/shortfall frontier over its knob, its
//	                    default ringed (the `frontier` lines)
var plotDir = evalplot.Flag()

// frontierSet is one data set's curves, as allocation() printed them.
type frontierSet struct {
	name   string
	curves []*curve
}

var frontierSets []frontierSet

func writePlots(groups []group) {
	if !evalplot.Enabled(*plotDir) {
		return
	}
	if err := forecastPlot(groups); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
	}
	if err := frontierPlot(); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
	}
}

// The series shown in sched-forecast.png: the first group of each kind
// present, and in it the most variable of its first 50 series (a flat
// one shows nothing).
var forecastGroups = []struct{ group, unit string }{
	{"alibaba2018/cpu", "CPU (% of the machine)"},
	{"google2019/cpu", "CPU (share of the machine)"},
	{"traces/cpu", "CPU (cores)"},
	{"traces/rss", "RSS (MiB)"},
}

const (
	forecastHorizon = 1   // index into horizons: 5 steps
	forecastWindow  = 300 // steps shown
)

func forecastPlot(groups []group) error {
	var panels []*plot.Plot
	for _, fg := range forecastGroups {
		var g *group
		for i := range groups {
			if groups[i].name == fg.group && groups[i].skip == "" {
				g = &groups[i]
			}
		}
		if g == nil {
			continue
		}
		s := mostVariable(g.series)
		p, err := forecastPanel(g.name, fg.unit, s)
		if err != nil {
			return err
		}
		panels = append(panels, p)
	}
	return evalplot.Save(*plotDir, "sched-forecast.png", 2, 5.4*vg.Inch, 3.2*vg.Inch, panels)
}

func mostVariable(ss []series) series {
	best, bv := ss[0], -1.0
	for i, s := range ss {
		if i == 50 {
			break
		}
		var m, m2 float64
		for _, x := range s.x {
			m += x
			m2 += x * x
		}
		n := float64(len(s.x))
		m /= n
		if v := math.Sqrt(max(m2/n-m*m, 0)) / max(m, 1e-12); m > 0 && v > bv {
			best, bv = s, v
		}
	}
	return best
}

// forecastPanel replays s through the predictor as the evaluation does
// and draws the last window of it: the truth at t against the forecast
// made at t-h.
func forecastPanel(group, unit string, s series) (*plot.Plot, error) {
	h := horizons[forecastHorizon]
	pr := ml.NewPredictor(ml.Params{Horizons: horizons, Min: s.min, StepSeconds: s.step})
	n := len(s.x)
	pt, p90, p99 := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range pt {
		pt[i], p90[i], p99[i] = math.NaN(), math.NaN(), math.NaN()
	}
	for t, x := range s.x {
		pr.Observe(x, 0)
		if t+h < n {
			f := pr.Forecasts()[forecastHorizon]
			pt[t+h], p90[t+h], p99[t+h] = f.Point, f.P90, f.P99
		}
	}
	from := max(warmup(n), n-forecastWindow)
	scale := 1.0
	if s.bytes {
		scale = 1.0 / (1 << 20)
	}
	var xs, truth, point, q90, q99 []float64
	covered := 0
	for t := from; t < n; t++ {
		if math.IsNaN(pt[t]) {
			continue
		}
		xs = append(xs, float64(t-from)*s.step)
		truth = append(truth, s.x[t]*scale)
		point = append(point, pt[t]*scale)
		q90 = append(q90, p90[t]*scale)
		q99 = append(q99, p99[t]*scale)
		if s.x[t] <= p90[t] {
			covered++
		}
	}
	title := fmt.Sprintf("%s: %s, %d steps ahead (p90 covers %.0f%%)", group, s.name, h, 100*float64(covered)/float64(max(len(xs), 1)))
	p := evalplot.New(title, fmt.Sprintf("time (s; a sample every %gs)", s.step), unit)
	p.Title.TextStyle.Font.Size = vg.Points(9.5)
	blue := evalplot.Palette[0].(color.RGBA)
	light := color.NRGBA{blue.R, blue.G, blue.B, 40}
	mid := color.NRGBA{blue.R, blue.G, blue.B, 100}
	if err := evalplot.Band(p, xs, q90, q99, light, "p90 to p99"); err != nil {
		return nil, err
	}
	if err := evalplot.Band(p, xs, point, q90, mid, "point to p90"); err != nil {
		return nil, err
	}
	err := evalplot.AddLines(p, true,
		evalplot.Line{Name: "forecast (point)", X: xs, Y: point, Style: 0, Mark: -1},
		evalplot.Line{Name: "truth", X: xs, Y: truth, Style: len(evalplot.Palette) - 1, Mark: -1})
	// The p99 of a spiky series can be ten times its use: keep the
	// truth and the p90 readable, and let the p99 band run off the top.
	top := 0.0
	for i := range truth {
		top = max(top, truth[i], q90[i])
	}
	p.Y.Min, p.Y.Max = 0, 1.2*top
	p.X.Tick.Marker = evalplot.PlainTicks{}
	p.Y.Tick.Marker = evalplot.PlainTicks{}
	return p, err
}

// allocatorStyle keeps each allocator's color across panels.
var allocatorStyle = map[string]int{"ours": 1, "vpa": 0, "vpa-deployed": 3, "autopilot": 2, "autopilot+10%": 4}

// shortfallFloor is where a shortfall of 0 is drawn on the log axis.
const shortfallFloor = 0.01 // per cent

func frontierPlot() error {
	var panels []*plot.Plot
	for _, fs := range frontierSets {
		p := evalplot.New(fs.name, "shortfall (% of steps short, log; 0 at the left edge)", "slack (over-allocation / use)")
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = evalplot.LogTicks{}
		var lines []evalplot.Line
		ymax := 0.0
		for _, c := range fs.curves {
			if c.knob == "" {
				continue
			}
			l := evalplot.Line{Name: c.name, Style: allocatorStyle[c.name], Points: true, Mark: c.def, Bold: c.name == "ours"}
			for _, r := range c.pts {
				l.X = append(l.X, max(100*r.sf(), shortfallFloor))
				l.Y = append(l.Y, r.slack())
			}
			ymax = max(ymax, c.pts[c.def].slack())
			lines = append(lines, l)
		}
		if err := evalplot.AddLines(p, true, lines...); err != nil {
			return err
		}
		// The interesting part is near the defaults; the knobs' far ends
		// (4× margins) would squash it.
		p.Y.Min, p.Y.Max = 0, min(p.Y.Max, max(2.5*ymax, 1))
		p.X.Min = shortfallFloor
		p.Y.Tick.Marker = evalplot.PlainTicks{}
		p.Legend.Left = false
		panels = append(panels, p)
	}
	return evalplot.Save(*plotDir, "sched-frontier.png", 3, 4.2*vg.Inch, 3.3*vg.Inch, panels)
}
