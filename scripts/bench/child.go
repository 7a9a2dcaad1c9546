package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"syscall"
	"time"

	"aiosfs/daemon"
	"aiosfs/engines/heal"
	"aiosfs/engines/mem"
	"aiosfs/engines/sched"
	"aiosfs/engines/telemetry"
	"aiosfs/engines/threat"
	"aiosfs/fs/fusefs"
	"aiosfs/hal/procconn"
)

// The daemon under test is this binary run again with -child: the daemon
// package in-process (what `aiosfs serve` runs), plus what a bench needs
// and the daemon must not have:
//
//   - a second FUSE mount of the same tree with fusefs.Options.Plain (the
//     adapter before its remedies), so both are timed in one run;
//   - an HTTP server on a unix socket in the bench's temporary directory
//     (root's, 0700), with net/http/pprof for the -cpuprofile and
//     -memprofile flags, /tuning to switch the sampler's remedies
//     (telemetry.Tuning), the memory engine's (mem.Tuning) and the proc
//     connector's socket filter between windows, /fill to give every agent a full history at once, and
//     /memstats.
var (
	childMode  = flag.Bool("child", false, "internal: run as the daemon under test")
	childMount = flag.String("child-mount", "", "internal")
	childPlain = flag.String("child-plain", "", "internal")
	childState = flag.String("child-state", "", "internal")
	childSock  = flag.String("child-sock", "", "internal")
	childPfx   = flag.String("child-prefix", "", "internal")
)

func runChild() {
	if *memRate > 0 {
		runtime.MemProfileRate = *memRate
	}
	cfg := daemon.Config{
		Mount: *childMount, StateDir: *childState, Interval: *interval,
		ProcRoot: "/proc", CgroupRoot: "/sys/fs/cgroup",
		Prefix: *childPfx, GPU: *gpuFlag, Grace: 5 * time.Second, Stderr: os.Stderr,
		Memory: daemon.Memory{GCPercent: *gcPercent, MemoryLimit: *memLimit},
	}
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	d, err := daemon.Start(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		os.Exit(2)
	}
	plain, err := fusefs.Mount(*childPlain, d.Root, fusefs.Options{AllowOther: true, Name: "aiosfs-plain", Plain: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child: plain mount:", err)
		d.Close()
		os.Exit(2)
	}
	ln, err := net.Listen("unix", *childSock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		plain.Unmount()
		d.Close()
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/tuning", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		hold, _ := strconv.Atoi(q.Get("hold"))
		every, _ := strconv.Atoi(q.Get("procevery"))
		procsEvery, _ := strconv.Atoi(q.Get("procsevery"))
		t := telemetry.Tuning{Hold: hold, Counters: q.Get("counters") == "1", RawProc: q.Get("rawproc") == "1", SockGate: q.Get("sockgate") == "1", ProcEvery: every,
			KeepOpen: q.Get("keepopen") == "1", SelfLite: q.Get("selflite") == "1", ProcsEvery: procsEvery}
		d.Tel.SetTuning(t)
		memOn := q.Get("mem") == "1"
		memEvery, _ := strconv.Atoi(q.Get("memevery"))
		mem.SetTuningAll(mem.Tuning{Settle: memOn, SkipClear: memOn, HoldSave: memOn && mem.DefaultTuning.HoldSave, Every: memEvery})
		hooks := q.Get("hooks") == "1"
		threat.SetPassRemedies(hooks)
		heal.SetPassRemedies(hooks)
		sched.SetPassRemedies(hooks)
		// The daemon's proc connector is not reachable from here:
		// every open one of this process is switched.
		if err := procconn.SetFilterAll(q.Get("connfilter") == "1"); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%+v connfilter=%s hooks=%v\n", d.Tel.Tuning(), q.Get("connfilter"), hooks)
	})
	mux.HandleFunc("/fill", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		d.Tel.FillHistory(n)
		runtime.GC()
		debug.FreeOSMemory()
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/memstats", func(w http.ResponseWriter, r *http.Request) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		// The GC's CPU (mark workers, assists, pauses; idle-priority
		// marking included), in nanoseconds, to price GC settings apart
		// from the rest of the daemon's CPU, which the shared host's
		// noise moves more than a GC setting does.
		gc := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
		metrics.Read(gc)
		json.NewEncoder(w).Encode(map[string]uint64{
			"HeapAlloc": m.HeapAlloc, "HeapInuse": m.HeapInuse, "HeapSys": m.HeapSys, "Sys": m.Sys,
			"NextGC": m.NextGC, "NumGC": uint64(m.NumGC), "TotalAlloc": m.TotalAlloc,
			"HeapIdle": m.HeapIdle, "HeapReleased": m.HeapReleased, "StackInuse": m.StackInuse,
			"MSpanInuse": m.MSpanInuse, "MCacheInuse": m.MCacheInuse, "GCSys": m.GCSys,
			"OtherSys": m.OtherSys, "BuckHashSys": m.BuckHashSys,
			"GCCPUNanos": uint64(gc[0].Value.Float64() * 1e9),
		})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	fmt.Println("ready")
	<-sig
	srv.Shutdown(context.Background())
	perr := plain.Unmount()
	derr := d.Close()
	if perr != nil || derr != nil {
		fmt.Fprintln(os.Stderr, "bench child: stop:", perr, derr)
		os.Exit(1)
	}
}
