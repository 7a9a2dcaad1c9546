package telemetry

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"aiosfs/engines/bus"
	"aiosfs/hal/cgroup"
	"aiosfs/hal/kfile"
	"aiosfs/hal/proc"
	"aiosfs/hal/sockdiag"

	"golang.org/x/sys/unix"
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
	// TCPSockets dumps every TCP socket (state, ports, peer, byte
	// counters) by inode, once per pass; nil: TCPBytes's counters when it
	// is set (no states nor peers), else sockdiag.Dump. A field so tests
	// can fake the host.
	TCPSockets func() (map[uint64]sockdiag.Socket, error)
	// TCPBytes is the older, counters-only form of TCPSockets, for tests
	// that fake bytes alone.
	TCPBytes func() (map[uint64]sockdiag.Bytes, error)
	// Tuning is the cost remedies; nil: DefaultTuning.
	Tuning *Tuning
}

// Tuning holds the sampler's cost remedies (docs/cost.md). Each can be
// switched off, at run time (SetTuning), so that a bench can measure what
// it saves in the same daemon run.
type Tuning struct {
	// Hold is adaptive sampling, cAdvisor's "dynamic housekeeping" made
	// exact: an agent whose cgroup CPU usage (one file, CPUUsage) has not
	// moved since its last sample ran nothing, so it cannot have forked,
	// exited, read, written or touched memory; its last sample is repeated
	// with the pass's time and rates 0 instead of reading its cgroup and
	// every process's files. History keeps its uniform step. At most Hold
	// passes in a row are held, so figures that change without the
	// agent's CPU (memory reclaimed by the kernel, bytes arriving on a
	// socket) are at most Hold passes old. 0: every agent fully sampled
	// every pass. An agent whose last sample showed CPU is sampled in
	// full without the test (it is most likely busy still). Needs the
	// target's Group to be a cgroup.CounterReader.
	Hold int
	// Counters reads a cgroup.CounterReader's Counters (4 files) rather
	// than Stats (containerd's Stat: 16 files and 4 goroutines on v1).
	Counters bool
	// RawProc samples processes with the ProcSource's Sample; off, with
	// its LibrarySample when it has one (proc.FS: the procfs library's
	// parsers through os.File, as before).
	RawProc bool
	// SockGate skips the sock_diag dump on a pass where no agent sampled
	// in full held a socket at its last sample (the kernel walks every
	// hash bucket whatever it finds: about 3 ms a dump on the profiled
	// VM). A socket opened meanwhile shows one pass late.
	SockGate bool
	// ProcEvery is how often an agent that ran is sampled with its
	// processes' own files (stat, status, io and the fd table: about 100
	// µs of CPU per busy process-second on the profiled VM, the larger
	// part of a busy agent's sample): at least every ProcEvery-th full
	// sample, and at once when its pid set changed since the last one
	// (as cgroup.procs, or ProcsEvery's events, show it), when a proc
	// connector event (exec, uid, gid, fork, exit) or Wake asked for
	// it, when the cgroup gives no CPU usage, or when the pass's socket
	// dump holds a socket not in the previous dump (a connection made
	// somewhere on the host: it may be this agent's). In between, the
	// sample takes what the
	// cgroup counts (CPU, cpu_seconds, mem, throttled, oom_kills, every
	// pass as before) and repeats the per-process figures of the last
	// process scan (rss, io_read, io_write, threads, procs, fds,
	// sockets, majflt: at most ProcEvery-1 passes old), with the I/O
	// rates of that scan, which are averaged over the span since the
	// scan before it; a pass in which the agent's CPU did not move has
	// rates 0, as a held sample, and the agent's next full sample reads
	// its processes (the scan's rates are of a span before it idled).
	// Network bytes and the socket view are read from every dump, for
	// the sockets the last scan found (a socket an agent without one
	// opens shows at its next scan). 0 or 1: every full sample reads
	// every process's files, as before.
	ProcEvery int
	// KeepOpen reads an agent's cgroup counter files (the hold test's
	// one file and Counters' 3 or 4) through descriptors kept open from
	// one pass to the next and re-read with a pread at offset 0
	// (cgroup.KeptCounters), instead of opening and closing each file
	// every pass: on the profiled VM 2.6-3.1 against 12-15 µs for the
	// hold test's file and 9 against 48-51 µs for Counters
	// (BenchmarkCounterReads in hal/cgroup). The descriptors of an agent
	// are closed at the first pass that no longer finds it among the
	// targets (it ended: its group is gone), at Forget, when the switch
	// is turned off and when Run returns; an idle agent keeps 1, a busy
	// one 4 on v1 (3 on v2), and the process at most cgroup.KeptMax in
	// all (past it, files are read the old way). Needs the target's
	// Group to be one of package cgroup's; others are read through their
	// CounterReader.
	KeepOpen bool
	// SelfLite measures the daemon's own CPU and RSS (Self, once a pass)
	// with getrusage and /proc/self/statm instead of a full process
	// sample of itself, which reads stat, status, io and readlinks every
	// descriptor of the daemon: hundreds with KeepOpen's files and the
	// FUSE and 9P clients' sockets. The same counters (utime+stime of
	// every thread, dead ones included; resident pages, the counter
	// VmRSS shows). Needs the ProcSource to be a proc.FS; the first call
	// takes a full sample for the process's start time.
	SelfLite bool
	// ProcsEvery is how often a full sample reads the agent's
	// cgroup.procs (and its sub-cgroups) while a proc connector is
	// watched (WatchProc running): at least every ProcsEvery-th full
	// sample, and at once when the connector reported a fork, exec, uid,
	// gid or exit of one of its processes (they wake the agent), when it
	// reported lost events since the agent's last read, on Wake (the
	// agent engine's merge and split, which move processes into or out
	// of a group without a fork), on its first sample, and when its
	// cgroup's counters cannot be read (to tell a gone group, which then
	// gets no sample, as before). In between, the pids are the last
	// read's, which the events above keep right: a child of one of the
	// agent's processes shows at the first pass after its fork event is
	// read (before, at the first pass after the fork), and a process
	// moved into the group by someone else than the daemon (root writing
	// cgroup.procs by hand), or made with CLONE_PARENT by one of the
	// agent's processes (its parent is then outside the agent), shows
	// within ProcsEvery passes. Without a connector, or with 0 or 1,
	// every full sample reads cgroup.procs, as before.
	ProcsEvery int
}

