// Package syscalls is the threat engine's system-call signal (issue 13):
// each agent's system calls, captured by hal/syscap, are scored against a
// profile learned from that agent's own calls.
//
// # Profile
//
// An agent's profile is a Witten–Bell interpolated Markov model of order
// 4 (engines/ml InterpMarkov, the model with the best ROC AUC on ADFA-LD,
// docs/syscall.md), learned from scratch on the agent's own x86_64 calls
// (ADFA-LD is i386: nothing learned offline carries over). A sequence is
// one thread's calls, so the interleaving of an agent's threads and
// processes does not enter the model.
//
// Phases, per agent:
//
//  1. learning: the first LearnCalls calls captured after the agent is
//     tracked, or after `threat/ctl learn N`, are kept (per thread) and
//     the model trained on them;
//
//  2. calibrating: the next CalibCalls calls are scored (negative log
//     likelihood per call, nats) in chunks of Chunk calls; the highest
//     chunk mean is the agent's base, the NLL it reaches when normal;
//     then these calls are learned too (the base, measured before, errs
//     high: on the quiet side);
//
//  3. scoring: on each window the engine closes, the chunks of calls
//     completed since the last window are scored (a part chunk carries
//     over to the next window) and the highest chunk mean m maps to
//
//     score = 1 − exp(−max(0, m − base) / Scale)
//
//     (Scale 2 nats: a chunk whose calls are on average e² ≈ 7× less
//     likely than the worst normal chunk scores 0.63). Evidence: the three
//     3-grams of the window with the lowest count in the learned calls
//     (0 first), by name, "openat>read>close×12".
//
// Until an agent's profile is calibrated the signal has no verdict for
// it (Score's ok is false). Dropped events (syscap's rate limit or a full
// ring) leave gaps in a thread's sequence; they are counted in the status
// line, not patched.
package syscalls

import (
	"crypto/ed25519"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"aiosfs/engines/agent/view"
	"aiosfs/engines/ml"
	"aiosfs/engines/threat"
	"aiosfs/hal/syscap"
)

// Config sets the signal's constants (zero: the defaults, chosen a
// priori, not tuned on data).
type Config struct {
	LearnCalls int     // calls learned per profile (default 20000)
	CalibCalls int     // calls that set the base (default 5000)
	Chunk      int     // calls per scored chunk (default 100)
	Scale      float64 // nats of excess NLL for score 1−1/e (default 2)
	Order      int     // Markov order (default 4)
	// Capture configures the capture New starts (its Handler is the
	// signal's).
	Capture syscap.Config
	// Logf gets the lines about saved profiles (saved, loaded, refused);
	// nil: none.
	Logf func(format string, args ...any)
}

