package gpu

import (
	"fmt"
	"sort"
	"syscall"
	"time"

	"aiosfs/ctl"
	"aiosfs/fs"
)

// Policy chooses a device for a request that may go anywhere (dev=any).
type Policy string

// Placement policies. Ties always go to the lowest device index, so a
// placement is a pure function of the state.
const (
	// BestFit takes the device whose free memory after placing is least:
	// big holes stay whole for big requests.
	BestFit Policy = "bestfit"
	// Spread takes the device with the most free memory (worst fit): load
	// and headroom even out across devices.
	Spread Policy = "spread"
	// Pack takes the lowest-numbered device with room (first fit): idle
	// devices stay idle.
	Pack Policy = "pack"
	// Predict places by predicted demand: every reservation counts as the
	// larger of what it reserved and what the predictor expects its agent
	// to use over the horizon, and the new request is best-fitted against
	// that predicted headroom, so agents that grow find room where they
	// are. Where no device has predicted room it spreads.
	Predict Policy = "predict"
)

// Policies lists the policies in the order help shows them.
var Policies = []Policy{BestFit, Spread, Pack, Predict}

// ParsePolicy reads a policy name.
func ParsePolicy(s string) (Policy, error) {
	for _, p := range Policies {
		if string(p) == s {
			return p, nil
		}
	}
	return "", ctl.Errorf("unknown policy %q (want bestfit, spread, pack or predict)", s)
}

// DemandPredictor forecasts an agent's GPU memory. The scheduler engine
// (engines/sched) satisfies it from what it learns of each agent; ok is
// false where it has no forecast.
type DemandPredictor interface {
	PredictGPU(agent int, horizon time.Duration) (bytes int64, ok bool)
}

// Any is Request.Dev for "any device".
const Any = -1

// Request is one `gpu SIZE [prio=P] [dev=D|any] [share=F]`.
type Request struct {
	Agent int
	Bytes int64
	Prio  int     // higher is more important; -100..100, default 0
	Dev   int     // a device index, or Any
	Share float64 // compute share asked for, 0..1; 0 means proportional to memory
}

// Alloc is a granted reservation.
type Alloc struct {
	Request
	Dev    int       // where it was placed
	Eff    float64   // compute share it has now (priority may have taken some)
	Asked  float64   // compute share it asked for (Share, or its memory fraction)
	Since  time.Time // granted at
	Queued time.Time // asked at
	seq    uint64
}

// Waiter is a request waiting on a device's queue.
type Waiter struct {
	Request
	On    int // the device whose queue holds it
	Since time.Time
	seq   uint64
}

type device struct {
	index    int
	total    int64
	offline  bool
	reserved int64
	allocs   []*Alloc
	queue    []*Waiter
}

func (d *device) free() int64 { return d.total - d.reserved }

// Sched is the allocation state of a set of devices: reservations, the
// per-device priority queues and compute shares. It does no I/O and reads
// no clock (callers pass now), so the engine and the evaluation replay the
// same code. It is not safe for concurrent use; the engine locks it.
type Sched struct {
	devs    []*device
	policy  Policy
	pred    DemandPredictor
	horizon time.Duration
	seq     uint64
	allocs  map[int]*Alloc
	waiting map[int]*Waiter
}

// NewSched returns a scheduler over devices of the given memory sizes.
func NewSched(totals []int64) *Sched {
	s := &Sched{policy: BestFit, horizon: 5 * time.Minute, allocs: map[int]*Alloc{}, waiting: map[int]*Waiter{}}
	for i, t := range totals {
		s.devs = append(s.devs, &device{index: i, total: t})
	}
	return s
}

// SetPolicy sets the placement policy.
func (s *Sched) SetPolicy(p Policy) { s.policy = p }

// Policy returns the placement policy.
func (s *Sched) Policy() Policy { return s.policy }

// SetPredictor sets the demand predictor and its horizon (nil: none, and
// Predict then behaves as BestFit on reservations).
func (s *Sched) SetPredictor(p DemandPredictor, horizon time.Duration) {
	s.pred = p
	if horizon > 0 {
		s.horizon = horizon
	}
}

// Horizon is how far ahead Predict asks the predictor.
func (s *Sched) Horizon() time.Duration { return s.horizon }

// Devices is the number of devices.
func (s *Sched) Devices() int { return len(s.devs) }

// Total, Reserved and Free are device d's memory in bytes.
func (s *Sched) Total(d int) int64    { return s.devs[d].total }
func (s *Sched) Reserved(d int) int64 { return s.devs[d].reserved }
func (s *Sched) Free(d int) int64     { return s.devs[d].free() }

