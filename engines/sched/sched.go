// Package sched is the predictive scheduler: per agent and per resource it
// forecasts use at several horizons with an online ensemble of small
// forecasters, recognises the workload's pattern, accounts virtual run
// time by weight, divides the CPU by weighted max-min fairness over
// predicted demand and, when told `enforce on`, sets each agent's CPU
// quota, weight and memory limits ahead of a predicted rise (and lowers
// them slowly after a fall), through the agent registry's Apply (view.Registry) so every change is
// the same kernel write and the same event as a ctl write, with a reason.
//
//	sched/
//	    ctl      enforce buffer fall horizons interval capacity pin
//	    status   settings, then one line per agent (weight, vruntime, share)
//	    model    per agent, resource, horizon and forecaster: loss and weight
//	agents/N/
//	    pattern  class, period, confidence, typical and peak per resource
//	    predict  point, p90, p99 per resource and horizon
//	    alloc    current allocation, the forecast behind it, the reason
//	    ctl      + sched auto|manual, forecaster NAME|auto
//
// Enforcement is off by default: until `enforce on`, the scheduler only
// predicts, and never touches a limit a user set.
//
// Every verb is saved before it takes effect (persist.go, commit): a
// change the state directory cannot take (full, read-only, failing) is
// refused with the kernel's errno, ENOSPC, EROFS, EDQUOT or EIO, and
// nothing of it is applied, so `enforce on` that fails to save never
// writes a limit, and status and a restart both show the old value.
// sched/ctl's verbs are root's alone (EPERM); agents/N/ctl's sched and
// forecaster are the agent's owner's and root's. The minute's history
// save (SaveHistory) has no writer to tell: its failure goes to the
// daemon's log and as an error event on the bus. Network (TCP bytes/s of
// the agent's sockets) is predicted and shown, but no allocation acts on
// it: the host has no per-cgroup network limit to set.
package sched

import (
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"aiosfs/engines/agent/view"
	"aiosfs/engines/bus"
	"aiosfs/engines/ml"
	"aiosfs/engines/telemetry"
)

// Resources predicted per agent, in the order files list them.
var Resources = []string{"cpu", "mem", "io", "net"}

const (
	resCPU = iota
	resMem
	resIO
	resNet // forecast only: nothing to allocate (no per-cgroup network limit)
	nres
)

// resMin is each resource's smallest meaningful value (VPA first bucket).
var resMin = [nres]float64{0.01, 1 << 20, 1024, 1024}

// warmSamples is how many samples an agent needs before the scheduler
// allocates for it: fewer say nothing about its pattern.
const warmSamples = 5

// Agents is the part of the agent registry (view.Registry) the scheduler
// uses: records to decide from, Apply to set limits through
// the same kernel writes as a ctl line, typed.
type Agents interface {
	Info(id int) (view.Info, error)
	Apply(id int, l view.Limit, reason string) error
}

// Config is what the engine needs from the daemon.
type Config struct {
	Agents Agents
	Tel    *telemetry.Sampler
	Bus    *bus.Bus
	NCPU   int // capacity default; 0 = runtime.NumCPU()
	// StateFile keeps sched/ctl's settings and agents' modes across
	// restarts ("" keeps nothing); see Restore.
	StateFile string
}

// Settings are sched/ctl's values.
type Settings struct {
	Enforce  bool
	Buffer   float64         // fraction above the forecast
	Fall     float64         // most an allocation drops in a minute (fraction)
	Horizons []time.Duration // ascending
	Interval time.Duration   // between allocation decisions
	Capacity float64         // cores divided among agents
	Slice    time.Duration   // the CFS period (time slice) of enforced agents' CPU quota
	Warmup   int             // samples an agent's allocations are held at its peak (Policy.Hold); 0 never
}

