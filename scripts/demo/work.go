package main

import (
	"fmt"
	"os"
	"os/exec"
	"time"
)

// runWork is one agent's load, run until the daemon stops it.
func runWork(name string) {
	switch name {
	case "steady": // a quarter of a core: 2.5 ms busy in every 10 ms
		for {
			spin(2500 * time.Microsecond)
			time.Sleep(7500 * time.Microsecond)
		}
	case "periodic": // a whole core for 1.25 s, then idle for 1.25 s
		for {
			spin(1250 * time.Millisecond)
			time.Sleep(1250 * time.Millisecond)
		}
	case "growing": // +1 MiB every quarter second, to 128 MiB, then holds it
		var held [][]byte
		for len(held) < 128 {
			held = append(held, touched(1<<20))
			time.Sleep(250 * time.Millisecond)
		}
		for {
			time.Sleep(time.Second)
			for _, b := range held { // keep it in use
				b[0]++
			}
		}
	case "misbehave": // a child that eats memory fast, started again a second after each end
		self, _ := os.Executable()
		for {
			c := exec.Command(self, "-work", "hog")
			c.Run()
			time.Sleep(time.Second)
		}
	case "crash": // a crash looper: up 0.3 s, then exit status 1
		time.Sleep(300 * time.Millisecond)
		os.Exit(1)
	case "hog": // 4 MiB every 100 ms, up to 256 MiB (then it ends)
		var held [][]byte
		for len(held) < 64 {
			held = append(held, touched(4<<20))
			time.Sleep(100 * time.Millisecond)
		}
	default:
		fmt.Fprintf(os.Stderr, "demo: no load %q\n", name)
		os.Exit(2)
	}
}

var sink uint64

func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := 0; i < 1000; i++ {
			sink += uint64(i)
		}
	}
}

// touched is n bytes, every page written, so that they count.
func touched(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	return b
}
