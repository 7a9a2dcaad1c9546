package main

// Allocation: a symmetric comparison. Every allocator, ours and each
// baseline, is run over its own knob (ours: the shortfall target for CPU
// and IO, the buffer for memory; the baselines: their safety margin) on
// the same series, scored on the same steps, and traced as a
// slack/shortfall frontier. The verdict compares frontiers at each
// baseline's default operating point and at ours'.

import (
	"fmt"
	"math"
	"os"
	"strings"
	"text/tabwriter"

	"aiosfs/engines/ml"
	"aiosfs/engines/sched"
)

// Knob grids. Ours: the adaptive buffer's shortfall target (CPU, IO;
// the buffer's ceiling raised to 3 so that the target, not the ceiling,
// sets the point, and ours reaches the 4× of its forecast that the
// baselines' margins reach) and the fixed buffer of the memory path (0
// to 3: memory.max never goes under the p99 forecast or current use).
// Baselines: the safety margin, the allocation scaled from 0.5× to 4× of
// the margin-less value. Each grid has about twenty points; each
// allocator's default is marked.
var (
	ourTargets = []float64{0.0001, 0.0002, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3}
	ourBuffers = []float64{0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1, 1.5, 2, 3}
	margins    = []float64{-0.5, -0.4, -0.3, -0.25, -0.2, -0.15, -0.1, -0.05, 0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3}
)

// baselineNames are the faithful baselines, in print order.
var baselineNames = []string{"vpa", "vpa-deployed", "autopilot"}

type simResult struct{ over, use, short, steps float64 }

func (r simResult) slack() float64 { return r.over / r.use }
func (r simResult) sf() float64    { return r.short / r.steps }

// curve is one allocator's points over its knob; def is the index of its
// default point.
type curve struct {
	name, knob string
	vals       []float64 // knob values, or NaN for a named point
	labels     []string
	def        int
	pts        []simResult
	// extra: not a column of the default points' table (printed in a
	// table of its own); split: scored per half of each series too.
	extra, split bool
	halves       [2][]simResult
}

func (c *curve) add(o *curve) {
	if c.pts == nil {
		c.pts = make([]simResult, len(o.pts))
	}
	for i, r := range o.pts {
		c.pts[i].over += r.over
		c.pts[i].use += r.use
		c.pts[i].short += r.short
		c.pts[i].steps += r.steps
	}
	for h := range o.halves {
		if c.halves[h] == nil {
			c.halves[h] = make([]simResult, len(o.halves[h]))
		}
		for i, r := range o.halves[h] {
			c.halves[h][i].over += r.over
			c.halves[h][i].use += r.use
			c.halves[h][i].short += r.short
			c.halves[h][i].steps += r.steps
		}
	}
}

// at is the frontier at shortfall s: the least slack among the points
// whose shortfall is no higher, and that point's index (-1: none).
func (c *curve) at(s float64) (float64, int) {
	best, bi := math.Inf(1), -1
	for i, r := range c.pts {
		if r.sf() <= s+1e-12 && r.slack() < best {
			best, bi = r.slack(), i
		}
	}
	return best, bi
}

func (c *curve) label(i int) string {
	if c.labels[i] != "" {
		return c.labels[i]
	}
	return fmt.Sprintf("%s %g", c.knob, c.vals[i])
}

func indexOf(xs []float64, v float64) int {
	for i, x := range xs {
		if math.Abs(x-v) < 1e-12 {
			return i
		}
	}
	panic(fmt.Sprint("no ", v, " in grid"))
}

// gres is one group's curves.
type gres struct {
	name   string
	curves []*curve
}

