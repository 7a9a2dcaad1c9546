package gpu

import (
	"errors"
	"reflect"
	"syscall"
	"testing"
	"time"
)

const G = int64(1) << 30

var t0 = time.Unix(1764092400, 0)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// must reserves and fails the test on error; it returns the device or -1
// when the request queued.
func must(t *testing.T, s *Sched, r Request) int {
	t.Helper()
	a, _, err := s.Request(r, at(0))
	if err != nil {
		t.Fatalf("request %+v: %v", r, err)
	}
	if a == nil {
		return -1
	}
	return a.Dev
}

// fourGPUs is 4 devices of 40G with 10G, 30G, 20G and 0G already reserved
// (free 30G, 10G, 20G, 40G) by agents 101..103 pinned to their devices.
func fourGPUs(t *testing.T, p Policy) *Sched {
	s := NewSched([]int64{40 * G, 40 * G, 40 * G, 40 * G})
	s.SetPolicy(p)
	must(t, s, Request{Agent: 101, Bytes: 10 * G, Dev: 0})
	must(t, s, Request{Agent: 102, Bytes: 30 * G, Dev: 1})
	must(t, s, Request{Agent: 103, Bytes: 20 * G, Dev: 2})
	return s
}

func TestPlacementPolicies(t *testing.T) {
	for _, c := range []struct {
		p    Policy
		size int64
		want int
	}{
		{BestFit, 8 * G, 1},  // tightest hole: 10G free
		{BestFit, 15 * G, 2}, // 20G free is the tightest that fits
		{Spread, 8 * G, 3},   // most free: the idle device
		{Pack, 8 * G, 0},     // first with room
		{Pack, 35 * G, 3},    // only the idle one has 35G
		{Predict, 8 * G, 1},  // no predictor: best fit
	} {
		s := fourGPUs(t, c.p)
		if got := must(t, s, Request{Agent: 1, Bytes: c.size, Dev: Any}); got != c.want {
			t.Errorf("%s %dG: placed on %d, want %d", c.p, c.size/G, got, c.want)
		}
	}
}

// predictor is a fixed table of forecasts.
type predictor map[int]int64

func (p predictor) PredictGPU(agent int, _ time.Duration) (int64, bool) {
	b, ok := p[agent]
	return b, ok
}

// Predict counts each reservation at its predicted size and best-fits the
// request's own prediction into what is left.
func TestPredictPolicy(t *testing.T) {
	s := fourGPUs(t, Predict)
	// Agent 101 on gpu 0 (10G reserved) is expected to grow to 28G, so
	// gpu 0 really has 12G of headroom; agent 1 asks 8G but will need 18G.
	s.SetPredictor(predictor{101: 28 * G, 1: 18 * G}, time.Minute)
	if got := must(t, s, Request{Agent: 1, Bytes: 8 * G, Dev: Any}); got != 2 {
		t.Fatalf("predict placed on %d, want 2 (20G free, 18G predicted)", got)
	}
	// Best fit would have taken gpu 1 (10G free) where the 18G cannot grow.
	b := fourGPUs(t, BestFit)
	if got := must(t, b, Request{Agent: 1, Bytes: 8 * G, Dev: Any}); got != 1 {
		t.Fatalf("bestfit placed on %d, want 1", got)
	}
	// Where no device has predicted room, predict spreads.
	s = fourGPUs(t, Predict)
	s.SetPredictor(predictor{1: 60 * G}, time.Minute)
	if got := must(t, s, Request{Agent: 1, Bytes: 8 * G, Dev: Any}); got != 3 {
		t.Fatalf("predict without room placed on %d, want 3", got)
	}
	if s.Horizon() != time.Minute {
		t.Fatalf("horizon %v", s.Horizon())
	}
}

