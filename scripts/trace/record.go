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
// Every counter is read per process of the tree and differenced per
// process, keyed by (pid, start time) so that a recycled pid is never
// differenced against another process; a process first seen in a sample
// started after the previous one, so all of its counters count.
//
// The kernel moves a process's counters to its parent when the parent
// reaps it: utime+stime into the parent's cutime+cstime, read_bytes and
// write_bytes into the parent's own io file. CPU is therefore
// utime+stime+cutime+cstime, and when a process seen in the previous
// sample is gone, what had already been counted for it is taken off its
// reaper's increase (its nearest ancestor still in the tree), so nothing
// is counted twice and the work of a child that lived and died between
// two samples is still counted, through its reaper. Lost are only the
// processes that leave the tree before exiting (an orphan is reparented
// to init, not to its grandparent).
//
// The program runs in a process group of its own, which is killed as a
// whole at -max (or when the recorder is interrupted), so no member of a
// pipeline outlives the recording.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"aiosfs/hal/proc"

	"github.com/prometheus/procfs"
)

// userHZ is the unit of utime, stime, cutime and cstime (see hal/proc).
const userHZ = 100

// counters are one process's cumulative counters, its reaped children's
// included, as the kernel keeps them.
type counters struct {
	start  uint64 // start ticks: with the pid, the process's identity
	ppid   int
	cpu    float64 // utime+stime+cutime+cstime, seconds
	rd, wr float64 // read_bytes, write_bytes
}

func main() {
	out := flag.String("o", "", "output CSV file")
	interval := flag.Duration("interval", time.Second, "sampling interval")
	maxDur := flag.Duration("max", 120*time.Second, "stop (kill the program's process group) after this long")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		log.Fatal("usage: record -o FILE [-interval D] [-max D] -- CMD [ARGS...]")
	}
	pfs, err := proc.NewFS("/proc")
	if err != nil {
		log.Fatal(err)
	}
	raw, err := procfs.NewFS("/proc")
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	leader := cmd.Process.Pid
	killGroup := func() { syscall.Kill(-leader, syscall.SIGKILL) }
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)

	last := map[int]counters{}
	start := time.Now()
	prevT := start
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		select {
		case <-sigs:
			killGroup()
		case <-done:
			killGroup() // members left behind by a leader that exited
			w.Flush()
			f.Close()
			return
		case now := <-tick.C:
			if now.Sub(start) > *maxDur {
				killGroup()
				continue
			}
			pids, _ := pfs.Descendants(leader)
			pids = append(pids, leader)
			cur := map[int]counters{}
			var rss int64
			for _, pid := range pids {
				p, err := raw.Proc(pid)
				if err != nil {
					continue
				}
				st, err := p.Stat()
				if err != nil {
					continue
				}
				s, err := pfs.Sample(pid)
				if err != nil || s.StartTicks != st.Starttime {
					continue
				}
				cur[pid] = counters{
					start: st.Starttime,
					ppid:  st.PPID,
					cpu:   float64(st.UTime+st.STime+uint(st.CUTime)+uint(st.CSTime)) / userHZ,
					rd:    float64(max(s.ReadBytes, 0)),
					wr:    float64(max(s.WriteBytes, 0)),
				}
				rss += s.RSS
			}
			// inc: each process's increase since the previous sample
			// (all of it for a process not seen then).
			inc := map[int]counters{}
			for pid, c := range cur {
				if p, ok := last[pid]; ok && p.start == c.start {
					inc[pid] = counters{cpu: c.cpu - p.cpu, rd: c.rd - p.rd, wr: c.wr - p.wr}
				} else {
					inc[pid] = c
				}
			}
			// A process seen last time and gone now was reaped by its
			// nearest ancestor still in the tree, whose counters now
			// include what was already counted for it.
			for pid, p := range last {
				if c, ok := cur[pid]; ok && c.start == p.start {
					continue
				}
				if pfs.Alive(pid, p.start) {
					continue // left the tree alive (orphaned): nobody here reaps it
				}
				a := p.ppid
				for hops := 0; ; hops++ {
					if hops > len(last) {
						a = 0 // a cycle of recycled pids
						break
					}
					if c, ok := cur[a]; ok && c.start == last[a].start {
						break
					}
					q, ok := last[a]
					if !ok {
						a = 0
						break
					}
					a = q.ppid
				}
				if a == 0 {
					continue
				}
				r := inc[a]
				r.cpu -= p.cpu
				r.rd -= p.rd
				r.wr -= p.wr
				inc[a] = r
			}
			var cpu, rd, wr float64
			for _, c := range inc {
				cpu += max(c.cpu, 0)
				rd += max(c.rd, 0)
				wr += max(c.wr, 0)
			}
			last = cur
			dt := now.Sub(prevT).Seconds()
			prevT = now
			fmt.Fprintf(w, "%.1f,%.3f,%d,%.0f,%.0f\n", now.Sub(start).Seconds(), cpu/dt, rss, rd/dt, wr/dt)
		}
	}
}
