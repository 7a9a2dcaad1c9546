package threat

import (
	"math"
	"time"

	"aiosfs/engines/telemetry"
)

// EventKind is what an Event reports.
type EventKind uint8

const (
	EvFork          EventKind = iota + 1 // a process (not a thread) was created
	EvExec                               // a process exec'd Path; SetID if the file is set-uid/gid
	EvExit                               // a process ended
	EvUID                                // real/effective uid changed
	EvGID                                // real/effective gid changed
	EvCap                                // effective capabilities changed
	EvSensitiveOpen                      // Path, a sensitive file, was opened
	EvFileWrite                          // Path was closed after writing
)

// Event is one thing an agent's process did, from the proc connector
// (fork, exec, exit, uid, gid), procfs (cap) or fanotify (opens, writes).
type Event struct {
	Kind  EventKind
	Time  time.Time
	Pid   int
	Path  string // EvExec: the executable; EvSensitiveOpen/EvFileWrite: the file
	SetID bool   // EvExec: the file has S_ISUID or S_ISGID
}

// Observation is what the feeder knows of one agent at one sampling
// instant: the telemetry sample, the events since the previous
// observation, and a few socket facts telemetry does not keep yet.
type Observation struct {
	telemetry.Sample
	Events []Event

	// NetSentRate and NetRecvRate split Sample.NetRate by direction
	// (bytes/s, per-socket deltas clamped at 0). When both are 0 and
	// NetRate is not, NetRate counts as sent.
	NetSentRate, NetRecvRate float64
	Listen, Established      int      // TCP sockets by state (sock_diag)
	Remotes                  []string // remote "addr:port" of connected sockets
	StdinSockets             int      // processes whose fd 0 is a socket
	ForkFails                uint64   // pids.events max, cumulative
}

// acc accumulates one 1 s window; 10 s windows merge ten of them.
type acc struct {
	start, end                        time.Time
	n                                 int
	cpu, cpu2                         float64
	rssFirst, rssLast                 int64
	tFirst, tLast                     time.Time
	forks, execs, exits               int
	setid, ids, caps, sens            int
	writes                            int
	newBins, newRemotes               int
	bins                              map[string]struct{}
	fds, listen, est, stdio           int
	procs, threads                    int
	sent, recv, rd, wr                float64 // sums of rates over samples
	majflt, throttled, oom            uint64  // deltas
	forkFails                         uint64
	lastMaj, lastThr, lastOOM, lastFF uint64
}

const maxBinsPerWindow = 64

// Aggregator turns one agent's observations into window vectors. It is
// not safe for concurrent use; the engine holds one per agent.
type Aggregator struct {
	cur   *acc
	ring  [10]*acc // the last ten closed 1 s windows, newest at head-1
	spare *acc     // the window close last pushed out of ring, for the next (PassRemedies)
	head  int
	count int
	prev  *Observation

	seenBins    map[string]struct{}
	seenRemotes map[string]struct{}
}

const (
	maxSeenBins    = 512
	maxSeenRemotes = 1024
)

// NewAggregator returns an empty aggregator.
func NewAggregator() *Aggregator {
	return &Aggregator{seenBins: map[string]struct{}{}, seenRemotes: map[string]struct{}{}}
}

// Add folds o in. When o's time is at or past the end of the current
// 1 s window, that window closes first and Add returns its vector (the
// 1 s features and those of the 10 s window ending with it) and true.
// Observations must come in time order; one older than the previous is
// dropped.
func (g *Aggregator) Add(o Observation) (Vector, time.Time, bool) {
	var v Vector
	var end time.Time
	closed := false
	if g.prev != nil && o.Time.Before(g.prev.Time) {
		return v, end, false
	}
	if g.cur != nil && !o.Time.Before(g.cur.end) {
		end = g.cur.end
		g.close()
		v = g.vector()
		closed = true
	}
	if g.cur == nil {
		start := o.Time.Truncate(time.Second)
		if sp := g.spare; sp != nil && PassRemedies() {
			g.spare = nil
			bins := sp.bins
			clear(bins)
			*sp = acc{start: start, end: start.Add(time.Second), bins: bins}
			g.cur = sp
		} else {
			g.cur = &acc{start: start, end: start.Add(time.Second)}
		}
		if g.prev != nil {
			g.cur.lastMaj, g.cur.lastThr, g.cur.lastOOM, g.cur.lastFF = g.prev.MajFaults, g.prev.Throttled, g.prev.OOMKills, g.prev.ForkFails
			g.cur.rssFirst, g.cur.tFirst = g.prev.RSS, g.prev.Time
		}
	}
	g.fold(&o)
	if g.prev == nil {
		g.prev = new(Observation)
	}
	*g.prev = o // in place: prev is only read here, so a copy per observation is not needed
	g.prev.Events = nil
	g.prev.Remotes = nil
	return v, end, closed
}