// DefaultTuning is every remedy on, holding an idle agent's sample for at
// most 10 passes and reading a busy agent's process files every 5th pass.
var DefaultTuning = Tuning{Hold: 10, Counters: true, RawProc: true, SockGate: true, ProcEvery: 5, KeepOpen: true, SelfLite: true, ProcsEvery: 5}

// LibrarySampler is a ProcSource that can also sample through the procfs
// library, the reading before Tuning.RawProc; proc.FS is one.
type LibrarySampler interface {
	LibrarySample(pid int) (proc.Sample, error)
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
	tcp     func() (map[uint64]sockdiag.Socket, error)

	interval atomic.Int64
	reset    chan struct{} // SetInterval and SetAgentInterval wake Run
	tuning   atomic.Pointer[Tuning]
	// fast is how many agents have an interval below the pass interval
	// (SetAgentInterval); Run ticks faster only while there are some.
	fast atomic.Int32

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

	// watching is how many WatchProc loops run; lost counts the proc
	// connector's lost-event reports (Tuning.ProcsEvery).
	watching atomic.Int32
	lost     atomic.Uint64

	// dumpSeen is the socket inodes of the last dump (under tickMu): a
	// pass whose dump has one that is not in it makes every agent sampled
	// in full read its processes' fd tables (Tuning.ProcEvery).
	dumpSeen map[uint64]struct{}
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
	// netPrev is the byte counters of the agent's sockets at its last
	// sample with a dump; nil: none (first sample, or no dump then).
	netPrev map[uint64]sockdiag.Bytes
	held    int  // passes held in a row since the last full sample
	busy    bool // its last full sample had CPU above 0
	sockets int  // sockets at the last full sample
	// The last process scan (Tuning.ProcEvery): when the per-process
	// counters in prev were last known to be current (the scan, or a
	// later pass in which the agent ran nothing), how many full samples
	// since took the scan's figures (procStale: the next one must not),
	// those figures and its I/O rates.
	procTime       time.Time
	procAge        int
	procDirty      bool // a pass since the scan took its figures while the agent ran
	procOut        Sample
	procRd, procWr float64
	stdin          int
	lports         []uint16 // this pass's listening ports, reused

	// net is the agent's socket view of its latest sample (Net), beside
	// latest and not in the ring; guarded by mu like latest.
	net NetView

	// pids is the pids of the last sample (full or held), its own copy;
	// guarded by mu like latest.
	pids []int

	every time.Duration // its own interval (SetAgentInterval); 0: the pass interval
	wake  atomic.Bool   // sample in full at the next pass (Wake, proc events)

	// kept is its cgroup's counter files kept open (Tuning.KeepOpen),
	// for the group keptFor; seen is the last pass that had it among
	// its targets. Touched under tickMu.
	kept    *cgroup.KeptCounters
	keptFor cgroup.Group
	seen    uint64
	// procsAge is how many full samples since cgroup.procs was last
	// read took the pids of that read; procsLost is s.lost then
	// (Tuning.ProcsEvery). Touched under tickMu.
	procsAge  int
	procsLost uint64
}