func (c *Config) defaults() {
	if c.LearnCalls <= 0 {
		c.LearnCalls = 20000
	}
	if c.CalibCalls <= 0 {
		c.CalibCalls = 5000
	}
	if c.Chunk <= 0 {
		c.Chunk = 100
	}
	if c.Scale <= 0 {
		c.Scale = 2
	}
	if c.Order <= 0 {
		c.Order = 4
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// Limits on what one agent keeps.
const (
	maxThreads   = 4096 // threads followed per agent; the idlest go first
	threadIdle   = time.Minute
	maxWindowLog = 4096 // calls kept per window for the evidence
	evidenceTop  = 3
	evidenceGram = 3
)

type phase uint8

const (
	learning phase = iota
	calibrating
	scoring
)

func (p phase) String() string {
	return [...]string{"learning", "calibrating", "scoring"}[p]
}

// thread is one thread's state: its calls while learning, its stream
// (context) while scoring, and the calls of the current window.
type thread struct {
	trace  []int
	stream *ml.InterpStream
	win    []int
	seen   time.Time
}

// profile is one agent's.
type profile struct {
	phase      phase
	calls      int // calls in this phase
	learned    int // calls learned
	calibrated int // calls that set the base
	model      *ml.InterpMarkov
	grams      *ml.NgramCounts
	threads    map[uint32]*thread
	traces     [][]int // learning: finished or evicted threads' traces
	// kept is every trace the model was trained on (learning, then
	// calibration), held until the profile is saved (persist.go)
	kept   [][]int
	loaded bool // read back from a saved profile

	chunkSum   float64
	chunkN     int
	calibMax   float64
	base       float64
	windowMax  float64 // highest chunk mean since the last Score
	windowHas  bool
	windowLogN int
}

// Signal is the system-call signal: a threat.Signal.
type Signal struct {
	cfg Config
	now func() time.Time

	mu       sync.Mutex
	cap      *syscap.Capture
	why      string // why capture is off ("" when on)
	agents   map[int]*profile
	byCgroup map[uint64]int // tracked cgroup id -> agent
	dirs     map[int]string // agent -> tracked cgroup2 dir
	ids      map[int]uint64 // agent -> its tracked cgroup id
	unknown  uint64         // events of cgroups no longer mapped
	handled  uint64         // events handed to profiles
	trackErr map[int]string // agent -> last Track error

	// saved profiles (persist.go); store is "" until Persist
	store      string
	priv       ed25519.PrivateKey
	loaded     int // profiles loaded at start
	refused    int // profiles refused at start
	refusedWhy string
	saved      int // profiles saved since start
	saveErr    int // saves that failed
	pruned     bool
}

var _ threat.Signal = (*Signal)(nil)

// New starts the capture and the signal. When the capture cannot run
// (not root, no BPF) the signal still works, with nothing to score, and
// says why in its status line; err is that reason, for the log.
func New(cfg Config) (*Signal, error) {
	cfg.defaults()
	s := newSignal(cfg)
	if err := syscap.Supported(); err != nil {
		s.why = err.Error()
		return s, err
	}
	cc := cfg.Capture
	cc.Handler = s.Handle
	c, err := syscap.New(cc)
	if err != nil {
		s.why = err.Error()
		return s, err
	}
	s.cap = c
	return s, nil
}

// NewOffline is a signal with no capture of its own, fed through Handle
// and Map (tests, the bench); its status says why.
func NewOffline(cfg Config) *Signal { return Disabled(cfg, "no capture (offline)") }

// Disabled is a signal whose capture is off for the reason why (the
// daemon's -syscall-learn -1); it never has a verdict.
func Disabled(cfg Config, why string) *Signal {
	cfg.defaults()
	s := newSignal(cfg)
	s.why = why
	return s
}

func newSignal(cfg Config) *Signal {
	return &Signal{cfg: cfg, now: time.Now, agents: map[int]*profile{}, byCgroup: map[uint64]int{},
		dirs: map[int]string{}, ids: map[int]uint64{}, trackErr: map[int]string{}}
}

// Name is the signal's name in assessments and threat/status.
func (s *Signal) Name() string { return "syscall" }

// Close stops the capture.
func (s *Signal) Close() error {
	s.mu.Lock()
	c := s.cap
	s.cap = nil
	if s.why == "" {
		s.why = "closed"
	}
	s.mu.Unlock()
	if c != nil {
		return c.Close()
	}
	return nil
}

// Map ties a cgroup id to an agent without a capture (tests; Track does
// it for real).
func (s *Signal) Map(agent int, cgroup uint64) {
	s.mu.Lock()
	s.byCgroup[cgroup] = agent
	s.mu.Unlock()
}

// Track starts capturing agent's cgroup2 directory dir (a no-op when it
// is tracked already; a directory made again, with a new id, is tracked
// afresh).
func (s *Signal) Track(agent int, dir string) error {
	s.mu.Lock()
	c := s.cap
	old, had := s.dirs[agent]
	oldID := s.ids[agent]
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	if had && old == dir {
		if id, err := syscap.CgroupID(dir); err == nil && id == oldID {
			return nil
		}
	}
	id, err := c.Track(dir)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.trackErr[agent] = err.Error()
		return err
	}
	delete(s.trackErr, agent)
	if had && old != dir {
		_ = c.Untrack(old)
	}
	if had && oldID != id {
		delete(s.byCgroup, oldID)
	}
	s.dirs[agent] = dir
	s.ids[agent] = id
	s.byCgroup[id] = agent
	return nil
}

// Untrack stops capturing agent's cgroup (its profile stays until Forget).
func (s *Signal) Untrack(agent int) {
	s.mu.Lock()
	dir, ok := s.dirs[agent]
	delete(s.dirs, agent)
	delete(s.ids, agent)
	c := s.cap
	s.mu.Unlock()
	if ok && c != nil {
		_ = c.Untrack(dir)
	}
}

// SyncRegistry tracks the cgroup2 directory of every agent of reg that
// is alive (running or frozen) and untracks the others: the daemon calls
// it on every sampler pass.
func (s *Signal) SyncRegistry(reg view.Registry) {
	if reg == nil {
		return
	}
	ids := reg.IDs()
	known := make(map[int]bool, len(ids))
	for _, id := range ids {
		known[id] = true
	}
	s.prune(known)
	s.mu.Lock()
	off := s.cap == nil
	s.mu.Unlock()
	if off {
		return
	}
	alive := map[int]string{}
	for _, id := range ids {
		info, err := reg.Info(id)
		if err != nil || !info.Alive {
			continue
		}
		cg, err := reg.Cgroups(id)
		if err != nil || cg["unified"] == "" {
			continue
		}
		alive[id] = cg["unified"]
	}
	s.Sync(alive)
}

// Sync tracks every agent of alive (agent -> cgroup2 directory) and
// untracks the rest.
func (s *Signal) Sync(alive map[int]string) {
	s.mu.Lock()
	var gone []int
	for a := range s.dirs {
		if _, ok := alive[a]; !ok {
			gone = append(gone, a)
		}
	}
	s.mu.Unlock()
	for _, a := range gone {
		s.Untrack(a)
	}
	for a, dir := range alive {
		if dir != "" {
			_ = s.Track(a, dir)
		}
	}
}

// Handle takes a batch of captured events (syscap's Handler).
func (s *Signal) Handle(batch []syscap.Event) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range batch {
		a, ok := s.byCgroup[e.Cgroup]
		if !ok {
			s.unknown++
			continue
		}
		p := s.agents[a]
		if p == nil {
			p = s.newProfile()
			s.agents[a] = p
		}
		s.handled++
		p.push(&s.cfg, e.Tid, int(e.Nr), now)
		if p.phase == scoring && p.kept != nil {
			s.save(a, p) // once, when the profile is complete
		}
	}
}

