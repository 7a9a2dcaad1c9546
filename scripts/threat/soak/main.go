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
//	go run ./scripts/threat/soak -mount /tmp/soak -for 50m -copies 1 [-set trained|unseen|unseen2|unseen3]
//	go run ./scripts/threat/soak -set unseen3 -try 20s
//
// -set picks the programs: trained (soaks 1-3's, whose kinds are in the
// training data), unseen, unseen2 and unseen3 (out-of-sample sets: see
// their comments, and docs/threat.md §9 for which soak used which).
// -try runs one copy of the set's programs as plain child processes, with
// no daemon, for that long and says which of them died: a new set is
// checked this way before any of it runs under the daemon, so that its
// first run under the daemon is the measurement. Beside the
// windows it reads, it counts the daemon's own acts on its agents
// (threat/alerts.follow): under load it cannot read every agent's window
// every second, the responder sees them all.
//
// Programs run in a private work directory; network traffic stays on
// loopback. Nothing here is an attack: every alarm counted is a false one.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
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
	set       = flag.String("set", "trained", "program set: trained (the ten programs of soaks 1-3, whose kinds are in the training data), unseen (soak 4: programs used neither in training nor in an earlier soak), unseen2 (soak 6: programs in no earlier soak nor in training, written after soak 4) or unseen3 (soak 10: kinds in no earlier set nor in training, written after soak 8)")
	try       = flag.Duration("try", 0, "instead of a soak: run one copy of the set's programs without the daemon for this long and report which died (a check that a new set starts)")
)

// program is one benign agent. W is its work directory, PORT the
// loopback web server's port; files are written into W before it starts.
type program struct {
	name, script string
	files        map[string]string
}

const compileSrc = `#include <stdio.h>
static int fib(int n){return n<2?n:fib(n-1)+fib(n-2);}
int main(void){printf("%d\n",fib(24));return 0;}
`

var programs = []program{
	{"idle", `exec sleep infinity`, nil},
	{"periodic", `while :; do date >> $W/log; ls /usr/bin | wc -l >> $W/log; sleep 5; done`, nil},
	{"cron-like", `while :; do find /etc -maxdepth 1 -type f -newer $W/stamp 2>/dev/null | wc -l > /dev/null; touch $W/stamp; sleep 30; done`, nil},
	{"compile", `while :; do gcc -O2 -o $W/a $W/a.c && $W/a >/dev/null; sleep 10; done`, nil},
	{"gzip", `while :; do head -c 8M /usr/bin/* 2>/dev/null | gzip -c > $W/out.gz; sleep 10; done`, nil},
	{"sqlite", `for i in $(seq 1 2000); do echo "insert into t values($i,'row $i');"; done > $W/ins.sql; while :; do sqlite3 $W/db.sqlite "create table if not exists t(a,b);" "begin;" ".read $W/ins.sql" "commit;" "select count(*) from t;" >/dev/null; sleep 10; done`, nil},
	{"webserver", `mkdir -p $W/docs; head -c 1M /dev/urandom > $W/docs/blob; exec python3 -m http.server $PORT --bind 127.0.0.1 --directory $W/docs 2>/dev/null`, nil},
	{"download", `sleep 3; while :; do curl -s -o $W/dl http://127.0.0.1:$PORT/blob; sleep 2; done`, nil},
	{"filescan", `while :; do find /usr/share -type f -size -64k 2>/dev/null | head -2000 | xargs cat >/dev/null 2>&1; sleep 20; done`, nil},
	{"backup", `mkdir -p $W/src; cp -r /usr/share/doc/bash $W/src/ 2>/dev/null; while :; do rm -rf $W/bk; cp -r $W/src $W/bk; tar cf $W/bk.tar -C $W bk; sleep 20; done`, nil},
}

