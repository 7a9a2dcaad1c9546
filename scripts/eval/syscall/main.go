// Command syscall evaluates the system-call sequence models of
// engines/ml (issue 13) offline on ADFA-LD ($AIOS_DATA/adfa-ld; default
// ../shared/datasets): it learns normal behaviour from training.tar.gz
// only, splits the normal traces of validation.tar.gz in two by a seeded
// shuffle — the calibration half, on which each model's thresholds at 1 %
// and 5 % false positives are picked, and the test half — and reports, on
// the test half against every trace of attack.tar.gz, ROC AUC and the
// detection rate at those thresholds, at trace level, overall and per
// attack family (the directory of a trace less its _N run suffix), for
// every model side by side. When the data is absent it says so on one
// line and exits 0.
//
// Models (constants by flag, defaults in docs/syscall.md):
//
//	stide-lfc   STIDE window database, locality frame count
//	stide-rate  STIDE, mismatch rate
//	markov-mean add-α order-k Markov model, mean NLL per call
//	markov-max  the same, highest mean NLL over a window of calls
//	wb-mean     Witten–Bell interpolated order-k Markov model, mean NLL
//	wb-max      the same, highest mean NLL over a window of calls
//	knn         TF-IDF bag of 1..n-grams, 1 − cosine similarity to the
//	            K-th nearest training trace
//	gru-mean    GRU next-call language model, mean NLL per call
//	gru-max     the same, highest mean NLL over a window of calls
//	ensemble    stide-rate, markov-mean and knn, each as its rank among
//	            the calibration normals, averaged
//	ensemble-lm gru-mean, wb-mean and knn, the same way (Kim et al. 2016's
//	            normalise-and-average)
//	diag-sup    a diagnostic, not a one-class detector: similarity to the
//	            attack traces of the other runs less that to training
//	            (-diag=false leaves it out)
//
// Output: a header (data, constants, training times), then a table with
// one row per model and set,
//
//	model  set  n  auc  dr@1%  dr@5%
//
// where set is overall, a family, or (with -subset S) *S for the attack
// traces whose name ends with S; then the test half's realised
// false-positive rates per model, the attack runs with a trace flagged at
// the 1 % threshold and the chance of the same for a group of normals of
// a run's size, evidence (the rarest n-grams, by name) of the
// highest-scored trace of each family, and the run time (wall and CPU).
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"aiosfs/engines/ml"
)

type model struct {
	name  string
	score func(*Trace) float64
}

// set is one model's scores of the calibration half, the test half and
// the attack traces.
type set struct{ c, te, a []float64 }

