package telemetry

import (
	"encoding/binary"
	"math"
	"time"
	"unsafe"
)

// packed is a Sample unpacked from the ring's encoding: 80 bytes instead
// of about 170. The ring encodes every sample further (see encoder).
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

// words is p's fields after the time as 32-bit words (floats by their
// bits), in a fixed order, for the ring's block encoding.
func (p *packed) words() [nWords]uint32 {
	f := math.Float32bits
	return [nWords]uint32{
		f(p.cpu), f(p.cpuSec), f(p.rss), f(p.mem), f(p.ioRead), f(p.ioWrite),
		f(p.ioReadRate), f(p.ioWriteRate), p.threads, p.procs, p.fds, p.sockets,
		p.majFaults, p.throttled, p.oomKills, f(p.netSent), f(p.netRecv), f(p.netRate),
	}
}

const nWords = 18

func fromWords(t int64, w *[nWords]uint32) packed {
	f := math.Float32frombits
	return packed{
		t: t, cpu: f(w[0]), cpuSec: f(w[1]), rss: f(w[2]), mem: f(w[3]), ioRead: f(w[4]), ioWrite: f(w[5]),
		ioReadRate: f(w[6]), ioWriteRate: f(w[7]), threads: w[8], procs: w[9], fds: w[10], sockets: w[11],
		majFaults: w[12], throttled: w[13], oomKills: w[14], netSent: f(w[15]), netRecv: f(w[16]), netRate: f(w[17]),
	}
}

// blockLen is how many samples the ring seals into one encoded block.
const blockLen = 64

// A block is samples encoded, each against the one before it (the first
// against zero): the time as a zigzag varint of its delta of delta (0 for
// a steady step), a uvarint mask of the words that changed, and for each
// changed word a uvarint of it XOR its previous value, or for a counter
// (counterWords) a zigzag varint of the delta of delta of its bits. A steady sample
// (a held one: same figures, same step) is 2 bytes; a busy agent's, whose
// CPU, memory and rates change every pass, about 25, against 80 unpacked.
// A sealed block holds blockLen samples; the open one (the newest) fewer,
// and is appended to as samples come, so that no sample is kept
// unencoded (64 of them were 5 KiB an agent, 1 MiB at 200 agents).

// counterWords marks the words of cumulative counters (CPU seconds, I/O
// and network bytes, major faults, throttled periods, OOM kills): they
// are encoded as the delta of delta of their bits, not XOR, so a counter
// that grows at a steady rate costs a byte, not three. A float32's bits
// grow with its value, so a steady rate is a near-constant delta.
const counterWords = 1<<1 | 1<<4 | 1<<5 | 1<<12 | 1<<13 | 1<<14 | 1<<15 | 1<<16

// encoder is the state a block's next sample is encoded against.
type encoder struct {
	prev  [nWords]uint32
	delta [nWords]uint32 // counters' last delta, as uint32 arithmetic
	prevT int64
	step  int64
	n     int // samples in the block so far
	data  []byte
}

func (e *encoder) add(p *packed) {
	if e.n == 0 {
		e.data = binary.AppendVarint(e.data, p.t)
	} else {
		s := p.t - e.prevT
		e.data = binary.AppendVarint(e.data, s-e.step)
		e.step = s
	}
	e.prevT = p.t
	w := p.words()
	var x [nWords]uint32 // what is written for each word
	var mask uint32
	for i := range nWords {
		if counterWords&(1<<i) != 0 {
			d := w[i] - e.prev[i]
			x[i] = d - e.delta[i]
			e.delta[i] = d
			if e.n == 0 { // a block's first value is its own: no delta to carry
				e.delta[i] = 0
			}
		} else {
			x[i] = w[i] ^ e.prev[i]
		}
		if x[i] != 0 {
			mask |= 1 << i
		}
	}
	e.data = binary.AppendUvarint(e.data, uint64(mask))
	for i := range nWords {
		if mask&(1<<i) == 0 {
			continue
		}
		if counterWords&(1<<i) != 0 {
			e.data = binary.AppendVarint(e.data, int64(int32(x[i])))
		} else {
			e.data = binary.AppendUvarint(e.data, uint64(x[i]))
		}
	}
	e.prev = w
	e.n++
}

// reset starts a new block, keeping the buffer.
func (e *encoder) reset() {
	*e = encoder{data: e.data[:0]}
}