// counterReader is what a pass reads agent a's cgroup counters through:
// its kept files when Tuning.KeepOpen is on and the group is one of
// package cgroup's, else the group's own CounterReader; nil when it has
// none. Called with tickMu held.
func (a *agentState) counterReader(g Group, keep bool) cgroup.CounterReader {
	cr, ok := g.(cgroup.CounterReader)
	if !ok {
		return nil
	}
	cg, ok := g.(cgroup.Group)
	if !keep || !ok {
		a.closeKept()
		return cr
	}
	// keptFor holds only package cgroup's group pointers, so comparing
	// it with any other type is false, never a panic.
	if a.kept == nil || a.keptFor != cg {
		a.closeKept()
		if a.kept = cgroup.KeepCounters(cg); a.kept == nil {
			return cr
		}
		a.keptFor = cg
	}
	return a.kept
}

// closeKept closes a's kept counter files. Called with tickMu held.
func (a *agentState) closeKept() {
	if a.kept != nil {
		a.kept.Close()
		a.kept, a.keptFor = nil, nil
	}
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
		tcp:     cfg.TCPSockets,
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
	if s.tcp == nil && cfg.TCPBytes != nil {
		bytesOnly := cfg.TCPBytes
		s.tcp = func() (map[uint64]sockdiag.Socket, error) {
			b, err := bytesOnly()
			if err != nil {
				return nil, err
			}
			m := make(map[uint64]sockdiag.Socket, len(b))
			for ino, x := range b {
				m[ino] = sockdiag.Socket{Bytes: x}
			}
			return m, nil
		}
	}
	if s.tcp == nil {
		s.tcp = sockdiag.Dump
	}
	t := DefaultTuning
	if cfg.Tuning != nil {
		t = *cfg.Tuning
	}
	s.SetTuning(t)
	s.SetInterval(cfg.Interval)
	return s
}

// SetTuning switches the cost remedies (see Tuning); the next pass uses
// them.
func (s *Sampler) SetTuning(t Tuning) {
	t.Hold = max(t.Hold, 0)
	s.tuning.Store(&t)
}

// Tuning returns the remedies in force.
func (s *Sampler) Tuning() Tuning { return *s.tuning.Load() }

// SetInterval changes the time between passes; Run picks it up at once.
// A non-positive d sets the default.
func (s *Sampler) SetInterval(d time.Duration) {
	if d <= 0 {
		d = DefaultInterval
	}
	if time.Duration(s.interval.Swap(int64(d))) == d {
		return
	}
	s.mu.Lock()
	s.recountFast()
	s.mu.Unlock()
	select {
	case s.reset <- struct{}{}:
	default:
	}
}

// Interval returns the time between passes.
func (s *Sampler) Interval() time.Duration { return time.Duration(s.interval.Load()) }

// Run makes a pass at once and then every Interval until ctx ends. While
// some agent has an interval of its own below Interval
// (SetAgentInterval), it also wakes at the shortest such interval to
// sample those agents alone in between (FastTick).
func (s *Sampler) Run(ctx context.Context) {
	d, step := s.Interval(), s.step()
	t := time.NewTicker(step)
	defer t.Stop()
	defer s.closeKept()
	now := time.Now()
	s.Tick(now)
	next := now.Add(d)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			// Within half a step of the pass's due time counts as due, so
			// that ticker jitter does not turn a pass into a fast tick.
			if !now.Before(next.Add(-step / 2)) {
				s.Tick(now)
				next = next.Add(d)
				if now.Sub(next) > d { // fell behind (a long pass): no burst
					next = now.Add(d)
				}
			} else {
				s.FastTick(now)
			}
		case <-s.reset:
			if nd, ns := s.Interval(), s.step(); nd != d || ns != step {
				d, step = nd, ns
				t.Reset(step)
				next = time.Now().Add(d)
			}
		}
	}
}

// step is Run's ticker period: the pass interval, or the shortest agent
// interval below it.
func (s *Sampler) step() time.Duration {
	d := s.Interval()
	if s.fast.Load() == 0 {
		return d
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.agents {
		if a.every > 0 && a.every < d {
			d = a.every
		}
	}
	return d
}

// SetAgentInterval gives agent id an interval of its own: d below the pass
// interval samples it more often (an agent an operator is watching
// closely; its history then spans History samples of d), d above it less
// often; 0 returns it to the pass interval. The agent engine's `interval`
// verb on agents/N/ctl is meant to call this. Agents with their own
// interval are never held (Tuning.Hold).
func (s *Sampler) SetAgentInterval(id int, d time.Duration) {
	d = max(d, 0)
	a := s.agent(id)
	s.mu.Lock()
	a.every = d
	s.recountFast()
	s.mu.Unlock()
	select {
	case s.reset <- struct{}{}:
	default:
	}
}

// recountFast counts the agents faster than the pass interval; called
// with mu held.
func (s *Sampler) recountFast() {
	iv := s.Interval()
	n := int32(0)
	for _, a := range s.agents {
		if a.every > 0 && a.every < iv {
			n++
		}
	}
	s.fast.Store(n)
}

// AgentInterval returns agent id's own interval (0: the pass interval).
func (s *Sampler) AgentInterval(id int) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.agents[id]; a != nil {
		return a.every
	}
	return 0
}