// Offline reports whether device d takes no new grants.
func (s *Sched) Offline(d int) bool { return s.devs[d].offline }

// Check validates r against the devices without changing anything: the
// size must fit on some device (or on the one named), the device must
// exist, the agent must not hold or wait for another reservation.
func (s *Sched) Check(r Request) error {
	if len(s.devs) == 0 {
		return fs.Errorf(syscall.ENODEV, "gpu: no devices")
	}
	if _, ok := s.allocs[r.Agent]; ok {
		return fs.Errorf(syscall.EBUSY, "gpu: agent %d already holds a reservation (gpu release first)", r.Agent)
	}
	if _, ok := s.waiting[r.Agent]; ok {
		return fs.Errorf(syscall.EBUSY, "gpu: agent %d already waits for a reservation (gpu release first)", r.Agent)
	}
	if r.Bytes <= 0 {
		return ctl.Errorf("gpu: size must be positive")
	}
	if r.Dev != Any {
		if r.Dev < 0 || r.Dev >= len(s.devs) {
			return fs.Errorf(syscall.ENOENT, "gpu: no such device %d (have 0-%d)", r.Dev, len(s.devs)-1)
		}
		if r.Bytes > s.devs[r.Dev].total {
			return fs.Errorf(syscall.ENOSPC, "gpu: %s exceeds device %d's %s", ctl.FormatSize(r.Bytes), r.Dev, ctl.FormatSize(s.devs[r.Dev].total))
		}
		return nil
	}
	var largest int64
	for _, d := range s.devs {
		largest = max(largest, d.total)
	}
	if r.Bytes > largest {
		return fs.Errorf(syscall.ENOSPC, "gpu: %s exceeds every device (largest %s)", ctl.FormatSize(r.Bytes), ctl.FormatSize(largest))
	}
	return nil
}

// Request places r or queues it. It returns the grant, or nil and the
// waiter when r waits. On error nothing has changed.
func (s *Sched) Request(r Request, now time.Time) (*Alloc, *Waiter, error) {
	if err := s.Check(r); err != nil {
		return nil, nil, err
	}
	s.seq++
	if d := s.place(r); d != nil && s.headFree(d, r) {
		return s.grant(d, r, now, now, s.seq), nil, nil
	}
	w := &Waiter{Request: r, On: s.queueFor(r), Since: now, seq: s.seq}
	d := s.devs[w.On]
	d.queue = append(d.queue, w)
	sortQueue(d.queue)
	s.waiting[r.Agent] = w
	return nil, w, nil
}

// headFree is true when r may go on d now without jumping its queue: a
// request may not overtake a waiter of the same or higher priority.
func (s *Sched) headFree(d *device, r Request) bool {
	for _, w := range d.queue {
		if w.Prio >= r.Prio {
			return false
		}
	}
	return true
}