// DefaultSlice is the kernel's CFS period. Slice bounds: a period is
// 1ms..1s in the kernel, and the least quota is 1ms, so the scheduler's
// least allocation (0.05 cores) needs at least 20ms; sporadic agents get
// a fifth of the slice, no less than MinSlice.
const (
	DefaultSlice = 100 * time.Millisecond
	MinSlice     = 20 * time.Millisecond
	MaxSlice     = time.Second
)

// SliceFor is the time slice an agent's CPU quota refills over. A
// sporadic load (requests, bursts) gets a fifth of the slice: the quota
// is the same share of every period, but a burst that runs out of it
// waits at most period-quota, so a shorter period bounds the stall a
// throttled request sees (a 100ms period at 0.2 cores can stall a burst
// 80ms; 20ms, 16ms). Steady and periodic loads keep the whole slice,
// where throttling is rarer and longer periods cost fewer timer
// interrupts and context switches.
func SliceFor(slice time.Duration, class string) time.Duration {
	if class == ml.Sporadic {
		return max(slice/5, MinSlice)
	}
	return slice
}

// Engine is the scheduler.
type Engine struct {
	cfg Config

	// saveMu serialises verbs (commit): each edits the state the last
	// one saved. It is taken before mu, never while holding it.
	saveMu    sync.Mutex
	mu        sync.Mutex
	set       Settings
	agents    map[int]*agentState
	last      time.Time // last decision
	ticks     uint64
	decisions uint64
	changes   uint64
	// warmed is closed once Restore's replay of the saved histories is
	// done (or there was none to do); see warm.
	warmed chan struct{}
	// aside is what decide left to makeAside this tick.
	aside []asideJob
}

// closed is a channel that is closed: nothing to wait for.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

type agentState struct {
	pred   [nres]*lazyPred // made when needed (see lazyPred)
	step   float64         // seconds per step the predictors were built for
	manual bool
	pin    string

	cpu, memHigh, memMax Alloc
	weight               uint64 // last weight the scheduler wrote (0 none)
	cpus                 string // cpus the scheduler assigned ("" none)
	demand, share        float64
	vruntime             float64
	used                 float64 // latest cores
	mem                  float64 // latest bytes
	lastThr, lastOOM     uint64
	seenThr              bool
	lastTime             time.Time
	// making: its CPU and memory predictors are being made from long
	// kept histories outside the lock (makeAside); decisions pass it by
	// until they are.
	making bool
}

// New returns an engine with enforcement off and registers it on the
// sampler's ticks.
func New(cfg Config) *Engine {
	if cfg.NCPU <= 0 {
		cfg.NCPU = runtime.NumCPU()
	}
	e := &Engine{cfg: cfg, agents: map[int]*agentState{}, warmed: closed, set: Settings{
		Buffer:   0.15,
		Fall:     DefaultFallPerMinute,
		Horizons: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 60 * time.Second},
		Interval: 5 * time.Second,
		Capacity: float64(cfg.NCPU),
		Slice:    DefaultSlice,
		Warmup:   ml.WarmSamples,
	}}
	return e
}

// Restore loads the settings and agents' modes saved in cfg.StateFile by
// every accepted verb, so `enforce on` survives a restart of the daemon,
// then warms the predictors from the history SaveHistory kept, in the
// background (see warm).
func (e *Engine) Restore() error {
	if err := e.load(); err != nil {
		return err
	}
	saved, err := e.readHistory()
	if err != nil || len(saved) == 0 {
		return err
	}
	done := make(chan struct{})
	e.mu.Lock()
	e.warmed = done
	e.mu.Unlock()
	go e.warm(saved, done)
	return nil
}

// Settings returns a copy of the current settings.
func (e *Engine) Settings() Settings {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.set
	s.Horizons = append([]time.Duration(nil), s.Horizons...)
	return s
}

func (e *Engine) stepSeconds() float64 {
	if e.cfg.Tel != nil {
		if d := e.cfg.Tel.Interval(); d > 0 {
			return d.Seconds()
		}
	}
	return 1
}