func main() {
	start := time.Now()
	data := os.Getenv("AIOS_DATA")
	if data == "" {
		data = "../shared/datasets"
	}
	seed := flag.Uint64("seed", 1, "seed of the calibration/test split of the validation traces")
	stideN := flag.Int("stide-n", 6, "STIDE window length")
	frame := flag.Int("frame", 20, "STIDE locality frame, in windows")
	mk := flag.Int("markov-k", 2, "Markov order (calls of context)")
	alpha := flag.Float64("alpha", 0.01, "Markov add-α smoothing")
	win := flag.Int("win", 20, "Markov score window, in calls")
	wk := flag.Int("wb-k", 4, "Witten–Bell interpolated Markov order")
	kn := flag.Int("knn-n", 3, "kNN: longest n-gram")
	kk := flag.Int("knn-k", 1, "kNN: which nearest neighbour")
	sub := flag.Bool("knn-log", true, "kNN: sublinear term frequency log(1+count)")
	gh := flag.Int("gru-h", ml.DefaultGRUConfig().Hidden, "GRU: hidden units")
	ge := flag.Int("gru-epochs", ml.DefaultGRUConfig().Epochs, "GRU: training epochs")
	gb := flag.Int("gru-bptt", ml.DefaultGRUConfig().BPTT, "GRU: truncated BPTT segment, calls")
	glr := flag.Float64("gru-lr", ml.DefaultGRUConfig().LR, "GRU: Adam step size")
	ga := flag.Bool("gru-anneal", ml.DefaultGRUConfig().Anneal, "GRU: decay the step size linearly to 0")
	gs := flag.Uint64("gru-seed", ml.DefaultGRUConfig().Seed, "GRU: seed of the initial weights and trace order")
	diag := flag.Bool("diag", true, "also print diag-sup, the supervised leave-one-run-out diagnostic (not a one-class detector)")
	subset := flag.String("subset", "", "also report the attack traces whose name ends with this (a diagnostic; none by default)")
	evid := flag.Int("evidence", 3, "rarest n-grams shown per family (0: none)")
	flag.Parse()

	dir := filepath.Join(data, "adfa-ld")
	paths, skip := locate(dir)
	if skip != "" {
		fmt.Println(skip)
		return
	}
	train, sk1, err := readArchive(paths["training"], false)
	check(err)
	val, sk2, err := readArchive(paths["validation"], false)
	check(err)
	att, sk3, err := readArchive(paths["attack"], true)
	check(err)
	if len(train) == 0 || len(val) < 2 || len(att) == 0 {
		fmt.Printf("data=adfa-ld skipped=%q\n", fmt.Sprintf("too few traces: training %d validation %d attack %d", len(train), len(val), len(att)))
		return
	}
	rng := rand.New(rand.NewPCG(*seed, 0x5eca11))
	perm := rng.Perm(len(val))
	var calib, test []Trace
	for i, j := range perm {
		if i < len(val)/2 {
			calib = append(calib, val[j])
		} else {
			test = append(test, val[j])
		}
	}
	fams := map[string]int{}
	for _, t := range att {
		fams[t.Family]++
	}
	var famNames []string
	for f := range fams {
		famNames = append(famNames, f)
	}
	sort.Strings(famNames)
	fmt.Printf("data=%s training=%d validation=%d (calibration %d, test %d; seed %d) attack=%d families=%d empty_skipped=%d\n",
		dir, len(train), len(val), len(calib), len(test), *seed, len(att), len(famNames), sk1+sk2+sk3)
	fmt.Printf("constants stide-n=%d frame=%d markov-k=%d alpha=%g win=%d wb-k=%d knn-n=%d knn-k=%d knn-log=%v\n",
		*stideN, *frame, *mk, *alpha, *win, *wk, *kn, *kk, *sub)

	tr := make([][]int, len(train))
	for i, t := range train {
		tr[i] = t.Calls
	}
	st, err := ml.NewStide(*stideN, *frame)
	check(err)
	st.Train(tr)
	mm, err := ml.NewMarkov(*mk, *alpha, *win)
	check(err)
	mm.Train(tr)
	wb, err := ml.NewInterpMarkov(*wk, *win)
	check(err)
	wb.Train(tr)
	kx, err := ml.NewGramKNN(*kn, *kk, *sub)
	check(err)
	check(kx.Train(tr))
	fmt.Printf("trained n-gram models in %.1fs: stide windows=%d markov V=%d knn features=%d\n",
		time.Since(start).Seconds(), len(st.DB.Counts), mm.V, len(kx.IDF))
	gcfg := ml.DefaultGRUConfig()
	gcfg.Hidden, gcfg.Epochs, gcfg.BPTT, gcfg.LR, gcfg.Anneal, gcfg.Seed, gcfg.Win = *gh, *ge, *gb, *glr, *ga, *gs, *win
	gru, err := ml.NewGRULM(gcfg)
	check(err)
	t0, c0 := time.Now(), cpuTime()
	check(gru.Train(tr))
	fmt.Printf("trained gru in %.1fs (%.1fs CPU; wall time depends on the load): hidden=%d epochs=%d bptt=%d lr=%g anneal=%v seed=%d params=%d train-nll/epoch=%s\n",
		time.Since(t0).Seconds(), cpuTime()-c0, gcfg.Hidden, gcfg.Epochs, gcfg.BPTT, gcfg.LR, gcfg.Anneal, gcfg.Seed, len(gru.P), fmtF(gru.TrainLoss))

	// every call's NLL under the GRU, once per trace (in parallel: the
	// model is read-only while scoring, each trace its own stream)
	for _, ts := range [][]Trace{calib, test, att} {
		par(len(ts), func(i int) { ts[i].gru = gru.NLLs(ts[i].Calls) })
	}
	fmt.Printf("gru scored %d traces by %.1fs\n", len(calib)+len(test)+len(att), time.Since(start).Seconds())

	models := []model{
		{"stide-lfc", func(t *Trace) float64 { return st.Score(t.Calls).LFC }},
		{"stide-rate", func(t *Trace) float64 { return st.Score(t.Calls).MismatchRate }},
		{"markov-mean", func(t *Trace) float64 { return mm.Score(t.Calls).MeanNLL }},
		{"markov-max", func(t *Trace) float64 { return mm.Score(t.Calls).MaxWin }},
		{"wb-mean", func(t *Trace) float64 { return wb.Score(t.Calls).MeanNLL }},
		{"wb-max", func(t *Trace) float64 { return wb.Score(t.Calls).MaxWin }},
		{"knn", func(t *Trace) float64 { return kx.Score(t.Calls) }},
		{"gru-mean", func(t *Trace) float64 { return mean(t.gru) }},
		{"gru-max", func(t *Trace) float64 { return maxWin(t.gru, *win) }},
	}
	scores := func(m model, ts []Trace) []float64 {
		out := make([]float64, len(ts))
		par(len(ts), func(i int) { out[i] = m.score(&ts[i]) })
		return out
	}
	fmt.Printf("%-12s %-12s %5s %6s %7s %7s\n", "model", "set", "n", "auc", "dr@1%", "dr@5%")
	var fprs, runs []string
	var fpr1 []float64
	attScores := map[string][]float64{}
	sets := map[string]set{}
	for _, m := range models {
		sets[m.name] = set{scores(m, calib), scores(m, test), scores(m, att)}
	}
	// ensembles: each member's score as its rank among the calibration
	// normals (0..1), averaged with equal weights; they use no attack and
	// no test trace. The calibration half holds normals only, so there is
	// nothing on which weights could be fitted to detection; equal
	// weights on calibration ranks is Kim et al.'s normalise-and-average
	// with that constraint.
	sets["ensemble"] = rankMean(sets, []string{"stide-rate", "markov-mean", "knn"})
	sets["ensemble-lm"] = rankMean(sets, []string{"gru-mean", "wb-mean", "knn"})
	models = append(models, model{name: "ensemble"}, model{name: "ensemble-lm"})
	if *diag {
		sets["diag-sup"] = supervisedDiag(kx, calib, test, att, *kn)
		models = append(models, model{name: "diag-sup"})
	}
	for _, m := range models {
		c, te, a := sets[m.name].c, sets[m.name].te, sets[m.name].a
		attScores[m.name] = a
		t1, t5 := ml.ThresholdAtFPR(c, 0.01), ml.ThresholdAtFPR(c, 0.05)
		line := func(set string, pos []float64) {
			fmt.Printf("%-12s %-12s %5d %6.3f %7.3f %7.3f\n", m.name, set, len(pos), ml.AUC(te, pos), ml.RateAbove(pos, t1), ml.RateAbove(pos, t5))
		}
		line("overall", a)
		for _, f := range famNames {
			var pos []float64
			for i, t := range att {
				if t.Family == f {
					pos = append(pos, a[i])
				}
			}
			line(f, pos)
		}
		if *subset != "" {
			var pos []float64
			for i, t := range att {
				if strings.HasSuffix(t.Name, *subset) {
					pos = append(pos, a[i])
				}
			}
			line("*"+*subset, pos)
		}
		fprs = append(fprs, fmt.Sprintf("%s=%.3f/%.3f", m.name, ml.RateAbove(te, t1), ml.RateAbove(te, t5)))
		// run level: an attack run counts as detected when any of its
		// traces is flagged at the 1 % threshold
		hit := map[string]bool{}
		for i, t := range att {
			hit[t.Run] = hit[t.Run] || a[i] > t1
		}
		nh := 0
		for _, h := range hit {
			if h {
				nh++
			}
		}
		runs = append(runs, fmt.Sprintf("%s=%d", m.name, nh))
		fpr1 = append(fpr1, ml.RateAbove(te, t1))
	}
	fmt.Printf("test-half false-positive rate at the 1%%/5%% thresholds: %s\n", strings.Join(fprs, " "))
	nrun := map[string]bool{}
	for _, t := range att {
		nrun[t.Run] = true
	}
	perRun := float64(len(att)) / float64(len(nrun))
	fmt.Printf("attack runs with a trace flagged at the 1%% threshold (of %d runs, %.1f traces a run): %s\n", len(nrun), perRun, strings.Join(runs, " "))
	// the same rule on normal traces: a group of perRun test normals is
	// flagged with probability 1 − (1 − fpr)^perRun
	var grp []string
	for i, m := range models {
		grp = append(grp, fmt.Sprintf("%s=%.2f", m.name, 1-math.Pow(1-fpr1[i], perRun)))
	}
	fmt.Printf("a group of %.1f test normals flagged at the 1%% threshold, probability: %s\n", perRun, strings.Join(grp, " "))
	if *evid > 0 {
		a := attScores["knn"]
		for _, f := range famNames {
			best := -1
			for i, t := range att {
				if t.Family == f && (best < 0 || a[i] > a[best]) {
					best = i
				}
			}
			var ev []string
			for _, g := range kx.Grams.Rarest(att[best].Calls, *evid) {
				ev = append(ev, fmt.Sprintf("%s(seen %d, training %d)", g.Names, g.Seen, g.Training))
			}
			fmt.Printf("evidence family=%s trace=%s knn=%.3f rarest: %s\n", f, att[best].Name, a[best], strings.Join(ev, "; "))
		}
	}
	fmt.Printf("run time %.1fs (%.1fs CPU)\n", time.Since(start).Seconds(), cpuTime())
}