func (s *Signal) newProfile() *profile {
	return &profile{threads: map[uint32]*thread{}}
}

func (p *profile) thread(tid uint32, now time.Time) *thread {
	t := p.threads[tid]
	if t == nil {
		if len(p.threads) >= maxThreads {
			p.evict(now)
		}
		t = &thread{}
		if p.model != nil {
			t.stream = p.model.Stream()
		}
		p.threads[tid] = t
	}
	t.seen = now
	return t
}

// evict drops threads idle past threadIdle, or else the idlest one.
func (p *profile) evict(now time.Time) {
	var oldest uint32
	var at time.Time
	for tid, t := range p.threads {
		if now.Sub(t.seen) > threadIdle {
			p.drop(tid, t)
			continue
		}
		if at.IsZero() || t.seen.Before(at) {
			oldest, at = tid, t.seen
		}
	}
	if len(p.threads) >= maxThreads {
		p.drop(oldest, p.threads[oldest])
	}
}

func (p *profile) drop(tid uint32, t *thread) {
	if t != nil && len(t.trace) > 0 {
		p.traces = append(p.traces, t.trace)
	}
	delete(p.threads, tid)
}

func (p *profile) push(cfg *Config, tid uint32, nr int, now time.Time) {
	t := p.thread(tid, now)
	switch p.phase {
	case learning:
		t.trace = append(t.trace, nr)
		p.calls++
		if p.calls >= cfg.LearnCalls {
			p.train(cfg)
		}
	case calibrating, scoring:
		nll, _ := t.stream.Push(nr)
		if p.phase == calibrating {
			t.trace = append(t.trace, nr)
		}
		if p.phase == scoring && len(t.win) < maxWindowLog {
			t.win = append(t.win, nr)
			p.windowLogN++
		}
		p.chunkSum += nll
		p.chunkN++
		if p.chunkN >= cfg.Chunk {
			p.closeChunk()
		}
		p.calls++
		if p.phase == calibrating && p.calls >= cfg.CalibCalls {
			p.base = p.calibMax
			p.calibrated = p.calls
			p.learnCalibration()
			p.phase, p.calls = scoring, 0
			p.windowMax, p.windowHas = 0, false
		}
	}
}

