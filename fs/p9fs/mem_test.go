package p9fs

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"aiosfs/fs/fstest"
)

// heapInuse is the heap in use after two collections, in bytes.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// vmRSS is this process's resident set as /proc reports it, for the log.
func vmRSS() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// burstConn is one hostile client of a burst: it asks for the largest
// msize there is, attaches and walks fids clones of the root, then waits.
func burstConn(sock string, fids int) (net.Conn, error) {
	nc, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (net.Conn, error) { nc.Close(); return nil, err }
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	w := rawWire{nc}
	if err := w.send(tversion, noTag, ^uint32(0), "9P2000.L"); err != nil {
		return fail(err)
	}
	if _, err := w.expect(rversion, noTag); err != nil {
		return fail(err)
	}
	if err := w.send(tattach, 1, uint32(0), noFid, "", "", noFid); err != nil {
		return fail(err)
	}
	if _, err := w.expect(rattach, 1); err != nil {
		return fail(err)
	}
	for i := 1; i < fids; i++ {
		if err := w.send(twalk, 1, uint32(0), uint32(i), []string{"value"}); err != nil {
			return fail(err)
		}
		if _, err := w.expect(rwalk, 1); err != nil {
			return fail(err)
		}
	}
	nc.SetDeadline(time.Time{})
	return nc, nil
}

// waitGoroutines waits until at most n goroutines run: the server has
// finished with the burst's connections.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines 20s after the burst, want at most %d", runtime.NumGoroutine(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Bursts of connections, each with an msize of 2^32-1 and 20 fids, cost a
// bounded amount of heap while they are open, and the heap in use returns
// to within a small bound of its baseline once they close. (RSS may stay
// higher: the Go runtime keeps freed pages for a while; HeapInuse is what
// the server holds.) P9FS_MEM_CONNS and P9FS_MEM_ROUNDS scale the burst.
func TestMemoryBurst(t *testing.T) {
	conns := envInt("P9FS_MEM_CONNS", 200)
	rounds := envInt("P9FS_MEM_ROUNDS", 3)
	const fids = 20
	sock := serve(t, fstest.NewTree().Root, Options{MaxConns: conns})

	// One connection first, so that what is allocated once (pools,
	// the tree's renderings) is in the baseline.
	nc, err := burstConn(sock, fids)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	time.Sleep(200 * time.Millisecond)
	goroutines := runtime.NumGoroutine()
	base := heapInuse()
	t.Logf("baseline: HeapInuse %.1f MB, RSS %s, %d goroutines", mb(base), vmRSS(), goroutines)

	for r := 0; r < rounds; r++ {
		ncs := make([]net.Conn, conns)
		errs := make(chan error, conns)
		var wg sync.WaitGroup
		for i := range ncs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nc, err := burstConn(sock, fids)
				if err != nil {
					errs <- err
				}
				ncs[i] = nc
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", r, err)
		}
		open := heapInuse()
		perConn := (float64(open) - float64(base)) / float64(conns)
		t.Logf("round %d, %d connections open: HeapInuse %.1f MB (%.0f KB a connection), RSS %s",
			r, conns, mb(open), perConn/1024, vmRSS())
		// What one connection may hold: the library's msize-sized
		// buffers (a zero buffer and a read buffer), goroutines and
		// fids. An unclamped msize would be 4 MiB each.
		if limit := 4*float64(defaultMaxMsize) + 64<<10; perConn > limit {
			t.Errorf("round %d: %.0f KB of heap a connection, want at most %.0f KB", r, perConn/1024, limit/1024)
		}
		for _, nc := range ncs {
			nc.Close()
		}
		waitGoroutines(t, goroutines)
		after := heapInuse()
		t.Logf("round %d, closed: HeapInuse %.1f MB, RSS %s", r, mb(after), vmRSS())
		if after > base+4<<20 {
			t.Errorf("round %d: HeapInuse %.1f MB after the burst, baseline %.1f MB: more than 4 MB retained", r, mb(after), mb(base))
		}
	}
}

func mb(n uint64) float64 { return float64(n) / (1 << 20) }

var _ = fmt.Sprint
