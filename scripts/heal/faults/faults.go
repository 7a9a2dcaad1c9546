package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"
)

// The fault programs: this binary re-executed as `record -fault NAME`.
// Each writes its heartbeat file (-hb) every 500 ms while it makes
// progress, and exits with a code that names its failure:
// 3 EMFILE, 4 ENOSPC, 1 a crash; a memory leaker is OOM-killed.

var sink [][]byte

func heartbeat(path string) {
	if path == "" {
		return
	}
	now := time.Now()
	if err := os.Chtimes(path, now, now); err != nil {
		os.WriteFile(path, nil, 0o644)
	}
}

func spin(d time.Duration) {
	end := time.Now().Add(d)
	x := 1.0
	for time.Now().Before(end) {
		for i := 0; i < 1000; i++ {
			x = x*1.0000001 + 1e-9
		}
	}
	_ = x
}

func touch(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	return b
}

func runFault(name string, rate float64, at time.Duration, hb, dir string, seed uint64) int {
	time.Sleep(150 * time.Millisecond) // let the recorder move us into the cgroup
	rng := rand.New(rand.NewPCG(seed, 9))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var fds []*os.File
	n := 0
	hogging := false
	for range tick.C {
		n++
		if n%5 == 0 {
			heartbeat(hb)
		}
		el := time.Since(start)
		switch name {
		case "memleak": // rate MiB/s, kept and touched
			sink = append(sink, touch(int(rate*(1<<20)/10)))
			spin(5 * time.Millisecond)
		case "fdleak": // rate fds/s, never closed
			for i := 0; i < int(rate/10+rng.Float64()); i++ {
				f, err := os.Open("/dev/null")
				if err != nil {
					if errors.Is(err, syscall.EMFILE) {
						fmt.Fprintln(os.Stderr, "fdleak:", err)
						return 3
					}
					return 1
				}
				fds = append(fds, f)
			}
			spin(5 * time.Millisecond)
		case "diskfill": // rate MiB/s into dir, a size-limited tmpfs
			f, err := os.OpenFile(filepath.Join(dir, "fill"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return 1
			}
			_, err = f.Write(make([]byte, int(rate*(1<<20)/10)))
			f.Close()
			if err != nil {
				if errors.Is(err, syscall.ENOSPC) {
					fmt.Fprintln(os.Stderr, "diskfill:", err)
					return 4
				}
				return 1
			}
		case "crashloop": // runs `at`, then crashes
			spin(10 * time.Millisecond)
			if el >= at {
				return 1
			}
		case "hang": // works, then blocks forever at `at` (no CPU, no heartbeat)
			if el >= at {
				for {
					time.Sleep(time.Hour) // blocked: no CPU, no heartbeat
				}
			}
			spin(20 * time.Millisecond)
		case "cpuhog": // from `at`, spins every core it can
			if el >= at && !hogging { // spinners beside a main loop that still heartbeats
				hogging = true
				for i := 0; i < runtime.NumCPU(); i++ {
					go spin(time.Hour)
				}
			}
			spin(5 * time.Millisecond)
		case "steady": // 16 MiB held, 16 fds, light CPU
			if len(sink) == 0 {
				sink = append(sink, touch(16<<20))
				for i := 0; i < 16; i++ {
					f, _ := os.Open("/dev/null")
					fds = append(fds, f)
				}
			}
			spin(10 * time.Millisecond)
		case "periodic": // a sawtooth: grows 3 MiB/s for 3 s, frees, again
			if n%30 == 0 {
				sink = nil
				debug.FreeOSMemory()
			} else {
				sink = append(sink, touch(300<<10))
			}
			spin(15 * time.Millisecond)
		case "bursty": // random bursts of CPU, memory and fds
			if rng.Float64() < 0.1 {
				sink = append(sink, touch((2+rng.IntN(6))<<20))
				for i := 0; i < rng.IntN(40); i++ {
					f, err := os.Open("/dev/null")
					if err == nil {
						fds = append(fds, f)
					}
				}
				spin(time.Duration(rng.IntN(80)) * time.Millisecond)
			}
			if rng.Float64() < 0.15 {
				sink = nil
				for _, f := range fds {
					f.Close()
				}
				fds = nil
				debug.FreeOSMemory()
			}
		}
	}
	return 0
}

func setNofile(n uint64) {
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n})
}
