package telemetry

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"aiosfs/engines/bus"
	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
	"aiosfs/hal/sockdiag"
)

// ProcSource is what the Sampler needs of the host's procfs: one sample
// per process, an error matching os.ErrNotExist when it is gone.
// proc.FS satisfies it.
type ProcSource interface {
	Sample(pid int) (proc.Sample, error)
}

// Group is what the Sampler needs of an agent's cgroup: its member
// processes and its counters, one call each per pass. cgroup.Group
// satisfies it.
type Group interface {
	Procs() ([]int, error)
	Stats() (cgroup.Stats, error)
}

// Target is one agent to sample.
type Target struct {
	ID    int
	Group Group
}

// Config configures a Sampler.
type Config struct {
	Proc     ProcSource
	Interval time.Duration // between passes; default 1s
	History  int           // samples kept per agent; default 3600
	Bus      *bus.Bus      // where proc connector events and OOM kills go; nil: nowhere
	// TCPBytes dumps every TCP socket's byte counters by inode, once per
	// pass; nil: sockdiag.TCPBytes. A field so tests can fake the host.
	TCPBytes func() (map[uint64]sockdiag.Bytes, error)
}

// Defaults for Config's zero fields.
const (
	DefaultInterval = time.Second
	DefaultHistory  = 3600
)

// exitKeep is how many recent process exits ExitOf remembers.
const exitKeep = 8192

// Sampler samples every agent once per interval and keeps their history.
//
// Locking: tickMu serialises passes, and only a pass touches the
// per-process bookkeeping (agentState's tick fields). mu guards the agent
// table, the pid table, hooks, exits and the daemon's own figures. Each
// agent's ring and latest sample have their own lock, held only to add a
// sample or copy the history out, so a long History read delays one
// agent's Add and nothing else.
type Sampler struct {
	proc    ProcSource
	history int
	bus     *bus.Bus
	targets func() []Target
	tcp     func() (map[uint64]sockdiag.Bytes, error)

	// prevTCP is the last pass's socket dump (nil: none or failed), for
	// per-socket deltas. Touched only by passes (under tickMu).
	prevTCP map[uint64]sockdiag.Bytes

	interval atomic.Int64
	reset    chan struct{} // SetInterval wakes Run

	tickMu sync.Mutex

	mu     sync.Mutex
	agents map[int]*agentState
	pids   map[int]pidEntry // pid -> agent, as of the last pass and fork events since
	hooks  []func(time.Time, map[int]Sample)
	exits  map[int]string // pid -> "exit N" / "signal NAME"
	exitQ  []int          // ring of the pids in exits, oldest at exitHead
	exitHd int
	self   selfState
	gen    uint64 // passes begun
}

type pidEntry struct {
	agent int
	gen   uint64 // last pass (or fork) that placed it
}

// agentState is one agent's sampler state.
type agentState struct {
	mu     sync.Mutex // guards ring, latest, has
	ring   *Ring
	latest Sample
	has    bool

	// Touched only by passes (under Sampler.tickMu).
	prevTime  time.Time
	prevUsage uint64 // cgroup CPU usage, ns, at prevTime; 0: none
	prevOOM   uint64
	prev, cur map[int]procPrev    // per-process counters of the last pass, and this one's
	socks     map[uint64]struct{} // this pass's socket inodes, reused
}

// procPrev is what a pass remembers of one process for the next one's
// deltas. start tells a recycled pid from the process it replaced.
type procPrev struct {
	start  uint64
	cpu    float64
	rd, wr int64
}

type selfState struct {
	t     time.Time
	cpu   float64
	share float64
	rss   int64
}

