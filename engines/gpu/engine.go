// Package gpu is the GPU scheduler: devices, per-agent reservations of GPU
// memory and compute share, per-device priority queues, placement by
// policy, and enforcement. It serves:
//
//	gpu/
//	    ctl            policy overuse horizon (and mockproc on mock devices)
//	    status         one line: source, devices, policy, totals (see renderStatus)
//	    allocations    one line per reservation or waiting request
//	    N/info         device N: identity, memory, utilisation, capability, MIG
//	    N/procs        processes on device N with their GPU memory and agent
//	    N/queue        requests waiting on device N, in grant order
//	    N/ctl          offline online
//	agents/N/gpu       the agent's reservation, its use and whether it is over
//	agents/N/ctl       gpu SIZE [prio=P] [dev=D|any] [share=F]; gpu release
//
// Every line of every file starts with mock=1 when the devices are
// go-nvml's mock devices (-gpu=mock:MODEL), mock=0 otherwise. Sizes are
// bytes, shares and utilisations fractions 0..1, times Unix seconds.
//
// Enforcement is in two parts. At spawn, EnvFor gives the agent its device
// (CUDA_VISIBLE_DEVICES, by UUID) and its limits as MPS client variables
// (CUDA_MPS_PINNED_DEVICE_MEM_LIMIT, CUDA_MPS_ACTIVE_THREAD_PERCENTAGE),
// which bind when an MPS control daemon runs. While it runs, the engine
// reads every device's processes through NVML each tick, charges them to
// agents by pid, and acts on an agent using more than it reserved, by the
// overuse policy: event (say so), throttle (freeze/thaw duty cycle),
// freeze, or kill.
//
// Placement and queues are Sched's (sched.go), a pure state machine that
// scripts/eval/gpu replays too. Reservations, queues, offline devices and
// gpu/ctl's settings are kept in Config.StateFile across restarts
// (savedState); Collector exposes the numbers for `metrics`.
//
// Every verb is a transaction (transact): its change is saved before the
// verb returns, and a change that cannot be saved (a full, read-only or
// failing state filesystem) is undone exactly and refused with the
// kernel's errno (ENOSPC, EROFS, EIO), with no grant, release or event.
// Only the release of an ended agent's reservation, which nobody waits
// on, stands when its save fails; that failure is published as an error
// event. gpu/ctl and gpu/N/ctl are root's (EPERM); the agents/N/ctl gpu
// verb is the agent's owner's and root's, and prio above 0 root's alone.
package gpu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"aiosfs/ctl"
	"aiosfs/engines/bus"
	"aiosfs/fs"
	hal "aiosfs/hal/gpu"
	"aiosfs/internal/statefile"
)

// Agents is what the engine needs of the agent registry. daemon/mod_gpu.go
// adapts engines/agent to it; acting goes through the agent engine's own
// verbs so an agent's recorded state stays true.
type Agents interface {
	IDs() []int
	// Pids returns agent id's processes; exists is false for an unknown
	// agent, ended for one whose processes are gone for good.
	Pids(id int) (pids []int, exists, ended bool)
	// Owner is agent id's uid: its verbs are its owner's and root's.
	Owner(id int) (uid uint32, err error)
	Freeze(id int) error
	Kill(id int) error
	// Pause freezes (on) or thaws the agent's cgroup without changing
	// its recorded state or publishing: throttling does it twice a
	// period, and the agent is still running, only slowed.
	Pause(id int, on bool) error
}

// Overuse is what the engine does to an agent over its reservation.
type Overuse string

// Overuse policies.
const (
	OverEvent    Overuse = "event"
	OverThrottle Overuse = "throttle"
	OverFreeze   Overuse = "freeze"
	OverKill     Overuse = "kill"
)

// Config is what the engine is given.
type Config struct {
	Host hal.Host // nil: no devices
	// HostErr says why Host is nil ("" when the daemon was told none).
	HostErr   string
	NS        *fs.NS
	Bus       *bus.Bus
	Agents    Agents
	Predictor DemandPredictor
	// Usage, when set, is told each watch's GPU bytes per agent (the
	// scheduler's demand predictor learns from it).
	Usage    func(used map[int]int64, now time.Time)
	Interval time.Duration // watch period; 1s by default
	Now      func() time.Time
	// StateFile keeps reservations and queues across daemon restarts
	// (the agents themselves are restored by the agent engine); "" none.
	StateFile string
}