// unseen is the out-of-sample set: benign programs of which none is a
// scenario of scripts/threat/record (the training data) nor a program of
// soaks 1-3, chosen before any of them was run under the daemon. Their
// kinds overlap the training data's (a server answering in bulk, a
// downloader, compression, checksumming), their programs and paces do
// not: node serves, wget and a Python client download, xz, zip, lz4,
// sha256sum, jq, git commit and a Python worker and logger work.
var unseen = []program{
	{"node-serve", `exec node $W/serve.js`, map[string]string{"serve.js": nodeServe}},
	{"wget-fetch", `sleep 3; while :; do wget -q -O $W/dl http://127.0.0.1:$PORT/blob; sleep 3; done`, nil},
	{"py-fetch", `sleep 3; exec python3 $W/fetch.py`, map[string]string{"fetch.py": pyFetch}},
	{"xz", `while :; do cat /usr/lib/x86_64-linux-gnu/*.so* 2>/dev/null | head -c 16M | xz -1 -T1 > $W/a.xz; sleep 15; done`, nil},
	{"zip", `while :; do rm -f $W/a.zip; zip -qr $W/a.zip /usr/share/man/man5 /usr/share/man/man8 >/dev/null 2>&1; sleep 30; done`, nil},
	{"lz4", `while :; do dd if=/dev/urandom bs=1M count=16 2>/dev/null | lz4 -q -f - $W/z.lz4; sleep 12; done`, nil},
	{"checksum", `while :; do sha256sum /usr/bin/* > $W/sums 2>/dev/null; sleep 40; done`, nil},
	{"jq", `python3 -c 'import json,random; json.dump([{"k":i,"v":random.randint(0,1000)} for i in range(50000)], open("'$W'/d.json","w"))'; while :; do jq '[.[] | select(.v > 500)] | length' $W/d.json > $W/out; sleep 5; done`, nil},
	{"git-commit", `cd $W && git init -q r && cd r && while :; do date >> log; git add -A && git -c user.name=s -c user.email=s@localhost commit -qm tick; sleep 10; done`, nil},
	{"py-worker", `exec python3 $W/worker.py`, map[string]string{"worker.py": pyWorker}},
	{"py-logger", `exec python3 $W/logger.py`, map[string]string{"logger.py": pyLogger}},
}

// unseen2 is a second out-of-sample set, written after soak 4 (whose
// false alarms led to the API-poller training scenarios) and before
// anything of it ran under the daemon: none of its programs is a
// scenario of scripts/threat/record or a program of soaks 1-5 in the
// same role (node was soak 4's server; here it serves small JSON with
// kept-alive connections and, in another agent, polls it).
var unseen2 = []program{
	{"node-api", `exec node $W/api.js`, map[string]string{"api.js": nodeAPI}},
	{"node-poll", `sleep 3; exec node $W/poll.js`, map[string]string{"poll.js": nodePoll}},
	{"openssl-enc", `head -c 24M /dev/urandom > $W/plain; while :; do openssl enc -aes-256-cbc -pbkdf2 -pass pass:soak -in $W/plain -out $W/plain.enc; sleep 15; done`, nil},
	{"bzip2", `while :; do head -c 12M /usr/share/man/man1/* 2>/dev/null | bzip2 -1 > $W/a.bz2; sleep 20; done`, nil},
	{"du-scan", `while :; do du -s /usr/lib /usr/share > $W/du 2>/dev/null; sleep 30; done`, nil},
	{"awk-report", `awk 'BEGIN{srand(1); for(i=0;i<200000;i++) printf "%d,%s,%d\n", i, (i%7?"get":"put"), int(rand()*1000)}' > $W/log.csv; while :; do awk -F, '{n[$2]++; s[$2]+=$3} END{for(k in n) print k, n[k], s[k]/n[k]}' $W/log.csv > $W/report; sleep 5; done`, nil},
	{"split-join", `head -c 32M /dev/urandom > $W/big; while :; do rm -f $W/x*; split -b 1M $W/big $W/x && cat $W/x* > $W/joined && cmp -s $W/big $W/joined; sleep 15; done`, nil},
	{"unzip", `cd $W && python3 -c 'import zipfile; z=zipfile.ZipFile("a.zip","w",zipfile.ZIP_DEFLATED); [z.writestr("f%03d.txt"%i, ("line %d\n"%i)*4000) for i in range(200)]; z.close()'; while :; do rm -rf $W/out; unzip -q $W/a.zip -d $W/out; sleep 20; done`, nil},
	{"py-csv", `exec python3 $W/csvjob.py`, map[string]string{"csvjob.py": pyCSV}},
	{"grep-scan", `while :; do grep -rIl -m1 "license" /usr/share/doc > $W/hits 2>/dev/null; sleep 30; done`, nil},
}

