// Command sched evaluates the scheduler's predictors and allocator on
// public workload series and on the traces recorded from real programs
// in testdata/traces (see scripts/trace).
//
//	go run ./scripts/eval/sched [-data DIR] [-traces DIR] [-azure N]
//
// Part 1, forecasting: for each forecaster and the ensemble, per horizon
// (in steps of the series), the MAE and the pinball loss at p90, both
// summed over every scored step and divided by the sum of the observed
// values, so series of any unit add up and 0.10 reads "10 % of use".
//
// Part 2, allocation: replays each series step by step; before step t each
// allocator sets an allocation from what it saw up to t-1. Slack is
// Σ max(alloc-use, 0) / Σ use; shortfall is the share of steps where use
// exceeds the allocation. Series are grouped per data set and resource
// (cpu, mem, io), never pooled across resources. The allocators, all in
// one pass over the same steps (alloc.go): ours (CPU and IO: the CPU
// quota's path, the ensemble's p90 one step ahead with the adaptive
// buffer; memory: memory.max's path, p99 and current use with a fixed
// buffer and the OOM bump), the upstream VPA recommender, the deployed
// VPA, Autopilot's moving-window recommender and its ML recommender
// (engines/sched baseline_*.go; ml.go for the latter's default). Each is swept over its own knob (ours: the shortfall
// target, or the buffer for memory; the baselines: their safety margin)
// to trace a slack/shortfall frontier, with its default marked; the
// verdicts compare ours' frontier with each baseline's at the baseline's
// default shortfall and at ours'. Our allocator's defaults are the
// daemon's (-buffer 0.15, -target 0.005, -fall 0.45 per minute) unless
// told. Ours holds a young series at its peak for ml.WarmSamples
// samples, as the engine does.
//
// Data ($AIOS_DATA/workload, or -data): every alibaba2018/day_*.csv(.gz),
// google2019/*.csv(.gz) and azure2017/periodic_avg_*.csv(.gz), the step
// read from a name such as day_1.10s.csv.gz (else 10 s, 300 s, 300 s);
// a missing set is skipped with the reason.
//
// It also draws sched-forecast.png and sched-frontier.png (plot.go) into
// -plots (default $AIOS_PLOTS, else eval-out).
package main

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"aiosfs/engines/ml"
	"aiosfs/engines/sched"
)

type series struct {
	name  string
	step  float64 // seconds
	x     []float64
	min   float64 // smallest meaningful value: the VPA's first bucket, ours' Min
	kind  string  // cpu, mem or io: which allocation path and baseline recommender
	bytes bool    // in bytes: the OOM bump's +100 MiB and the 250 MiB / 64 MiB minimums apply
	cores bool    // in cores: the VPA's 25 mCPU pod minimum applies
	top   float64 // where the baselines' histograms end; 0: 1e5 × min
}

type group struct {
	name   string
	series []series
	skip   string
}

var (
	horizons = []int{1, 5, 30, 60}
	buffer   = flag.Float64("buffer", 0.15, "our allocator's buffer above the p90 forecast")
	fall     = flag.Float64("fall", sched.DefaultFallPerMinute, "our allocator's most fall per minute")
	target   = flag.Float64("target", sched.DefaultTarget, "our allocator's shortfall target (0: fixed buffer)")
)