// New returns a Sampler over the agents targets returns at each pass.
func New(cfg Config, targets func() []Target) *Sampler {
	s := &Sampler{
		proc:    cfg.Proc,
		history: cfg.History,
		bus:     cfg.Bus,
		targets: targets,
		tcp:     cfg.TCPBytes,
		reset:   make(chan struct{}, 1),
		agents:  map[int]*agentState{},
		pids:    map[int]pidEntry{},
		exits:   map[int]string{},
	}
	if s.history <= 0 {
		s.history = DefaultHistory
	}
	if s.targets == nil {
		s.targets = func() []Target { return nil }
	}
	if s.tcp == nil {
		s.tcp = sockdiag.TCPBytes
	}
	s.SetInterval(cfg.Interval)
	return s
}

// SetInterval changes the time between passes; Run picks it up at once.
// A non-positive d sets the default.
func (s *Sampler) SetInterval(d time.Duration) {
	if d <= 0 {
		d = DefaultInterval
	}
	if time.Duration(s.interval.Swap(int64(d))) == d {
		return
	}
	select {
	case s.reset <- struct{}{}:
	default:
	}
}

// Interval returns the time between passes.
func (s *Sampler) Interval() time.Duration { return time.Duration(s.interval.Load()) }

// Run makes a pass at once and then every Interval until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	d := s.Interval()
	t := time.NewTicker(d)
	defer t.Stop()
	s.Tick(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.Tick(now)
		case <-s.reset:
			if nd := s.Interval(); nd != d {
				d = nd
				t.Reset(d)
			}
		}
	}
}

// OnTick registers f to be called after every pass, outside the
// Sampler's locks, with the pass's time and the latest sample of every
// agent sampled in it. The map is new for each pass; f may keep it but
// must not change it. Hooks run in registration order on the pass's
// goroutine, so a slow hook delays the next pass.
func (s *Sampler) OnTick(f func(now time.Time, latest map[int]Sample)) {
	s.mu.Lock()
	s.hooks = append(s.hooks, f)
	s.mu.Unlock()
}

// Tick makes one pass over all targets at time now: one TCP socket dump
// (shared by all agents: its cost grows with the host's sockets, not with
// the agents), per target one Procs and one Stats call, and one proc
// sample per process. A failed dump leaves the network fields 0. A target
// whose Procs fails gets no sample in this pass. Agents no longer among
// the targets keep their history until Forget.
func (s *Sampler) Tick(now time.Time) {
	targets := s.targets()

	s.tickMu.Lock()
	s.mu.Lock()
	s.gen++
	gen := s.gen
	hooks := s.hooks
	s.mu.Unlock()
	var latest map[int]Sample
	if len(hooks) > 0 {
		latest = make(map[int]Sample, len(targets))
	}
	var tcp map[uint64]sockdiag.Bytes
	if len(targets) > 0 {
		var err error
		if tcp, err = s.tcp(); err != nil {
			tcp = nil // no network figures this pass, and no deltas from it next pass
		}
	}
	for _, t := range targets {
		if t.Group == nil {
			continue
		}
		smp, ok := s.sampleTarget(now, gen, t, tcp)
		if ok && latest != nil {
			latest[t.ID] = smp
		}
	}
	s.mu.Lock()
	// A pid not seen in this pass or the one before (nor placed by a fork
	// since) has left its agent.
	for pid, e := range s.pids {
		if e.gen+1 < gen {
			delete(s.pids, pid)
		}
	}
	s.mu.Unlock()
	s.prevTCP = tcp
	s.tickMu.Unlock()

	s.sampleSelf(time.Now())
	for _, f := range hooks {
		f(now, latest)
	}
}

// agent returns id's state, creating it.
func (s *Sampler) agent(id int) *agentState {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[id]
	if a == nil {
		a = &agentState{
			ring:  NewRing(s.history),
			prev:  map[int]procPrev{},
			cur:   map[int]procPrev{},
			socks: map[uint64]struct{}{},
		}
		s.agents[id] = a
	}
	return a
}

