// Command mem evaluates the memory manager's cache policies: it replays
// every block trace in $AIOS_DATA/cache (*.txt or *.txt.gz, one block
// number per line; default ../shared/datasets; the public set holds
// CloudPhysics) and the page-reference traces recorded from real
// programs (testdata/mem/*.trace, see scripts/memtrace), and prints miss
// ratios at several cache sizes for LRU, LFU, ARC, S3-FIFO (and its
// one-hit-promotion variant), SIEVE, LIRS, Predictive and Adaptive, with
// Belady's optimum as the floor, all in one run on the same data. Each
// trace that is absent is skipped with a line saying why. Output is one
// line per trace and size:
//
//	trace=NAME refs=N distinct=N size=PAGES belady=F lru=F lfu=F arc=F s3fifo=F s3fifo-1hit=F sieve=F lirs=F predictive=F adaptive=F adaptive+prefetch=F prefetch_accuracy=F best_classic=NAME adaptive_vs_best=+F best_with_1hit=NAME adaptive_vs_best_with_1hit=+F
//	summary adaptive_worse_than_best_classic_at=N sizes excess_points=F largest=+F
//	summary within_0.5_points_at=N/M sizes mean_miss lru=F ... adaptive=F lowest_mean=NAME target=met|not met
//
// Miss ratios are demand misses over references, 0..1; size is the cache
// in pages (by default 1, 5, 10, 20 and 40 % of the trace's distinct
// pages; -fractions picks others, such as the sizes held out when the
// constants were chosen: 0.025,0.075,0.15,0.3); best_classic is the best
// of the six policies the target names (LRU, LFU, ARC, S3-FIFO, SIEVE,
// LIRS); best_with_1hit adds S3-FIFO's one-hit variant (a stronger
// reading of the paper, printed beside libCacheSim's default);
// adaptive+prefetch is Adaptive with the fabric's prefetcher (which
// Belady, knowing nothing of prefetch, does not bound); adaptive_vs_best
// is Adaptive's miss ratio minus the best classic policy's (negative is
// better). The first summary counts the sizes where it is positive, sums
// those excesses in percentage points and names the largest. The second
// is the target (issue 15): Adaptive within 0.5 points of the best
// classic policy at every size of every trace, and the lowest miss ratio
// of all the policies averaged over every trace/size pair.
//
// It also draws mem-miss-ratio.png (plot.go) into -plots (default
// $AIOS_PLOTS, else eval-out): the same miss ratios as curves.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"aiosfs/engines/mem"
)

var policies = []string{mem.LRU, mem.LFU, mem.ARC, mem.S3FIFO, mem.S3FIFO1, mem.SIEVE, mem.LIRS, mem.Predictive, mem.Adaptive}
var classic = []string{mem.LRU, mem.LFU, mem.ARC, mem.S3FIFO, mem.SIEVE, mem.LIRS}

// tr is a trace file and the name it is reported under.
type tr struct{ name, path string }