// place picks a device with room for r now, or nil.
func (s *Sched) place(r Request) *device {
	fits := func(d *device) bool { return !d.offline && d.free() >= r.Bytes }
	if r.Dev != Any {
		if d := s.devs[r.Dev]; fits(d) {
			return d
		}
		return nil
	}
	var cands []*device
	for _, d := range s.devs {
		if fits(d) && s.headFree(d, r) {
			cands = append(cands, d)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	switch s.policy {
	case Spread:
		return argBest(cands, func(d *device) int64 { return d.free() })
	case Pack:
		return cands[0]
	case Predict:
		if s.pred != nil {
			want := max(r.Bytes, s.predict(r.Agent))
			var room []*device
			for _, d := range cands {
				if d.total-s.committed(d) >= want {
					room = append(room, d)
				}
			}
			if len(room) > 0 {
				return argBest(room, func(d *device) int64 { return -(d.total - s.committed(d) - want) })
			}
			return argBest(cands, func(d *device) int64 { return d.total - s.committed(d) })
		}
	}
	return argBest(cands, func(d *device) int64 { return -(d.free() - r.Bytes) })
}

// predict is the predictor's forecast for agent, 0 when it has none.
func (s *Sched) predict(agent int) int64 {
	if s.pred == nil {
		return 0
	}
	b, ok := s.pred.PredictGPU(agent, s.horizon)
	if !ok || b < 0 {
		return 0
	}
	return b
}

// committed is d's memory counting each reservation at its predicted size
// when that is larger.
func (s *Sched) committed(d *device) int64 {
	var c int64
	for _, a := range d.allocs {
		c += max(a.Bytes, s.predict(a.Agent))
	}
	return c
}

// argBest returns the device with the highest score, lowest index on ties.
func argBest(ds []*device, score func(*device) int64) *device {
	best := ds[0]
	for _, d := range ds[1:] {
		if score(d) > score(best) {
			best = d
		}
	}
	return best
}

// queueFor is the device whose queue a waiting request joins: the named
// one, or for dev=any the online device (of those large enough) with the
// least memory still to free before it fits, lowest index on ties.
func (s *Sched) queueFor(r Request) int {
	if r.Dev != Any {
		return r.Dev
	}
	best, bestShort := -1, int64(0)
	for _, d := range s.devs {
		if d.total < r.Bytes {
			continue
		}
		short := r.Bytes - d.free()
		for _, w := range d.queue {
			short += w.Bytes // what waits ahead must be freed too
		}
		if d.offline {
			short += 1 << 62
		}
		if best < 0 || short < bestShort {
			best, bestShort = d.index, short
		}
	}
	return best
}

func sortQueue(q []*Waiter) {
	sort.SliceStable(q, func(i, j int) bool {
		if q[i].Prio != q[j].Prio {
			return q[i].Prio > q[j].Prio
		}
		return q[i].seq < q[j].seq
	})
}

func (s *Sched) grant(d *device, r Request, asked, now time.Time, seq uint64) *Alloc {
	a := &Alloc{Request: r, Dev: d.index, Since: now, Queued: asked, seq: seq}
	a.Asked = r.Share
	if a.Asked == 0 {
		a.Asked = float64(r.Bytes) / float64(d.total)
	}
	d.allocs = append(d.allocs, a)
	d.reserved += r.Bytes
	s.allocs[r.Agent] = a
	s.rebalance(d)
	return a
}

// rebalance hands out device d's compute: in priority order (then grant
// order) each reservation gets what it asked for while any is left. So a
// higher-priority grant takes compute from lower ones, and gives it back
// when it goes; memory is never taken, only compute.
func (s *Sched) rebalance(d *device) {
	order := append([]*Alloc(nil), d.allocs...)
	sort.SliceStable(order, func(i, j int) bool {
		if order[i].Prio != order[j].Prio {
			return order[i].Prio > order[j].Prio
		}
		return order[i].seq < order[j].seq
	})
	left := 1.0
	for _, a := range order {
		a.Eff = min(a.Asked, left)
		left -= a.Eff
		if left < 1e-9 {
			left = 0
		}
	}
}

// Release ends agent's reservation or its wait and grants what now fits,
// in queue order. It returns the grants it made.
func (s *Sched) Release(agent int, now time.Time) ([]*Alloc, error) {
	if w, ok := s.waiting[agent]; ok {
		d := s.devs[w.On]
		d.queue = removeW(d.queue, w)
		delete(s.waiting, agent)
		return s.drain(d, now), nil
	}
	a, ok := s.allocs[agent]
	if !ok {
		return nil, fs.Errorf(syscall.ENOENT, "gpu: agent %d holds no reservation", agent)
	}
	d := s.devs[a.Dev]
	for i, x := range d.allocs {
		if x == a {
			d.allocs = append(d.allocs[:i], d.allocs[i+1:]...)
			break
		}
	}
	d.reserved -= a.Bytes
	delete(s.allocs, agent)
	s.rebalance(d)
	return s.drain(d, now), nil
}

func removeW(q []*Waiter, w *Waiter) []*Waiter {
	for i, x := range q {
		if x == w {
			return append(q[:i], q[i+1:]...)
		}
	}
	return q
}

// drain grants device d's waiters strictly in order while the head fits:
// a big request at the head is not starved by small ones behind it.
func (s *Sched) drain(d *device, now time.Time) []*Alloc {
	var out []*Alloc
	for len(d.queue) > 0 && !d.offline {
		w := d.queue[0]
		if d.free() < w.Bytes {
			break
		}
		d.queue = d.queue[1:]
		delete(s.waiting, w.Agent)
		out = append(out, s.grant(d, w.Request, w.Since, now, w.seq))
	}
	return out
}

// Grow raises agent's reservation to bytes on its device if the device has
// the room; it never queues and never takes from others.
func (s *Sched) Grow(agent int, bytes int64) error {
	a, ok := s.allocs[agent]
	if !ok {
		return fs.Errorf(syscall.ENOENT, "gpu: agent %d holds no reservation", agent)
	}
	d := s.devs[a.Dev]
	if extra := bytes - a.Bytes; extra > 0 {
		if d.free() < extra {
			return fs.Errorf(syscall.ENOSPC, "gpu: device %d has %s free, agent %d needs %s more", d.index, ctl.FormatSize(d.free()), agent, ctl.FormatSize(extra))
		}
		d.reserved += extra
		a.Bytes = bytes
	}
	return nil
}

// clone is a deep copy of s: the engine keeps one to put back when a
// change cannot be saved (Engine.transact).
func (s *Sched) clone() *Sched {
	c := *s
	c.allocs = make(map[int]*Alloc, len(s.allocs))
	c.waiting = make(map[int]*Waiter, len(s.waiting))
	c.devs = make([]*device, len(s.devs))
	for i, d := range s.devs {
		nd := *d
		nd.allocs = make([]*Alloc, len(d.allocs))
		for j, a := range d.allocs {
			na := *a
			nd.allocs[j] = &na
			c.allocs[na.Agent] = &na
		}
		nd.queue = make([]*Waiter, len(d.queue))
		for j, w := range d.queue {
			nw := *w
			nd.queue[j] = &nw
			c.waiting[nw.Agent] = &nw
		}
		c.devs[i] = &nd
	}
	return &c
}

// SetOffline stops (or resumes) new grants on device d; bringing it back
// grants what waits on it.
func (s *Sched) SetOffline(d int, off bool, now time.Time) []*Alloc {
	s.devs[d].offline = off
	if off {
		return nil
	}
	return s.drain(s.devs[d], now)
}

// Alloc returns agent's reservation, or nil.
func (s *Sched) Alloc(agent int) *Alloc { return s.allocs[agent] }

// Waiting returns agent's waiting request, or nil.
func (s *Sched) Waiting(agent int) *Waiter { return s.waiting[agent] }

// Allocs returns every reservation by device, then grant order.
func (s *Sched) Allocs() []Alloc {
	var out []Alloc
	for _, d := range s.devs {
		for _, a := range d.allocs {
			out = append(out, *a)
		}
	}
	return out
}

// Queue returns device d's waiters in grant order.
func (s *Sched) Queue(d int) []Waiter {
	out := make([]Waiter, len(s.devs[d].queue))
	for i, w := range s.devs[d].queue {
		out[i] = *w
	}
	return out
}

// Queued is the number of waiting requests.
func (s *Sched) Queued() int { return len(s.waiting) }

func (a Alloc) String() string {
	return fmt.Sprintf("agent %d: %s on gpu %d", a.Agent, ctl.FormatSize(a.Bytes), a.Dev)
}

// Entry is one reservation or waiting request as State records it.
type Entry struct {
	Request
	Granted bool      `json:"granted"`
	On      int       `json:"on"` // device it holds or waits on
	Asked   time.Time `json:"asked"`
	Since   time.Time `json:"since"` // granted at (zero while waiting)
	Seq     uint64    `json:"seq"`
}

// State returns every reservation and waiter in the order they arrived.
func (s *Sched) State() []Entry {
	var out []Entry
	for _, d := range s.devs {
		for _, a := range d.allocs {
			out = append(out, Entry{Request: a.Request, Granted: true, On: a.Dev, Asked: a.Queued, Since: a.Since, Seq: a.seq})
		}
		for _, w := range d.queue {
			out = append(out, Entry{Request: w.Request, On: w.On, Asked: w.Since, Seq: w.seq})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// Restore puts back what State returned (on a fresh Sched): grants on
// the devices they held, waiters on their queues, arrival order kept.
// Entries that no longer fit (a device gone or smaller) are returned
// unrestored.
func (s *Sched) Restore(es []Entry) (dropped []Entry) {
	sort.Slice(es, func(i, j int) bool { return es[i].Seq < es[j].Seq })
	for _, e := range es {
		_, held := s.allocs[e.Agent]
		_, waits := s.waiting[e.Agent]
		if e.On < 0 || e.On >= len(s.devs) || held || waits || e.Bytes <= 0 || e.Bytes > s.devs[e.On].total {
			dropped = append(dropped, e)
			continue
		}
		d := s.devs[e.On]
		s.seq = max(s.seq, e.Seq)
		if e.Granted {
			if d.free() < e.Bytes {
				dropped = append(dropped, e)
				continue
			}
			s.grant(d, e.Request, e.Asked, e.Since, e.Seq)
			continue
		}
		w := &Waiter{Request: e.Request, On: e.On, Since: e.Asked, seq: e.Seq}
		d.queue = append(d.queue, w)
		sortQueue(d.queue)
		s.waiting[e.Agent] = w
	}
	return dropped
}