// locate finds the three archives under dir, or returns the line that
// says why the eval is skipped.
func locate(dir string) (map[string]string, string) {
	paths := map[string]string{}
	for _, n := range []string{"training", "validation", "attack"} {
		p := filepath.Join(dir, n+".tar.gz")
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Sprintf("data=adfa-ld skipped=%q", "no "+p)
		}
		paths[n] = p
	}
	return paths, ""
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "syscall:", err)
		os.Exit(1)
	}
}

// rankMean turns each named model's scores into their rank among its
// calibration scores (0..1, the fraction of calibration normals below)
// and averages them: a combination that needs no attack and no test
// trace.
func rankMean(sets map[string]set, names []string) set {
	var es set
	parts := []func(s set) []float64{
		func(s set) []float64 { return s.c },
		func(s set) []float64 { return s.te },
		func(s set) []float64 { return s.a },
	}
	outs := []*[]float64{&es.c, &es.te, &es.a}
	for p, part := range parts {
		out := make([]float64, len(part(sets[names[0]])))
		for _, name := range names {
			cal := append([]float64(nil), sets[name].c...)
			sort.Float64s(cal)
			for i, v := range part(sets[name]) {
				out[i] += float64(sort.SearchFloat64s(cal, v)) / float64(len(cal)) / float64(len(names))
			}
		}
		*outs[p] = out
	}
	return es
}