// Wake makes the next pass sample agent id in full whatever Tuning.Hold
// says: for a change the sampler cannot see in the agent's CPU usage, such
// as a process moved into its cgroup from outside (adopt). Proc connector
// events of an agent's processes wake it by themselves.
func (s *Sampler) Wake(id int) {
	if a := s.lookup(id); a != nil {
		a.wake.Store(true)
	}
}

// Procs returns the pids of agent id as of its last sample (sorted, a new
// slice) and the sample's time; ok is false when it has none. A held
// sample (Tuning.Hold) repeats the pids of the last full one, which are
// still right: a fork or an exit costs the agent CPU, which ends the hold.
// A full sample's pids are its cgroup.procs, or with Tuning.ProcsEvery
// the last read's while the proc connector reports no change.
// It is meant for engines that would otherwise read cgroup.procs of every
// agent again on the same pass (the reaper, the memory and GPU engines).
func (s *Sampler) Procs(id int) (pids []int, at time.Time, ok bool) {
	a := s.lookup(id)
	if a == nil {
		return nil, time.Time{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.has {
		return nil, time.Time{}, false
	}
	return append([]int(nil), a.pids...), a.latest.Time, true
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

// Tick makes one pass over all targets at time now: per target, either a
// held sample (see Tuning.Hold: one cgroup file) or a full one (one Procs,
// or none in between Tuning.ProcsEvery's reads, one Counters or Stats call,
// and one proc sample per process, or none in between Tuning.ProcEvery's
// scans), and
// one TCP socket dump shared by all agents (its cost grows with the
// host's sockets, not with the agents). A failed dump leaves the network
// fields 0. A target whose Procs fails gets no sample in this pass. An
// agent with an interval of its own above the pass interval is sampled
// only when that much time has passed. Agents no longer among the
// targets keep their history until Forget.
func (s *Sampler) Tick(now time.Time) {
	s.pass(now, false)
}

// FastTick samples only the agents whose own interval is below the pass
// interval and is due; hooks do not run. Run calls it between passes.
func (s *Sampler) FastTick(now time.Time) {
	if s.fast.Load() > 0 {
		s.pass(now, true)
	}
}

// pending is one target of a pass that is to be sampled in full.
type pending struct {
	t Target
	a *agentState
}

func (s *Sampler) pass(now time.Time, fast bool) {
	targets := s.targets()
	tun := s.Tuning()

	s.tickMu.Lock()
	s.mu.Lock()
	s.gen++
	gen := s.gen
	hooks := s.hooks
	iv := time.Duration(s.interval.Load())
	s.mu.Unlock()
	var latest map[int]Sample
	if len(hooks) > 0 && !fast {
		latest = make(map[int]Sample, len(targets))
	}
	// Decide for each target: skip (not due), hold, or sample in full.
	full := make([]pending, 0, len(targets))
	needDump := !tun.SockGate
	for _, t := range targets {
		if t.Group == nil {
			continue
		}
		a := s.agent(t.ID)
		a.seen = gen
		s.mu.Lock()
		every := a.every
		s.mu.Unlock()
		if fast && !(every > 0 && every < iv) {
			continue
		}
		if every > 0 && !a.prevTime.IsZero() && now.Sub(a.prevTime) < every-min(every, iv)/2 {
			continue // not due: no sample, and not in the hooks' map
		}
		if every == 0 && tun.Hold > 0 && s.hold(now, gen, t, a, tun) {
			if latest != nil {
				l, _ := s.Latest(t.ID)
				latest[t.ID] = l
			}
			continue
		}
		full = append(full, pending{t, a})
		if a.prevTime.IsZero() || a.sockets > 0 {
			needDump = true
		}
	}
	var tcp map[uint64]sockdiag.Socket
	newSock := false
	if len(full) > 0 && needDump {
		var err error
		if tcp, err = s.tcp(); err != nil {
			tcp = nil // no network figures this pass, and no deltas from it next pass
		}
		if tcp != nil && tun.ProcEvery > 1 {
			newSock = s.newSockets(tcp)
		}
	}
	for _, p := range full {
		smp, ok := s.sampleTarget(now, gen, p.t, p.a, tcp, newSock, tun)
		if ok && latest != nil {
			latest[p.t.ID] = smp
		}
	}
	s.mu.Lock()
	// A pid not seen in this pass or the one before (nor placed by a fork
	// since) has left its agent. Fast ticks see only some agents.
	if !fast {
		for pid, e := range s.pids {
			if e.gen+1 < gen {
				delete(s.pids, pid)
			}
		}
		// An agent no longer among the targets has ended (its group is
		// removed or about to be): its kept files go.
		for _, a := range s.agents {
			if a.kept != nil && (a.seen != gen || !tun.KeepOpen) {
				a.closeKept()
			}
		}
	}
	s.mu.Unlock()
	s.tickMu.Unlock()

	if fast {
		return
	}
	s.sampleSelf(time.Now())
	for _, f := range hooks {
		f(now, latest)
	}
}

// hold gives agent a a held sample at now if its cgroup's CPU usage has
// not moved since its last sample, and reports whether it did. Called
// with tickMu held.
func (s *Sampler) hold(now time.Time, gen uint64, t Target, a *agentState, tun Tuning) bool {
	if a.prevTime.IsZero() || a.prevUsage == 0 || a.held >= tun.Hold || a.wake.Load() || a.busy {
		// A busy agent (CPU in its last sample) will most likely be busy
		// again: the test would only add a read to its full sample.
		return false
	}
	cr := a.counterReader(t.Group, tun.KeepOpen)
	if cr == nil {
		return false
	}
	u, err := cr.CPUUsage()
	if err != nil || u != a.prevUsage {
		return false
	}
	a.mu.Lock()
	if !a.has {
		a.mu.Unlock()
		return false
	}
	out := a.latest
	out.Time = now
	// Nothing ran, so nothing was used or moved; network bytes that
	// arrived meanwhile show in the cumulative figures at the next full
	// sample.
	out.CPU, out.IOReadRate, out.IOWriteRate, out.NetRate = 0, 0, 0, 0
	a.ring.Add(out)
	a.latest = out
	// The same sockets in the same states (a connection accepted or
	// made costs CPU, which ends the hold); nothing moved.
	a.net.Time = now
	a.net.SentRate, a.net.RecvRate = 0, 0
	pids := a.pids
	a.mu.Unlock()
	// The usage was prevUsage at now as well: deltas of the next full
	// sample start here.
	a.prevTime = now
	if !a.procDirty {
		a.procTime = now
	}
	a.procAge = procStale
	a.held++
	s.mu.Lock()
	if s.agents[t.ID] == a {
		for _, pid := range pids {
			s.pids[pid] = pidEntry{agent: t.ID, gen: gen}
		}
	}
	s.mu.Unlock()
	return true
}

// procStale is agentState.procAge after a pass in which the agent ran
// nothing (held, or sampled with no CPU): the last scan's rates are of a
// span before it idled, so its next full sample reads the processes.
const procStale = 1 << 30

// newSockets reports whether tcp holds a socket inode the previous dump
// did not, and keeps tcp's inodes for the next call. Called with tickMu
// held.
func (s *Sampler) newSockets(tcp map[uint64]sockdiag.Socket) bool {
	seen, fresh := s.dumpSeen, false
	if seen == nil {
		seen, fresh = make(map[uint64]struct{}, len(tcp)), true
	}
	for ino := range tcp {
		if _, ok := seen[ino]; !ok {
			fresh = true
			break
		}
	}
	if fresh || len(seen) != len(tcp) {
		clear(seen)
		for ino := range tcp {
			seen[ino] = struct{}{}
		}
	}
	s.dumpSeen = seen
	return fresh
}

// sameSet reports whether a and b hold the same pids (cgroup.procs lists
// them in no promised order; both are short).
func sameSet(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !slices.Contains(b, a[i]) {
			return false
		}
	}
	return true
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

// sampleTarget samples one agent in full; tcp is this pass's socket dump
// (nil: none), newSock whether it holds a socket the previous dump did
// not. It is called with tickMu held.
func (s *Sampler) sampleTarget(now time.Time, gen uint64, t Target, a *agentState, tcp map[uint64]sockdiag.Socket, newSock bool, tun Tuning) (Sample, bool) {
	woke := a.wake.Swap(false)
	lost := s.lost.Load()
	// Tuning.ProcsEvery: the last read's pids while the connector's
	// events say nothing changed.
	reuse := tun.ProcsEvery > 1 && !woke && s.watching.Load() > 0 && !a.prevTime.IsZero() &&
		a.procsAge+1 < tun.ProcsEvery && a.procsLost == lost
	readProcs := func() ([]int, bool) {
		pids, err := t.Group.Procs()
		if err != nil {
			// The group is gone or unreadable: no sample rather than a
			// sample of nothing. The agent engine decides what it
			// means. A wake is kept for the next pass.
			if woke {
				a.wake.Store(true)
			}
			return nil, false
		}
		a.procsAge, a.procsLost = 0, lost
		return pids, true
	}
	var pids []int
	if !reuse {
		var ok bool
		if pids, ok = readProcs(); !ok {
			return Sample{}, false
		}
	}
	a.held = 0
	var st cgroup.Counters
	var serr error
	if cr := a.counterReader(t.Group, tun.KeepOpen); cr != nil && tun.Counters {
		st, serr = cr.Counters()
	} else {
		var full cgroup.Stats
		full, serr = t.Group.Stats()
		st = cgroup.Counters{CPUUsageNs: full.CPUUsageNs, NrThrottled: full.NrThrottled, MemCurrent: full.MemCurrent, OOMKills: full.OOMKills}
	}
	if reuse {
		if serr != nil {
			// Gone, perhaps: cgroup.procs says.
			var ok bool
			if pids, ok = readProcs(); !ok {
				return Sample{}, false
			}
		} else {
			pids = a.pids // refilled from itself below: unchanged
			a.procsAge++
		}
	}
	usage := uint64(0)
	if serr == nil {
		usage = st.CPUUsageNs
	}

	dt := 0.0
	if !a.prevTime.IsZero() {
		dt = now.Sub(a.prevTime).Seconds()
	}
	// Tuning.ProcEvery: the processes' files only when something may
	// have changed that the cgroup's counters do not show.
	scan := tun.ProcEvery <= 1 || woke || newSock || a.procTime.IsZero() ||
		a.procAge+1 >= tun.ProcEvery || usage == 0 || a.prevUsage == 0 ||
		!sameSet(pids, a.pids)
	var out Sample
	var dCPU float64
	var dRd, dWr int64
	var stdin int
	if scan {
		out, dCPU, dRd, dWr, stdin = s.scanProcs(now, pids, a, tun)
	} else {
		// The last scan's per-process figures; the rest is this pass's.
		p := &a.procOut
		out = Sample{RSS: p.RSS, IORead: p.IORead, IOWrite: p.IOWrite, Threads: p.Threads,
			Procs: p.Procs, FDs: p.FDs, Sockets: p.Sockets, MajFaults: p.MajFaults}
		stdin = a.stdin
		a.procAge++
	}
	out.Time = now
	dSent, dRecv := netBytes(&out, a, tcp)
	dNet := dSent + dRecv
	a.sockets = out.Sockets
	nv := a.netView(tcp)
	nv.Time, nv.StdinSockets = now, stdin

	if serr == nil {
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
		} else if pdt := now.Sub(a.procTime).Seconds(); scan && !a.procTime.IsZero() && pdt > 0 {
			out.CPU = dCPU / pdt
		}
		out.NetRate = float64(dNet) / dt
		nv.SentRate, nv.RecvRate = float64(dSent)/dt, float64(dRecv)/dt
	}
	switch {
	case scan:
		// Rates over the span since the last scan (one pass, unless
		// passes in between took the scan's figures).
		if pdt := now.Sub(a.procTime).Seconds(); !a.procTime.IsZero() && pdt > 0 {
			a.procRd, a.procWr = float64(dRd)/pdt, float64(dWr)/pdt
		} else {
			a.procRd, a.procWr = 0, 0
		}
		out.IOReadRate, out.IOWriteRate = a.procRd, a.procWr
		a.procOut = out
		a.procTime, a.procAge, a.procDirty = now, 0, false
		a.stdin = stdin
	case usage == a.prevUsage:
		// It ran nothing since the last pass: nothing was read or
		// written, and unless it ran since the scan, the scan's
		// counters are still current.
		if !a.procDirty {
			a.procTime = now
		}
		a.procAge = procStale
	default:
		out.IOReadRate, out.IOWriteRate = a.procRd, a.procWr
		a.procDirty = true
	}
	oomBefore, hadPrev := a.prevOOM, !a.prevTime.IsZero()
	a.prevTime = now
	a.prevUsage = usage
	a.prevOOM = out.OOMKills
	a.busy = out.CPU > 0

	a.mu.Lock()
	a.ring.Add(out)
	a.latest = out
	a.has = true
	a.net = nv
	a.pids = append(a.pids[:0], pids...)
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

// scanProcs reads every process of the agent (pids) and returns their
// sums, the CPU seconds they used and the storage bytes they read and
// wrote since the last scan (a.procTime), and how many read stdin from a
// socket; it refills a.socks and a.prev. Called with tickMu held.
func (s *Sampler) scanProcs(now time.Time, pids []int, a *agentState, tun Tuning) (out Sample, dCPU float64, dRd, dWr int64, stdin int) {
	sample := s.proc.Sample
	if ls, ok := s.proc.(LibrarySampler); ok && !tun.RawProc {
		sample = ls.LibrarySample
	}
	since := a.procTime
	clear(a.cur)
	clear(a.socks)
	for _, pid := range pids {
		p, err := sample(pid)
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
		if p.StdinSocket {
			stdin++
		}
		cur := procPrev{start: p.StartTicks, cpu: p.CPUSeconds, rd: p.ReadBytes, wr: p.WriteBytes}
		a.cur[pid] = cur
		if since.IsZero() || !now.After(since) {
			continue
		}
		prev, seen := a.prev[pid]
		if !seen || prev.start != cur.start {
			// First sight of this process. If it started since the last
			// scan, everything it did happened in the span; if it is
			// older (it just joined the group), its past is not ours to
			// count, and its deltas start with the next scan.
			if p.Start.IsZero() || !p.Start.After(since) {
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
	return out, dCPU, dRd, dWr, stdin
}

// netBytes adds to out the cumulative bytes of the agent's sockets found
// in tcp (the rest are not TCP, or not in this network namespace) and
// returns the bytes they sent and received since the agent's previous
// sample with a dump, whose counters it keeps (a.netPrev).
//
// The delta is per socket, so a socket that closes takes its bytes out of
// NetSent/NetRecv but never makes the rate negative. A socket the agent
// did not hold at its previous sample was opened since, so all its bytes
// are the interval's; with no previous dump (first sample, or the dump
// failed or was skipped) the delta is 0.
func netBytes(out *Sample, a *agentState, tcp map[uint64]sockdiag.Socket) (dSent, dRecv uint64) {
	if tcp == nil {
		a.netPrev = nil
		return 0, 0
	}
	prev := a.netPrev
	var next map[uint64]sockdiag.Bytes
	var sent, recv uint64
	for ino := range a.socks {
		b, ok := tcp[ino]
		if !ok {
			continue
		}
		sent += b.Sent
		recv += b.Received
		if next == nil {
			next = make(map[uint64]sockdiag.Bytes, len(a.socks))
		}
		next[ino] = b.Bytes
		if prev == nil {
			continue
		}
		pb := prev[ino] // zero when new since the last sample
		dSent += subSat(b.Sent, pb.Sent)
		dRecv += subSat(b.Received, pb.Received)
	}
	out.NetSent = int64(min(sent, 1<<63-1))
	out.NetRecv = int64(min(recv, 1<<63-1))
	if next == nil {
		next = map[uint64]sockdiag.Bytes{} // a dump, with none of ours in it
	}
	a.netPrev = next
	return dSent, dRecv
}

// MaxRemotes bounds NetView.Remotes: an agent with more distinct peers
// has more than a detector needs to see it is talking to many. It is
// above the threat engine's endpoint-sweep threshold (100 new peers in a
// 1 s window), so that a sweep is seen at the default 1 s interval; the
// list costs a linear duplicate check per connection, 8 KiB at most, and
// only agents with that many connections pay it.
const MaxRemotes = 256

// NetView is one agent's TCP sockets as of its latest sample, from the
// pass's one sock_diag dump (the one NetSent and NetRecv come from),
// matched by the inodes its processes hold. It is kept beside the latest
// sample only, never in the history ring. A held sample (Tuning.Hold)
// repeats the counts and peers of the last full one with rates 0.
type NetView struct {
	Time time.Time
	// Dumped is true when the sample had a dump. Without one (no agent
	// sampled in the pass held a socket at its last sample, or the dump
	// failed) the counts and peers are 0 and nil.
	Dumped bool
	// Listen and Established count the agent's TCP sockets in LISTEN, and
	// in ESTABLISHED or SYN_SENT.
	Listen, Established int
	// Remotes are the distinct peers of the connected sockets, at most
	// MaxRemotes: address and port, or the address alone (port 0) for a
	// connection accepted on one of the agent's own listening ports (a
	// server's clients' ephemeral ports are not new endpoints).
	Remotes []netip.AddrPort
	// SentRate and RecvRate split Sample.NetRate by direction, bytes/s
	// (per-socket deltas clamped at 0, as NetRate).
	SentRate, RecvRate float64
	// StdinSockets counts the agent's processes whose fd 0 is a socket.
	StdinSockets int
}

// netView counts the agent's sockets by state and lists its peers, from
// tcp (nil: no dump). Called with tickMu held; the Remotes slice is new
// when there are any.
func (a *agentState) netView(tcp map[uint64]sockdiag.Socket) NetView {
	v := NetView{Dumped: tcp != nil}
	if tcp == nil {
		return v
	}
	a.lports = a.lports[:0]
	for ino := range a.socks {
		if k, ok := tcp[ino]; ok && k.State == sockdiag.StateListen {
			v.Listen++
			a.lports = append(a.lports, k.LocalPort)
		}
	}
	for ino := range a.socks {
		k, ok := tcp[ino]
		if !ok || !k.Connected() {
			continue
		}
		v.Established++
		r := k.Remote
		if !r.IsValid() || len(v.Remotes) >= MaxRemotes {
			continue
		}
		for _, p := range a.lports {
			if p == k.LocalPort {
				r = netip.AddrPortFrom(r.Addr(), 0) // accepted: by address
				break
			}
		}
		dup := false
		for _, x := range v.Remotes {
			if x == r {
				dup = true
				break
			}
		}
		if !dup {
			if v.Remotes == nil {
				v.Remotes = make([]netip.AddrPort, 0, 4)
			}
			v.Remotes = append(v.Remotes, r)
		}
	}
	return v
}

// Net returns agent id's socket view as of its latest sample (see
// NetView); ok is false when it has no sample. The Remotes slice is
// shared (each full sample makes a new one): read it, do not change it.
func (s *Sampler) Net(id int) (NetView, bool) {
	a := s.lookup(id)
	if a == nil {
		return NetView{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.has {
		return NetView{}, false
	}
	return a.net, true
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
	s.tickMu.Lock() // a pass may be reading its kept files
	defer s.tickMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.agents[id]; a != nil {
		a.closeKept()
	}
	delete(s.agents, id)
	s.recountFast()
	for pid, e := range s.pids {
		if e.agent == id {
			delete(s.pids, pid)
		}
	}
}

// FillHistory is for benches that must measure the daemon holding a full
// history without waiting for it (an hour at 1 s): it puts n samples in
// front of every agent's history, one per pass interval before its oldest,
// each a copy of its latest sample with CPU figures that differ from one
// sample to the next (as a busy agent's would), so nothing about them is
// cheaper to keep than real ones. The rings keep at most History samples.
func (s *Sampler) FillHistory(n int) {
	iv := s.Interval()
	s.mu.Lock()
	agents := make([]*agentState, 0, len(s.agents))
	for _, a := range s.agents {
		agents = append(agents, a)
	}
	s.mu.Unlock()
	for _, a := range agents {
		a.mu.Lock()
		if a.has {
			old := a.ring.All()
			r := NewRing(s.history)
			first := a.latest.Time
			if len(old) > 0 {
				first = old[0].Time
			}
			for i := n; i > 0; i-- {
				f := a.latest
				f.Time = first.Add(-time.Duration(i) * iv)
				f.CPU = float64(i%97) / 97
				f.CPUSeconds = a.latest.CPUSeconds - float64(i)*0.01
				f.RSS += int64(i % 13 * 4096)
				r.Add(f)
			}
			for _, o := range old {
				r.Add(o)
			}
			a.ring = r
		}
		a.mu.Unlock()
	}
}

// closeKept closes every agent's kept counter files (Run's end).
func (s *Sampler) closeKept() {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.agents {
		a.closeKept()
	}
}

// KeptFiles is how many counter files the sampler keeps open now
// (Tuning.KeepOpen), for tests and the bench.
func (s *Sampler) KeptFiles() int {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.agents {
		if a.kept != nil {
			n += a.kept.Open()
		}
	}
	return n
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

// selfLite is Tuning.SelfLite's reading of the daemon's own CPU seconds
// and RSS; the other fields are zero.
func selfLite() (proc.Sample, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return proc.Sample{}, err
	}
	p := proc.Sample{CPUSeconds: float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9}
	// statm: size resident shared text lib data dt, in pages.
	err := kfile.Read("/proc/self/statm", func(b []byte) error {
		_, rest, _ := bytes.Cut(b, []byte(" "))
		res, _, _ := bytes.Cut(rest, []byte(" "))
		n, ok := kfile.Uint(res)
		if !ok {
			return fmt.Errorf("/proc/self/statm: bad line %q", b)
		}
		p.RSS = int64(n) * int64(os.Getpagesize())
		return nil
	})
	return p, err
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
	var p proc.Sample
	var err error
	s.mu.Lock()
	started := !s.self.t.IsZero()
	s.mu.Unlock()
	if _, real := s.proc.(proc.FS); real && started && s.Tuning().SelfLite {
		p, err = selfLite()
	} else {
		p, err = s.proc.Sample(os.Getpid())
	}
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