// sampleTarget samples one agent; tcp is this pass's socket dump (nil:
// none). It is called with tickMu held.
func (s *Sampler) sampleTarget(now time.Time, gen uint64, t Target, tcp map[uint64]sockdiag.Bytes) (Sample, bool) {
	pids, err := t.Group.Procs()
	if err != nil {
		// The group is gone or unreadable: no sample rather than a
		// sample of nothing. The agent engine decides what it means.
		return Sample{}, false
	}
	st, serr := t.Group.Stats()
	a := s.agent(t.ID)

	dt := 0.0
	if !a.prevTime.IsZero() {
		dt = now.Sub(a.prevTime).Seconds()
	}
	out := Sample{Time: now}
	var dCPU float64
	var dRd, dWr int64
	clear(a.cur)
	clear(a.socks)
	for _, pid := range pids {
		p, err := s.proc.Sample(pid)
		if err != nil {
			continue // gone since Procs, or unreadable
		}
		out.Procs++
		out.Threads += p.Threads
		out.CPUSeconds += p.CPUSeconds
		out.RSS += p.RSS
		out.MajFaults += p.MajFaults
		if p.ReadBytes >= 0 {
			out.IORead += p.ReadBytes
		}
		if p.WriteBytes >= 0 {
			out.IOWrite += p.WriteBytes
		}
		if p.FDs >= 0 {
			out.FDs += p.FDs
		}
		if p.Sockets >= 0 {
			out.Sockets += p.Sockets
		}
		for _, ino := range p.SocketInodes {
			a.socks[ino] = struct{}{} // a socket shared by forked processes counts once
		}
		cur := procPrev{start: p.StartTicks, cpu: p.CPUSeconds, rd: p.ReadBytes, wr: p.WriteBytes}
		a.cur[pid] = cur
		if dt <= 0 {
			continue
		}
		prev, seen := a.prev[pid]
		if !seen || prev.start != cur.start {
			// First sight of this process. If it started during the
			// interval, everything it did happened in the interval; if it
			// is older (it just joined the group), its past is not ours to
			// count, and its deltas start with the next pass.
			if p.Start.IsZero() || !p.Start.After(a.prevTime) {
				continue
			}
			prev = procPrev{start: cur.start, rd: 0, wr: 0}
		}
		dCPU += max(cur.cpu-prev.cpu, 0)
		if cur.rd >= 0 && prev.rd >= 0 {
			dRd += max(cur.rd-prev.rd, 0)
		}
		if cur.wr >= 0 && prev.wr >= 0 {
			dWr += max(cur.wr-prev.wr, 0)
		}
	}
	a.prev, a.cur = a.cur, a.prev
	dNet := s.netBytes(&out, a.socks, tcp)

	usage := uint64(0)
	if serr == nil {
		usage = st.CPUUsageNs
		out.Mem = int64(min(st.MemCurrent, 1<<63-1))
		out.Throttled = st.NrThrottled
		out.OOMKills = st.OOMKills
	}
	if usage > 0 {
		out.CPUSeconds = float64(usage) / 1e9
	}
	if dt > 0 {
		if usage > 0 && a.prevUsage > 0 {
			if usage > a.prevUsage {
				out.CPU = float64(usage-a.prevUsage) / 1e9 / dt
			}
		} else {
			out.CPU = dCPU / dt
		}
		out.IOReadRate = float64(dRd) / dt
		out.IOWriteRate = float64(dWr) / dt
		out.NetRate = float64(dNet) / dt
	}
	oomBefore, hadPrev := a.prevOOM, !a.prevTime.IsZero()
	a.prevTime = now
	a.prevUsage = usage
	a.prevOOM = out.OOMKills

	a.mu.Lock()
	a.ring.Add(out)
	a.latest = out
	a.has = true
	a.mu.Unlock()

	s.mu.Lock()
	if s.agents[t.ID] == a { // not forgotten meanwhile
		for _, pid := range pids {
			s.pids[pid] = pidEntry{agent: t.ID, gen: gen}
		}
	}
	s.mu.Unlock()

	if s.bus != nil && hadPrev && out.OOMKills > oomBefore {
		s.bus.Publish(bus.Event{Time: now, Source: "telemetry", Kind: "oom", Agent: t.ID,
			Fields: []bus.Field{bus.F("oom_kills", out.OOMKills), bus.F("new", out.OOMKills-oomBefore)}})
	}
	return out, true
}

