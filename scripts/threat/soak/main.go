// Command soak measures the threat engine's false alarms live: it spawns
// benign agents on a running daemon (real programs, paced the way services
// and periodic jobs are), reads each agent's agents/N/threat once a second
// for the whole run, and prints per program the agent-hours watched, the
// windows scored, the windows at or above the alert threshold, the alarm
// episodes (a run of alarming windows counts once, as the responder acts
// once per step up) and the highest score. At the end it stops and removes
// its agents.
//
// The target, at most one false alarm per 10 benign agent-hours,
// cannot be shown on the recorded sets (0.05 benign agent-hours); this is
// the measurement that can, on the daemon as it runs, with its live feed
// (docs/threat.md §10 says what the live feed lacks against the recorder).
//
//	aiosfs serve -mount /tmp/soak -state /tmp/soak-state -cgroup-prefix soak &
//	go run ./scripts/threat/soak -mount /tmp/soak -for 50m -copies 1
//
// Programs run in a private work directory; network traffic stays on
// loopback. Nothing here is an attack: every alarm counted is a false one.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"aiosfs/ctl"
)

var (
	mount     = flag.String("mount", "/aios", "the running daemon's mount point")
	duration  = flag.Duration("for", 50*time.Minute, "how long to watch")
	copies    = flag.Int("copies", 1, "agents per program")
	threshold = flag.Float64("alert", 0.5, "score counted as an alarm (the default policy's alert)")
)

// program is one benign agent. W is its work directory, PORT the
// loopback web server's port.
type program struct{ name, script string }

const compileSrc = `#include <stdio.h>
static int fib(int n){return n<2?n:fib(n-1)+fib(n-2);}
int main(void){printf("%d\n",fib(24));return 0;}
`

var programs = []program{
	{"idle", `exec sleep infinity`},
	{"periodic", `while :; do date >> $W/log; ls /usr/bin | wc -l >> $W/log; sleep 5; done`},
	{"cron-like", `while :; do find /etc -maxdepth 1 -type f -newer $W/stamp 2>/dev/null | wc -l > /dev/null; touch $W/stamp; sleep 30; done`},
	{"compile", `while :; do gcc -O2 -o $W/a $W/a.c && $W/a >/dev/null; sleep 10; done`},
	{"gzip", `while :; do head -c 8M /usr/bin/* 2>/dev/null | gzip -c > $W/out.gz; sleep 10; done`},
	{"sqlite", `for i in $(seq 1 2000); do echo "insert into t values($i,'row $i');"; done > $W/ins.sql; while :; do sqlite3 $W/db.sqlite "create table if not exists t(a,b);" "begin;" ".read $W/ins.sql" "commit;" "select count(*) from t;" >/dev/null; sleep 10; done`},
	{"webserver", `mkdir -p $W/docs; head -c 1M /dev/urandom > $W/docs/blob; exec python3 -m http.server $PORT --bind 127.0.0.1 --directory $W/docs 2>/dev/null`},
	{"download", `sleep 3; while :; do curl -s -o $W/dl http://127.0.0.1:$PORT/blob; sleep 2; done`},
	{"filescan", `while :; do find /usr/share -type f -size -64k 2>/dev/null | head -2000 | xargs cat >/dev/null 2>&1; sleep 20; done`},
	{"backup", `mkdir -p $W/src; cp -r /usr/share/doc/bash $W/src/ 2>/dev/null; while :; do rm -rf $W/bk; cp -r $W/src $W/bk; tar cf $W/bk.tar -C $W bk; sleep 20; done`},
}

// watch is one agent's record over the run.
type watch struct {
	prog            string
	id              int
	windows, alarms int
	episodes        int
	inAlarm         bool
	last            string // the last window's time= (a window is counted once)
	max             float64
	maxType, maxTop string
	start           time.Time
	seconds         float64
}