// nodeAPI answers every request with a small JSON document, keeping
// connections alive, on PORT.
const nodeAPI = `const http = require("http");
let n = 0;
http.createServer((req, res) => {
  req.resume();
  req.on("end", () => { res.setHeader("content-type", "application/json"); res.end(JSON.stringify({n: n++, ok: true, t: Date.now()})); });
}).listen(+process.env.PORT, "127.0.0.1");
`

// nodePoll asks node-api for its state every second over one kept-alive
// connection.
const nodePoll = `const http = require("http");
const agent = new http.Agent({keepAlive: true, maxSockets: 1});
let last = 0;
setInterval(() => {
  http.get({host: "127.0.0.1", port: +process.env.PORT, path: "/v1/state", agent}, res => {
    let b = ""; res.on("data", d => b += d); res.on("end", () => { try { last = JSON.parse(b).n; } catch (e) {} });
  }).on("error", () => {});
}, 1000);
`

// pyCSV writes a 200,000-row CSV every 20 s and sums a column of it.
const pyCSV = `import csv, os, random, time
p = os.environ["W"] + "/t.csv"
while True:
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        for i in range(200000): w.writerow([i, random.random(), "k%d" % (i % 100)])
    with open(p) as f: s = sum(float(r[1]) for r in csv.reader(f))
    open(p + ".sum", "w").write(str(s))
    time.sleep(20)
`

// nodeServe answers every request with a 2 MiB blob (/blob) or a small
// JSON document (anything else), on PORT.
const nodeServe = `const http = require("http");
const blob = require("crypto").randomBytes(2 << 20);
http.createServer((req, res) => {
  if (req.url === "/blob") { res.end(blob); return; }
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({time: Date.now(), items: [1, 2, 3]}));
}).listen(+process.env.PORT, "127.0.0.1");
`

// pyFetch asks the node server for its JSON every 2 s and keeps a tally.
const pyFetch = `import json, os, time, urllib.request
n = 0
while True:
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s/status" % os.environ["PORT"], timeout=5) as r:
            json.load(r); n += 1
        open(os.environ["W"] + "/tally", "w").write(str(n))
    except OSError:
        pass
    time.sleep(2)
`

// pyWorker is a batch job: every 10 s about a second of arithmetic and
// a result file.
const pyWorker = `import os, time
while True:
    t = time.time(); primes = []
    n = 2
    while time.time() - t < 1:
        if all(n % p for p in primes[:200]): primes.append(n)
        n += 1
    open(os.environ["W"] + "/primes", "w").write(" ".join(map(str, primes[-100:])))
    time.sleep(10)
`

// pyLogger writes 20 log lines a second and rotates every 30 s,
// compressing the old log with zstd.
const pyLogger = `import os, subprocess, time
w = os.environ["W"]; log = w + "/app.log"; t0 = time.time(); i = 0
while True:
    with open(log, "a") as f:
        f.write("%.3f INFO request %d served in 3 ms\n" % (time.time(), i)); i += 1
    if time.time() - t0 > 30:
        os.replace(log, log + ".1")
        subprocess.run(["zstd", "-q", "-f", "--rm", log + ".1"])
        t0 = time.time()
    time.sleep(0.05)
`

