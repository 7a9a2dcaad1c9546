package p9fs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"aiosfs/fs"
)

// statTree is the shape of the daemon's agents/N/stat for the benchmarks:
// agents/ walks a number to a table directory (fs.TabDir) of 16 rows, as
// engines/agent builds agents/N, and stat renders one line of about 230
// bytes, as telemetry.Sample.Line does.
func statTree() fs.Dir {
	ns := &fs.NS{Boot: time.Unix(1700000000, 0)}
	var tab fs.Dirtab
	for i := range 16 {
		name := "file" + strconv.Itoa(i)
		if i == 0 {
			name = "stat"
		}
		tab = append(tab, fs.Entry{Name: name, Perm: 0444, Make: func(id int, p string, o fs.Owner) fs.Node {
			return ns.Text(p, 0444, o, func(fs.Caller) ([]byte, error) {
				now := time.Now()
				return fmt.Appendf(nil, "time=%d agent=%d procs=1 cpu=%.4f cpus=%.3f mem=%d rss=%d swap=0 pgmajfault=0 read=%d write=%d rxb=0 txb=0 fds=%d socks=0 oom=0 throttled=0 nr_periods=0 pids=1 io_wait=0 state=running\n",
					now.UnixNano(), id, 0.0123, 1.25, 8<<20, 4<<20, 123456, 65432, 7), nil
			})
		}})
	}
	agents := ns.Dir("/agents", 0555, fs.Owner{}, func() ([]fs.Node, error) { return nil, nil }, func(name string) (fs.Node, error) {
		id, err := strconv.Atoi(name)
		if err != nil || id != 1 {
			return nil, fs.ErrNotExist
		}
		return ns.TabDir("/agents/"+name, 0755, fs.Owner{}, id, func() fs.Dirtab { return tab }), nil
	})
	return ns.StaticDir("/", 0555, fs.Owner{}, agents)
}

// latencies runs op b.N times and reports the median in µs (p50-µs), the
// figure docs/cost.md compares with the kernel's.
func latencies(b *testing.B, op func() error) {
	d := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(t))
	}
	b.StopTimer()
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds())/1e3, "p50-µs")
}

// BenchmarkStat reads agents/1/stat of statTree through this package's
// client on a unix socket, and /proc/PID/stat of a sleeping child the
// same two ways, so that the ratios docs/cost.md gives come from one run:
//
//   - kernel-orc: os.ReadFile of /proc/PID/stat (open, read, read, close);
//   - kernel-pread: pread at 0 of a kept descriptor;
//   - 9p-orc: Client.ReadFile, a walk of three names, open, read, read
//     for the end, clunk: five round trips, four waited for (the clunk's
//     reply is not, unless SyncClunk);
//   - 9p-stat: Client.Stat, a walk, a getattr and a clunk (waited for
//     only with SyncClunk);
//   - 9p-poll: a Tread at 0 of a kept fid, one round trip (it renders
//     afresh unless Plain, which serves the open's snapshot).
//
// "plain" is the server with Options.Plain and the client with
// SyncClunk, as before run 8; "new" is both without.
//
//	go test -run '^$' -bench Stat -benchtime 20000x -count 5 ./fs/p9fs/
func BenchmarkStat(b *testing.B) {
	sleep := exec.Command("sleep", "600")
	if err := sleep.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	proc := fmt.Sprintf("/proc/%d/stat", sleep.Process.Pid)
	pf, err := os.Open(proc)
	if err != nil {
		b.Fatal(err)
	}
	defer pf.Close()
	buf := make([]byte, 4096)
	b.Run("kernel-orc", func(b *testing.B) {
		latencies(b, func() error { _, err := os.ReadFile(proc); return err })
	})
	b.Run("kernel-pread", func(b *testing.B) {
		latencies(b, func() error { _, err := syscall.Pread(int(pf.Fd()), buf, 0); return err })
	})
	for _, plain := range []bool{true, false} {
		name := "new"
		if plain {
			name = "plain"
		}
		sock := filepath.Join(b.TempDir(), "aios.sock")
		ln, err := ListenAndServe("unix!"+sock, statTree(), Options{Plain: plain})
		if err != nil {
			b.Fatal(err)
		}
		c, err := Dial("unix!" + sock)
		if err != nil {
			b.Fatal(err)
		}
		c.SyncClunk = plain
		const p = "agents/1/stat"
		b.Run("9p-orc-"+name, func(b *testing.B) {
			latencies(b, func() error { _, err := c.ReadFile(p); return err })
		})
		b.Run("9p-stat-"+name, func(b *testing.B) {
			latencies(b, func() error { _, err := c.Stat(p); return err })
		})
		f, err := c.Open(p, false)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("9p-poll-"+name, func(b *testing.B) {
			latencies(b, func() error {
				n, err := f.f.ReadAt(buf, 0)
				if n == 0 {
					return fmt.Errorf("read at 0: %d bytes, %v", n, err)
				}
				return nil
			})
		})
		f.Close()
		c.Close()
		ln.Close()
	}
}