func main() {
	flag.Parse()
	if *copies < 1 || *duration <= 0 {
		fail("-copies and -for must be positive")
	}
	if _, err := os.Stat(filepath.Join(*mount, "threat", "status")); err != nil {
		fail("no daemon with a threat engine at %s: %v", *mount, err)
	}
	work, err := os.MkdirTemp("", "aiosfs-soak-")
	if err != nil {
		fail("%v", err)
	}
	defer os.RemoveAll(work)
	port := 20000 + os.Getpid()%20000

	var ws []*watch
	stop := func() {
		for _, w := range ws {
			writeCtl(filepath.Join(*mount, "agents", strconv.Itoa(w.id), "ctl"), "stop")
		}
		deadline := time.Now().Add(15 * time.Second)
		for _, w := range ws {
			st := filepath.Join(*mount, "agents", strconv.Itoa(w.id), "status")
			for time.Now().Before(deadline) {
				b, _ := os.ReadFile(st)
				if v, _ := ctl.Field(string(b), "state"); v == "exited" {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			writeCtl(filepath.Join(*mount, "agents", strconv.Itoa(w.id), "ctl"), "remove")
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)

	for c := 0; c < *copies; c++ {
		for _, p := range programs {
			dir := filepath.Join(work, fmt.Sprintf("%s-%d", p.name, c))
			if err := os.MkdirAll(dir, 0755); err != nil {
				fail("%v", err)
			}
			if err := os.WriteFile(filepath.Join(dir, "a.c"), []byte(compileSrc), 0644); err != nil {
				fail("%v", err)
			}
			name := fmt.Sprintf("soak-%s-%d", p.name, c)
			script := fmt.Sprintf("export W=%s PORT=%d; %s", dir, port+c, p.script)
			line := fmt.Sprintf("spawn %s -- /bin/bash -c %s", name, ctlQuote(script))
			if err := writeCtl(filepath.Join(*mount, "ctl"), line); err != nil {
				stop()
				fail("spawn %s: %v", name, err)
			}
			id, err := agentID(name)
			if err != nil {
				stop()
				fail("%v", err)
			}
			ws = append(ws, &watch{prog: p.name, id: id, start: time.Now()})
		}
	}
	fmt.Fprintf(os.Stderr, "soak: %d agents for %s\n", len(ws), *duration)

	end := time.Now().Add(*duration)
	tick := time.NewTicker(time.Second)
loop:
	for time.Now().Before(end) {
		select {
		case <-sig:
			fmt.Fprintln(os.Stderr, "soak: interrupted; reporting what was watched")
			break loop
		case <-tick.C:
		}
		for _, w := range ws {
			b, err := os.ReadFile(filepath.Join(*mount, "agents", strconv.Itoa(w.id), "threat"))
			if err != nil {
				continue
			}
			line := strings.SplitN(string(b), "\n", 2)[0]
			t, _ := ctl.Field(line, "time")
			if t == "" || t == w.last {
				continue
			}
			w.last = t
			s, _ := ctl.Field(line, "score")
			score, err := strconv.ParseFloat(s, 64)
			if err != nil {
				continue
			}
			w.windows++
			if score > w.max {
				w.max = score
				w.maxType, _ = ctl.Field(line, "type")
				w.maxTop, _ = ctl.Field(line, "top")
			}
			if score >= *threshold {
				w.alarms++
				if !w.inAlarm {
					w.episodes++
				}
				w.inAlarm = true
			} else {
				w.inAlarm = false
			}
		}
	}
	for _, w := range ws {
		w.seconds = time.Since(w.start).Seconds()
	}
	status, _ := os.ReadFile(filepath.Join(*mount, "threat", "status"))
	stop()
	report(ws, string(status))
}

func report(ws []*watch, status string) {
	by := map[string][]*watch{}
	var names []string
	for _, w := range ws {
		if by[w.prog] == nil {
			names = append(names, w.prog)
		}
		by[w.prog] = append(by[w.prog], w)
	}
	sort.Strings(names)
	fmt.Printf("threat soak: %d benign agents, %s each, alarm at score >= %.2f; threat/status at the end:\n\n    %s\n\n",
		len(ws), time.Duration(ws[0].seconds*float64(time.Second)).Round(time.Second), *threshold, strings.ReplaceAll(strings.TrimSpace(status), "\n", "\n    "))
	fmt.Println("| program | agent-hours | windows scored | alarming windows | alarm episodes | episodes per 10 agent-hours | highest score (type, top features) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---|")
	var hours float64
	var win, alarms, eps int
	for _, n := range names {
		var h, mx float64
		var wn, al, ep int
		var mt, mtop string
		for _, w := range by[n] {
			h += w.seconds / 3600
			wn += w.windows
			al += w.alarms
			ep += w.episodes
			if w.max >= mx {
				mx, mt, mtop = w.max, w.maxType, w.maxTop
			}
		}
		hours += h
		win += wn
		alarms += al
		eps += ep
		fmt.Printf("| %s | %.2f | %d | %d | %d | %s | %.3f (%s, %s) |\n", n, h, wn, al, ep, per10(ep, h), mx, mt, mtop)
	}
	fmt.Printf("| **all** | %.2f | %d | %d | %d | %s | |\n", hours, win, alarms, eps, per10(eps, hours))
}

func per10(n int, hours float64) string {
	if hours <= 0 {
		return "-"
	}
	return strconv.FormatFloat(math.Round(float64(n)/hours*10*100)/100, 'f', 2, 64)
}

// ctlQuote quotes s as one field for ctl.Tokenize: double quotes, with
// backslashes and double quotes escaped.
func ctlQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func writeCtl(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// agentID finds the agent named name in agents/*/status.
func agentID(name string) (int, error) {
	ents, err := os.ReadDir(filepath.Join(*mount, "agents"))
	if err != nil {
		return 0, err
	}
	best := 0
	for _, e := range ents {
		id, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(*mount, "agents", e.Name(), "status"))
		if v, _ := ctl.Field(string(b), "name"); v == name && id > best {
			best = id
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("agent %s not found after spawn", name)
	}
	return best, nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "soak: "+format+"\n", args...)
	os.Exit(1)
}