// unseen3 is a third out-of-sample set, written after soak 8 and before
// anything of it ran under the daemon (-try only: the programs run
// without the daemon for 20 s to see that they start). Its kinds are in
// no earlier set and in no scenario of scripts/threat/record: compiled
// long-lived workers (a C write-ahead log with fdatasync, a Go
// cache with goroutines and checkpoints; each built once by its agent),
// make over a generated C tree, a Tcl HTTP/1.1 server of small pages and
// a curl client asking it for a page a second over one kept-alive
// connection, sqlite VACUUM and indexed queries, a local mirror kept by
// cp -u, md5sum/b2sum manifests verified, perl log reports, diff + patch,
// and a base64/xxd round trip. (rsync, ffmpeg and busybox are not
// installed here; go is not on the daemon's PATH, so go-cache names it.)
var unseen3 = []program{
	{"c-wal", `cd $W && gcc -O2 -o walwriter wal.c && exec ./walwriter $W`, map[string]string{"wal.c": cWAL}},
	{"go-cache", `cd $W && GOTOOLCHAIN=local GOPROXY=off /usr/local/go/bin/go build -o gcache gcache.go && exec ./gcache`, map[string]string{"gcache.go": goCache}},
	{"make-tree", `mkdir -p $W/src && mv $W/Makefile $W/src/ && cd $W/src && for i in $(seq 1 12); do printf 'int f%d(int x){int s=0;for(int i=0;i<x;i++)s+=i*%d;return s;}\n' $i $i > f$i.c; done && { for i in $(seq 1 12); do printf 'int f%d(int);\n' $i; done; printf '#include <stdio.h>\nint main(void){long s=0;\n'; for i in $(seq 1 12); do printf 's+=f%d(1000);\n' $i; done; printf 'printf("%%ld\\n",s);return 0;}\n'; } > main.c && while :; do touch f$((RANDOM%12+1)).c f$((RANDOM%12+1)).c main.c; make -s -j2 && ./prog >/dev/null; sleep 20; done`, map[string]string{"Makefile": makeTree}},
	{"tcl-http", `exec tclsh $W/serve.tcl`, map[string]string{"serve.tcl": tclServe}},
	{"curl-keepalive", `sleep 3; while :; do curl -s --rate 1/s -o "$W/page#1.html" "http://127.0.0.1:$PORT/p[1-60].html"; sleep 1; done`, nil},
	{"sqlite-vacuum", `sqlite3 $W/v.db "create table t(id integer primary key, k text, v integer, pad text); create index tk on t(k); with recursive c(x) as (select 1 union all select x+1 from c where x<100000) insert into t select x, 'k'||(x%5000), abs(random()%1000), hex(randomblob(40)) from c;" && while :; do sqlite3 $W/v.db "delete from t where id % 10 = abs(random()) % 10; insert into t(k,v,pad) select 'k'||(abs(random())%5000), abs(random()%1000), hex(randomblob(40)) from t limit 10000; vacuum; analyze; select k, count(*), avg(v) from t group by k order by 3 desc limit 10; select count(*) from t where k='k42';" > $W/q; sleep 20; done`, nil},
	{"mirror-sync", `mkdir -p $W/tree $W/mirror; for d in $(seq 1 30); do mkdir -p $W/tree/d$d; for f in $(seq 1 50); do head -c $((RANDOM%8192+256)) /dev/urandom > $W/tree/d$d/f$f; done; done; while :; do for i in $(seq 1 40); do head -c $((RANDOM%8192+256)) /dev/urandom > $W/tree/d$((RANDOM%30+1))/f$((RANDOM%50+1)); done; cp -au $W/tree/. $W/mirror/ && diff -rq $W/tree $W/mirror > $W/diff; sleep 30; done`, nil},
	{"md5-verify", `mkdir -p $W/data; for i in $(seq 1 300); do head -c $((RANDOM*4+1024)) /dev/urandom > $W/data/f$i; done; cd $W && find data -type f | sort | xargs md5sum > MD5SUMS && b2sum data/* > B2SUMS && while :; do md5sum -c --quiet MD5SUMS > verify 2>&1; b2sum -c --quiet B2SUMS >> verify 2>&1; sleep 30; done`, nil},
	{"perl-text", `perl $W/gen.pl > $W/access.log && while :; do perl $W/report.pl; sleep 15; done`, map[string]string{"gen.pl": perlGen, "report.pl": perlReport}},
	{"patch-cycle", `seq 1 20000 | sed 's/$/ alpha beta gamma/' > $W/a; while :; do sed "s/^\([0-9]*7\) alpha/\1 ALPHA $RANDOM/" $W/a > $W/b; diff -u $W/a $W/b > $W/p; cp $W/a $W/c; patch -s $W/c $W/p && cmp -s $W/c $W/b; sleep 20; done`, nil},
	{"base64-codec", `head -c 16M /dev/urandom > $W/bin; while :; do base64 $W/bin > $W/b64 && base64 -d $W/b64 > $W/back && cmp -s $W/bin $W/back; head -c 1M $W/bin | xxd > $W/hex && xxd -r $W/hex > $W/hexback; sleep 15; done`, nil},
}

