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
//	ensemble    stide-rate, markov-mean and knn, each as its rank among
//	            the calibration normals, averaged
//
// Output: one line per model and set,
//
//	model=NAME set=overall|FAMILY n=N auc=F dr@1%=F dr@5%=F
//
// (and, with -subset S, set=*S for the attack traces whose name ends with
// S), with the test half's realised false-positive rates per model, evidence
// (the rarest n-grams, by name) of the highest-scored trace of each
// family, and the run time.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"aiosfs/engines/ml"
)

type model struct {
	name  string
	score func([]int) float64
}

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
	fmt.Printf("trained in %.1fs: stide windows=%d markov V=%d knn features=%d\n",
		time.Since(start).Seconds(), len(st.DB.Counts), mm.V, len(kx.IDF))

	models := []model{
		{"stide-lfc", func(c []int) float64 { return st.Score(c).LFC }},
		{"stide-rate", func(c []int) float64 { return st.Score(c).MismatchRate }},
		{"markov-mean", func(c []int) float64 { return mm.Score(c).MeanNLL }},
		{"markov-max", func(c []int) float64 { return mm.Score(c).MaxWin }},
		{"wb-mean", func(c []int) float64 { return wb.Score(c).MeanNLL }},
		{"wb-max", func(c []int) float64 { return wb.Score(c).MaxWin }},
		{"knn", kx.Score},
	}
	scores := func(m model, ts []Trace) []float64 {
		out := make([]float64, len(ts))
		for i, t := range ts {
			out[i] = m.score(t.Calls)
		}
		return out
	}
	fmt.Printf("%-12s %-12s %5s %6s %7s %7s\n", "model", "set", "n", "auc", "dr@1%", "dr@5%")
	var fprs []string
	attScores := map[string][]float64{}
	type set struct{ c, te, a []float64 }
	sets := map[string]set{}
	for _, m := range models {
		sets[m.name] = set{scores(m, calib), scores(m, test), scores(m, att)}
	}
	// ensemble: each member's score as its rank among the calibration
	// normals (0..1), averaged; it uses no attack and no test trace.
	ens := []string{"stide-rate", "markov-mean", "knn"}
	cdf := func(cal []float64, v float64) float64 {
		return float64(sort.SearchFloat64s(cal, v)) / float64(len(cal))
	}
	var es set
	for _, part := range []int{0, 1, 2} {
		var n int
		switch part {
		case 0:
			n = len(calib)
		case 1:
			n = len(test)
		default:
			n = len(att)
		}
		out := make([]float64, n)
		for _, name := range ens {
			cal := append([]float64(nil), sets[name].c...)
			sort.Float64s(cal)
			src := [][]float64{sets[name].c, sets[name].te, sets[name].a}[part]
			for i, v := range src {
				out[i] += cdf(cal, v) / float64(len(ens))
			}
		}
		switch part {
		case 0:
			es.c = out
		case 1:
			es.te = out
		default:
			es.a = out
		}
	}
	sets["ensemble"] = es
	models = append(models, model{name: "ensemble"})
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
	}
	fmt.Printf("test-half false-positive rate at the 1%%/5%% thresholds: %s\n", strings.Join(fprs, " "))
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
	fmt.Printf("run time %.1fs\n", time.Since(start).Seconds())
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