// horizonSteps converts the horizons to steps of step seconds, ascending
// and distinct (two horizons shorter than a step both become 1).
func horizonSteps(hs []time.Duration, step float64) []int {
	var out []int
	for _, h := range hs {
		n := int(math.Round(h.Seconds() / step))
		if n < 1 {
			n = 1
		}
		if len(out) == 0 || n > out[len(out)-1] {
			out = append(out, n)
		}
	}
	return out
}

// eagerPredictors makes every predictor at once, as before lazyPred:
// for the benchmarks that compare the two (BenchmarkHeap200).
var eagerPredictors = false

func (e *Engine) newState() *agentState {
	st := &agentState{step: e.stepSeconds(), pin: "auto"}
	hs := horizonSteps(e.set.Horizons, st.step)
	for r := range st.pred {
		st.pred[r] = newLazyPred(ml.Params{Horizons: hs, Min: resMin[r], StepSeconds: st.step})
		if eagerPredictors {
			st.pred[r].get()
		}
	}
	return st
}

// Tick takes one sampler pass: every live agent's sample feeds its
// predictors and its virtual run time; when enforcement is on and an
// interval has passed, it decides and applies allocations.
func (e *Engine) Tick(now time.Time, latest map[int]telemetry.Sample) {
	e.mu.Lock()
	e.ticks++
	for id, s := range latest {
		st := e.agents[id]
		if st == nil {
			st = e.newState()
			e.agents[id] = st
		}
		e.observe(st, s)
	}
	for id, st := range e.agents {
		if _, ok := latest[id]; ok {
			continue
		}
		// A state made by a verb (sched manual, forecaster) before the
		// agent's first sample must survive until that sample comes.
		if st.pred[resCPU].N() == 0 && e.cfg.Agents != nil {
			if a, err := e.cfg.Agents.Info(id); err == nil && a.State != view.StateExited {
				continue
			}
		}
		delete(e.agents, id) // ended: its history is the sampler's
	}
	var acts []action
	if e.set.Enforce && now.Sub(e.last) >= e.set.Interval {
		acts = e.decide(now, latest)
		e.last = now
		e.decisions++
	}
	aside := e.aside
	e.aside = nil
	e.mu.Unlock()
	if len(aside) > 0 {
		go e.makeAside(aside)
	}
	e.apply(acts)
}

// MakeAside is the history a decision replays under the engine's lock
// when it first needs a predictor kept lazily (lazyPred): a predictor
// with more kept samples than this is made outside the lock, by
// makeAside, and its agent's decisions wait for it. 256 samples replay
// in about half a millisecond on the profiled VM (BenchmarkMakeIdleHour:
// 9.2 ms for 3,600), so the first decision at 200 agents holds the tick
// for about a quarter of a second at most instead of seconds.
const MakeAside = 256

// makeAsideOn switches makeAside (SetPassRemedies); on by default.
var makeAsideOn atomic.Bool

func init() { makeAsideOn.Store(true) }

// PassRemedies reports whether the engine makes long lazy histories'
// predictors outside its lock (MakeAside); off, a decision makes them
// under it, as before. The switch is there so that a bench can measure
// it in one daemon run.
func PassRemedies() bool { return makeAsideOn.Load() }

// SetPassRemedies switches PassRemedies.
func SetPassRemedies(on bool) { makeAsideOn.Store(on) }

// asideHook is called as makeAside starts (true) and ends (false): for
// the tests, which hold it back to see what a tick did without it.
var asideHook = func(start bool) {}

// asideJob is one agent's predictors to make outside the lock: the
// lazy ones and the snapshots of what they kept.
type asideJob struct {
	st    *agentState
	preds []*lazyPred
	snaps []*lazyPred
}