// Engine is the GPU scheduler.
type Engine struct {
	cfg  Config
	mock string // "mock=1" or "mock=0", the first field of every line
	uuid []string

	mu       sync.Mutex
	sched    *Sched
	overuse  Overuse
	duty     float64       // fraction of each period a throttled agent is frozen
	used     map[int]int64 // agent -> GPU bytes at the last watch
	over     map[int]bool
	throttle map[int]*throttler
}

// throttler is one agent's freeze/thaw cycle: closing stop ends it, done
// closes once the agent has been thawed for the last time.
type throttler struct{ stop, done chan struct{} }

// New builds the engine over cfg.Host's devices.
func New(cfg Config) (*Engine, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Engine{cfg: cfg, mock: "mock=0", overuse: OverEvent, duty: 0.5,
		used: map[int]int64{}, over: map[int]bool{}, throttle: map[int]*throttler{}}
	var totals []int64
	if h := cfg.Host; h != nil {
		if h.Mock() {
			e.mock = "mock=1"
		}
		for i := 0; i < h.Count(); i++ {
			inf, err := h.Device(i)
			if err != nil {
				return nil, err
			}
			totals = append(totals, inf.Total)
			e.uuid = append(e.uuid, inf.UUID)
		}
	}
	e.sched = NewSched(totals)
	e.sched.SetPredictor(cfg.Predictor, 0)
	if err := e.restore(); err != nil {
		return nil, err
	}
	return e, nil
}

// savedState is StateFile, JSON, rewritten whole (statefile) by every
// verb before it takes effect:
//
//	{"policy":"bestfit","overuse":"throttle","duty":0.5,"horizon_ns":300000000000,
//	 "offline":[3],"entries":[{...Entry...}]}
//
// A key an older file lacks keeps its default.
type savedState struct {
	Policy  Policy        `json:"policy"`
	Overuse Overuse       `json:"overuse"`
	Duty    float64       `json:"duty,omitempty"`
	Horizon time.Duration `json:"horizon_ns,omitempty"`
	Offline []int         `json:"offline,omitempty"`
	Entries []Entry       `json:"entries"`
}

// restore reloads StateFile. Reservations of agents that ended while the
// daemon was away go at the first watch; ones that no longer fit (fewer
// or smaller devices) are dropped with an event.
func (e *Engine) restore() error {
	if e.cfg.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(e.cfg.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", e.cfg.StateFile, err)
	}
	if _, err := ParsePolicy(string(st.Policy)); err == nil {
		e.sched.SetPolicy(st.Policy)
	}
	switch st.Overuse {
	case OverEvent, OverThrottle, OverFreeze, OverKill:
		e.overuse = st.Overuse
	}
	if st.Duty > 0 && st.Duty < 1 {
		e.duty = st.Duty
	}
	if st.Horizon > 0 {
		e.sched.SetPredictor(e.cfg.Predictor, st.Horizon)
	}
	for _, d := range e.sched.Restore(st.Entries) {
		e.publish("dropped", d.Agent, bus.F("dev", d.On), bus.F("bytes", d.Bytes), bus.F("reason", "does not fit the devices found at start"))
	}
	for _, d := range st.Offline {
		if d >= 0 && d < e.sched.Devices() {
			e.sched.SetOffline(d, true, e.cfg.Now())
		}
	}
	return nil
}