// cWAL appends 4 KiB records to $1/wal twenty times a second, each made
// durable with fdatasync, and starts a new log every 32 MiB (keeping the
// previous one as wal.1), as a database's write-ahead log does.
const cWAL = `#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
	char path[4096], old[4096], rec[4096];
	unsigned long n = 0;
	long size = 0;
	if (argc < 2) return 2;
	snprintf(path, sizeof path, "%s/wal", argv[1]);
	snprintf(old, sizeof old, "%s/wal.1", argv[1]);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0) return 1;
	for (;;) {
		memset(rec, 'a' + n % 26, sizeof rec);
		snprintf(rec, 64, "%lu %ld\n", n++, (long)time(0));
		if (write(fd, rec, sizeof rec) != (ssize_t)sizeof rec) return 1;
		fdatasync(fd);
		size += sizeof rec;
		if (size >= 32L << 20) {
			close(fd);
			rename(path, old);
			fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd < 0) return 1;
			size = 0;
		}
		usleep(50000);
	}
}
`

// goCache is a long-lived worker: every 2 s four goroutines hash 3,000
// random 4 KiB values into a shared map (evicted by half past 40,000
// keys), and every fifth round the map is checkpointed to JSON.
const goCache = `package main

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"time"
)

func main() {
	w := os.Getenv("W")
	var mu sync.Mutex
	cache := map[string]string{}
	for round := 0; ; round++ {
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				r := rand.New(rand.NewSource(int64(round*4 + g)))
				buf := make([]byte, 4096)
				for i := 0; i < 3000; i++ {
					r.Read(buf)
					k := fmt.Sprintf("k%06d", r.Intn(200000))
					s := sha1.Sum(buf)
					mu.Lock()
					cache[k] = hex.EncodeToString(s[:])
					mu.Unlock()
				}
			}(g)
		}
		wg.Wait()
		if len(cache) > 40000 {
			n := 0
			for k := range cache {
				delete(cache, k)
				if n++; n > 20000 {
					break
				}
			}
		}
		if round%5 == 0 {
			if f, err := os.Create(w + "/checkpoint.tmp"); err == nil {
				json.NewEncoder(f).Encode(cache)
				f.Close()
				os.Rename(w+"/checkpoint.tmp", w+"/checkpoint.json")
			}
		}
		time.Sleep(2 * time.Second)
	}
}
`

// makeTree builds prog from every .c file in its directory, one object
// per source.
const makeTree = "OBJS := $(patsubst %.c,%.o,$(wildcard *.c))\nprog: $(OBJS)\n\t$(CC) -o $@ $^\n%.o: %.c\n\t$(CC) -O2 -c $<\n"

// tclServe is an HTTP/1.1 server of sixty small pages (/p1.html ...
// /p60.html) on PORT that keeps connections alive and answers every
// request on a connection in turn.
const tclServe = `set pages [dict create]
for {set i 1} {$i <= 60} {incr i} {
    dict set pages /p$i.html "<html><body><h1>page $i</h1>[string repeat {<p>lorem ipsum dolor sit amet</p>} [expr {10 + $i % 20}]]</body></html>\n"
}
proc accept {c addr port} {
    fconfigure $c -translation binary -blocking 0 -buffering full
    set ::req($c) ""
    fileevent $c readable [list onread $c]
}
proc onread {c} {
    if {[catch {read $c} d] || ([eof $c] && $d eq "")} {
        catch {close $c}
        unset -nocomplain ::req($c)
        return
    }
    append ::req($c) $d
    while {[set e [string first "\r\n\r\n" $::req($c)]] >= 0} {
        set head [string range $::req($c) 0 $e]
        set ::req($c) [string range $::req($c) [expr {$e + 4}] end]
        set path [lindex [split [lindex [split $head "\r\n"] 0] " "] 1]
        if {[dict exists $::pages $path]} {
            set body [dict get $::pages $path]; set st "200 OK"
        } else {
            set body "not found\n"; set st "404 Not Found"
        }
        puts -nonewline $c "HTTP/1.1 $st\r\nContent-Type: text/html\r\nContent-Length: [string length $body]\r\n\r\n$body"
        flush $c
    }
}
socket -server accept -myaddr 127.0.0.1 $env(PORT)
vwait forever
`

