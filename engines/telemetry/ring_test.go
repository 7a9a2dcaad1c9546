package telemetry

import (
	"math"
	"math/rand"
	"strings"
	"testing"
	"time"
	"unsafe"
)

var t0 = time.UnixMilli(1764092400123)

func at(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }

func TestRingWrapAndOrder(t *testing.T) {
	r := NewRing(5)
	if r.Len() != 0 || r.Cap() != 5 {
		t.Fatalf("empty ring: len %d cap %d", r.Len(), r.Cap())
	}
	if _, ok := r.Last(); ok {
		t.Fatal("Last on empty ring reported a sample")
	}
	if got := r.All(); len(got) != 0 {
		t.Fatalf("All on empty ring = %v", got)
	}
	for i := 0; i < 12; i++ {
		r.Add(Sample{Time: at(i), Procs: i})
		if want := min(i+1, 5); r.Len() != want {
			t.Fatalf("after %d adds Len = %d, want %d", i+1, r.Len(), want)
		}
		all := r.All()
		for k, s := range all {
			if want := i + 1 - len(all) + k; s.Procs != want || !s.Time.Equal(at(want)) {
				t.Fatalf("after %d adds All()[%d] = procs %d time %v, want %d", i+1, k, s.Procs, s.Time, want)
			}
		}
		if last, ok := r.Last(); !ok || last.Procs != i {
			t.Fatalf("Last = %d %v, want %d", last.Procs, ok, i)
		}
	}
	if r.Cap() != 5 {
		t.Fatalf("Cap = %d", r.Cap())
	}

	procs := func(ss []Sample) []int {
		out := []int{}
		for _, s := range ss {
			out = append(out, s.Procs)
		}
		return out
	}
	for _, c := range []struct {
		since time.Time
		want  []int
	}{
		{at(9), []int{9, 10, 11}},
		{at(9).Add(-time.Millisecond), []int{9, 10, 11}},
		{at(9).Add(time.Nanosecond), []int{10, 11}},
		{at(11), []int{11}},
		{at(12), []int{}},
		{at(0), []int{7, 8, 9, 10, 11}},
		{time.Time{}, []int{7, 8, 9, 10, 11}},
	} {
		if got := procs(r.Since(c.since)); !slicesEqual(got, c.want) {
			t.Errorf("Since(%v) = %v, want %v", c.since, got, c.want)
		}
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRingCapacityBoundAndLazyGrowth(t *testing.T) {
	if n := unsafe.Sizeof(packed{}); n > 80 {
		t.Fatalf("packed sample is %d bytes, want at most 80", n)
	}
	r := NewRing(3600)
	r.Add(Sample{Time: at(0)})
	if b := r.bytes(); b > 16*80 {
		t.Fatalf("one sample takes %d bytes", b)
	}
	for i := 1; i < 10000; i++ {
		r.Add(Sample{Time: at(i)})
		if r.Len() > 3600 {
			t.Fatalf("after %d adds the ring holds %d > 3600", i+1, r.Len())
		}
	}
	if r.Len() != 3600 {
		t.Fatalf("full ring: len %d", r.Len())
	}
	if all := r.All(); len(all) != 3600 || !all[0].Time.Equal(at(6400)) || !all[3599].Time.Equal(at(9999)) {
		t.Fatalf("full ring spans %v..%v", all[0].Time, all[len(all)-1].Time)
	}
	if NewRing(0).Cap() != 1 || NewRing(-3).Cap() != 1 {
		t.Fatal("a ring keeps at least one sample")
	}
}

// An hour of samples: a steady (idle, held) agent's and a busy one's,
// whose CPU figures, RSS and rates change every second, read back exactly
// as packed, in far less than 80 bytes a sample.
func TestRingEncodedSize(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for _, c := range []struct {
		name string
		busy bool
		most int // bytes per sample
	}{{"steady", false, 4}, {"busy", true, 32}, {"fill", false, 11}} {
		r := NewRing(3600)
		var in []Sample
		cpuSec, rss := 100.0, int64(50<<20)
		tm := at(0)
		for i := 0; i < 5000; i++ {
			tm = tm.Add(time.Second + time.Duration(rng.Intn(2000000))) // ticker jitter up to 2 ms
			s := Sample{Time: tm, CPUSeconds: cpuSec, RSS: rss, Mem: rss + 4096, Procs: 3, Threads: 7, FDs: 12}
			if c.busy {
				s.CPU = rng.Float64()
				cpuSec += s.CPU
				s.CPUSeconds = cpuSec
				rss += int64(rng.Intn(64)-32) * 4096
				s.RSS, s.Mem = rss, rss+int64(rng.Intn(1<<20))
				s.IOWriteRate = float64(rng.Intn(1 << 16))
				s.MajFaults = uint64(i / 10)
			} else {
				s.Time = at(i + 1) // a steady step
			}
			if c.name == "fill" { // what scripts/bench's -fill gives (Sampler.FillHistory)
				s.CPU = float64(i%97) / 97
				s.CPUSeconds = 100 + float64(i)*0.01
				s.RSS += int64(i % 13 * 4096)
			}
			r.Add(s)
			in = append(in, s)
		}
		got := r.All()
		want := in[len(in)-3600:]
		if len(got) != len(want) {
			t.Fatalf("%s: %d samples, want %d", c.name, len(got), len(want))
		}
		for i := range got {
			p := pack(want[i])
			if got[i] != p.unpack() {
				t.Fatalf("%s: sample %d reads back %+v, want %+v", c.name, i, got[i], p.unpack())
			}
		}
		if since := r.Since(want[3000].Time); len(since) != 600 || since[0] != got[3000] {
			t.Fatalf("%s: Since gave %d samples", c.name, len(since))
		}
		per := float64(r.bytes()) / 3600
		t.Logf("%s: %.1f bytes a sample", c.name, per)
		if per > float64(c.most) {
			t.Errorf("%s: %.1f bytes a sample, want at most %d", c.name, per, c.most)
		}
	}
}

func TestRingCompactPrecision(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	const eps = 1.0 / (1 << 24) // float32 rounding: half an ulp, relative
	relOK := func(got, want float64) bool {
		if want == 0 {
			return got == 0
		}
		return math.Abs(got-want) <= eps*math.Abs(want)
	}
	r := NewRing(64)
	var in []Sample
	for i := 0; i < 200; i++ {
		s := Sample{
			Time:        t0.Add(time.Duration(rng.Int63n(1e15))),
			CPU:         rng.Float64() * 64,
			CPUSeconds:  rng.Float64() * 1e7,
			RSS:         rng.Int63n(1 << 40),
			Mem:         rng.Int63n(1 << 44),
			IORead:      rng.Int63n(1 << 50),
			IOWrite:     rng.Int63(),
			IOReadRate:  rng.Float64() * 1e9,
			IOWriteRate: rng.Float64() * 1e3,
			Threads:     rng.Intn(1 << 20),
			Procs:       rng.Intn(1 << 16),
			FDs:         rng.Intn(1 << 20),
			Sockets:     rng.Intn(1 << 16),
			MajFaults:   uint64(rng.Uint32()),
			Throttled:   uint64(rng.Uint32()),
			OOMKills:    uint64(rng.Intn(100)),
			NetSent:     rng.Int63n(1 << 50),
			NetRecv:     rng.Int63(),
			NetRate:     rng.Float64() * 1e9,
		}
		in = append(in, s)
		r.Add(s)
	}
	out := r.All()
	in = in[len(in)-64:]
	for i := range out {
		g, w := out[i], in[i]
		if !g.Time.Equal(w.Time) {
			t.Fatalf("time %v read back as %v", w.Time, g.Time)
		}
		for _, f := range []struct {
			name      string
			got, want float64
		}{
			{"cpu", g.CPU, w.CPU}, {"cpu_seconds", g.CPUSeconds, w.CPUSeconds},
			{"rss", float64(g.RSS), float64(w.RSS)}, {"mem", float64(g.Mem), float64(w.Mem)},
			{"io_read", float64(g.IORead), float64(w.IORead)}, {"io_write", float64(g.IOWrite), float64(w.IOWrite)},
			{"io_read_rate", g.IOReadRate, w.IOReadRate}, {"io_write_rate", g.IOWriteRate, w.IOWriteRate},
			{"net_sent", float64(g.NetSent), float64(w.NetSent)}, {"net_recv", float64(g.NetRecv), float64(w.NetRecv)},
			{"net_rate", g.NetRate, w.NetRate},
		} {
			if !relOK(f.got, f.want) {
				t.Errorf("%s %v read back as %v (relative error %.3g > 2^-24)", f.name, f.want, f.got, math.Abs(f.got-f.want)/f.want)
			}
		}
		if g.Threads != w.Threads || g.Procs != w.Procs || g.FDs != w.FDs || g.Sockets != w.Sockets ||
			g.MajFaults != w.MajFaults || g.Throttled != w.Throttled || g.OOMKills != w.OOMKills {
			t.Errorf("counts changed: %+v -> %+v", w, g)
		}
	}

	// Exact where float32 is exact; counts saturate rather than wrap.
	r.Add(Sample{Time: at(1), RSS: 1 << 20, Mem: 2 << 20, IOWrite: 4096, CPU: 0.5,
		MajFaults: 1 << 40, Threads: -1})
	last, _ := r.Last()
	if last.RSS != 1<<20 || last.Mem != 2<<20 || last.IOWrite != 4096 || last.CPU != 0.5 {
		t.Fatalf("exact values changed: %+v", last)
	}
	if last.MajFaults != math.MaxUint32 || last.Threads != 0 {
		t.Fatalf("saturation: majflt %d threads %d", last.MajFaults, last.Threads)
	}
}

func TestSampleLineGolden(t *testing.T) {
	s := Sample{
		Time: time.UnixMilli(1764092400123), CPU: 0.5031, CPUSeconds: 12.25,
		RSS: 1048576, Mem: 2097152, IORead: 0, IOWrite: 4096, IOReadRate: 0, IOWriteRate: 409.6,
		Threads: 3, Procs: 2, FDs: 12, Sockets: 1, MajFaults: 0, Throttled: 0, OOMKills: 0,
		NetSent: 2048, NetRecv: 1024, NetRate: 307.2,
	}
	want := "time=1764092400.123 cpu=0.503 cpu_seconds=12.250 rss=1048576 mem=2097152 io_read=0 io_write=4096 io_read_rate=0 io_write_rate=409.6 threads=3 procs=2 fds=12 sockets=1 majflt=0 throttled=0 oom_kills=0 net_sent=2048 net_recv=1024 net_rate=307.2\n"
	if got := s.Line(); got != want {
		t.Fatalf("Line() = %q\nwant      %q", got, want)
	}

	s = Sample{Time: time.UnixMilli(1764092401000), CPU: 12, CPUSeconds: 1e6 + 1.0/3,
		RSS: 1 << 40, IOReadRate: 1234567.1254, IOWriteRate: -0.0001,
		MajFaults: 7, Throttled: 8, OOMKills: 9, NetRate: -0.0001}
	want = "time=1764092401.000 cpu=12.000 cpu_seconds=1000000.333 rss=1099511627776 mem=0 io_read=0 io_write=0 io_read_rate=1234567.125 io_write_rate=0 threads=0 procs=0 fds=0 sockets=0 majflt=7 throttled=8 oom_kills=9 net_sent=0 net_recv=0 net_rate=0\n"
	if got := s.Line(); got != want {
		t.Fatalf("Line() = %q\nwant      %q", got, want)
	}
	keys := []string{}
	for _, kv := range strings.Fields(s.Line()) {
		keys = append(keys, strings.SplitN(kv, "=", 2)[0])
	}
	if got := strings.Join(keys, " "); got != "time cpu cpu_seconds rss mem io_read io_write io_read_rate io_write_rate threads procs fds sockets majflt throttled oom_kills net_sent net_recv net_rate" {
		t.Fatalf("keys %s", got)
	}
}

// Rings of every size around a block, against a plain slice of what was
// added: Len, All, Last and Since agree after every Add, across sealing
// and dropping of blocks (rings smaller than a block included).
func TestRingAgainstSlice(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, n := range []int{1, 2, 5, 63, 64, 65, 127, 130} {
		r := NewRing(n)
		var all []Sample
		for i := 0; i < 300; i++ {
			s := Sample{Time: at(i), Procs: i, RSS: int64(rng.Intn(4)) << 20}
			if n%2 == 1 { // counters that jump both ways and wrap: every bit pattern must read back
				s.CPUSeconds = rng.Float64() * math.Pow(10, float64(rng.Intn(12)-3))
				s.IORead, s.NetSent = rng.Int63(), int64(i)<<20
				s.MajFaults, s.OOMKills = rng.Uint64(), uint64(rng.Intn(3))
			}
			r.Add(s)
			p := pack(s)
			all = append(all, p.unpack())
			want := all[max(0, len(all)-n):]
			if r.Len() != len(want) {
				t.Fatalf("n %d, %d adds: Len %d, want %d", n, i+1, r.Len(), len(want))
			}
			got := r.All()
			if len(got) != len(want) || got[0] != want[0] || got[len(got)-1] != want[len(want)-1] {
				t.Fatalf("n %d, %d adds: All has %d samples %v..%v, want %d %v..%v", n, i+1, len(got), got[0].Procs, got[len(got)-1].Procs, len(want), want[0].Procs, want[len(want)-1].Procs)
			}
			for k := range got {
				if got[k] != want[k] {
					t.Fatalf("n %d, %d adds: All()[%d] = %+v, want %+v", n, i+1, k, got[k], want[k])
				}
			}
			from := rng.Intn(len(want))
			if since := r.Since(want[from].Time); len(since) != len(want)-from || since[0] != want[from] {
				t.Fatalf("n %d, %d adds: Since(sample %d) gave %d samples, want %d", n, i+1, from, len(since), len(want)-from)
			}
			if last, _ := r.Last(); last != want[len(want)-1] {
				t.Fatalf("n %d: Last %+v", n, last)
			}
		}
	}
}

// No sample is kept unencoded: a ring of 63 held samples (one short of
// sealing a block) is a few bytes a sample, where the newest 64 used to
// be 80 bytes each (5 KiB an agent).
func TestRingOpenBlockEncoded(t *testing.T) {
	r := NewRing(3600)
	for i := 0; i < blockLen-1; i++ {
		r.Add(Sample{Time: at(i), RSS: 50 << 20, Procs: 3})
	}
	if b := r.bytes(); b > 512 {
		t.Errorf("63 held samples take %d bytes, want at most 512", b)
	}
}
