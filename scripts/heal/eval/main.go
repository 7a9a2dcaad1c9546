// Command eval replays the healing suite's recording
// (testdata/heal/runs.csv) offline and reports, side by side for a
// systemd-style fixed restart, a threshold-only predictor, the engine on
// its prior (no history) and the engine after learning from a history:
// the share of injected failures predicted before they happen and the
// lead, detection delay for hangs and CPU overload (which cannot be
// predicted before their onset: a hang starts at one instant), precision
// of alarms, and false alarms per healthy agent-hour.
//
// Protocol: the recording has R rounds, every scenario once per round
// with its rates drawn afresh. Rounds 0..R/2-1 are the development
// history: the learned engine is trained on their failures' windows
// (positives) and on the healthy controls' windows (negatives). Every
// figure in the table comes from rounds R/2..R-1, which nothing was
// tuned or trained on. An alarm is a prediction with p >= 0.7 and an ETA
// within 60 s (the engine's defaults, set before recording).
//
//	go run ./scripts/heal/eval [-data testdata/heal/runs.csv] [-v]
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"aiosfs/engines/heal"
	"aiosfs/engines/telemetry"
	"aiosfs/scripts/heal/dataset"
)

var (
	data    = flag.String("data", "testdata/heal/runs.csv", "the recorded suite")
	verbose = flag.Bool("v", false, "list every run's alarms")
)

type episode struct {
	t    float64
	kind string
}

// method replays one run and returns its alarm episodes (the first
// sample of each stretch in which a kind is alarmed).
type method struct {
	name string
	run  func(r *dataset.Run) []episode
}

func base(r *dataset.Run) time.Time { return time.Unix(1764795600+int64(r.Round)*1000, 0) }

func at(r *dataset.Run, t float64) time.Time {
	return base(r).Add(time.Duration(t * float64(time.Second)))
}

// replayEngine feeds the run to e as agent 1; onPred sees every tick's
// predictions (for collecting training windows).
func replayEngine(e *heal.Engine, r *dataset.Run, onPred func(t float64, ps []heal.Prediction)) []episode {
	var eps []episode
	on := map[heal.Kind]bool{}
	for _, row := range r.Rows {
		now := at(r, row.T)
		if row.Event != "" {
			switch {
			case row.Event == "start":
				e.Event(heal.Event{Time: now, Agent: 1, Type: heal.Started})
			case row.Event == "oom":
				e.Event(heal.Event{Time: now, Agent: 1, Type: heal.OOMKilled})
			case strings.HasPrefix(row.Event, "exit:"):
				c, _ := strconv.Atoi(row.Event[5:])
				ev := heal.Event{Time: now, Agent: 1, Type: heal.Exited, Code: c}
				if c < 0 {
					ev.Code, ev.Signal = 0, -c
				}
				e.Event(ev)
			}
			continue
		}
		e.ObserveHost(heal.HostSample{Time: now, PSICPU: row.PSI, PSIMem: -1, PSIIO: -1})
		o := heal.Obs{Sample: telemetry.Sample{Time: now, CPU: row.CPU, CPUSeconds: row.CPUSec, Mem: row.Mem, FDs: int(row.FDs), Procs: row.Procs},
			MemMax: row.MemMax, FDMax: row.FDMax, DiskUsed: row.DiskUsed, DiskSize: row.DiskSize}
		if row.HBAge >= 0 {
			o.Heartbeat = now.Add(-time.Duration(row.HBAge * float64(time.Second))).Truncate(10 * time.Millisecond)
			o.HeartbeatEvery = 500 * time.Millisecond
		}
		e.Observe(1, o)
		e.Tick(now, heal.Forecast{})
		ps := e.Predictions(1)
		if onPred != nil {
			onPred(row.T, ps)
		}
		cur := map[heal.Kind]bool{}
		for _, p := range ps {
			if p.P >= 0.7 && p.ETA <= 60 {
				cur[p.Kind] = true
				if !on[p.Kind] {
					eps = append(eps, episode{row.T, p.Kind.String()})
				}
			}
		}
		on = cur
	}
	return eps
}