func (p *profile) closeChunk() {
	m := p.chunkSum / float64(p.chunkN)
	p.chunkSum, p.chunkN = 0, 0
	if p.phase == calibrating {
		p.calibMax = math.Max(p.calibMax, m)
		return
	}
	if !p.windowHas || m > p.windowMax {
		p.windowMax, p.windowHas = m, true
	}
}

// learnCalibration adds the calibration calls to the model once the base
// is set from them: the model knows more of the agent's normal calls
// than the base was measured with, which errs on the quiet side.
func (p *profile) learnCalibration() {
	traces := p.traces
	for _, t := range p.threads {
		if len(t.trace) > 0 {
			traces = append(traces, t.trace)
		}
		t.trace = nil
	}
	p.model.Train(traces)
	for _, tr := range traces {
		p.grams.Add(tr)
	}
	p.kept = append(p.kept, traces...)
	p.traces = nil
}

// train fits the model on what was learned and starts calibrating.
func (p *profile) train(cfg *Config) {
	traces := p.traces
	for _, t := range p.threads {
		if len(t.trace) > 0 {
			traces = append(traces, t.trace)
		}
	}
	m, err := ml.NewInterpMarkov(cfg.Order, cfg.Chunk)
	if err != nil { // a bad Order: fall back to the default
		m, _ = ml.NewInterpMarkov(4, cfg.Chunk)
	}
	m.Train(traces)
	g, _ := ml.NewNgramCounts(evidenceGram)
	for _, tr := range traces {
		g.Add(tr)
	}
	p.model, p.grams = m, g
	p.kept = traces
	p.learned = p.calls
	p.traces = nil
	for _, t := range p.threads {
		t.trace = nil
		t.stream = m.Stream()
	}
	p.phase, p.calls = calibrating, 0
	p.chunkSum, p.chunkN, p.calibMax = 0, 0, 0
}

// Score is agent's verdict on the calls since the last window.
func (s *Signal) Score(agent int, end time.Time) (threat.SignalVerdict, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.agents[agent]
	if p == nil || p.phase != scoring {
		return threat.SignalVerdict{}, false
	}
	// a part chunk waits for the next window: a short chunk's mean is
	// noisier than the full chunks the base was measured on
	var v threat.SignalVerdict
	if p.windowHas {
		ex := p.windowMax - p.base
		if ex > 0 {
			v.Score = 1 - math.Exp(-ex/s.cfg.Scale)
			v.Type = threat.Unknown
			v.Evidence = p.evidence()
		}
	}
	p.windowMax, p.windowHas, p.windowLogN = 0, false, 0
	now := s.now()
	for tid, t := range p.threads {
		t.win = t.win[:0]
		if now.Sub(t.seen) > threadIdle { // most likely gone
			delete(p.threads, tid)
		}
	}
	return v, true
}

// evidence is the window's rarest 3-grams (by the learned counts), by name.
func (p *profile) evidence() []string {
	type ev struct {
		g        ml.RareGram
		training uint32
	}
	agg := map[string]*ml.RareGram{}
	for _, t := range p.threads {
		if len(t.win) < evidenceGram {
			continue
		}
		for _, r := range p.grams.Rarest(t.win, evidenceTop*4) {
			k := gramName(r.Calls)
			if a, ok := agg[k]; ok {
				a.Seen += r.Seen
			} else {
				rr := r
				agg[k] = &rr
			}
		}
	}
	all := make([]*ml.RareGram, 0, len(agg))
	for _, r := range agg {
		all = append(all, r)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Training != all[j].Training {
			return all[i].Training < all[j].Training
		}
		if all[i].Seen != all[j].Seen {
			return all[i].Seen > all[j].Seen
		}
		return gramName(all[i].Calls) < gramName(all[j].Calls)
	})
	var out []string
	for _, r := range all {
		if len(out) == evidenceTop {
			break
		}
		out = append(out, gramName(r.Calls)+"×"+strconv.Itoa(r.Seen))
	}
	return out
}

