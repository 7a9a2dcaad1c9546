package daemon

// The healing engine wired to the other engines of a real daemon: its
// maintenance windows placed in the scheduler's forecast lulls, and the
// health of the daemon's own engines. Agents are real processes in
// cgroups under a prefix of this file's own (heal2-…); the tree is read
// over 9P.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"aiosfs/engines/telemetry"
	"aiosfs/fs/p9fs"
	"aiosfs/internal/testutil"
)

var healSeq atomic.Int64

// startHeal runs a daemon sampling every 100 ms, 9P only, no GPU.
func startHeal(t *testing.T) (*Daemon, *p9fs.Client) {
	t.Helper()
	testutil.RequireRoot(t, "the daemon makes cgroups")
	prefix := fmt.Sprintf("heal2-%d-%d", os.Getpid(), healSeq.Add(1))
	cfg := Config{StateDir: t.TempDir(), Interval: 100 * time.Millisecond, ProcRoot: "/proc",
		CgroupRoot: "/sys/fs/cgroup", Prefix: prefix, Grace: time.Second, GPU: "none"}
	d, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	c, err := p9fs.Dial("unix!" + cfg.Socket())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return d, c
}

func healWait(t *testing.T, c *p9fs.Client, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s\nheal/status:\n%s\nheal/maintenance:\n%s\nagents/1/pattern:\n%s",
				limit, what, gpuCat(t, c, "heal/status"), gpuCat(t, c, "heal/maintenance"), gpuCat(t, c, "agents/1/pattern"))
		}
	}
}