// par runs f(0..n-1) on GOMAXPROCS goroutines; each f writes only its own
// index, so the result does not depend on the schedule.
func par(n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// maxWin is the highest mean over w consecutive values (the mean of all
// when there are fewer), as MarkovScore.MaxWin.
func maxWin(v []float64, w int) float64 {
	if len(v) < w || w < 1 {
		return mean(v)
	}
	var s float64
	for _, x := range v[:w] {
		s += x
	}
	best := s
	for i := w; i < len(v); i++ {
		s += v[i] - v[i-w]
		best = math.Max(best, s)
	}
	return best / float64(w)
}

func fmtF(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.3f", x)
	}
	return strings.Join(s, ",")
}

// supervisedDiag is a diagnostic, not a detector the protocol allows: it
// measures how separable the attack traces are from the normals once a
// model has seen attack traces. A trace's score is its cosine similarity
// (the kNN's TF-IDF 1..n-grams, nearest neighbour) to the nearest attack
// trace of another run, less that to the nearest training trace. An
// attack trace is compared with the attack traces of every other run
// (leave-one-run-out), a normal trace with every attack trace; no trace
// is ever compared with itself or its own run.
func supervisedDiag(normal *ml.GramKNN, calib, test, att []Trace, n int) set {
	byRun := map[string]*ml.GramKNN{}
	var all [][]int
	for _, t := range att {
		all = append(all, t.Calls)
		if byRun[t.Run] == nil {
			var other [][]int
			for _, u := range att {
				if u.Run != t.Run {
					other = append(other, u.Calls)
				}
			}
			m, err := ml.NewGramKNN(n, 1, true)
			check(err)
			check(m.Train(other))
			byRun[t.Run] = m
		}
	}
	every, err := ml.NewGramKNN(n, 1, true)
	check(err)
	check(every.Train(all))
	score := func(ts []Trace, own bool) []float64 {
		out := make([]float64, len(ts))
		par(len(ts), func(i int) {
			m := every
			if own {
				m = byRun[ts[i].Run]
			}
			out[i] = normal.Score(ts[i].Calls) - m.Score(ts[i].Calls)
		})
		return out
	}
	return set{score(calib, false), score(test, false), score(att, true)}
}

// cpuTime is the user + system CPU seconds this process has used.
func cpuTime() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return math.NaN()
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
