package main

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// result is what one run's log says (scripts/heal/faults: "start T",
// "tick T", "fail KIND T") with the memory cgroup's OOM kills.
type result struct {
	starts   int
	fails    map[string]int // crash, emfile, hang; oom from the kernel
	outages  []time.Duration
	open     time.Duration // an outage still going at the end: not running, or stalled
	upAtEnd  bool
	avail    float64
	story    []string
	unparsed int
}

func (r result) failures() int {
	n := 0
	for _, v := range r.fails {
		n += v
	}
	return n
}

// analyse reads x's log up to the end of its round. An outage is the time
// between the last sign of progress of one process (a tick, or its own
// note of failure) and the start of the next — every restart is one,
// averted failure or not — or a gap of over a second between two ticks
// (a hang that nothing restarts); an outage still going at the end is
// open and counts against availability, measured from the first start.
func analyse(x *run, t0 time.Time) result {
	res := result{fails: map[string]int{}}
	if x.oom > 0 {
		res.fails["oom"] = int(x.oom)
	}
	f, err := os.Open(x.log())
	if err != nil {
		res.story = append(res.story, "no log: "+err.Error())
		return res
	}
	defer f.Close()
	type ev struct {
		kind string
		t    time.Time
	}
	var evs []ev
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			res.unparsed++
			continue
		}
		ns, err := strconv.ParseInt(fs[len(fs)-1], 10, 64)
		if err != nil {
			res.unparsed++
			continue
		}
		if t := time.Unix(0, ns); !t.After(x.end) {
			evs = append(evs, ev{strings.Join(fs[:len(fs)-1], " "), t})
		}
	}
	if err := sc.Err(); err != nil { // a line over 64 KiB: not the program's
		res.story = append(res.story, "log read stopped: "+err.Error())
	}
	if res.unparsed > 0 {
		res.story = append(res.story, fmt.Sprintf("%d lines of the log not understood", res.unparsed))
	}
	slices.SortStableFunc(evs, func(a, b ev) int { return a.t.Compare(b.t) })
	var first, prev time.Time
	for _, e := range evs {
		if first.IsZero() {
			if e.kind != "start" {
				continue
			}
			first, prev = e.t, e.t
			res.starts = 1
			res.story = append(res.story, fmt.Sprintf("%6.2fs start", e.t.Sub(t0).Seconds()))
			continue
		}
		gap := e.t.Sub(prev)
		switch {
		case e.kind == "start":
			res.starts++
			res.outages = append(res.outages, gap)
			res.story = append(res.story, fmt.Sprintf("%6.2fs start again after %.0f ms", e.t.Sub(t0).Seconds(), ms(gap)))
		case gap > stall:
			res.outages = append(res.outages, gap)
			res.story = append(res.story, fmt.Sprintf("%6.2fs progress again after %.0f ms", e.t.Sub(t0).Seconds(), ms(gap)))
		}
		if k, ok := strings.CutPrefix(e.kind, "fail "); ok {
			res.fails[k]++
			res.story = append(res.story, fmt.Sprintf("%6.2fs fail %s", e.t.Sub(t0).Seconds(), k))
		}
		prev = e.t
	}
	if first.IsZero() {
		res.story = append(res.story, "never started")
		return res
	}
	if tail := x.end.Sub(prev); tail > stall {
		res.open = tail
		res.story = append(res.story, fmt.Sprintf("%6.2fs down at the end, for %.1f s", x.end.Sub(t0).Seconds(), tail.Seconds()))
	} else {
		res.upAtEnd = true
	}
	down := res.open
	for _, o := range res.outages {
		down += o
	}
	res.avail = 1 - down.Seconds()/x.end.Sub(first).Seconds()
	return res
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// report prints, per fault and per supervisor over all rounds: runs up at
// the end, failures (by kind), restarts, outages with their median and
// largest length (the time to recover), time down at the end, and mean
// availability; then the same over all faults.
func report(all []*run) {
	fmt.Printf("heal recover: %d rounds of %.0f s, %d faults under each supervisor at once (load average %s)\n",
		*rounds, *secs, len(scenarios), loadavg())
	fmt.Println("  aiosfs      the daemon at `aiosfs serve`'s defaults, `heal restart=on-failure`, memmax=48M")
	fmt.Println("  systemd     Restart=on-failure, RestartSec=100ms, StartLimitBurst=5 per 10 s, MemoryMax=48M (systemd's defaults)")
	fmt.Printf("  systemd+wd  the same with WatchdogSec=%s (3 heartbeat intervals)\n", watchdogSec)
	if *verbose {
		for _, x := range all {
			fmt.Printf("\n%s under %s:\n", x.sc.name, x.sup)
			for _, l := range x.res.story {
				fmt.Println("   ", l)
			}
		}
	}
	head := "supervisor\tup at end\tfailures\trestarts\toutages\trecover p50\trecover max\tdown at end\tavailability"
	row := func(w *tabwriter.Writer, sup string, rs []*run) {
		var up, restarts int
		fails := map[string]int{}
		var outs []time.Duration
		var open time.Duration
		var avail float64
		for _, x := range rs {
			if x.res.upAtEnd {
				up++
			}
			restarts += max(0, x.res.starts-1)
			for k, v := range x.res.fails {
				fails[k] += v
			}
			outs = append(outs, x.res.outages...)
			open += x.res.open
			avail += x.res.avail
		}
		slices.Sort(outs)
		p50, mx := "-", "-"
		if len(outs) > 0 {
			p50 = fmt.Sprintf("%.0f ms", ms(outs[len(outs)/2]))
			mx = fmt.Sprintf("%.0f ms", ms(outs[len(outs)-1]))
		}
		fmt.Fprintf(w, "%s\t%d/%d\t%s\t%d\t%d\t%s\t%s\t%.1f s\t%.1f %%\t\n", sup, up, len(rs), failString(fails), restarts, len(outs), p50, mx, open.Seconds(), 100*avail/float64(max(1, len(rs))))
	}
	for _, sc := range append(slices.Clone(scenarios), scenario{name: "all"}) {
		if sc.name == "all" {
			fmt.Println("\nall faults")
		} else {
			fmt.Printf("\n%s: %s\n", sc.name, sc.what)
		}
		w := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(w, head+"\t")
		for _, sup := range supervisors {
			var rs []*run
			for _, x := range all {
				if x.sup == sup && (sc.name == "all" || x.sc.name == sc.name) {
					rs = append(rs, x)
				}
			}
			row(w, sup, rs)
		}
		w.Flush()
	}
	fmt.Println("\nfailures: what the program noted (crash, emfile, hang) and the kernel's OOM kills; an outage: from a process's last progress to the next start, or a stall over 1 s; down at end: open outages' time")
}

func failString(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	n := 0
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		n += m[k]
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return fmt.Sprintf("%d (%s)", n, strings.Join(parts, ", "))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