// threshold is the fixed-rule predictor: 90 % of a limit, 3 failed exits
// in 10 s, a heartbeat 3 intervals late or 5 s without CPU, PSI >= 80.
func threshold(r *dataset.Run) []episode {
	var eps []episode
	on := map[string]bool{}
	var exits []float64
	lastCPU, lastMove := -1.0, 0.0
	for _, row := range r.Rows {
		if row.Event != "" {
			if strings.HasPrefix(row.Event, "exit:") && row.Event != "exit:0" {
				exits = append(exits, row.T)
			}
			if row.Event == "start" {
				lastCPU, lastMove = -1, row.T
			}
			continue
		}
		cur := map[string]bool{}
		f := func(v, lim int64) bool { return lim > 0 && float64(v) >= 0.9*float64(lim) }
		if f(row.Mem, row.MemMax) {
			cur["MemoryExhaustion"] = true
		}
		if f(row.FDs, row.FDMax) {
			cur["FDExhaustion"] = true
		}
		if f(row.DiskUsed, row.DiskSize) {
			cur["DiskExhaustion"] = true
		}
		n := 0
		for _, t := range exits {
			if row.T-t < 10 {
				n++
			}
		}
		if n >= 3 {
			cur["CrashLoop"] = true
		}
		if row.CPUSec-lastCPU > 0.005 {
			lastCPU, lastMove = row.CPUSec, row.T
		}
		if row.HBAge > 1.5 || row.T-lastMove >= 5 {
			cur["Hang"] = true
		}
		if row.PSI >= 80 {
			cur["CPUOverload"] = true
		}
		for k := range cur {
			if !on[k] {
				eps = append(eps, episode{row.T, k})
			}
		}
		on = cur
	}
	sort.SliceStable(eps, func(i, j int) bool { return eps[i].t < eps[j].t })
	return eps
}

type score struct {
	n, hit        map[string]int
	lead          map[string][]float64
	tp, fp, wrong int
	fpHealthy     int
	healthyHours  float64
	runs          []string
}

var prediction = []string{"MemoryExhaustion", "FDExhaustion", "DiskExhaustion", "CrashLoop"}
var detection = []string{"Hang", "CPUOverload"}

func isDetection(k string) bool { return k == "Hang" || k == "CPUOverload" }

func evaluate(m method, runs []*dataset.Run) *score {
	s := &score{n: map[string]int{}, hit: map[string]int{}, lead: map[string][]float64{}}
	for _, r := range runs {
		eps := m.run(r)
		end := r.Rows[len(r.Rows)-1].T
		hit := false
		var fps int
		for _, e := range eps {
			if e.kind == "CPUOverload" && r.Kind != "CPUOverload" {
				continue // a host condition: scored on the hog's run only
			}
			switch {
			case r.Kind == "" || r.FailAt < 0:
				if e.kind != r.Kind {
					fps++
				}
			case e.kind == r.Kind && !isDetection(r.Kind) && e.t < r.FailAt:
				if !hit {
					hit = true
					s.lead[r.Kind] = append(s.lead[r.Kind], r.FailAt-e.t)
				}
			case e.kind == r.Kind && isDetection(r.Kind) && e.t >= r.FailAt:
				if !hit {
					hit = true
					s.lead[r.Kind] = append(s.lead[r.Kind], e.t-r.FailAt)
				}
			case !isDetection(r.Kind) && e.t < r.FailAt && e.kind != r.Kind:
				s.wrong++ // the right agent, another kind: not counted as false
			case e.t < r.FailAt || isDetection(r.Kind):
				fps++ // a hang/overload alarm before its onset, or of another kind
			}
		}
		if r.Kind != "" && r.FailAt >= 0 {
			s.n[r.Kind]++
			if hit {
				s.hit[r.Kind]++
				s.tp++
			}
		}
		s.fp += fps
		if r.Kind == "" {
			s.fpHealthy += fps
			s.healthyHours += end / 3600
		}
		if *verbose {
			s.runs = append(s.runs, fmt.Sprintf("  %-10s round %d %-9s fail@%6.2f hit=%v alarms=%v", m.name, r.Round, r.Scenario, r.FailAt, hit, eps))
		}
	}
	return s
}

