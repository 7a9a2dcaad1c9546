// Package telemetry samples every agent's processes and cgroup on a fixed
// interval, keeps a bounded history per agent, and feeds the other engines:
// they register OnTick hooks (scheduler, memory, threat, healing) and ask
// for the latest sample or the history of one agent. It also watches the
// kernel's proc connector so that process forks, execs and exits of
// agents' processes reach the event bus as they happen.
//
// Telemetry builds no files: the agent engine renders `stat` with
// Sample.Line and `history` with one Line per sample.
package telemetry

import (
	"math"
	"strconv"
	"time"
)

// Sample is one observation of one agent: its cgroup and the processes in
// it, aggregated. Sizes are bytes, times seconds, CPU in cores.
type Sample struct {
	Time       time.Time
	CPU        float64 // cores used over the last interval (cgroup usage delta when available, else the processes' utime+stime delta)
	CPUSeconds float64 // cumulative: the cgroup's usage when available, else the sum over live processes
	RSS        int64   // sum of the processes' RSS, bytes
	Mem        int64   // the cgroup's memory.current (v2) / memory.usage_in_bytes (v1), bytes

	IORead, IOWrite         int64   // cumulative storage bytes over live processes
	IOReadRate, IOWriteRate float64 // bytes/s over the last interval; processes leaving never make these negative

	Threads, Procs, FDs, Sockets int

	MajFaults uint64 // cumulative major faults over live processes
	Throttled uint64 // the cgroup's nr_throttled, cumulative
	OOMKills  uint64 // the cgroup's oom_kill count, cumulative

	// Network: TCP payload bytes of the sockets the live processes hold
	// (one sock_diag dump per pass, matched by socket inode). A socket
	// held by several of the agent's processes counts once. 0 when the
	// dump failed.
	NetSent, NetRecv int64   // cumulative over the live sockets
	NetRate          float64 // sent+received bytes/s over the last interval; sockets closing never make it negative
}

// Line renders the sample as one line with its newline: key=value fields
// separated by single spaces, always in this order, in base units:
//
//	time=1764092400.123 cpu=0.503 cpu_seconds=12.250 rss=1048576 mem=2097152 io_read=0 io_write=4096 io_read_rate=0 io_write_rate=409.6 threads=3 procs=2 fds=12 sockets=1 majflt=0 throttled=0 oom_kills=0 net_sent=2048 net_recv=1024 net_rate=307.2
//
//	time           Unix seconds with milliseconds
//	cpu            cores used over the last interval, 3 decimals
//	cpu_seconds    cumulative CPU seconds, 3 decimals
//	rss mem        bytes (sum of processes' VmRSS; the cgroup's memory usage)
//	io_read io_write             cumulative storage bytes of the live processes
//	io_read_rate io_write_rate   bytes per second, at most 3 decimals, no trailing zeros
//	threads procs fds sockets    counts over the live processes
//	majflt         cumulative major page faults of the live processes
//	throttled      the cgroup's nr_throttled (periods throttled), cumulative
//	oom_kills      the cgroup's OOM kills, cumulative
//	net_sent net_recv  cumulative TCP payload bytes of the sockets the live processes hold
//	net_rate       TCP bytes per second, sent+received, like io_read_rate
//
// An `agents/N/stat` file is one such line; `agents/N/history` is one line
// per kept sample, oldest first.
//
// How fresh each field is (DefaultTuning): cpu, cpu_seconds, mem,
// throttled and oom_kills come from the agent's cgroup at every sample.
// rss, io_read, io_write, threads, procs, fds, sockets and majflt come
// from the processes' own /proc files, which an agent that is running is
// read at least every 5th pass (Tuning.ProcEvery), and at once when its
// set of processes changed, one of them exec'd or changed uid or gid, or
// a new TCP socket appeared on the host; in between they repeat the last
// reading, and io_read_rate and io_write_rate repeat the rates of that
// reading, averaged over the span since the one before it (0 on a pass in
// which the agent did not run; the next pass in which it runs reads the
// files again). net_sent, net_recv and net_rate are read
// from every pass's socket dump (taken when some agent sampled in full
// held a socket) for the sockets the last process reading found. An idle
// agent's line is repeated with rates 0 for at most 10 passes
// (Tuning.Hold).
func (s Sample) Line() string {
	b := make([]byte, 0, 256)
	return string(s.AppendLine(b))
}

// AppendLine appends Line's bytes to b, for renderers of long histories.
func (s Sample) AppendLine(b []byte) []byte {
	b = append(b, "time="...)
	b = strconv.AppendFloat(b, float64(s.Time.UnixMilli())/1000, 'f', 3, 64)
	b = append(b, " cpu="...)
	b = strconv.AppendFloat(b, s.CPU, 'f', 3, 64)
	b = append(b, " cpu_seconds="...)
	b = strconv.AppendFloat(b, s.CPUSeconds, 'f', 3, 64)
	b = append(b, " rss="...)
	b = strconv.AppendInt(b, s.RSS, 10)
	b = append(b, " mem="...)
	b = strconv.AppendInt(b, s.Mem, 10)
	b = append(b, " io_read="...)
	b = strconv.AppendInt(b, s.IORead, 10)
	b = append(b, " io_write="...)
	b = strconv.AppendInt(b, s.IOWrite, 10)
	b = append(b, " io_read_rate="...)
	b = appendRate(b, s.IOReadRate)
	b = append(b, " io_write_rate="...)
	b = appendRate(b, s.IOWriteRate)
	b = append(b, " threads="...)
	b = strconv.AppendInt(b, int64(s.Threads), 10)
	b = append(b, " procs="...)
	b = strconv.AppendInt(b, int64(s.Procs), 10)
	b = append(b, " fds="...)
	b = strconv.AppendInt(b, int64(s.FDs), 10)
	b = append(b, " sockets="...)
	b = strconv.AppendInt(b, int64(s.Sockets), 10)
	b = append(b, " majflt="...)
	b = strconv.AppendUint(b, s.MajFaults, 10)
	b = append(b, " throttled="...)
	b = strconv.AppendUint(b, s.Throttled, 10)
	b = append(b, " oom_kills="...)
	b = strconv.AppendUint(b, s.OOMKills, 10)
	// Network fields came last, after the others were fixed: appended at
	// the end so readers that split by position keep working.
	b = append(b, " net_sent="...)
	b = strconv.AppendInt(b, s.NetSent, 10)
	b = append(b, " net_recv="...)
	b = strconv.AppendInt(b, s.NetRecv, 10)
	b = append(b, " net_rate="...)
	b = appendRate(b, s.NetRate)
	return append(b, '\n')
}

// appendRate writes v rounded to 3 decimals in the shortest form that
// reads back the same ("0", "409.6", "1234567.125").
func appendRate(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	r := math.Round(v*1000) / 1000
	if r == 0 {
		r = 0 // no "-0"
	}
	return strconv.AppendFloat(b, r, 'f', -1, 64)
}
