package telemetry

import (
	"math"
	"time"
)

// packed is a Sample as the ring keeps it: 80 bytes instead of about 170.
// An hour of 1 s samples for one agent is about 280 KiB.
//
// Times are exact (Unix nanoseconds). Byte counts, CPU and rates are
// float32, so they read back within float32 precision (relative error at
// most 2^-24, about 6e-8: a 1 GiB RSS reads back within 64 bytes). Counts
// are uint32 and saturate at 2^32-1.
type packed struct {
	t                       int64
	cpu, cpuSec             float32
	rss, mem                float32
	ioRead, ioWrite         float32
	ioReadRate, ioWriteRate float32
	threads, procs          uint32
	fds, sockets            uint32
	majFaults, throttled    uint32
	oomKills                uint32
	netSent, netRecv        float32
	netRate                 float32
}

// nanos is t in Unix nanoseconds, clamped to the int64 range (UnixNano is
// undefined outside it; the zero Time is far below it).
func nanos(t time.Time) int64 {
	switch {
	case t.Before(minNanos):
		return math.MinInt64
	case t.After(maxNanos):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minNanos = time.Unix(0, math.MinInt64)
	maxNanos = time.Unix(0, math.MaxInt64)
)

func pack(s Sample) packed {
	return packed{
		t:           nanos(s.Time),
		cpu:         float32(s.CPU),
		cpuSec:      float32(s.CPUSeconds),
		rss:         float32(s.RSS),
		mem:         float32(s.Mem),
		ioRead:      float32(s.IORead),
		ioWrite:     float32(s.IOWrite),
		ioReadRate:  float32(s.IOReadRate),
		ioWriteRate: float32(s.IOWriteRate),
		threads:     u32(int64(s.Threads)),
		procs:       u32(int64(s.Procs)),
		fds:         u32(int64(s.FDs)),
		sockets:     u32(int64(s.Sockets)),
		majFaults:   u32u(s.MajFaults),
		throttled:   u32u(s.Throttled),
		oomKills:    u32u(s.OOMKills),
		netSent:     float32(s.NetSent),
		netRecv:     float32(s.NetRecv),
		netRate:     float32(s.NetRate),
	}
}

func (p *packed) unpack() Sample {
	return Sample{
		Time:        time.Unix(0, p.t),
		CPU:         float64(p.cpu),
		CPUSeconds:  float64(p.cpuSec),
		RSS:         i64(p.rss),
		Mem:         i64(p.mem),
		IORead:      i64(p.ioRead),
		IOWrite:     i64(p.ioWrite),
		IOReadRate:  float64(p.ioReadRate),
		IOWriteRate: float64(p.ioWriteRate),
		Threads:     int(p.threads),
		Procs:       int(p.procs),
		FDs:         int(p.fds),
		Sockets:     int(p.sockets),
		MajFaults:   uint64(p.majFaults),
		Throttled:   uint64(p.throttled),
		OOMKills:    uint64(p.oomKills),
		NetSent:     i64(p.netSent),
		NetRecv:     i64(p.netRecv),
		NetRate:     float64(p.netRate),
	}
}

func u32(v int64) uint32 {
	switch {
	case v < 0:
		return 0
	case v > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(v)
}

func u32u(v uint64) uint32 {
	if v > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}

func i64(f float32) int64 {
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(f)
}

// Ring is a bounded history of Samples, oldest dropped first. It stores
// samples compactly (see packed: exact times, float32 quantities, uint32
// counts) and grows lazily up to its capacity, so an agent that lives a
// minute costs a minute of samples. A Ring is not safe for concurrent use;
// the Sampler guards each agent's ring with that agent's lock.
type Ring struct {
	buf  []packed // len(buf) < n: not yet full, oldest at 0; else oldest at head
	head int
	n    int
}

// NewRing returns a ring that keeps the last n samples (at least 1).
func NewRing(n int) *Ring {
	if n < 1 {
		n = 1
	}
	return &Ring{n: n}
}

// Len is the number of samples kept.
func (r *Ring) Len() int { return len(r.buf) }

// Cap is the most samples the ring keeps.
func (r *Ring) Cap() int { return r.n }

// Add appends s, dropping the oldest sample when the ring is full.
func (r *Ring) Add(s Sample) {
	p := pack(s)
	if len(r.buf) < r.n {
		if len(r.buf) == cap(r.buf) {
			// Grow by doubling but never past n: append's own growth
			// would overshoot the bound by up to 2x.
			c := min(max(2*cap(r.buf), 16), r.n)
			nb := make([]packed, len(r.buf), c)
			copy(nb, r.buf)
			r.buf = nb
		}
		r.buf = append(r.buf, p)
		return
	}
	r.buf[r.head] = p
	r.head++
	if r.head == r.n {
		r.head = 0
	}
}

// at returns the i-th oldest sample.
func (r *Ring) at(i int) *packed {
	if len(r.buf) < r.n {
		return &r.buf[i]
	}
	j := r.head + i
	if j >= r.n {
		j -= r.n
	}
	return &r.buf[j]
}

// Last returns the newest sample.
func (r *Ring) Last() (Sample, bool) {
	if len(r.buf) == 0 {
		return Sample{}, false
	}
	return r.at(len(r.buf) - 1).unpack(), true
}

// All returns every kept sample, oldest first.
func (r *Ring) All() []Sample {
	return r.from(0)
}

// Since returns the kept samples taken at or after t, oldest first. It
// walks back from the newest sample, so it costs what it returns and, if
// the clock stepped back, returns the newest run of samples at or after t.
func (r *Ring) Since(t time.Time) []Sample {
	tn := nanos(t)
	i := len(r.buf)
	for i > 0 && r.at(i-1).t >= tn {
		i--
	}
	return r.from(i)
}

func (r *Ring) from(i int) []Sample {
	out := make([]Sample, len(r.buf)-i)
	for k := range out {
		out[k] = r.at(i + k).unpack()
	}
	return out
}