func main() {
	data := os.Getenv("AIOS_DATA")
	if data == "" {
		data = "../shared/datasets"
	}
	seed := flag.Int64("seed", 1, "seed of every random choice")
	td := flag.String("testdata", "testdata/mem", "recorded traces (*.trace)")
	sampling := flag.Bool("sampling", false, "instead: what reading busy agents' smaps every K ticks costs the analyzer (sampling.go)")
	fr := flag.String("fractions", "0.01,0.05,0.1,0.2,0.4", "cache sizes, as fractions of each trace's distinct pages")
	flag.Parse()
	var fractions []float64
	for _, f := range strings.Split(*fr, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || x <= 0 || x > 1 {
			fmt.Fprintf(os.Stderr, "-fractions: bad fraction %q (want numbers in (0, 1])\n", f)
			os.Exit(2)
		}
		fractions = append(fractions, x)
	}

	var traces []tr
	pub, _ := filepath.Glob(filepath.Join(data, "cache", "*.txt*"))
	sort.Strings(pub)
	for _, p := range pub {
		traces = append(traces, tr{strings.SplitN(filepath.Base(p), ".", 2)[0], p})
	}
	if len(pub) == 0 {
		fmt.Printf("trace=cache skipped=%q\n", "no *.txt(.gz) in "+filepath.Join(data, "cache"))
	}
	rec, _ := filepath.Glob(filepath.Join(*td, "*.trace"))
	sort.Strings(rec)
	for _, p := range rec {
		traces = append(traces, tr{strings.TrimSuffix(filepath.Base(p), ".trace"), p})
	}
	if *sampling {
		runSampling(traces)
		return
	}
	worse, excess, largest := 0, 0.0, 0.0
	within, pairs := 0, 0
	meanSum := map[string]float64{}
	for _, t := range traces {
		refs, err := mem.ReadTrace(t.path)
		if err == nil && len(refs) == 0 {
			err = fmt.Errorf("%s: no references", t.path)
		}
		if err != nil {
			fmt.Printf("trace=%s skipped=%q\n", t.name, err.Error())
			continue
		}
		distinct := map[uint64]bool{}
		for _, k := range refs {
			distinct[k] = true
		}
		for _, frac := range fractions {
			size := int(frac * float64(len(distinct)))
			if size < 4 {
				continue
			}
			n := float64(len(refs))
			belady := float64(mem.Belady(refs, size)) / n
			addMiss(t.name, frac, "belady", belady)
			fmt.Printf("trace=%s refs=%d distinct=%d size=%d belady=%.4f", t.name, len(refs), len(distinct), size, belady)
			ratio := map[string]float64{}
			for _, name := range policies {
				p, err := mem.NewPolicy(name, size, *seed)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				ratio[name] = float64(mem.Replay(p, refs)) / n
				addMiss(t.name, frac, name, ratio[name])
				fmt.Printf(" %s=%.4f", name, ratio[name])
			}
			best := classic[0]
			for _, c := range classic {
				if ratio[c] < ratio[best] {
					best = c
				}
			}
			best1 := best
			if ratio[mem.S3FIFO1] < ratio[best] {
				best1 = mem.S3FIFO1
			}
			pairs++
			for _, name := range policies {
				meanSum[name] += ratio[name]
			}
			// The same Adaptive cache with the stride/sequence prefetcher
			// in front (at most 4 pages ahead per reference).
			ap, _ := mem.NewPolicy(mem.Adaptive, size, *seed)
			m, issued, used := mem.ReplayPrefetch(ap, refs, 4)
			acc := 0.0
			if issued > 0 {
				acc = float64(used) / float64(issued)
			}
			addMiss(t.name, frac, "adaptive+prefetch", float64(m)/n)
			fmt.Printf(" adaptive+prefetch=%.4f prefetch_accuracy=%.2f", float64(m)/n, acc)
			d := ratio[mem.Adaptive] - ratio[best]
			if d > 0 {
				worse++
				excess += 100 * d
				largest = max(largest, 100*d)
			}
			// Within 0.5 points, compared as printed (4 decimals).
			if math.Round(d*1e4) <= 50 {
				within++
			}
			fmt.Printf(" best_classic=%s adaptive_vs_best=%+.4f best_with_1hit=%s adaptive_vs_best_with_1hit=%+.4f\n", best, d, best1, ratio[mem.Adaptive]-ratio[best1])
		}
	}
	fmt.Printf("summary adaptive_worse_than_best_classic_at=%d sizes excess_points=%.2f largest=%+.2f\n", worse, excess, largest)
	defer writeMissPlot()
	if pairs == 0 {
		return
	}
	fmt.Printf("summary within_0.5_points_at=%d/%d sizes mean_miss", within, pairs)
	lowest := policies[0]
	for _, name := range policies {
		fmt.Printf(" %s=%.4f", name, meanSum[name]/float64(pairs))
		if meanSum[name] < meanSum[lowest] {
			lowest = name
		}
	}
	verdict := "not met"
	if within == pairs && lowest == mem.Adaptive {
		verdict = "met"
	}
	fmt.Printf(" lowest_mean=%s target=%q\n", lowest, verdict)
}
