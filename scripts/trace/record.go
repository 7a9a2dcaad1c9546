// Command record runs a program and records a per-second trace of its
// whole process tree: CPU (cores), resident memory (bytes) and storage IO
// (bytes/s read and written), the three resources the scheduler predicts
// per agent. The traces under testdata/traces are replayed by
// scripts/eval/sched next to the public data sets, so the evaluation also
// covers real programs and not only cluster aggregates.
//
//	go run ./scripts/trace -o testdata/traces/NAME.csv [-interval 1s] [-max 120s] -- CMD [ARGS...]
//
// Output is CSV with a header: t,cpu,rss,io_read_rate,io_write_rate
// (seconds since start, cores, bytes, bytes/s, bytes/s).
//
// CPU is the delta of utime+stime summed over the live processes of the
// tree, plus the children time the leader has reaped (cutime+cstime are
// not exposed by hal/proc, so CPU of short-lived grandchildren that exit
// between two samples is lost; the recorded programs keep their work in
// long-lived processes for that reason).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"time"

	"aiosfs/hal/proc"
)

func main() {
	out := flag.String("o", "", "output CSV file")
	interval := flag.Duration("interval", time.Second, "sampling interval")
	max := flag.Duration("max", 120*time.Second, "stop (kill the program) after this long")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		log.Fatal("usage: record -o FILE [-interval D] [-max D] -- CMD [ARGS...]")
	}
	pfs, err := proc.NewFS("/proc")
	if err != nil {
		log.Fatal(err)
	}
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "t,cpu,rss,io_read_rate,io_write_rate")

	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()

	type prev struct{ cpu, rd, wr float64 }
	last := map[int]prev{} // per pid, so an exiting process never makes a rate negative
	start := time.Now()
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			w.Flush()
			f.Close()
			return
		case now := <-tick.C:
			if now.Sub(start) > *max {
				cmd.Process.Kill()
				continue
			}
			pids, _ := pfs.Descendants(cmd.Process.Pid)
			pids = append(pids, cmd.Process.Pid)
			var cpu, rd, wr float64
			var rss int64
			seen := map[int]prev{}
			for _, pid := range pids {
				s, err := pfs.Sample(pid)
				if err != nil {
					continue
				}
				cur := prev{s.CPUSeconds, float64(max0(s.ReadBytes)), float64(max0(s.WriteBytes))}
				if p, ok := last[pid]; ok {
					cpu += pos(cur.cpu - p.cpu)
					rd += pos(cur.rd - p.rd)
					wr += pos(cur.wr - p.wr)
				}
				seen[pid] = cur
				rss += s.RSS
			}
			last = seen
			dt := interval.Seconds()
			fmt.Fprintf(w, "%.1f,%.3f,%d,%.0f,%.0f\n", now.Sub(start).Seconds(), cpu/dt, rss, rd/dt, wr/dt)
		}
	}
}

func max0(v int64) int64 {
	if v < 0 {
		return 0
	}
	return v
}

func pos(v float64) float64 {
	if v < 0 {
		return 0
	}
	return v
}