func main() {
	def := os.Getenv("AIOS_DATA")
	if def == "" {
		def = "../shared/datasets"
	}
	data := flag.String("data", filepath.Join(def, "workload"), "workload data directory")
	traces := flag.String("traces", "testdata/traces", "recorded traces")
	nAzure := flag.Int("azure", 0, "Azure VMs to use, spread evenly over the file's columns (0: all)")
	flag.Parse()
	start := time.Now()

	var groups []group
	groups = append(groups, loadAlibaba(filepath.Join(*data, "alibaba2018"))...)
	groups = append(groups, loadGoogle(filepath.Join(*data, "google2019"))...)
	groups = append(groups, loadAzure(filepath.Join(*data, "azure2017"), *nAzure))
	groups = append(groups, loadTraces(*traces)...)
	fmt.Printf("# scheduler evaluation: horizons in steps %v; data %s; traces %s\n\n", horizons, *data, *traces)
	for i := range groups {
		groups[i] = usable(groups[i])
	}
	var all []series
	for _, g := range groups {
		if g.skip != "" {
			fmt.Printf("## %s: skipped: %s\n\n", g.name, g.skip)
			continue
		}
		n := 0
		for _, s := range g.series {
			n += len(s.x)
		}
		fmt.Printf("## %s: %d series, %d samples, step %gs\n\n", g.name, len(g.series), n, g.series[0].step)
		forecastTable(g.series)
		all = append(all, g.series...)
	}
	if len(all) == 0 {
		fmt.Println("no data: nothing to evaluate")
		return
	}
	allocation(groups)
	fmt.Printf("\n(%s)\n", time.Since(start).Round(time.Second))
	writePlots(groups) // plot.go
}

// ---- forecasting ----

type acc struct{ abs, pin, sum float64 }