// netBytes adds to out the cumulative bytes of the agent's sockets found
// in tcp (the rest are not TCP, or not in this network namespace) and
// returns the bytes they moved since the previous pass's dump.
//
// The delta is per socket, so a socket that closes takes its bytes out of
// NetSent/NetRecv but never makes the rate negative. A socket absent from
// the previous dump was opened since, so all its bytes are the interval's;
// with no previous dump (first pass, or it failed) only sockets seen
// before would count, and there are none, so the delta is 0.
func (s *Sampler) netBytes(out *Sample, socks map[uint64]struct{}, tcp map[uint64]sockdiag.Bytes) uint64 {
	if tcp == nil {
		return 0
	}
	var sent, recv, d uint64
	for ino := range socks {
		b, ok := tcp[ino]
		if !ok {
			continue
		}
		sent += b.Sent
		recv += b.Received
		if s.prevTCP == nil {
			continue
		}
		pb := s.prevTCP[ino] // zero when new since the last dump
		d += subSat(b.Sent, pb.Sent) + subSat(b.Received, pb.Received)
	}
	out.NetSent = int64(min(sent, 1<<63-1))
	out.NetRecv = int64(min(recv, 1<<63-1))
	return d
}

// subSat is a-b, or 0 when b > a (an inode reused by a new socket).
func subSat(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// Latest returns agent id's newest sample.
func (s *Sampler) Latest(id int) (Sample, bool) {
	a := s.lookup(id)
	if a == nil {
		return Sample{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.latest, a.has
}

// History returns agent id's kept samples, oldest first (nil when none).
// Kept samples have float32 precision (see Ring).
func (s *Sampler) History(id int) []Sample {
	a := s.lookup(id)
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ring.All()
}

// Since returns agent id's kept samples taken at or after t, oldest first.
func (s *Sampler) Since(id int, t time.Time) []Sample {
	a := s.lookup(id)
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ring.Since(t)
}

// Forget drops agent id's history and process table. A later pass that
// still finds id among the targets starts it afresh.
func (s *Sampler) Forget(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.agents, id)
	for pid, e := range s.pids {
		if e.agent == id {
			delete(s.pids, pid)
		}
	}
}

func (s *Sampler) lookup(id int) *agentState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agents[id]
}

// AgentOf returns the agent owning pid as of the last pass, or of a fork
// event since (0: none).
func (s *Sampler) AgentOf(pid int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pids[pid].agent
}

// selfWindow is the shortest span over which Self measures the daemon's
// CPU: utime and stime advance in 10 ms steps, so a shorter span is noise.
const selfWindow = 100 * time.Millisecond

// Self returns the daemon's own CPU share (cores used since the last call
// or pass, whichever is later, or since the daemon started on the first
// call) and its RSS in bytes, read from the proc source for os.Getpid().
// Calls closer together than 100 ms return the share measured before.
func (s *Sampler) Self() (cpuShare float64, rss int64) {
	return s.sampleSelf(time.Now())
}

func (s *Sampler) sampleSelf(now time.Time) (float64, int64) {
	if s.proc == nil {
		return 0, 0
	}
	p, err := s.proc.Sample(os.Getpid())
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		return s.self.share, s.self.rss
	}
	s.self.rss = p.RSS
	ref, refCPU := s.self.t, s.self.cpu
	if ref.IsZero() {
		ref, refCPU = p.Start, 0
	}
	if ref.IsZero() || now.Sub(ref) < selfWindow {
		if s.self.t.IsZero() {
			s.self.t, s.self.cpu = now, p.CPUSeconds
		}
		return s.self.share, s.self.rss
	}
	s.self.share = max(p.CPUSeconds-refCPU, 0) / now.Sub(ref).Seconds()
	s.self.t, s.self.cpu = now, p.CPUSeconds
	return s.self.share, s.self.rss
}