// Waiters are granted by priority, then arrival, strictly in order: a small
// request behind a big one does not overtake it.
func TestQueueGrantOrder(t *testing.T) {
	s := NewSched([]int64{40 * G})
	must(t, s, Request{Agent: 1, Bytes: 30 * G, Dev: Any})
	for _, r := range []Request{
		{Agent: 2, Bytes: 20 * G, Dev: Any},          // waits: 10G free
		{Agent: 3, Bytes: 5 * G, Dev: Any},           // fits, but 2 waits ahead with equal prio
		{Agent: 4, Bytes: 10 * G, Dev: Any, Prio: 5}, // higher prio: may go now (10G free)
		{Agent: 5, Bytes: 25 * G, Dev: 0, Prio: 5},   // waits, ahead of 2 and 3
	} {
		s.Request(r, at(0))
	}
	if a := s.Alloc(4); a == nil {
		t.Fatalf("prio 5 request that fits did not go ahead of lower waiters")
	}
	order := func() []int {
		var out []int
		for _, w := range s.Queue(0) {
			out = append(out, w.Agent)
		}
		return out
	}
	if got := order(); !reflect.DeepEqual(got, []int{5, 2, 3}) {
		t.Fatalf("queue %v, want [5 2 3]", got)
	}
	// Freeing 30G: 5 (25G) goes, then 2 (20G) does not fit in 5G and 3
	// (5G) waits behind it.
	g, err := s.Release(1, at(10))
	if err != nil || len(g) != 1 || g[0].Agent != 5 {
		t.Fatalf("release 1 granted %v %v, want agent 5", g, err)
	}
	if g[0].Since != at(10) || g[0].Queued != at(0) {
		t.Fatalf("grant times %v %v", g[0].Since, g[0].Queued)
	}
	if got := order(); !reflect.DeepEqual(got, []int{2, 3}) {
		t.Fatalf("queue %v, want [2 3]", got)
	}
	g, _ = s.Release(4, at(20)) // 15G free: 2 still does not fit
	if len(g) != 0 {
		t.Fatalf("granted %v with 15G free", g)
	}
	g, _ = s.Release(5, at(30)) // 40G free: 2 then 3
	if len(g) != 2 || g[0].Agent != 2 || g[1].Agent != 3 {
		t.Fatalf("granted %v, want 2 then 3", g)
	}
	if s.Queued() != 0 || s.Reserved(0) != 25*G {
		t.Fatalf("queued %d reserved %d", s.Queued(), s.Reserved(0))
	}
}

// A waiting request that is released leaves its queue, and what it
// blocked is granted.
func TestReleaseWaiter(t *testing.T) {
	s := NewSched([]int64{40 * G})
	must(t, s, Request{Agent: 1, Bytes: 30 * G, Dev: Any})
	s.Request(Request{Agent: 2, Bytes: 20 * G, Dev: Any}, at(0))
	s.Request(Request{Agent: 3, Bytes: 5 * G, Dev: Any}, at(0))
	g, err := s.Release(2, at(1))
	if err != nil || len(g) != 1 || g[0].Agent != 3 {
		t.Fatalf("releasing the head waiter granted %v %v, want agent 3", g, err)
	}
	if _, err := s.Release(2, at(2)); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("second release: %v, want ENOENT", err)
	}
}

// A higher priority takes compute share from lower ones, never memory, and
// gives it back when it goes.
func TestPriorityTakesShare(t *testing.T) {
	s := NewSched([]int64{40 * G})
	must(t, s, Request{Agent: 1, Bytes: 10 * G, Dev: Any, Share: 0.6})
	must(t, s, Request{Agent: 2, Bytes: 10 * G, Dev: Any, Share: 0.4})
	must(t, s, Request{Agent: 3, Bytes: 8 * G, Dev: Any}) // share from memory: 0.2, none left
	if a := s.Alloc(3); a.Asked != 0.2 || a.Eff != 0 {
		t.Fatalf("agent 3 asked %v has %v", a.Asked, a.Eff)
	}
	must(t, s, Request{Agent: 4, Bytes: 10 * G, Dev: Any, Share: 0.5, Prio: 10})
	eff := func(id int) float64 { return round3(s.Alloc(id).Eff) }
	if eff(4) != 0.5 || eff(1) != 0.5 || eff(2) != 0 || eff(3) != 0 {
		t.Fatalf("shares after prio 10: 4=%v 1=%v 2=%v 3=%v", eff(4), eff(1), eff(2), eff(3))
	}
	for id, want := range map[int]int64{1: 10 * G, 2: 10 * G, 3: 8 * G} {
		if s.Alloc(id).Bytes != want {
			t.Fatalf("agent %d lost memory: %d", id, s.Alloc(id).Bytes)
		}
	}
	s.Release(4, at(1))
	if eff(1) != 0.6 || eff(2) != 0.4 || eff(3) != 0 {
		t.Fatalf("shares after release: 1=%v 2=%v 3=%v", eff(1), eff(2), eff(3))
	}
}