// decode appends the n samples encoded in d to out.
func decode(d []byte, n int, out []packed) []packed {
	var w, delta [nWords]uint32
	var t, step int64
	for k := 0; k < n; k++ {
		dd, m := binary.Varint(d)
		d = d[m:]
		if k == 0 {
			t = dd
		} else {
			step += dd
			t += step
		}
		mask64, m := binary.Uvarint(d)
		d = d[m:]
		mask := uint32(mask64)
		for i := range nWords {
			counter := counterWords&(1<<i) != 0
			if mask&(1<<i) != 0 {
				if counter {
					x, m := binary.Varint(d)
					d = d[m:]
					delta[i] += uint32(int32(x))
				} else {
					x, m := binary.Uvarint(d)
					d = d[m:]
					w[i] ^= uint32(x)
				}
			}
			if counter {
				w[i] += delta[i]
				if k == 0 {
					delta[i] = 0
				}
			}
		}
		out = append(out, fromWords(t, &w))
	}
	return out
}

// Ring is a bounded history of Samples, oldest dropped first. It stores
// samples compactly: exact times, float32 quantities, uint32 counts (see
// packed), encoded in blocks of blockLen (see encoder), so an hour of a
// busy agent's 1 s samples is about 90 KiB instead of 280, and of an idle
// one about 12. It grows lazily, so an agent that lives a minute costs a
// minute of samples. A Ring is not safe for concurrent use; the Sampler
// guards each agent's ring with that agent's lock.
type Ring struct {
	blocks [][]byte // sealed, blockLen samples each, oldest first
	open   encoder  // the newest samples, fewer than blockLen
	skip   int      // samples at the front of blocks[0] (or open) already dropped
	total  int      // samples in blocks and open, skip included
	last   packed
	n      int
}

// NewRing returns a ring that keeps the last n samples (at least 1).
func NewRing(n int) *Ring {
	if n < 1 {
		n = 1
	}
	return &Ring{n: n}
}

// Len is the number of samples kept.
func (r *Ring) Len() int { return r.total - r.skip }

// Cap is the most samples the ring keeps.
func (r *Ring) Cap() int { return r.n }

// Add appends s, dropping the oldest sample when the ring is full. A
// ring smaller than a block keeps up to a block and its samples more,
// encoded, and shows only the last n.
func (r *Ring) Add(s Sample) {
	p := pack(s)
	r.open.add(&p)
	r.last = p
	r.total++
	if r.total-r.skip > r.n {
		r.skip++
	}
	for len(r.blocks) > 0 && r.skip >= blockLen {
		r.skip -= blockLen
		r.total -= blockLen
		r.blocks[0] = nil
		r.blocks = r.blocks[1:]
	}
	if r.open.n == blockLen { // skip < blockLen here: the loop above dropped whole blocks
		r.blocks = append(r.blocks, append([]byte(nil), r.open.data...)) // exact size
		r.open.reset()
	}
}

// Last returns the newest sample.
func (r *Ring) Last() (Sample, bool) {
	if r.Len() == 0 {
		return Sample{}, false
	}
	return r.last.unpack(), true
}

// All returns every kept sample, oldest first.
func (r *Ring) All() []Sample {
	out := make([]Sample, 0, r.Len())
	var tmp []packed
	skip := r.skip
	for i := range r.blocks {
		tmp = decode(r.blocks[i], blockLen, tmp[:0])
		for k := skip; k < len(tmp); k++ {
			out = append(out, tmp[k].unpack())
		}
		skip = 0
	}
	tmp = decode(r.open.data, r.open.n, tmp[:0])
	for k := skip; k < len(tmp); k++ {
		out = append(out, tmp[k].unpack())
	}
	return out
}

// Since returns the kept samples taken at or after t, oldest first. It
// walks back from the newest sample, decoding only the blocks it needs, so
// it costs about what it returns and, if the clock stepped back, returns
// the newest run of samples at or after t.
func (r *Ring) Since(t time.Time) []Sample {
	tn := nanos(t)
	var rev []packed // newest first
	tmp := decode(r.open.data, r.open.n, nil)
	for i := len(r.blocks); i >= 0; i-- {
		if i < len(r.blocks) {
			tmp = decode(r.blocks[i], blockLen, tmp[:0])
		}
		from := 0
		if i == 0 {
			from = r.skip
		}
		for k := len(tmp) - 1; k >= from; k-- {
			if tmp[k].t < tn {
				return unpackRev(rev)
			}
			rev = append(rev, tmp[k])
		}
	}
	return unpackRev(rev)
}

func unpackRev(rev []packed) []Sample {
	out := make([]Sample, len(rev))
	for k := range rev {
		out[len(rev)-1-k] = rev[k].unpack()
	}
	return out
}

// bytes is about what the ring holds in memory, for tests.
func (r *Ring) bytes() int {
	n := cap(r.open.data) + cap(r.blocks)*int(unsafe.Sizeof([]byte(nil)))
	for _, b := range r.blocks {
		n += cap(b)
	}
	return n
}