func med(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func main() {
	flag.Parse()
	f, err := os.Open(*data)
	if err != nil {
		fmt.Println("heal eval: skipped:", err, "(record it with: sudo go run ./scripts/heal/record)")
		return
	}
	runs, err := dataset.Read(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "heal eval:", err)
		os.Exit(1)
	}
	maxRound := 0
	for _, r := range runs {
		maxRound = max(maxRound, r.Round)
	}
	split := (maxRound + 1) / 2
	var dev, test []*dataset.Run
	for _, r := range runs {
		if r.Round < split {
			dev = append(dev, r)
		} else {
			test = append(test, r)
		}
	}
	// the history: a prior engine lives through the development runs;
	// its recorded failures (with their windows) are the positives, the
	// healthy controls' feature windows the negatives.
	hist := heal.New(heal.Config{Seed: 1})
	var neg [heal.NumKinds][]heal.Snap
	for i, r := range dev {
		agentRun := *r
		_ = agentRun
		e := heal.New(heal.Config{Seed: uint64(i + 1)})
		replayEngine(e, r, func(t float64, ps []heal.Prediction) {
			if r.Kind != "" {
				return
			}
			for _, p := range ps {
				if int(t*2)%2 == 0 { // one a second
					neg[p.Kind] = append(neg[p.Kind], heal.Snap{Ago: -1, X: p.X})
				}
			}
		})
		hist.Train(append(hist.Snapshot().Failures, e.Snapshot().Failures...), neg)
	}
	trained := hist.Snapshot()
	learned := func() *heal.Engine {
		e := heal.New(heal.Config{Seed: 1})
		e.Train(trained.Failures, neg)
		return e
	}
	methods := []method{
		{"systemd", func(r *dataset.Run) []episode { return nil }},
		{"threshold", threshold},
		{"prior", func(r *dataset.Run) []episode { return replayEngine(heal.New(heal.Config{Seed: 1}), r, nil) }},
		{"learned", func(r *dataset.Run) []episode { return replayEngine(learned(), r, nil) }},
	}
	var scores []*score
	for _, m := range methods {
		scores = append(scores, evaluate(m, test))
	}
	fmt.Printf("## Healing: %s, %d runs; history rounds 0-%d (%d runs, %d failures recorded), scored rounds %d-%d (%d runs)\n\n",
		*data, len(runs), split-1, len(dev), len(trained.Failures), split, maxRound, len(test))
	fmt.Printf("hazards after the history: %s\n", strings.TrimSpace(learned().Status()))
	fmt.Printf("| failure (runs) | %s |\n|---|%s\n", strings.Join(names(methods), " | "), strings.Repeat("---|", len(methods)))
	for _, k := range prediction {
		fmt.Printf("| %s predicted, median lead (%d) |", k, scores[0].n[k])
		for _, s := range scores {
			fmt.Printf(" %d/%d %s |", s.hit[k], s.n[k], secs(med(s.lead[k])))
		}
		fmt.Println()
	}
	for _, k := range detection {
		fmt.Printf("| %s detected, median delay (%d) |", k, scores[0].n[k])
		for _, s := range scores {
			fmt.Printf(" %d/%d %s |", s.hit[k], s.n[k], secs(med(s.lead[k])))
		}
		fmt.Println()
	}
	row := func(label string, f func(s *score) string) {
		fmt.Printf("| %s |", label)
		for _, s := range scores {
			fmt.Printf(" %s |", f(s))
		}
		fmt.Println()
	}
	row("predicted before failure (exhaustion + crash loop)", func(s *score) string {
		var n, h int
		for _, k := range prediction {
			n, h = n+s.n[k], h+s.hit[k]
		}
		return pct(h, n)
	})
	for _, L := range []float64{5, 10, 30} {
		row(fmt.Sprintf("predicted >= %.0f s ahead", L), func(s *score) string {
			var n, h int
			for _, k := range prediction {
				n += s.n[k]
				for _, l := range s.lead[k] {
					if l >= L {
						h++
					}
				}
			}
			return pct(h, n)
		})
	}
	row("precision of alarms", func(s *score) string { return pct(s.tp, s.tp+s.fp) })
	row("other-kind alarms on an agent about to fail", func(s *score) string { return strconv.Itoa(s.wrong) })
	row("false alarms per healthy agent-hour", func(s *score) string {
		if s.healthyHours == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f (%d in %.1f min)", float64(s.fpHealthy)/s.healthyHours, s.fpHealthy, s.healthyHours*60)
	})
	if *verbose {
		for _, s := range scores {
			fmt.Println(strings.Join(s.runs, "\n"))
		}
	}
}

func names(ms []method) []string {
	var s []string
	for _, m := range ms {
		s = append(s, m.name)
	}
	return s
}

func secs(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.1fs", v)
}

func pct(a, b int) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%% (%d/%d)", 100*float64(a)/float64(b), a, b)
}