// aside reports whether st's decision must wait for its CPU and memory
// predictors, which have long kept histories: they are then snapshot
// for makeAside (after this tick) and st is marked making. Called with
// mu held, from decide.
func (e *Engine) asideNeeded(st *agentState) bool {
	if st.making {
		return true
	}
	if !PassRemedies() {
		return false
	}
	var job asideJob
	for _, r := range []int{resCPU, resMem} {
		if l := st.pred[r]; !l.Made() && l.n > MakeAside {
			job.preds = append(job.preds, l)
			job.snaps = append(job.snaps, l.snapshot())
		}
	}
	if len(job.preds) == 0 {
		return false
	}
	job.st = st
	st.making = true
	e.aside = append(e.aside, job)
	return true
}

// makeAside replays the jobs' snapshots into fresh predictors without
// the lock, then takes it for each agent to adopt them (feeding the few
// samples taken meanwhile) and let its decisions go on.
func (e *Engine) makeAside(jobs []asideJob) {
	asideHook(true)
	defer asideHook(false)
	for _, j := range jobs {
		made := make([]*ml.Predictor, len(j.preds))
		for i, s := range j.snaps {
			made[i] = ml.NewPredictor(s.params)
			s.replay(made[i], 0)
		}
		e.mu.Lock()
		for i, l := range j.preds {
			l.adopt(made[i], j.snaps[i])
		}
		j.st.making = false
		e.mu.Unlock()
	}
}

func (e *Engine) observe(st *agentState, s telemetry.Sample) {
	ts := float64(s.Time.UnixNano()) / 1e9
	mem := float64(s.Mem)
	if mem == 0 {
		mem = float64(s.RSS)
	}
	st.pred[resCPU].Observe(s.CPU, ts)
	st.pred[resMem].Observe(mem, ts)
	st.pred[resIO].Observe(s.IOReadRate+s.IOWriteRate, ts)
	st.pred[resNet].Observe(s.NetRate, ts)
	// Virtual run time: CPU seconds scaled by the default weight over the
	// agent's weight, as CFS's vruntime (delta * NICE_0_LOAD / weight).
	dt := st.step
	if !st.lastTime.IsZero() && s.Time.After(st.lastTime) {
		dt = s.Time.Sub(st.lastTime).Seconds()
	}
	w := float64(st.weight)
	if w == 0 {
		w = 100
	}
	st.vruntime += s.CPU * dt * 100 / w
	st.used, st.mem, st.lastTime = s.CPU, mem, s.Time
}

// action is one limit to write; Apply runs outside the engine's lock.
type action struct {
	id  int
	lim view.Limit // typed: the kernel gets what alloc shows
	why string
}

// WeightFor is an agent's CPU weight from its priority and capabilities:
// the default 100 scaled by 1.25 per nice step (as CFS's weight table),
// doubled for an agent granted CAP_SYS_NICE (it may raise its own
// priority anyway), within the kernel's 1..10000.
func WeightFor(prio int, capAdd []string) uint64 {
	w := 100 * math.Pow(1.25, float64(-prio))
	for _, c := range capAdd {
		c = strings.ToLower(strings.TrimPrefix(strings.ToUpper(c), "CAP_"))
		if c == "sys_nice" {
			w *= 2
		}
	}
	return uint64(math.Max(1, math.Min(10000, math.Round(w))))
}

// lead is the forecast an allocation must cover: the largest of the
// quantile q over every horizon up to the first at least one decision
// interval ahead (the allocation stands until the next decision).
func lead(p *ml.Predictor, interval time.Duration, step float64, q99 bool) float64 {
	v := 0.0
	for _, f := range p.Forecasts() {
		x := f.P90
		if q99 {
			x = f.P99
		}
		v = math.Max(v, x)
		if float64(f.Horizon)*step >= interval.Seconds() {
			break
		}
	}
	return v
}

