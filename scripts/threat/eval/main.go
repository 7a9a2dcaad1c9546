// Command eval replays the recorded threat scenario windows
// (testdata/threat/windows.csv) offline and reports, for the rule floor,
// the learned detector and the engine (the larger of the two, as the
// engine scores), side by side: detection rate, false alarms per benign
// agent-hour, precision, time to detect and type accuracy, per threat
// type and overall.
//
// Protocol: leave-one-round-out. The suite was recorded in R rounds
// (every scenario once per round); for each round k a model is trained
// on the other rounds' windows only and scores round k's runs, each run
// as a fresh agent. Every run is thus scored exactly once by a model
// that never saw it. Nothing is tuned on the scored runs: the alarm
// threshold is the default policy's alert threshold (0.5) for all three,
// fixed before any data was recorded.
//
//	go run ./scripts/threat/eval [-data testdata/threat/windows.csv] [-seed 1]
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"aiosfs/engines/threat"
	"aiosfs/engines/threat/dataset"
)

var (
	data    = flag.String("data", "testdata/threat/windows.csv", "recorded windows (development set: leave-one-round-out)")
	holdout = flag.String("holdout", "testdata/threat/holdout.csv", "windows recorded after the design was frozen: scored by a model trained on all of -data")
	seed    = flag.Uint64("seed", 1, "training seed")
	verbose = flag.Bool("v", false, "list every run's outcome")
)

func main() {
	flag.Parse()
	f, err := os.Open(*data)
	if err != nil {
		fmt.Println("threat eval: skipped:", err, "(record it with: sudo go run ./scripts/threat/record)")
		return
	}
	rows, err := dataset.Read(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "threat eval:", err)
		os.Exit(1)
	}
	rep, err := Evaluate(rows, *seed)
	if err != nil {
		fmt.Fprintln(os.Stderr, "threat eval:", err)
		os.Exit(1)
	}
	fmt.Printf("## Development set %s: leave-one-round-out\n\n", *data)
	rep.Print(os.Stdout)
	if *verbose {
		rep.PrintRuns(os.Stdout)
	}
	hf, err := os.Open(*holdout)
	if err != nil {
		fmt.Println("\nheld-out set: skipped:", err)
		return
	}
	hrows, err := dataset.Read(hf)
	hf.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "threat eval:", err)
		os.Exit(1)
	}
	hrep, err := EvaluateHoldout(rows, hrows, *seed)
	if err != nil {
		fmt.Fprintln(os.Stderr, "threat eval:", err)
		os.Exit(1)
	}
	fmt.Printf("\n## Held-out set %s: trained on all of the development set\n\n", *holdout)
	hrep.Print(os.Stdout)
	if *verbose {
		hrep.PrintRuns(os.Stdout)
	}
}

// PrintRuns lists each run: per detector whether it alarmed, when first,
// the type named then, and how many windows alarmed.
func (rep *Report) PrintRuns(w io.Writer) {
	fmt.Fprintln(w)
	for i, r := range rep.Runs {
		fmt.Fprintf(w, "%-16s %-19s", r.Name, r.Label)
		for _, d := range Detectors {
			o := rep.Out[d][i]
			if o.Detected {
				fmt.Fprintf(w, "  %s: %.2fs %s %d/%d", d, o.TTD, o.FirstType, o.Alarms, len(r.Rows))
			} else {
				fmt.Fprintf(w, "  %s: -", d)
			}
		}
		fmt.Fprintln(w)
	}
}

// Detectors compared.
var Detectors = []string{"rules", "ml", "engine"}

// Run is one scenario run's windows.
type Run struct {
	Name, Scenario string
	Round          int
	Label          threat.Type
	Rows           []dataset.Row
}

// Outcome is one detector on one run.
type Outcome struct {
	Detected  bool
	TTD       float64     // seconds from the run's start to the end of the first alarming window
	FirstType threat.Type // the type named at the first alarm
	Episodes  int         // runs of consecutive alarming windows
	Alarms    int         // alarming windows
}

// Report is the evaluation's result.
type Report struct {
	Runs     []Run
	Out      map[string][]Outcome // by detector, parallel to Runs
	Rounds   []int
	Windows  int
	TrainDur time.Duration
	Holdout  bool // one model trained on another set, not leave-one-round-out
}