// allocation runs every group and prints the default points, the
// frontiers and the verdicts.
func allocation(groups []group) {
	var all []gres
	for _, g := range groups {
		if g.skip != "" {
			continue
		}
		var sum []*curve
		for _, s := range g.series {
			cs := simulate(s)
			if sum == nil {
				for _, c := range cs {
					sum = append(sum, &curve{name: c.name, knob: c.knob, vals: c.vals, labels: c.labels, def: c.def, extra: c.extra, split: c.split})
				}
			}
			for i, c := range cs {
				sum[i].add(c)
			}
		}
		mlDefault(sum)
		all = append(all, gres{g.name, sum})
	}
	if len(all) == 0 {
		return
	}
	for _, g := range all {
		frontierSets = append(frontierSets, frontierSet{g.name, g.curves}) // for sched-frontier.png
	}

	fmt.Printf("## allocation: default operating points (slack = Σ over-allocation / Σ use; shortfall = share of steps use > allocation)\n\n")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	hdr := "data\t"
	for _, c := range all[0].curves {
		if !c.extra {
			hdr += c.name + "\t"
		}
	}
	fmt.Fprintln(tw, hdr)
	for _, g := range all {
		line := g.name + "\t"
		for _, c := range g.curves {
			if c.extra {
				continue
			}
			r := c.pts[c.def]
			line += fmt.Sprintf("%.3f/%.4f\t", r.slack(), r.sf())
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	fmt.Printf("\n(each cell slack/shortfall at the allocator's default: ours the daemon's (CPU/IO: adaptive buffer, target %g; memory: memory.max's path, buffer %g), vpa the upstream recommender applied every step, vpa-deployed with 1-minute sampling and the updater, autopilot the paper's moving window at +15 %%, autopilot+10%% the same at +10 %%; vpa-old and autopilot-old are the baselines of earlier versions of this eval, for reference)\n\n", *target, *buffer)
	var names []string
	var cs [][]*curve
	for _, g := range all {
		names, cs = append(names, g.name), append(cs, g.curves)
	}
	mlTable(names, cs)

	fmt.Printf("## allocation: frontiers (one line per data set and allocator; points knob=value:slack/shortfall; * the default)\n\n")
	for _, g := range all {
		for _, c := range g.curves {
			if c.knob == "" {
				continue
			}
			var b strings.Builder
			fmt.Fprintf(&b, "frontier data=%s allocator=%s knob=%s points=", g.name, c.name, c.knob)
			for i, r := range c.pts {
				if i > 0 {
					b.WriteByte(',')
				}
				v := fmt.Sprintf("%g", c.vals[i])
				if c.labels[i] != "" {
					v = strings.ReplaceAll(c.labels[i], " ", "_")
				}
				star := ""
				if i == c.def {
					star = "*"
				}
				fmt.Fprintf(&b, "%s%s:%.3f/%.4f", star, v, r.slack(), r.sf())
			}
			fmt.Println(b.String())
		}
	}

	fmt.Printf("\n## allocation: verdicts (frontiers compared at the baseline's default shortfall, and at ours')\n\n")
	verdicts(all, baselineNames)
	fmt.Printf("\n(met: ours' frontier has less slack at that shortfall; tie: equal to 3 decimals; unreachable: ours has no setting that low (first verdict), or the baseline has none (second, counted met))\n")
	// A table of its own, so that the one above reads as before.
	fmt.Printf("\n## allocation: verdicts against autopilot-ml (as above; its default w_o/w_u chosen on the first half of each series)\n\n")
	verdicts(all, []string{"autopilot-ml"})
}

// verdicts prints the verdict table for the baselines named.
func verdicts(all []gres, names []string) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "data\tbaseline\tits default\tat its shortfall: its frontier\tours\tours at\tverdict\tours default\tat ours' shortfall: its frontier\tours\tverdict\t")
	for _, g := range all {
		var ours *curve
		byName := map[string]*curve{}
		for _, c := range g.curves {
			byName[c.name] = c
			if c.name == "ours" {
				ours = c
			}
		}
		od := ours.pts[ours.def]
		for _, bn := range names {
			b := byName[bn]
			bd := b.pts[b.def]
			bAt, _ := b.at(bd.sf())
			oAt, oi := ours.at(bd.sf())
			v1, oS, oL := "unreachable", "-", "-"
			if oi >= 0 {
				oS, oL = fmt.Sprintf("%.3f", oAt), ours.label(oi)
				v1 = verdict(oAt, bAt)
			}
			bAt2, bi2 := b.at(od.sf())
			oAt2, _ := ours.at(od.sf())
			b2, v2 := "unreachable", "met"
			if bi2 >= 0 {
				b2 = fmt.Sprintf("%.3f", bAt2)
				v2 = verdict(oAt2, bAt2)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.3f/%.4f\t%.3f\t%s\t%s\t%s\t%.3f/%.4f\t%s\t%.3f\t%s\t\n",
				g.name, bn, bd.slack(), bd.sf(), bAt, oS, oL, v1, od.slack(), od.sf(), b2, oAt2, v2)
		}
	}
	tw.Flush()
}

func verdict(ours, base float64) string {
	switch {
	case math.Round(ours*1000) == math.Round(base*1000):
		return "tie"
	case ours < base:
		return "met"
	}
	return "not met"
}