func (g *Aggregator) fold(o *Observation) {
	a := g.cur
	if a.tFirst.IsZero() {
		a.rssFirst, a.tFirst = o.RSS, o.Time
		a.lastMaj, a.lastThr, a.lastOOM, a.lastFF = o.MajFaults, o.Throttled, o.OOMKills, o.ForkFails
	}
	a.n++
	a.cpu += o.CPU
	a.cpu2 += o.CPU * o.CPU
	a.rssLast, a.tLast = o.RSS, o.Time
	for i := range o.Events {
		e := &o.Events[i]
		switch e.Kind {
		case EvFork:
			a.forks++
		case EvExec:
			a.execs++
			if e.SetID {
				a.setid++
			}
			if e.Path != "" {
				if a.bins == nil {
					a.bins = map[string]struct{}{}
				}
				if len(a.bins) < maxBinsPerWindow {
					a.bins[e.Path] = struct{}{}
				}
				if _, ok := g.seenBins[e.Path]; !ok {
					a.newBins++
					if len(g.seenBins) < maxSeenBins {
						g.seenBins[e.Path] = struct{}{}
					}
				}
			}
		case EvExit:
			a.exits++
		case EvUID, EvGID:
			a.ids++
		case EvCap:
			a.caps++
		case EvSensitiveOpen:
			a.sens++
		case EvFileWrite:
			a.writes++
		}
	}
	for _, r := range o.Remotes {
		if _, ok := g.seenRemotes[r]; !ok {
			a.newRemotes++
			if len(g.seenRemotes) < maxSeenRemotes {
				g.seenRemotes[r] = struct{}{}
			}
		}
	}
	a.fds = max(a.fds, o.FDs)
	a.listen = max(a.listen, o.Listen)
	a.est = max(a.est, o.Established)
	a.stdio = max(a.stdio, o.StdinSockets)
	a.procs = max(a.procs, o.Procs)
	a.threads = max(a.threads, o.Threads)
	sent, recv := o.NetSentRate, o.NetRecvRate
	if sent == 0 && recv == 0 {
		sent = o.NetRate
	}
	a.sent += sent
	a.recv += recv
	a.rd += o.IOReadRate
	a.wr += o.IOWriteRate
	a.majflt += sub(o.MajFaults, &a.lastMaj)
	a.throttled += sub(o.Throttled, &a.lastThr)
	a.oom += sub(o.OOMKills, &a.lastOOM)
	a.forkFails += sub(o.ForkFails, &a.lastFF)
}

// sub returns v - *last clamped at 0 and sets *last = v (a counter that
// went backwards, a process leaving, counts as 0).
func sub(v uint64, last *uint64) uint64 {
	d := uint64(0)
	if v > *last {
		d = v - *last
	}
	*last = v
	return d
}

func (g *Aggregator) close() {
	g.spare = g.ring[g.head]
	g.ring[g.head] = g.cur
	g.head = (g.head + 1) % len(g.ring)
	if g.count < len(g.ring) {
		g.count++
	}
	g.cur = nil
}

// Flush closes the current window, if any has observations, as if time
// had reached its end.
func (g *Aggregator) Flush() (Vector, time.Time, bool) {
	if g.cur == nil || g.cur.n == 0 {
		return Vector{}, time.Time{}, false
	}
	end := g.cur.end
	g.close()
	return g.vector(), end, true
}