func groupRuns(rows []dataset.Row) []Run {
	idx := map[string]int{}
	var runs []Run
	for _, r := range rows {
		i, ok := idx[r.Run]
		if !ok {
			i = len(runs)
			idx[r.Run] = i
			runs = append(runs, Run{Name: r.Run, Scenario: r.Scenario, Round: r.Round, Label: r.Label})
		}
		runs[i].Rows = append(runs[i].Rows, r)
	}
	for i := range runs {
		sort.Slice(runs[i].Rows, func(a, b int) bool { return runs[i].Rows[a].Window < runs[i].Rows[b].Window })
	}
	return runs
}

// Evaluate runs the leave-one-round-out protocol.
func Evaluate(rows []dataset.Row, seed uint64) (*Report, error) {
	runs := groupRuns(rows)
	rep := &Report{Runs: runs, Out: map[string][]Outcome{}, Windows: len(rows)}
	rounds := map[int]bool{}
	for _, r := range runs {
		rounds[r.Round] = true
	}
	for k := range rounds {
		rep.Rounds = append(rep.Rounds, k)
	}
	sort.Ints(rep.Rounds)
	if len(rep.Rounds) < 2 {
		return nil, fmt.Errorf("need at least 2 recorded rounds to train on some and score others, have %d", len(rep.Rounds))
	}
	for _, d := range Detectors {
		rep.Out[d] = make([]Outcome, len(runs))
	}
	for _, k := range rep.Rounds {
		var train []threat.Labelled
		for _, r := range runs {
			if r.Round == k {
				continue
			}
			for _, w := range r.Rows {
				train = append(train, threat.Labelled{V: w.V, Type: w.Label})
			}
		}
		t0 := time.Now()
		m, err := threat.Train(train, seed)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", k, err)
		}
		rep.TrainDur += time.Since(t0)
		for i := range runs {
			if runs[i].Round == k {
				scoreRun(rep, m, i)
			}
		}
	}
	return rep, nil
}

// EvaluateHoldout trains one model on every row of train and scores
// every run of test.
func EvaluateHoldout(train, test []dataset.Row, seed uint64) (*Report, error) {
	runs := groupRuns(test)
	rep := &Report{Runs: runs, Out: map[string][]Outcome{}, Windows: len(test)}
	seen := map[int]bool{}
	for _, r := range runs {
		if !seen[r.Round] {
			seen[r.Round] = true
			rep.Rounds = append(rep.Rounds, r.Round)
		}
	}
	for _, d := range Detectors {
		rep.Out[d] = make([]Outcome, len(runs))
	}
	var tr []threat.Labelled
	for _, w := range train {
		tr = append(tr, threat.Labelled{V: w.V, Type: w.Label})
	}
	t0 := time.Now()
	m, err := threat.Train(tr, seed)
	if err != nil {
		return nil, err
	}
	rep.TrainDur = time.Since(t0)
	rep.Holdout = true
	for i := range runs {
		scoreRun(rep, m, i)
	}
	return rep, nil
}

// scoreRun replays run i through a rules-only engine and an engine with
// model m, each a fresh agent, and records the three detectors' outcomes.
func scoreRun(rep *Report, m *threat.Model, i int) {
	r := &rep.Runs[i]
	rules := threat.New(threat.Config{})
	engine := threat.New(threat.Config{})
	engine.SetModel(m, "eval")
	var o [3]Outcome
	prev := [3]bool{}
	for _, w := range r.Rows {
		end := time.Unix(0, 0).Add(time.Duration(w.TEnd * float64(time.Second)))
		ar := rules.ScoreVector(1, w.V, end)
		ae := engine.ScoreVector(1, w.V, end)
		type sc struct {
			s float64
			t threat.Type
		}
		scores := [3]sc{{ar.Score, ar.Type}, {ae.ML.Score, ae.ML.Type}, {ae.Score, ae.Type}}
		for j, s := range scores {
			alarm := s.s >= threat.DefaultPolicy().Threshold[threat.Alert]
			if alarm {
				o[j].Alarms++
				if !o[j].Detected {
					o[j].Detected, o[j].TTD, o[j].FirstType = true, w.TEnd, s.t
				}
				if !prev[j] {
					o[j].Episodes++
				}
			}
			prev[j] = alarm
		}
	}
	for j, d := range Detectors {
		rep.Out[d][i] = o[j]
	}
}

// Stats are the figures of one detector over a set of runs.
type Stats struct {
	AttackRuns, Detected, TypeRight int
	BenignRuns, BenignAlarmRuns     int
	FalseAlarms                     int     // alarm episodes on benign runs
	BenignHours                     float64 // benign agent-hours scored
	TTDs                            []float64
	AttackAlarmRuns                 int
}