// perlGen writes a 150,000-line web server access log.
const perlGen = `srand(1);
my @p = qw(/ /index.html /api/v1/items /api/v1/users /static/app.js /static/app.css /login /logout);
my @s = (200, 200, 200, 200, 301, 304, 404, 500);
for my $i (1 .. 150000) {
    printf "10.0.%d.%d - - [04/Dec/2026:12:%02d:%02d +0000] \"GET %s HTTP/1.1\" %d %d\n",
        rand(256), rand(256), ($i / 60) % 60, $i % 60, $p[rand @p], $s[rand @s], rand(50000);
}
`

// perlReport counts the log's answers by status and its five busiest
// paths with their mean size.
const perlReport = `my (%st, %bytes, %hits);
open my $f, '<', "$ENV{W}/access.log" or die;
while (<$f>) {
    next unless m{^(\S+) \S+ \S+ \[([^\]]+)\] "(\w+) (\S+) [^"]*" (\d{3}) (\d+)};
    $st{$5}++; $bytes{$4} += $6; $hits{$4}++;
}
open my $o, '>', "$ENV{W}/report.txt" or die;
print $o "$_ $st{$_}\n" for sort keys %st;
printf $o "%s %d %.1f\n", $_, $hits{$_}, $bytes{$_} / $hits{$_} for (sort { $hits{$b} <=> $hits{$a} } keys %hits)[0 .. 4];
`

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
	acts            int // the daemon's acts on it (threat/alerts.follow), any verb
}

func main() {
	flag.Parse()
	if *copies < 1 || *duration <= 0 || *try < 0 {
		fail("-copies and -for must be positive, -try not negative")
	}
	progs := programs
	switch *set {
	case "trained":
	case "unseen":
		progs = unseen
	case "unseen2":
		progs = unseen2
	case "unseen3":
		progs = unseen3
	default:
		fail("-set %q: want trained, unseen, unseen2 or unseen3", *set)
	}
	work, err := os.MkdirTemp("", "aiosfs-soak-")
	if err != nil {
		fail("%v", err)
	}
	defer os.RemoveAll(work)
	port := 20000 + os.Getpid()%20000
	if *try > 0 {
		if !tryPrograms(progs, work, port) {
			os.RemoveAll(work)
			os.Exit(1)
		}
		return
	}
	if _, err := os.Stat(filepath.Join(*mount, "threat", "status")); err != nil {
		fail("no daemon with a threat engine at %s: %v", *mount, err)
	}
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
		for _, p := range progs {
			script := prepare(work, p, c, port)
			name := fmt.Sprintf("soak-%s-%d", p.name, c)
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

	// The responder's acts, read as they happen: under load a pass over
	// every agent's threat file takes more than the 1 s window, so the
	// reader above misses windows (and their alarms); the responder acts
	// on every window, once per step up, so its acts are the episodes.
	actsMu := make(chan map[int]int, 1)
	actsMu <- map[int]int{}
	if f, err := os.Open(filepath.Join(*mount, "threat", "alerts.follow")); err != nil {
		fmt.Fprintf(os.Stderr, "soak: no threat/alerts.follow (%v): acts not counted\n", err)
	} else {
		// Not closed before exit: a close waits for the read in flight,
		// which waits for the next act.
		go func() {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				a, _ := ctl.Field(sc.Text(), "agent")
				k, _ := ctl.Field(sc.Text(), "kind")
				if id, err := strconv.Atoi(a); err == nil && (k == "alert" || k == "throttle" || k == "quarantine" || k == "kill") {
					m := <-actsMu
					m[id]++
					actsMu <- m
				}
			}
		}()
	}

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
	m := <-actsMu
	for _, w := range ws {
		w.seconds = time.Since(w.start).Seconds()
		w.acts = m[w.id]
	}
	actsMu <- m
	status, _ := os.ReadFile(filepath.Join(*mount, "threat", "status"))
	stop()
	report(ws, string(status))
}

// prepare makes copy c of p's work directory under work, with its files,
// and returns the bash script that runs it there.
func prepare(work string, p program, c, port int) string {
	dir := filepath.Join(work, fmt.Sprintf("%s-%d", p.name, c))
	if err := os.MkdirAll(dir, 0755); err != nil {
		fail("%v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.c"), []byte(compileSrc), 0644); err != nil {
		fail("%v", err)
	}
	for n, body := range p.files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0644); err != nil {
			fail("%v", err)
		}
	}
	return fmt.Sprintf("export W=%s PORT=%d; %s", dir, port+c, p.script)
}

