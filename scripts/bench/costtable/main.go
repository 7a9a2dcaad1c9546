// Command costtable prints where the daemon's CPU goes, per agent-second,
// from the CPU profiles `go run ./scripts/bench -cpuprofile FILE` writes
// (FILE.idle-off, FILE.idle-on, FILE.busy-off, FILE.busy-on):
//
//	go run ./scripts/bench/costtable -agents 200 FILE.idle-off FILE.idle-on ...
//
// One column per profile, one row per part of the daemon: the samples
// whose stack has a frame matching each of the row's patterns, in µs of
// CPU per agent per second (sample seconds ÷ profile duration ÷ agents).
// Rows marked "··" are parts of the row above; a sample counts in the
// first top-level row it matches, so top-level rows add up to "all". It
// reads `go tool pprof -traces`, so it needs the go tool and nothing else.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

type row struct {
	name string
	sub  bool     // a part of the top-level row above
	all  []string // each must match some frame
}

var rows = []row{
	// Hooks that run on the pass's goroutine come first, so that the
	// pass's own row is the sampling alone.
	{name: "self-sample (/proc/self)", all: []string{`sampleSelf`}},
	{name: "agent engine's Reap hook (cgroup.procs of every agent)", all: []string{`agent\.\(\*Engine\)\.Reap`}},
	{name: "scheduler", all: []string{`engines/sched\.`}},
	{name: "telemetry: the pass, all of it", all: []string{`telemetry\.\(\*Sampler\)\.(pass|Tick)|cgroup1\.\(\*cgroup\)\.Stat`}},
	{name: "cgroup Stats (containerd: 16 files, 4 goroutines)", sub: true, all: []string{`cgroup\.\(\*v[12]Group\)\.Stats|cgroup1\.\(\*cgroup\)\.Stat|cgroup2\.\(\*Manager\)\.Stat`}},
	{name: "cgroup Counters (4 files)", sub: true, all: []string{`\.Counters$`}},
	{name: "cgroup CPUUsage, the hold test (1 file)", sub: true, all: []string{`\.CPUUsage$`}},
	{name: "cgroup.procs and sub-cgroups", sub: true, all: []string{`sampleTarget`, `procsTree`}},
	{name: "/proc/PID stat, status, io, fd table", sub: true, all: []string{`proc\.FS\.(Sample|LibrarySample)$`}},
	{name: "sock_diag dump", sub: true, all: []string{`sockdiag\.`}},
	{name: "memory engine tick", all: []string{`mem\.\(\*Engine\)\.(Tick|Run)`}},
	{name: "smaps read", sub: true, all: []string{`vm\.FS\.Smaps$|vm\.\(\*SmapsReader\)\.Smaps$`, `kfile\.|os\.ReadFile`}},
	{name: "smaps parse", sub: true, all: []string{`vm\.ParseSmaps|vm\.parseSmaps`}},
	{name: "clear_refs write", sub: true, all: []string{`vm\.FS\.ClearRefs`}},
	{name: "pressure check (cgroup memory files)", sub: true, all: []string{`mem\.\(\*Engine\)\.pressured`}},
	{name: "cgroup.procs (agent Snapshot)", sub: true, all: []string{`mem\.`, `agent\.\(\*Engine\)\.Snapshot`}},
	{name: "GPU watch (mock devices; cgroup.procs of every agent)", all: []string{`gpu\.\(\*Engine\)\.(Watch|Run)`}},
	{name: "proc connector (every fork, exec, exit on the host)", all: []string{`WatchProc|procconn\.`}},
	{name: "FUSE and 9P serving", all: []string{`go-fuse|p9fs|hugelgupf`}},
	{name: "GC", all: []string{`runtime\.(gcBgMarkWorker|gcAssistAlloc|bgsweep|bgscavenge|gcStart|markroot)`}},
	{name: "runtime, other (scheduler, timers, netpoll)", all: []string{`.`}},
}

type sample struct {
	v      time.Duration
	frames []string
}

func load(path string) (dur float64, out []sample, err error) {
	b, err := exec.Command("go", "tool", "pprof", "-traces", path).Output()
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %v", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur *sample
	durRe := regexp.MustCompile(`^Duration: ([0-9.]+)(ms|s|m)`)
	for sc.Scan() {
		l := sc.Text()
		if m := durRe.FindStringSubmatch(l); m != nil {
			d, _ := time.ParseDuration(m[1] + m[2])
			dur = d.Seconds()
			continue
		}
		if strings.HasPrefix(l, "-----------+") {
			if cur != nil {
				out = append(out, *cur)
			}
			cur = &sample{}
			continue
		}
		if cur == nil {
			continue
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(cur.frames) == 0 {
			d, err := time.ParseDuration(f[0])
			if err != nil {
				continue
			}
			cur.v = d
			f = f[1:]
		}
		if len(f) > 0 {
			cur.frames = append(cur.frames, f[0])
		}
	}
	if cur != nil && len(cur.frames) > 0 {
		out = append(out, *cur)
	}
	return dur, out, nil
}

func matches(r row, s sample, res []*regexp.Regexp) bool {
	for _, re := range res {
		ok := false
		for _, f := range s.frames {
			if re.MatchString(f) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func main() {
	agents := flag.Int("agents", 200, "agents the profiled daemon managed")
	flag.Parse()
	comp := make([][]*regexp.Regexp, len(rows))
	for i, r := range rows {
		for _, p := range r.all {
			comp[i] = append(comp[i], regexp.MustCompile(p))
		}
	}
	vals := make([][]float64, len(rows)+1) // last: all
	for i := range vals {
		vals[i] = make([]float64, flag.NArg())
	}
	for j, path := range flag.Args() {
		dur, samples, err := load(path)
		if err != nil || dur == 0 {
			fmt.Fprintln(os.Stderr, "costtable:", path, err)
			os.Exit(1)
		}
		per := func(d time.Duration) float64 { return d.Seconds() / dur / float64(*agents) * 1e6 }
		for _, s := range samples {
			vals[len(rows)][j] += per(s.v)
			top := -1
			for i, r := range rows {
				if !r.sub && top >= 0 {
					continue // counted in an earlier top-level row
				}
				if r.sub && top < 0 {
					continue
				}
				if r.sub {
					// parts of the row that took the sample
					parent := i
					for parent > 0 && rows[parent].sub {
						parent--
					}
					if parent != top {
						continue
					}
				}
				if matches(r, s, comp[i]) {
					vals[i][j] += per(s.v)
					if !r.sub {
						top = i
					}
				}
			}
		}
	}
	fmt.Print("| part of the daemon (µs of CPU per agent-second) |")
	for _, p := range flag.Args() {
		name := p
		if i := strings.LastIndexByte(p, '.'); i >= 0 {
			name = p[i+1:]
		}
		fmt.Printf(" %s |", name)
	}
	fmt.Print("\n| --- |" + strings.Repeat(" ---: |", flag.NArg()) + "\n")
	for i, r := range rows {
		name := r.name
		if r.sub {
			name = "·· " + name
		} else {
			name = "**" + name + "**"
		}
		fmt.Printf("| %s |", name)
		for _, v := range vals[i] {
			fmt.Printf(" %s |", strconv.FormatFloat(v, 'f', 0, 64))
		}
		fmt.Println()
	}
	fmt.Print("| **all** |")
	for _, v := range vals[len(rows)] {
		fmt.Printf(" %.0f |", v)
	}
	fmt.Println()
}