// Bad requests fail with the right errno and change nothing.
func TestBadRequests(t *testing.T) {
	s := fourGPUs(t, BestFit)
	must(t, s, Request{Agent: 7, Bytes: 40 * G, Dev: 3})
	s.Request(Request{Agent: 8, Bytes: 40 * G, Dev: 3}, at(0)) // waits
	before := snapshot(s)
	for _, c := range []struct {
		r    Request
		want syscall.Errno
	}{
		{Request{Agent: 1, Bytes: 41 * G, Dev: Any}, syscall.ENOSPC},
		{Request{Agent: 1, Bytes: 41 * G, Dev: 2}, syscall.ENOSPC},
		{Request{Agent: 1, Bytes: G, Dev: 4}, syscall.ENOENT},
		{Request{Agent: 1, Bytes: G, Dev: -5}, syscall.ENOENT},
		{Request{Agent: 1, Bytes: 0, Dev: Any}, syscall.EINVAL},
		{Request{Agent: 7, Bytes: G, Dev: Any}, syscall.EBUSY},
		{Request{Agent: 8, Bytes: G, Dev: Any}, syscall.EBUSY},
	} {
		if _, _, err := s.Request(c.r, at(5)); !errors.Is(err, c.want) {
			t.Errorf("%+v: %v, want %v", c.r, err, c.want)
		}
		if after := snapshot(s); !reflect.DeepEqual(before, after) {
			t.Fatalf("%+v changed state:\n%v\n%v", c.r, before, after)
		}
	}
	if _, err := s.Release(99, at(5)); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("release of nothing: %v", err)
	}
	if _, _, err := NewSched(nil).Request(Request{Agent: 1, Bytes: G, Dev: Any}, at(0)); !errors.Is(err, syscall.ENODEV) {
		t.Errorf("no devices: %v", err)
	}
}

func snapshot(s *Sched) []any {
	out := []any{s.Allocs()}
	for d := 0; d < s.Devices(); d++ {
		out = append(out, s.Queue(d), s.Reserved(d))
	}
	return out
}

// An offline device grants nothing until it is back, then drains its queue.
func TestOffline(t *testing.T) {
	s := NewSched([]int64{40 * G, 40 * G})
	s.SetOffline(0, true, at(0))
	if got := must(t, s, Request{Agent: 1, Bytes: 8 * G, Dev: Any}); got != 1 {
		t.Fatalf("placed on %d with gpu 0 offline", got)
	}
	if got := must(t, s, Request{Agent: 2, Bytes: 8 * G, Dev: 0}); got != -1 {
		t.Fatalf("dev=0 granted on an offline device")
	}
	g := s.SetOffline(0, false, at(1))
	if len(g) != 1 || g[0].Agent != 2 || g[0].Dev != 0 {
		t.Fatalf("online granted %v", g)
	}
}

func TestGrow(t *testing.T) {
	s := NewSched([]int64{40 * G})
	must(t, s, Request{Agent: 1, Bytes: 10 * G, Dev: Any})
	must(t, s, Request{Agent: 2, Bytes: 20 * G, Dev: Any})
	if err := s.Grow(1, 20*G); err != nil || s.Free(0) != 0 {
		t.Fatalf("grow to fill: %v free=%d", err, s.Free(0))
	}
	if err := s.Grow(2, 21*G); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("grow past the device: %v", err)
	}
}

// State and Restore carry reservations, queues and order across a restart.
func TestStateRestore(t *testing.T) {
	s := NewSched([]int64{40 * G, 40 * G})
	s.SetPolicy(Spread)
	must(t, s, Request{Agent: 1, Bytes: 30 * G, Dev: Any, Share: 0.3})
	must(t, s, Request{Agent: 2, Bytes: 30 * G, Dev: Any, Prio: 2})
	s.Request(Request{Agent: 3, Bytes: 20 * G, Dev: 0}, at(1))
	s.Request(Request{Agent: 4, Bytes: 20 * G, Dev: 0, Prio: 1}, at(2))
	st := s.State()
	r := NewSched([]int64{40 * G, 40 * G})
	if dropped := r.Restore(st); len(dropped) != 0 {
		t.Fatalf("dropped %v", dropped)
	}
	if !reflect.DeepEqual(snapshot(r), snapshot(s)) {
		t.Fatalf("restored\n%v\nwant\n%v", snapshot(r), snapshot(s))
	}
	// New requests queue behind the restored ones.
	r.Request(Request{Agent: 5, Bytes: 20 * G, Dev: 0, Prio: 1}, at(3))
	if q := r.Queue(0); len(q) != 3 || q[0].Agent != 4 || q[1].Agent != 5 || q[2].Agent != 3 {
		t.Fatalf("queue after restore %+v", q)
	}
	// A smaller machine drops what no longer fits.
	small := NewSched([]int64{40 * G})
	if dropped := small.Restore(st); len(dropped) != 1 || dropped[0].Agent != 2 {
		t.Fatalf("dropped %+v, want agent 2's (device 1 is gone)", dropped)
	}
}