// simulate replays s through every allocator at every knob value.
func simulate(s series) []*curve {
	mem := s.kind == "mem"
	pr := ml.NewPredictor(ml.Params{Horizons: []int{1}, Min: s.min, StepSeconds: s.step})

	// Ours: the engine's policy. CPU and IO: the CPU quota's path (p90
	// one step ahead, adaptive buffer). Memory: memory.max's path (p99,
	// never under current use, fixed buffer, OOM bump × 1.2 and at least
	// +100 MiB, remembered as a floor), as Engine.decide.
	base := simPolicy(s)
	var pols []sched.Policy
	oc := &curve{name: "ours"}
	if mem {
		oc.knob = "buffer"
		for _, b := range ourBuffers {
			p := base
			p.Buffer, p.Target = b, 0
			pols = append(pols, p)
			oc.vals, oc.labels = append(oc.vals, b), append(oc.labels, "")
		}
		oc.def = indexOf(ourBuffers, *buffer)
	} else {
		oc.knob = "target"
		for _, t := range ourTargets {
			p := base
			p.Target, p.BufferMax = t, 3
			pols = append(pols, p)
			oc.vals, oc.labels = append(oc.vals, t), append(oc.labels, "")
		}
		pols = append(pols, base)
		oc.vals, oc.labels = append(oc.vals, math.NaN()), append(oc.labels, "default")
		oc.def = len(pols) - 1
	}
	allocs := make([]sched.Alloc, len(pols))
	bump := 0.0
	if s.bytes {
		bump = 100 << 20
	}

	// The baselines.
	first, podMin, oomBump := s.min, 0.0, 0.0
	if s.bytes {
		first, oomBump = 1e7, 100<<20
		if mem {
			podMin = 250 << 20
		}
	}
	if s.cores {
		podMin = 0.025
	}
	// The VPA's histograms reach 1e5 × the first bucket (1000 cores,
	// 1e12 bytes); IO in bytes/s from 1 KiB gets the bytes' top too.
	top := s.top
	vc := sched.VPAConfig{StepSeconds: s.step, First: first, MaxValue: top, Memory: mem, OOMMinBump: oomBump, PodMin: podMin}
	vpa := sched.NewVPARecommender(vc, margins...)
	dep := sched.NewDeployedVPA(vc, margins...)
	ap := sched.NewAutopilotRecommender(sched.AutopilotConfig{StepSeconds: s.step, First: first, MaxValue: top, Memory: mem}, margins...)
	apml := sched.NewAutopilotML(sched.AutopilotMLConfig{StepSeconds: s.step, First: first, MaxValue: top, Memory: mem}, sched.AutopilotMLRatios...)
	old := []ml.Forecaster{ml.NewVPA(s.min, s.step), ml.NewAutopilot(s.step)}

	mc := func(name string, def float64) *curve {
		c := &curve{name: name, knob: "margin", vals: margins, labels: make([]string, len(margins)), def: indexOf(margins, def)}
		return c
	}
	curves := []*curve{oc, mc("vpa", sched.VPAMargin), mc("vpa-deployed", sched.VPAMargin), mc("autopilot", sched.AutopilotMargin), mc("autopilot+10%", 0.10),
		{name: "vpa-old", vals: []float64{math.NaN()}, labels: []string{"default"}}, {name: "autopilot-old", vals: []float64{math.NaN()}, labels: []string{"default"}}}
	// autopilot+10% is the same run as autopilot, read at another
	// point: no frontier of its own.
	curves[4].knob = ""
	// autopilot-ml: its default ratio is picked per data set on the
	// first half of the series (mlDefault), against autopilot's.
	curves = append(curves, &curve{name: "autopilot-ml", knob: "w_o/w_u", vals: sched.AutopilotMLRatios,
		labels: make([]string, len(sched.AutopilotMLRatios)), extra: true, split: true})
	curves[3].split = true
	cur := make([][]float64, len(curves))
	for i, c := range curves {
		c.pts = make([]simResult, len(c.vals))
		cur[i] = make([]float64, len(c.vals))
		if c.split {
			c.halves = [2][]simResult{make([]simResult, len(c.vals)), make([]simResult, len(c.vals))}
		}
	}
	one, v := []int{1}, []float64{0}
	warm := warmup(len(s.x))
	mid := warm + (len(s.x)-warm)/2
	for t, x := range s.x {
		if t >= warm {
			h := 0
			if t >= mid {
				h = 1
			}
			for i, c := range curves {
				for j, a := range cur[i] {
					r := &c.pts[j]
					r.use += x
					r.over += math.Max(0, a-x)
					if x > a {
						r.short++
					}
					r.steps++
					if c.split {
						r := &c.halves[h][j]
						r.use += x
						r.over += math.Max(0, a-x)
						if x > a {
							r.short++
						}
						r.steps++
					}
				}
			}
		}
		pr.Observe(x, 0)
		f := pr.Forecasts()[0]
		young := pr.Young(ml.WarmSamples)
		for i := range pols {
			p, a := pols[i], &allocs[i]
			if mem {
				if a.Value > 0 && x > a.Value {
					p.Bump(a, a.Value, 1.2, bump, sched.ReasonOOM)
				} else {
					p.Next(a, math.Max(f.P99, x))
				}
			} else {
				p.NextUse(a, f.P90, x)
			}
			if young {
				p.Hold(a, pr.Peak())
			}
			cur[0][i] = a.Value
		}
		vpa.Observe(x)
		dep.Observe(x)
		ap.Observe(x)
		copy(cur[1], vpa.Allocs())
		copy(cur[2], dep.Allocs())
		copy(cur[3], ap.Allocs())
		copy(cur[4], ap.Allocs())
		apml.Observe(x)
		copy(cur[7], apml.Allocs())
		for k, o := range old {
			o.Observe(x)
			o.Predict(one, v)
			cur[5+k][0] = v[0]
		}
	}
	return curves
}

// simPolicy is the engine's default policy for a series: the daemon's
// Buffer, Fall and Target, no capacity bound (the series are usage of
// machines, not of a shared one); Min the series' least value, or for
// memory in bytes the engine's 64 MiB.
func simPolicy(s series) sched.Policy {
	p := sched.DefaultPolicy(s.step)
	p.Min = s.min
	if s.kind == "mem" && s.bytes {
		p.Min = 64 << 20
	}
	p.Max = 0
	p.Buffer = *buffer
	p.Fall = sched.FallPer(*fall, s.step)
	p.Target = *target
	return p
}