func forecastTable(ss []series) {
	names := ml.NewPredictor(ml.Params{Horizons: horizons}).Models()
	names = append(names, "ensemble")
	res := make([][]acc, len(names)) // [model][horizon]
	for i := range res {
		res[i] = make([]acc, len(horizons))
	}
	for _, s := range ss {
		scoreSeries(s, res)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	hdr := "forecaster\t"
	for _, h := range horizons {
		hdr += fmt.Sprintf("h%d MAE\th%d pin90\t", h, h)
	}
	fmt.Fprintln(tw, hdr)
	for i, n := range names {
		line := n + "\t"
		for j := range horizons {
			a := res[i][j]
			line += fmt.Sprintf("%.4f\t%.4f\t", a.abs/a.sum, a.pin/a.sum)
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	fmt.Println()
}

func scoreSeries(s series, res [][]acc) {
	pr := ml.NewPredictor(ml.Params{Horizons: horizons, Min: s.min, StepSeconds: s.step})
	nm := len(pr.Models())
	n := len(s.x)
	// pt[m][j][t], p9[m][j][t]: forecasts for step t.
	pt := make([][][]float64, nm+1)
	p9 := make([][][]float64, nm+1)
	for m := range pt {
		pt[m] = make([][]float64, len(horizons))
		p9[m] = make([][]float64, len(horizons))
		for j := range horizons {
			pt[m][j] = make([]float64, n)
			p9[m][j] = make([]float64, n)
		}
	}
	for t, x := range s.x {
		pr.Observe(x, 0)
		fc := pr.Forecasts()
		for j, h := range horizons {
			if t+h >= n {
				continue
			}
			for m := 0; m < nm; m++ {
				pt[m][j][t+h], p9[m][j][t+h] = pr.ModelForecast(m, j)
			}
			pt[nm][j][t+h], p9[nm][j][t+h] = fc[j].Point, fc[j].P90
		}
	}
	// Score the same steps at every horizon: from warm on, after the
	// longest horizon's first prediction has had time to land.
	warm := warmup(n)
	for t := warm; t < n; t++ {
		y := s.x[t]
		for m := 0; m <= nm; m++ {
			for j := range horizons {
				e := y - pt[m][j][t]
				res[m][j].abs += math.Abs(e)
				res[m][j].pin += pinball(y, p9[m][j][t], 0.9)
				res[m][j].sum += math.Abs(y)
			}
		}
	}
}

// warmup is the first scored step: twice the longest horizon, or a
// quarter of a short series (the recorded traces are minutes long), but
// always past the longest horizon, before which nothing was predicted.
func warmup(n int) int {
	w := 2 * horizons[len(horizons)-1]
	if w > n/4 {
		w = n / 4
	}
	if h := horizons[len(horizons)-1] + 1; w < h {
		w = h
	}
	return w
}

func pinball(y, q, tau float64) float64 {
	if y >= q {
		return tau * (y - q)
	}
	return (1 - tau) * (q - y)
}

// ---- allocation: see alloc.go ----

// ---- loading ----

func readCSV(path string) ([]string, [][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReader(f)
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		r = gz
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, nil, err
	}
	if len(rows) < 2 {
		return nil, nil, fmt.Errorf("%s: no rows", path)
	}
	return rows[0], rows[1:], nil
}

// column extracts column c; a value that does not parse or lies outside
// [lo, hi] (Alibaba's disk_io of -1 or 101) repeats the previous one.
func column(rows [][]string, c int, lo, hi float64) []float64 {
	out := make([]float64, 0, len(rows))
	prev := 0.0
	for _, r := range rows {
		v := prev
		if c < len(r) {
			if f, err := strconv.ParseFloat(strings.TrimSpace(r[c]), 64); err == nil && f >= lo && f <= hi {
				v = f
			}
		}
		out = append(out, v)
		prev = v
	}
	return out
}

// stepOf reads the step from a file name such as day_1.10s.csv.gz or
// week1.300s.csv.gz (the documented layout); def when it has none.
func stepOf(name string, def float64) float64 {
	m := stepRE.FindStringSubmatch(filepath.Base(name))
	if m == nil {
		return def
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil || v <= 0 {
		return def
	}
	return v
}

var stepRE = regexp.MustCompile(`\.([0-9.]+)s\.csv(\.gz)?$`)

// files lists dir's files matching pattern, in natural order (day_2
// before day_10).
func files(dir, pattern string) []string {
	fs, _ := filepath.Glob(filepath.Join(dir, pattern))
	num := regexp.MustCompile(`[0-9]+`)
	key := func(f string) string {
		return num.ReplaceAllStringFunc(filepath.Base(f), func(d string) string { return fmt.Sprintf("%012s", d) })
	}
	sort.Slice(fs, func(i, j int) bool { return key(fs[i]) < key(fs[j]) })
	return fs
}

// loadAlibaba reads every day_*.csv(.gz) in dir (one series per file
// and resource, the step from the name, default 10 s): cpu_util_percent,
// mem_util_percent and disk_io_percent, one group per resource.
func loadAlibaba(dir string) []group {
	cols := []struct{ col, kind string }{{"cpu_util_percent", "cpu"}, {"mem_util_percent", "mem"}, {"disk_io_percent", "io"}}
	gs := make([]group, len(cols))
	for i, c := range cols {
		gs[i].name = "alibaba2018/" + c.kind
	}
	fs := files(dir, "day_*.csv*")
	if len(fs) == 0 {
		for i := range gs {
			gs[i].skip = "no day_*.csv(.gz) in " + dir
		}
		return gs
	}
	for _, p := range fs {
		hdr, rows, err := readCSV(p)
		if err != nil {
			for i := range gs {
				gs[i].skip = err.Error()
			}
			return gs
		}
		day := strings.SplitN(filepath.Base(p), ".", 2)[0]
		for c, name := range hdr {
			for i, want := range cols {
				if name == want.col {
					gs[i].series = append(gs[i].series, series{name: day + "/" + name, step: stepOf(p, 10), x: column(rows, c, 0, 100), min: 0.01, kind: want.kind})
				}
			}
		}
	}
	for i := range gs {
		if len(gs[i].series) == 0 {
			gs[i].skip = "no column " + cols[i].col
		}
	}
	return gs
}

// loadGoogle reads every *.csv(.gz) in dir (the step from the name,
// default 300 s): avg_cpu and avg_mem, one group each.
func loadGoogle(dir string) []group {
	cpu, mem := group{name: "google2019/cpu"}, group{name: "google2019/mem"}
	fs := files(dir, "*.csv*")
	if len(fs) == 0 {
		cpu.skip, mem.skip = "no *.csv(.gz) in "+dir, "no *.csv(.gz) in "+dir
		return []group{cpu, mem}
	}
	for _, p := range fs {
		hdr, rows, err := readCSV(p)
		if err != nil {
			cpu.skip, mem.skip = err.Error(), err.Error()
			return []group{cpu, mem}
		}
		base := strings.SplitN(filepath.Base(p), ".", 2)[0]
		for c, name := range hdr {
			sr := series{name: base + "/" + name, step: stepOf(p, 300), x: column(rows, c, 0, math.Inf(1)), min: 0.0001}
			switch name {
			case "avg_cpu":
				sr.kind = "cpu"
				cpu.series = append(cpu.series, sr)
			case "avg_mem":
				sr.kind = "mem"
				mem.series = append(mem.series, sr)
			}
		}
	}
	if len(cpu.series) == 0 {
		cpu.skip = "no avg_cpu column"
	}
	if len(mem.series) == 0 {
		mem.skip = "no avg_mem column"
	}
	return []group{cpu, mem}
}

// loadAzure reads every periodic_avg_*.csv(.gz) in dir (one column per
// VM, CPU per cent every 300 s): n VMs spread evenly over the columns
// (0: all of them).
func loadAzure(dir string, n int) group {
	g := group{name: "azure2017/cpu"}
	fs := files(dir, "periodic_avg_*.csv*")
	if len(fs) == 0 {
		g.skip = "no periodic_avg_*.csv(.gz) in " + dir
		return g
	}
	for _, p := range fs {
		hdr, rows, err := readCSV(p)
		if err != nil {
			g.skip = err.Error()
			return g
		}
		k := 1
		if n > 0 && len(hdr) > n {
			k = len(hdr) / n
		}
		for c, took := 0, 0; c < len(hdr) && (n <= 0 || took < n); c += k {
			g.series = append(g.series, series{name: hdr[c], step: stepOf(p, 300), x: column(rows, c, 0, 100), min: 0.01, kind: "cpu"})
			took++
		}
	}
	return g
}

// loadTraces returns one group per resource (cpu cores, rss bytes, io
// bytes/s), so that the scores, which sum over series, never add bytes
// to cores.
func loadTraces(dir string) []group {
	cpu := group{name: "traces/cpu"}
	rss := group{name: "traces/rss"}
	io := group{name: "traces/io"}
	files, _ := filepath.Glob(filepath.Join(dir, "*.csv"))
	sort.Strings(files)
	if len(files) == 0 {
		why := "no traces in " + dir + " (record some with scripts/trace)"
		cpu.skip, rss.skip, io.skip = why, why, why
		return []group{cpu, rss, io}
	}
	for _, f := range files {
		hdr, rows, err := readCSV(f)
		if err != nil {
			continue
		}
		base := strings.TrimSuffix(filepath.Base(f), ".csv")
		col := map[string]int{}
		for i, h := range hdr {
			col[h] = i
		}
		rd := column(rows, col["io_read_rate"], 0, math.Inf(1))
		wr := column(rows, col["io_write_rate"], 0, math.Inf(1))
		iox := make([]float64, len(rd))
		for i := range rd {
			iox[i] = rd[i] + wr[i]
		}
		cpu.series = append(cpu.series, series{name: base, step: 1, x: column(rows, col["cpu"], 0, math.Inf(1)), min: 0.01, kind: "cpu", cores: true})
		rss.series = append(rss.series, series{name: base, step: 1, x: column(rows, col["rss"], 0, math.Inf(1)), min: 1 << 20, kind: "mem", bytes: true})
		if sum(iox) > 0 {
			io.series = append(io.series, series{name: base, step: 1, x: iox, min: 1024, kind: "io", top: 1e12})
		}
	}
	if len(io.series) == 0 {
		io.skip = "no trace did storage IO"
	}
	return []group{cpu, rss, io}
}

// minSamples is the shortest series evaluated: past the warm-up
// (warmup), with steps left to score.
const minSamples = 128

// usable drops the series that cannot be scored (too short, or never
// used: slack divides by use), saying so, and skips a group left empty.
func usable(g group) group {
	if g.skip != "" {
		return g
	}
	var keep []series
	for _, s := range g.series {
		switch {
		case len(s.x) < minSamples:
			fmt.Printf("## %s: series %s left out: %d samples, fewer than %d\n", g.name, s.name, len(s.x), minSamples)
		case sum(s.x) <= 0:
			fmt.Printf("## %s: series %s left out: no use at all\n", g.name, s.name)
		default:
			keep = append(keep, s)
		}
	}
	g.series = keep
	if len(keep) == 0 {
		g.skip = "no usable series"
	}
	return g
}

func sum(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s
}