func (e *Engine) decide(now time.Time, samples map[int]telemetry.Sample) []action {
	var acts []action
	sec := e.set.Interval.Seconds()
	base := DefaultPolicy(sec)
	base.Buffer, base.Fall = e.set.Buffer, FallPer(e.set.Fall, sec)
	cpuPol, memPol := base, base
	cpuPol.Min, cpuPol.Max = 0.05, e.set.Capacity
	// No memory limit under 64 MiB: a small agent's next exec or burst
	// should not be an OOM kill (the VPA's floor is 250 MiB).
	memPol.Min = 64 << 20
	ids := make([]int, 0, len(e.agents))
	for id := range e.agents {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	var claims []Claim
	limits := map[int]view.Limits{}
	for _, id := range ids {
		st := e.agents[id]
		if st.manual || st.pred[resCPU].N() < warmSamples || e.asideNeeded(st) {
			continue
		}
		a, err := e.cfg.Agents.Info(id)
		if err != nil || !a.Alive {
			continue
		}
		limits[id] = a.Limits
		latest, ok := samples[id] // this tick's: throttling and OOM counters
		if !ok {
			continue
		}
		// Weight: the user's, if they set one the scheduler did not.
		w := WeightFor(a.Prio, a.CapAdd)
		if a.Limits.Weight != 0 && a.Limits.Weight != st.weight {
			w = a.Limits.Weight
		} else if a.Limits.Weight != w && !(a.Limits.Weight == 0 && w == 100) { // 0 is the kernel's default, 100
			acts = append(acts, action{id, view.Weight(w), "prio"})
		}
		st.weight = w
		// The first decision starts from the limits in force (the
		// user's), so it lowers them slowly rather than dropping them.
		if st.cpu.Value == 0 && a.Limits.CPUMax > 0 {
			st.cpu.Value = a.Limits.CPUMax
		}
		if st.memMax.Value == 0 && a.Limits.MemMax > 0 {
			st.memMax.Value = float64(a.Limits.MemMax)
		}
		if st.memHigh.Value == 0 && a.Limits.MemHigh > 0 {
			st.memHigh.Value = float64(a.Limits.MemHigh)
		}

		// CPU: heavy throttling since the last decision raises the quota
		// at once; otherwise follow the forecast.
		periods := e.set.Interval.Seconds() / a.Limits.Period().Seconds()
		thr := latest.Throttled
		cur := a.Limits.CPUMax
		if st.seenThr && cur > 0 && float64(thr-st.lastThr) >= 0.3*periods {
			cpuPol.Bump(&st.cpu, cur, 1.5, 0.1, ReasonThrottle)
			st.cpu.Forecast = lead(st.pred[resCPU].get(), e.set.Interval, st.step, false)
		} else {
			// A sporadic load's bursts are what p90 misses; cover p99.
			sporadic := st.pred[resCPU].get().Pattern().Class == ml.Sporadic
			cpuPol.NextUse(&st.cpu, lead(st.pred[resCPU].get(), e.set.Interval, st.step, sporadic), st.used)
		}
		if st.pred[resCPU].get().Young(e.set.Warmup) {
			cpuPol.Hold(&st.cpu, st.pred[resCPU].get().Peak())
		}
		st.lastThr, st.seenThr = thr, true
		claims = append(claims, Claim{ID: id, Demand: st.cpu.Value, Weight: float64(w)})

		// Memory: an OOM kill bumps the hard limit as the VPA does
		// (x1.2, at least +100 MiB over the limit it hit); otherwise the
		// hard limit covers p99 and the soft one p90, never under use.
		oom := latest.OOMKills
		if oom > st.lastOOM {
			at := float64(a.Limits.MemMax)
			if at <= 0 {
				at = st.mem
			}
			memPol.Bump(&st.memMax, at, 1.2, 100<<20, ReasonOOM)
		} else {
			memPol.Next(&st.memMax, math.Max(lead(st.pred[resMem].get(), e.set.Interval, st.step, true), st.mem))
		}
		st.lastOOM = oom
		memPol.Next(&st.memHigh, math.Max(lead(st.pred[resMem].get(), e.set.Interval, st.step, false), st.mem))
		if st.pred[resMem].get().Young(e.set.Warmup) {
			memPol.Hold(&st.memMax, st.pred[resMem].get().Peak())
			memPol.Hold(&st.memHigh, st.pred[resMem].get().Peak())
		}
		if st.memHigh.Value > st.memMax.Value {
			st.memHigh.Value = st.memMax.Value
		}
		if changed(float64(a.Limits.MemMax), st.memMax.Value, 0.02) {
			acts = append(acts, action{id, view.MemMax(int64(st.memMax.Value)), st.memMax.Reason})
		}
		if changed(float64(a.Limits.MemHigh), st.memHigh.Value, 0.02) {
			acts = append(acts, action{id, view.MemHigh(int64(st.memHigh.Value)), st.memHigh.Reason})
		}
	}
	// CPU: weighted max-min fair shares of the capacity over the demands.
	shares := FairShare(e.set.Capacity, claims)
	for _, c := range claims {
		st := e.agents[c.ID]
		st.demand, st.share = c.Demand, shares[c.ID]
		v := math.Max(0.05, st.share)
		why := st.cpu.Reason
		if st.share < c.Demand-1e-9 {
			why = ReasonFair
		}
		if changed(limits[c.ID].CPUMax, v, 0.02) {
			acts = append(acts, action{c.ID, view.CPUMax(v), why})
		}
		// The time slice, after the quota: any allocation (>= 0.05
		// cores) is a valid quota over any slice >= MinSlice.
		if p := SliceFor(e.set.Slice, st.pred[resCPU].get().Pattern().Class); p != limits[c.ID].Period() {
			acts = append(acts, action{c.ID, view.CPUPeriod(p), "slice-" + st.pred[resCPU].get().Pattern().Class})
		}
	}
	// Predictive core assignment: steady loads predicted at 0.8 cores or
	// more get cores of their own; a plan that ends gives the agent back
	// every cpu. An agent whose cpus the user set is left alone.
	all := "0"
	if e.cfg.NCPU > 1 {
		all = "0-" + strconv.Itoa(e.cfg.NCPU-1)
	}
	var cores []CoreClaim
	for _, c := range claims {
		st := e.agents[c.ID]
		userCpus := limits[c.ID].Cpus != "" && limits[c.ID].Cpus != st.cpus && limits[c.ID].Cpus != all
		if !userCpus && st.pred[resCPU].get().Pattern().Class == ml.Steady && st.cpu.Forecast >= 0.8 {
			cores = append(cores, CoreClaim{c.ID, st.share})
		}
	}
	plan := PlanCores(e.cfg.NCPU, cores)
	for _, c := range claims {
		st := e.agents[c.ID]
		want, ok := plan[c.ID]
		switch {
		case ok && want != limits[c.ID].Cpus:
			acts = append(acts, action{c.ID, view.Cpus(want), "steady-heavy"})
			st.cpus = want
		case !ok && st.cpus != "":
			acts = append(acts, action{c.ID, view.Cpus(all), "unpinned"})
			st.cpus = ""
		}
	}
	return acts
}

// changed reports whether the limit should be rewritten: it is unset (0
// or -1, "max"), or differs from v by more than frac.
func changed(cur, v, frac float64) bool {
	if cur <= 0 {
		return true
	}
	return math.Abs(v-cur) > frac*cur
}

func (e *Engine) apply(acts []action) {
	for _, a := range acts {
		err := e.cfg.Agents.Apply(a.id, a.lim, "sched: "+a.why)
		e.mu.Lock()
		if err == nil {
			e.changes++
		}
		e.mu.Unlock()
		if err != nil && e.cfg.Bus != nil {
			e.cfg.Bus.Publish(bus.Event{Source: "sched", Kind: "error", Agent: a.id, Fields: []bus.Field{
				bus.F("key", a.lim.Key), bus.F("value", a.lim.Value), bus.F("reason", a.why), bus.F("err", err.Error())}})
		}
	}
}