// Name names an x86_64 system-call number ("nr999" when unknown).
func Name(nr int) string {
	if s, ok := x86_64Names[nr]; ok {
		return s
	}
	return "nr" + strconv.Itoa(nr)
}

func gramName(g []int) string {
	s := make([]string, len(g))
	for i, c := range g {
		s[i] = Name(c)
	}
	return strings.Join(s, ">")
}

// Learn restarts learning agent's profile from its next calls; its saved
// profile, if any, is discarded.
func (s *Signal) Learn(agent int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.agents[agent] = s.newProfile()
	return s.discard(agent)
}

// Forget drops the agent: its profile, and its cgroup's capture.
func (s *Signal) Forget(agent int) {
	s.mu.Lock()
	delete(s.agents, agent)
	for id, a := range s.byCgroup {
		if a == agent {
			delete(s.byCgroup, id)
		}
	}
	dir, ok := s.dirs[agent]
	delete(s.dirs, agent)
	delete(s.ids, agent)
	delete(s.trackErr, agent)
	if err := s.discard(agent); err != nil {
		s.cfg.Logf("threat: %v", err)
	}
	c := s.cap
	s.mu.Unlock()
	if ok && c != nil {
		_ = c.Untrack(dir)
	}
}

// Phase is agent's phase ("learning", "calibrating", "scoring", or "" when
// nothing was captured of it yet) and the calls counted in it.
func (s *Signal) Phase(agent int) (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.agents[agent]
	if p == nil {
		return "", 0
	}
	return p.phase.String(), p.calls
}

// Status is the signal's line in threat/status:
//
//	capture=on|off events=N dropped=N agents=N learning=N scoring=N loaded=N saved=N refused=N why=...
//
// events are the records the capture wrote, dropped those it dropped
// (rate limit and full ring), agents the agents tracked now; loaded the
// saved profiles read back at start, saved those written since,
// refused the saved profiles refused at start (each such agent learns
// again); save_failed=N follows refused only when a save failed (each
// is logged); why says why the capture is off, or the last
// tracking error, then ("; ") the last refused profile and why; "-"
// when there is nothing to say.
func (s *Signal) Status() string {
	s.mu.Lock()
	c, why := s.cap, s.why
	tracked := len(s.dirs)
	var learn, score int
	for _, p := range s.agents {
		switch p.phase {
		case learning, calibrating:
			learn++
		case scoring:
			score++
		}
	}
	if why == "" && len(s.trackErr) > 0 {
		ids := make([]int, 0, len(s.trackErr))
		for a := range s.trackErr {
			ids = append(ids, a)
		}
		sort.Ints(ids)
		why = fmt.Sprintf("agent %d: %s", ids[0], s.trackErr[ids[0]])
	}
	if s.refusedWhy != "" {
		if why != "" {
			why += "; "
		}
		why += "profile of " + s.refusedWhy + " (refused: learning again)"
	}
	handled := s.handled
	prof := fmt.Sprintf(" loaded=%d saved=%d refused=%d", s.loaded, s.saved, s.refused)
	if s.saveErr > 0 {
		prof += fmt.Sprintf(" save_failed=%d", s.saveErr)
	}
	s.mu.Unlock()
	var st syscap.Stats
	onoff := "off"
	if c != nil {
		onoff = "on"
		var err error
		if st, err = c.Stats(); err != nil && why == "" {
			why = err.Error()
		}
	} else {
		st.Events = handled
	}
	if why == "" {
		why = "-"
	}
	return fmt.Sprintf("syscall capture=%s events=%d dropped=%d agents=%d learning=%d scoring=%d%s why=%s",
		onoff, st.Events, st.Dropped(), tracked, learn, score, prof, why)
}