// tryPrograms runs one copy of progs without the daemon, each in its own
// process group with the PATH the daemon gives its agents, for -try, and
// says which are still running at the end (then kills them) and which
// died, with their output. It reports whether all were still running.
func tryPrograms(progs []program, work string, port int) bool {
	type run struct {
		name string
		cmd  *exec.Cmd
		out  *bytes.Buffer
		done chan error
	}
	var runs []*run
	for _, p := range progs {
		r := &run{name: p.name, out: &bytes.Buffer{}, done: make(chan error, 1)}
		r.cmd = exec.Command("/bin/bash", "-c", prepare(work, p, 0, port))
		// The daemon's agent environment (engines/agent's environ).
		r.cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + os.Getenv("HOME")}
		r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
		r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := r.cmd.Start(); err != nil {
			r.done <- err
		} else {
			go func() { r.done <- r.cmd.Wait() }()
		}
		runs = append(runs, r)
	}
	time.Sleep(*try)
	ok := true
	for _, r := range runs {
		select {
		case err := <-r.done:
			ok = false
			fmt.Printf("%-16s DIED (%v): %s\n", r.name, err, strings.TrimSpace(tail(r.out.String(), 400)))
		default:
			syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.done
			fmt.Printf("%-16s running after %s %s\n", r.name, *try, strings.TrimSpace(tail(r.out.String(), 200)))
		}
		fmt.Printf("%-16s wrote: %s\n", "", written(filepath.Join(work, r.name+"-0")))
	}
	return ok
}

// written lists what a program left in its work directory (names and
// sizes, up to 10 entries, directories with their file count), to show
// that it did its work and did not merely stay alive.
func written(dir string) string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if len(out) == 10 {
			out = append(out, "...")
			break
		}
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			n := 0
			filepath.WalkDir(p, func(_ string, d os.DirEntry, _ error) error {
				if d != nil && !d.IsDir() {
					n++
				}
				return nil
			})
			out = append(out, fmt.Sprintf("%s/ (%d files)", e.Name(), n))
		} else if fi, err := e.Info(); err == nil {
			out = append(out, fmt.Sprintf("%s %d", e.Name(), fi.Size()))
		}
	}
	return strings.Join(out, ", ")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
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
	fmt.Printf("threat soak (-set %s): %d benign agents, %s each, alarm at score >= %.2f; threat/status at the end:\n\n    %s\n\n",
		*set, len(ws), time.Duration(ws[0].seconds*float64(time.Second)).Round(time.Second), *threshold, strings.ReplaceAll(strings.TrimSpace(status), "\n", "\n    "))
	fmt.Println("Columns: windows read (the 1 s windows this reader saw, of the seconds watched: under load it misses some), the alarming ones and their episodes as read, the daemon's acts on the program's agents (threat/alerts.follow: one per step up of the verb, every window counted) and the acts per 10 agent-hours, the target's measure.")
	fmt.Println()
	fmt.Println("| program | agent-hours | windows read (of seconds) | alarming windows read | episodes read | daemon's acts | acts per 10 agent-hours | highest score read (type, top features) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---|")
	var hours, secs float64
	var win, alarms, eps, acts int
	for _, n := range names {
		var h, mx, sec float64
		var wn, al, ep, ac int
		var mt, mtop string
		for _, w := range by[n] {
			h += w.seconds / 3600
			sec += w.seconds
			ac += w.acts
			wn += w.windows
			al += w.alarms
			ep += w.episodes
			if w.max >= mx {
				mx, mt, mtop = w.max, w.maxType, w.maxTop
			}
		}
		hours += h
		secs += sec
		acts += ac
		win += wn
		alarms += al
		eps += ep
		fmt.Printf("| %s | %.2f | %d (%.0f) | %d | %d | %d | %s | %.3f (%s, %s) |\n", n, h, wn, sec, al, ep, ac, per10(ac, h), mx, mt, mtop)
	}
	fmt.Printf("| **all** | %.2f | %d (%.0f) | %d | %d | %d | %s | |\n", hours, win, secs, alarms, eps, acts, per10(acts, hours))
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