// TestHealMaintenanceAtForecastLull: with an agent sampled, heal/status
// says forecast=sched and a maintenance window asked for
// (`maintain 1 duration=1s within=5s`) is placed by the scheduler's host
// forecast, which heal/forecast shows, at the slot whose mean forecast
// load is the lowest before the deadline, and is carried out when due
// (the maintenance command runs; heal/maintenance says done, ran= at or
// after its start). Then a forecast with a clear lull 2 s out, put where
// the scheduler's is (Peers.SetForecast, the seam the scheduler fills),
// gets the next window exactly there, with the lull's load, carried out
// when due.
func TestHealMaintenanceAtForecastLull(t *testing.T) {
	d, c := startHeal(t)
	if st := gpuCat(t, c, "heal/status"); gpuField(st, "forecast") != "none" {
		t.Errorf("no agent sampled yet, heal/status: %s", st)
	}
	dir, err := os.MkdirTemp("", "heal2-maint-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	mark := filepath.Join(dir, "maintained")
	wave := `while :; do timeout 1.5 bash -c 'while :; do :; done'; sleep 1.5; done`
	if err := gpuEcho(t, c, "ctl", "spawn wave -- /usr/bin/bash -c "+strconv.Quote(wave)); err != nil {
		t.Fatal(err)
	}
	healWait(t, c, "heal/status forecast=sched", 10*time.Second, func() bool {
		return gpuField(gpuCat(t, c, "heal/status"), "forecast") == "sched"
	})
	time.Sleep(3 * time.Second) // a period of the wave in the predictors
	if err := gpuEcho(t, c, "heal/ctl", `policy 1 restart=never maintenance="touch `+mark+`" duration=1s`); err != nil {
		t.Fatal(err)
	}
	num := func(s, k string) float64 {
		v, err := strconv.ParseFloat(gpuField(s, k), 64)
		if err != nil {
			t.Fatalf("%s in %q: %v", k, s, err)
		}
		return v
	}
	// window is the line of heal/maintenance whose start is after from.
	window := func(from float64) string {
		for _, l := range strings.Split(gpuCat(t, c, "heal/maintenance"), "\n") {
			if l != "" && num(l, "start") > from {
				return l
			}
		}
		return ""
	}
	carriedOut := func(from float64) string {
		healWait(t, c, "the window carried out", 30*time.Second, func() bool { return gpuField(window(from), "state") == "done" })
		m := window(from)
		if num(m, "ran") < num(m, "start")-0.001 || gpuField(m, "ended") == "-" {
			t.Fatalf("heal/maintenance: %s", m)
		}
		if _, err := os.Stat(mark); err != nil {
			t.Fatalf("the maintenance command did not run: %v\n%s", err, gpuCat(t, c, "heal/history"))
		}
		os.Remove(mark)
		return m
	}

	// 1. The scheduler's own forecast.
	if err := gpuEcho(t, c, "heal/ctl", "maintain 1 duration=1s within=5s"); err != nil {
		t.Fatal(err)
	}
	healWait(t, c, "the window placed", 5*time.Second, func() bool { return window(0) != "" })
	m, fc := window(0), gpuCat(t, c, "heal/forecast")
	t.Logf("heal/maintenance: %s", m)
	lines := strings.Split(strings.TrimSpace(fc), "\n")
	if gpuField(lines[0], "forecast") != "sched" || gpuField(lines[0], "step") != "0.100" || gpuField(lines[0], "steps") != "600" {
		t.Fatalf("heal/forecast:\n%s", lines[0])
	}
	var ts, load []float64
	for _, l := range lines[1:] {
		ts, load = append(ts, num(l, "time")), append(load, num(l, "load"))
	}
	start, deadline, wload := num(m, "start"), num(m, "deadline"), num(m, "load")
	const n = 10 // 1 s in 100 ms steps
	best, worst, at := math.Inf(1), math.Inf(-1), -1
	for i := 0; i+n <= len(load) && ts[i]+1 <= deadline+1e-6; i++ {
		sum := 0.0
		for _, v := range load[i : i+n] {
			sum += v
		}
		best, worst = math.Min(best, sum/n), math.Max(worst, sum/n)
		if math.Abs(ts[i]-start) < 1e-3 {
			at = i
		}
	}
	var blocks []string
	for i := 0; i+5 <= 50; i += 5 {
		blocks = append(blocks, strconv.FormatFloat((load[i]+load[i+1]+load[i+2]+load[i+3]+load[i+4])/5, 'f', 2, 64))
	}
	t.Logf("the scheduler's forecast, cores, mean per 0.5 s over 5 s: %s; over the candidate starts lowest %.3f highest %.3f; window at step %d load=%.3f",
		strings.Join(blocks, " "), best, worst, at, wload)
	if at < 0 {
		t.Fatalf("the window's start %.3f is not a step of the forecast it was placed by", start)
	}
	// 0.01: heal/forecast shows loads to 3 decimals, the engine used them exact
	if math.Abs(wload-best) > 0.01 {
		t.Fatalf("window load %.3f, but the forecast's lowest slot is %.3f", wload, best)
	}
	first := num(carriedOut(0), "start")

	// 2. A clear lull: 2 cores, then 0.1 from 2 s to 3 s out.
	d.peers.SetForecast(func(int) (time.Time, time.Duration, []float64, bool) {
		now := time.Now()
		s := now.Truncate(100 * time.Millisecond).Add(100 * time.Millisecond)
		load := make([]float64, 60)
		for i := range load {
			load[i] = 2
			if i >= 20 && i < 30 {
				load[i] = 0.1
			}
		}
		return s, 100 * time.Millisecond, load, true
	}, func() bool { return true })
	if err := gpuEcho(t, c, "heal/ctl", "maintain 1 duration=1s within=5s"); err != nil {
		t.Fatal(err)
	}
	healWait(t, c, "the second window placed", 5*time.Second, func() bool { return window(first) != "" })
	m = window(first)
	fc = gpuCat(t, c, "heal/forecast") // the forecast this placement used
	lull := num(fc, "start") + 2
	if math.Abs(num(m, "start")-lull) > 0.0005 || gpuField(m, "load") != "0.100" {
		t.Fatalf("want the window at the lull %.3f with load=0.100: %s\n%s", lull, m, fc)
	}
	t.Logf("heal/maintenance: %s", m)
	carriedOut(first)
}

// TestHealEngineHealth: heal/health lists every engine of the daemon with
// a value (the loop latency of those whose passes are timed, errors of
// all); a sampler hook that blocks makes its loop Critical, heal/status
// says mode=rules naming it, and once it returns heal learns again.
func TestHealEngineHealth(t *testing.T) {
	d, c := startHeal(t)
	want := []string{"engine:telemetry metric=loop_latency", "engine:sched metric=loop_latency", "engine:threat metric=loop_latency",
		"engine:heal metric=loop_latency", "engine:mem metric=errors", "engine:gpu metric=errors", "engine:sched metric=errors"}
	healWait(t, c, "every engine in heal/health", 10*time.Second, func() bool {
		h := gpuCat(t, c, "heal/health")
		for _, w := range want {
			if !strings.Contains(h, "component="+w+" value=") {
				return false
			}
		}
		return true
	})
	if st := gpuCat(t, c, "heal/status"); gpuField(st, "mode") != "learned" {
		t.Fatalf("heal/status before the stall: %s", st)
	}
	release := make(chan struct{})
	var once atomic.Bool
	d.Tel.OnTick(d.peers.Timed("stalltest", func(time.Time, map[int]telemetry.Sample) {
		if once.CompareAndSwap(false, true) {
			<-release
		}
	}))
	t.Cleanup(func() {
		if once.CompareAndSwap(false, true) {
			return
		}
		select {
		case <-release:
		default:
			close(release)
		}
	})
	healWait(t, c, "heal in rules naming the stalled loop", 20*time.Second, func() bool {
		st := gpuCat(t, c, "heal/status")
		return gpuField(st, "mode") == "rules" && strings.Contains(gpuField(st, "why"), "stalltest: pass running")
	})
	h := gpuCat(t, c, "heal/health")
	var line string
	for _, l := range strings.Split(h, "\n") {
		if strings.HasPrefix(l, "component=engine:stalltest metric=loop_latency") {
			line = l
		}
	}
	if gpuField(line, "trend") != "Critical" || gpuField(line, "score") != "0.000" {
		t.Fatalf("heal/health's stalled loop: %q\n%s", line, h)
	}
	t.Logf("stalled: %s\n%s", gpuField(gpuCat(t, c, "heal/status"), "why"), line)
	close(release)
	healWait(t, c, "heal learning again", 20*time.Second, func() bool {
		return gpuField(gpuCat(t, c, "heal/status"), "mode") == "learned"
	})
}