func (s *Stats) add(r *Run, o Outcome) {
	dur := 0.0
	if n := len(r.Rows); n > 0 {
		dur = r.Rows[n-1].TEnd
	}
	if r.Label == threat.Benign {
		s.BenignRuns++
		s.BenignHours += dur / 3600
		s.FalseAlarms += o.Episodes
		if o.Detected {
			s.BenignAlarmRuns++
		}
		return
	}
	s.AttackRuns++
	if o.Detected {
		s.Detected++
		s.TTDs = append(s.TTDs, o.TTD)
		if o.FirstType == r.Label {
			s.TypeRight++
		}
	}
}

func (s *Stats) rate() float64 { return frac(s.Detected, s.AttackRuns) }

func frac(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// Stats computes a detector's figures over the runs that keep says.
func (rep *Report) Stats(det string, keep func(*Run) bool) Stats {
	var s Stats
	for i := range rep.Runs {
		if keep(&rep.Runs[i]) {
			s.add(&rep.Runs[i], rep.Out[det][i])
		}
	}
	return s
}

// Print writes the report as markdown tables.
func (rep *Report) Print(w io.Writer) {
	proto := "leave-one-round-out"
	if rep.Holdout {
		proto = "held out"
	}
	fmt.Fprintf(w, "threat eval: %d windows, %d runs, rounds %v, %s, alarm at score >= %.2f (default policy's alert), model training %.1f s total\n\n",
		rep.Windows, len(rep.Runs), rep.Rounds, proto, threat.DefaultPolicy().Threshold[threat.Alert], rep.TrainDur.Seconds())
	all := func(*Run) bool { return true }
	fmt.Fprintln(w, "| detector | attack runs detected | type right | false alarms / benign agent-hour | benign runs with an alarm | precision (runs) | median time to detect |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, d := range Detectors {
		s := rep.Stats(d, all)
		fpRate := 0.0
		if s.BenignHours > 0 {
			fpRate = float64(s.FalseAlarms) / s.BenignHours
		}
		prec := frac(s.Detected, s.Detected+s.BenignAlarmRuns)
		fmt.Fprintf(w, "| %s | %d/%d (%.1f %%) | %d/%d | %.0f (%d in %.3f h) | %d/%d | %.3f | %.2f s |\n",
			d, s.Detected, s.AttackRuns, 100*s.rate(), s.TypeRight, s.Detected, fpRate, s.FalseAlarms, s.BenignHours,
			s.BenignAlarmRuns, s.BenignRuns, prec, median(s.TTDs))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Per threat type (attack runs detected, median time to detect) and per benign scenario (runs with a false alarm):")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| type / scenario | %s |\n", strings.Join(Detectors, " | "))
	fmt.Fprintln(w, "|---|---|---|---|")
	for t := threat.ResourceExhaustion; t < threat.Unknown; t++ {
		keep := func(r *Run) bool { return r.Label == t }
		cells := []string{}
		for _, d := range Detectors {
			s := rep.Stats(d, keep)
			cells = append(cells, fmt.Sprintf("%d/%d, %.2f s", s.Detected, s.AttackRuns, median(s.TTDs)))
		}
		fmt.Fprintf(w, "| %s | %s |\n", t, strings.Join(cells, " | "))
	}
	var scen []string
	seen := map[string]bool{}
	for _, r := range rep.Runs {
		if !seen[r.Scenario] {
			seen[r.Scenario] = true
			scen = append(scen, r.Scenario)
		}
	}
	for _, sc := range scen {
		keep := func(r *Run) bool { return r.Scenario == sc }
		cells := []string{}
		var label threat.Type
		for _, r := range rep.Runs {
			if r.Scenario == sc {
				label = r.Label
			}
		}
		for _, d := range Detectors {
			s := rep.Stats(d, keep)
			if label == threat.Benign {
				cells = append(cells, fmt.Sprintf("%d/%d alarmed", s.BenignAlarmRuns, s.BenignRuns))
			} else {
				cells = append(cells, fmt.Sprintf("%d/%d detected", s.Detected, s.AttackRuns))
			}
		}
		kind := "benign"
		if label != threat.Benign {
			kind = label.String()
		}
		fmt.Fprintf(w, "| %s (%s) | %s |\n", sc, kind, strings.Join(cells, " | "))
	}
}