// vector computes the 1 s features of the newest closed window and the
// 10 s features of the last ten (fewer while young; rates are per
// second of the span covered).
func (g *Aggregator) vector() Vector {
	var v Vector
	newest := g.ring[(g.head+len(g.ring)-1)%len(g.ring)]
	features(v[:NumFeatures], []*acc{newest})
	var buf [10]*acc
	all := buf[:0]
	for i := 0; i < g.count; i++ {
		all = append(all, g.ring[(g.head+len(g.ring)-1-i)%len(g.ring)])
	}
	features(v[NumFeatures:], all)
	return v
}

func features(out []float64, as []*acc) {
	var n int
	var cpu, cpu2, sent, recv, rd, wr float64
	var forks, execs, exits, setid, ids, caps, sens, writes, newBins, newRem int
	var fds, listen, est, stdio, procs, threads int
	var maj, thr, oom, ff uint64
	var bins map[string]struct{} // the windows' distinct binaries, when more than one window has any
	distinct, with := 0, 0
	for _, a := range as {
		if len(a.bins) > 0 {
			distinct, with = len(a.bins), with+1
		}
	}
	if with > 1 {
		bins = map[string]struct{}{}
	}
	first, last := as[0], as[0]
	for _, a := range as {
		if a.start.Before(first.start) {
			first = a
		}
		if a.start.After(last.start) {
			last = a
		}
		n += a.n
		cpu += a.cpu
		cpu2 += a.cpu2
		sent, recv, rd, wr = sent+a.sent, recv+a.recv, rd+a.rd, wr+a.wr
		forks, execs, exits = forks+a.forks, execs+a.execs, exits+a.exits
		setid, ids, caps, sens, writes = setid+a.setid, ids+a.ids, caps+a.caps, sens+a.sens, writes+a.writes
		newBins, newRem = newBins+a.newBins, newRem+a.newRemotes
		if bins != nil {
			for b := range a.bins {
				bins[b] = struct{}{}
			}
		}
		fds, listen, est, stdio = max(fds, a.fds), max(listen, a.listen), max(est, a.est), max(stdio, a.stdio)
		procs, threads = max(procs, a.procs), max(threads, a.threads)
		maj, thr, oom, ff = maj+a.majflt, thr+a.throttled, oom+a.oom, ff+a.forkFails
	}
	secs := float64(len(as)) // each acc is one second
	if n == 0 {
		n = 1
	}
	mean := cpu / float64(n)
	out[CPU] = mean
	if n >= 2 && mean >= 0.05 {
		sd := math.Sqrt(math.Max(0, cpu2/float64(n)-mean*mean))
		out[CPUSteady] = math.Max(0, 1-sd/mean)
	}
	if dt := last.tLast.Sub(first.tFirst).Seconds(); dt > 0 {
		out[MemGrowth] = math.Max(0, float64(last.rssLast-first.rssFirst)/dt)
	}
	out[Forks] = float64(forks) / secs
	out[Execs] = float64(execs) / secs
	out[Exits] = float64(exits) / secs
	if bins != nil {
		distinct = len(bins)
	}
	out[DistinctBins] = float64(distinct)
	out[NewBins] = float64(newBins)
	out[SetIDExecs] = float64(setid)
	out[IDChanges] = float64(ids)
	out[CapChanges] = float64(caps)
	out[FDs] = float64(fds)
	out[SensitiveOpens] = float64(sens)
	out[Listen] = float64(listen)
	out[Established] = float64(est)
	out[NewRemotes] = float64(newRem)
	out[NetSent] = sent / float64(n)
	out[NetRecv] = recv / float64(n)
	out[DiskRead] = rd / float64(n)
	out[DiskWrite] = wr / float64(n)
	out[FilesWritten] = float64(writes) / secs
	out[StdinSockets] = float64(stdio)
	out[Procs] = float64(procs)
	out[Threads] = float64(threads)
	out[MajFaults] = float64(maj) / secs
	out[Throttled] = float64(thr) / secs
	out[OOMKills] = float64(oom)
	out[ForkFails] = float64(ff)
}