// save writes StateFile; the caller holds e.mu. A write goes to a
// temporary file renamed over the old one, so a crash leaves one or the
// other whole.
func (e *Engine) save() error {
	if e.cfg.StateFile == "" {
		return nil
	}
	st := savedState{Policy: e.sched.Policy(), Overuse: e.overuse, Duty: e.duty, Horizon: e.sched.Horizon(), Entries: e.sched.State()}
	for d := 0; d < e.sched.Devices(); d++ {
		if e.sched.Offline(d) {
			st.Offline = append(st.Offline, d)
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return statefile.Write(e.cfg.StateFile, b)
}

// transact runs change, a verb's change to the scheduler state, and
// saves the result; the caller holds e.mu, so nobody sees the state in
// between. If change fails, or the save does, the state is put back
// exactly as it was (a deep copy taken before) and the error returned:
// for a failed save it wraps the kernel's errno (ENOSPC, EROFS, EIO),
// which is what the writer of the ctl line gets. Nothing outside the
// state has happened yet (the callers publish and act after), so a
// refused change leaves no trace but its error.
func (e *Engine) transact(change func() error) error {
	old, overuse, duty := e.sched.clone(), e.overuse, e.duty
	err := change()
	if err == nil {
		if err = e.save(); err != nil {
			err = fmt.Errorf("gpu: not saved, nothing changed: %w", err)
		}
	}
	if err != nil {
		e.sched, e.overuse, e.duty = old, overuse, duty
	}
	return err
}

func (e *Engine) publish(kind string, agent int, fields ...bus.Field) {
	if e.cfg.Bus != nil {
		e.cfg.Bus.Publish(bus.Event{Source: "gpu", Kind: kind, Agent: agent, Fields: fields})
	}
}

// ---- requests ----

// Reserve runs an agent's `gpu SIZE ...`. A request that does not fit now
// waits; on error (the state file not saved included) nothing has
// changed.
func (e *Engine) Reserve(r Request) error {
	e.mu.Lock()
	var a *Alloc
	var w *Waiter
	err := e.transact(func() (err error) {
		a, w, err = e.sched.Request(r, e.cfg.Now())
		return err
	})
	var grant Alloc
	if a != nil {
		grant = *a
	}
	e.mu.Unlock()
	if err != nil {
		return err
	}
	if a != nil {
		e.publishGrant(grant)
	} else {
		e.publish("queued", r.Agent, bus.F("dev", w.On), bus.F("bytes", r.Bytes), bus.F("prio", r.Prio))
	}
	return nil
}

func (e *Engine) publishGrant(a Alloc) {
	e.publish("grant", a.Agent, bus.F("dev", a.Dev), bus.F("bytes", a.Bytes), bus.F("prio", a.Prio),
		bus.F("share", a.Eff), bus.F("waited", a.Since.Sub(a.Queued).Seconds()))
}

// Release ends agent's reservation (or its wait) and grants what fits.
// From a ctl line (background false) it is a transaction: if the state
// cannot be saved the reservation stays and the error says why. For an
// agent that ended (the watch, background true) the reservation goes
// whatever the save does, since the devices are free in fact; a failed
// save is published as an error event and the file catches up at the
// next save that succeeds (after a restart, the first watch releases what
// it still holds for the ended agent).
func (e *Engine) Release(agent int, reason string) error {
	return e.release(agent, reason, false)
}

func (e *Engine) release(agent int, reason string, background bool) error {
	e.mu.Lock()
	var grants []*Alloc
	var err, saveErr error
	if background {
		grants, err = e.sched.Release(agent, e.cfg.Now())
		if err == nil {
			saveErr = e.save()
		}
	} else {
		err = e.transact(func() (err error) {
			grants, err = e.sched.Release(agent, e.cfg.Now())
			return err
		})
	}
	var stopped *throttler
	var copies []Alloc
	if err == nil {
		stopped = e.stopThrottle(agent)
		delete(e.over, agent)
		for _, g := range grants {
			copies = append(copies, *g)
		}
	}
	e.mu.Unlock()
	wait(stopped)
	if err != nil {
		return err
	}
	if saveErr != nil {
		e.publish("error", agent, bus.F("op", "save"), bus.F("err", saveErr.Error()),
			bus.F("lost_at_restart", "release of agent "+strconv.Itoa(agent)))
	}
	e.publish("release", agent, bus.F("reason", reason))
	for _, g := range copies {
		e.publishGrant(g)
	}
	return nil
}

// AgentVerbs is the `gpu` row of every agent's ctl. It is the agent's
// owner's and root's (EPERM for anyone else, checked here as well as by
// agents/N/ctl's mode), and prio above 0 is root's alone: a higher
// priority takes compute share from other users' reservations, as a
// raised nice value would take CPU (spawn prio=-N is root's too).
func (e *Engine) AgentVerbs(id int) ctl.Table {
	return ctl.Table{{Name: "gpu", Args: "SIZE [prio=P] [dev=D|any] [share=F] | release", Min: 1, Max: 4,
		Doc: "reserve GPU memory and a compute share (waits if it does not fit; prio>0 is root's); release frees it",
		Run: func(_ context.Context, c fs.Caller, args []string) error {
			if args[0] == "release" {
				if len(args) != 1 {
					return ctl.Errorf("%s: gpu release", ctl.MsgBadArgs)
				}
				if err := e.mayAct(c, id); err != nil {
					return err
				}
				return e.Release(id, "ctl")
			}
			r, err := ParseRequest(id, args)
			if err != nil {
				return err
			}
			if err := e.mayAct(c, id); err != nil {
				return err
			}
			if r.Prio > 0 && c.Uid != 0 {
				return fs.Errorf(syscall.EPERM, "gpu: prio=%d is root's (it takes compute from other agents); use 0 or below", r.Prio)
			}
			return e.Reserve(r)
		}}}
}

// mayAct refuses (EPERM) a caller who is neither root nor agent id's
// owner.
func (e *Engine) mayAct(c fs.Caller, id int) error {
	if c.Uid == 0 {
		return nil
	}
	if e.cfg.Agents == nil {
		return fs.Errorf(syscall.EPERM, "agent %d is not yours", id)
	}
	uid, err := e.cfg.Agents.Owner(id)
	if err != nil {
		return err
	}
	if uid != c.Uid {
		return fs.Errorf(syscall.EPERM, "agent %d is not yours", id)
	}
	return nil
}

// ---- enforcement ----

// EnvFor is the GPU part of agent's spawn environment. With devices and a
// reservation: its device by UUID (NVML's index order is PCI order, CUDA's
// default is fastest first, so indices could name another board), the MPS
// memory limit for that device as the client sees it (ordinal 0) in MiB
// rounded down, and its compute share as a thread percentage (at least 1:
// MPS refuses 0). Without a reservation an agent sees no GPU. Without
// devices nothing is set.
func (e *Engine) EnvFor(agent int) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sched.Devices() == 0 {
		return nil
	}
	a := e.sched.Alloc(agent)
	if a == nil {
		return []string{"CUDA_VISIBLE_DEVICES="}
	}
	pct := int(a.Eff*100 + 0.5)
	return []string{
		"CUDA_VISIBLE_DEVICES=" + e.uuid[a.Dev],
		fmt.Sprintf("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=%dM", max(a.Bytes>>20, 1)),
		"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=" + strconv.Itoa(max(pct, 1)),
	}
}

// usage is one watch's reading: device processes and who they belong to.
type usage struct {
	procs  [][]hal.Proc // by device
	owner  map[int]int  // pid -> agent
	used   map[int]int64
	ended  []int
	errors []string
}

// read asks NVML for every device's processes and the registry for every
// agent's pids. It takes no lock: both may be slow.
func (e *Engine) read() usage {
	u := usage{owner: map[int]int{}, used: map[int]int64{}}
	if e.cfg.Agents != nil {
		for _, id := range e.cfg.Agents.IDs() {
			pids, exists, ended := e.cfg.Agents.Pids(id)
			if !exists || ended {
				u.ended = append(u.ended, id)
				continue
			}
			for _, p := range pids {
				u.owner[p] = id
			}
		}
	}
	if h := e.cfg.Host; h != nil {
		for i := 0; i < h.Count(); i++ {
			ps, err := h.Procs(i)
			if err != nil {
				u.errors = append(u.errors, err.Error())
			}
			u.procs = append(u.procs, ps)
			for _, p := range ps {
				if id, ok := u.owner[p.Pid]; ok && p.Bytes > 0 {
					u.used[id] += p.Bytes
				}
			}
		}
	}
	return u
}

// Watch is one enforcement pass: reservations of ended agents are
// released, and every agent using more GPU memory than it reserved is
// acted on by the overuse policy, once when it goes over (throttling
// continues until it is back under).
func (e *Engine) Watch() {
	u := e.read()
	for _, id := range u.ended {
		e.mu.Lock()
		held := e.sched.Alloc(id) != nil || e.sched.Waiting(id) != nil
		e.mu.Unlock()
		if held {
			e.release(id, "agent ended", true)
		}
	}
	type act struct {
		id         int
		used, resv int64
	}
	var start, stop []act
	var stopped []*throttler
	if e.cfg.Usage != nil {
		e.cfg.Usage(u.used, e.cfg.Now())
	}
	e.mu.Lock()
	e.used = u.used
	policy := e.overuse
	for id, used := range u.used {
		var resv int64
		if a := e.sched.Alloc(id); a != nil {
			resv = a.Bytes
		}
		if used > resv && !e.over[id] {
			e.over[id] = true
			start = append(start, act{id, used, resv})
		}
	}
	for id := range e.over {
		var resv int64
		if a := e.sched.Alloc(id); a != nil {
			resv = a.Bytes
		}
		if u.used[id] <= resv {
			if t := e.stopThrottle(id); t != nil {
				stopped = append(stopped, t)
			}
			stop = append(stop, act{id, u.used[id], resv})
		}
	}
	e.mu.Unlock()
	// The excursion ends once a throttle's last thaw is done, so whoever
	// reads over=0 finds the agent thawed.
	wait(stopped...)
	e.mu.Lock()
	for _, a := range stop {
		delete(e.over, a.id)
	}
	e.mu.Unlock()
	sort.Slice(start, func(i, j int) bool { return start[i].id < start[j].id })
	for _, a := range start {
		e.publish("overuse", a.id, bus.F("used", a.used), bus.F("reserved", a.resv), bus.F("action", string(policy)))
		var err error
		switch policy {
		case OverFreeze:
			err = e.cfg.Agents.Freeze(a.id)
		case OverKill:
			err = e.cfg.Agents.Kill(a.id)
		case OverThrottle:
			e.startThrottle(a.id)
		}
		if err != nil {
			e.publish("error", a.id, bus.F("op", string(policy)), bus.F("err", err.Error()))
		}
	}
	for _, a := range stop {
		e.publish("overuse-end", a.id, bus.F("used", a.used), bus.F("reserved", a.resv))
	}
}

// startThrottle freezes the agent for duty of every period and thaws it
// for the rest, until stopThrottle. A frozen CUDA process keeps its memory
// but submits no work, so this cuts its compute, not its footprint.
func (e *Engine) startThrottle(id int) {
	e.mu.Lock()
	if _, ok := e.throttle[id]; ok {
		e.mu.Unlock()
		return
	}
	t := &throttler{stop: make(chan struct{}), done: make(chan struct{})}
	e.throttle[id] = t
	on := time.Duration(float64(e.cfg.Interval) * e.duty)
	off := e.cfg.Interval - on
	e.mu.Unlock()
	go func() {
		defer close(t.done)
		defer e.cfg.Agents.Pause(id, false)
		for {
			e.cfg.Agents.Pause(id, true)
			select {
			case <-t.stop:
				return
			case <-time.After(on):
			}
			e.cfg.Agents.Pause(id, false)
			select {
			case <-t.stop:
				return
			case <-time.After(off):
			}
		}
	}()
}

// stopThrottle ends agent id's throttle, if any, and returns it so the
// caller can wait (without e.mu) for the final thaw. The caller holds e.mu.
func (e *Engine) stopThrottle(id int) *throttler {
	t, ok := e.throttle[id]
	if !ok {
		return nil
	}
	close(t.stop)
	delete(e.throttle, id)
	return t
}

func wait(ts ...*throttler) {
	for _, t := range ts {
		if t != nil {
			<-t.done
		}
	}
}

// Run watches every Interval until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	if e.cfg.Host == nil {
		return
	}
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.Watch()
		}
	}
}

// Close stops every throttle (thawing its agent) and closes NVML.
func (e *Engine) Close() error {
	e.mu.Lock()
	var stopped []*throttler
	for id := range e.throttle {
		stopped = append(stopped, e.stopThrottle(id))
	}
	e.mu.Unlock()
	wait(stopped...)
	if e.cfg.Host != nil {
		return e.cfg.Host.Close()
	}
	return nil
}
