package sched

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"aiosfs/engines/agent"
	"aiosfs/engines/ml"
	"aiosfs/engines/telemetry"
)

// say is everything a predictor shows, as text (%v prints NaN, which
// reflect.DeepEqual would not find equal to itself); floats print in
// full, so equal text is bit-for-bit equal figures.
func say(p *ml.Predictor) string {
	return fmt.Sprintf("n=%d peak=%v young=%v pinned=%s pattern=%+v tod=%v recent=%v forecasts=%+v stats=%+v",
		p.N(), p.Peak(), p.Young(ml.WarmSamples), p.Pinned(), p.Pattern(), p.TimeOfDay(), p.Recent(1000), p.Forecasts(), p.ModelStats())
}

// A lazyPred made at any point says exactly what a predictor fed the same
// samples from the start says, then and after: flat stretches, value
// changes, NaN and infinities, samples without a time (a replayed
// history's) and times crossing hours and days (the time-of-day means).
func TestLazyExact(t *testing.T) {
	params := ml.Params{Horizons: []int{1, 5, 30, 60}, Min: 0.01, StepSeconds: 60}
	r := rand.New(rand.NewPCG(7, 7))
	for trial, makeAt := range []int{0, 1, 40, 300, 1700, 2999, -1} {
		want := ml.NewPredictor(params)
		lz := newLazyPred(params)
		now := 1764000000.0 + float64(trial)*1234
		x := 0.0
		for i := range 3000 {
			switch v := r.IntN(100); {
			case v < 3:
				x = r.Float64() * 4 // a change; mostly the value holds
			case v == 3:
				x = math.NaN()
			case v == 4:
				x = math.Inf(1)
			case v < 8 && !math.IsNaN(x) && !math.IsInf(x, 0):
				x = 0
			}
			ts := now + float64(i)*60
			if i < 200 && trial%2 == 1 {
				ts = 0 // a replayed history has no times
			}
			want.Observe(x, ts)
			lz.Observe(x, ts)
			if math.IsNaN(x) || math.IsInf(x, 0) {
				x = 1.5
			}
			if i == makeAt {
				lz.get()
			}
			if lz.N() != want.N() {
				t.Fatalf("trial %d sample %d: N %d, want %d", trial, i, lz.N(), want.N())
			}
			if i%250 == 0 {
				if got, w := fmt.Sprint(lz.Recent(HistoryKeep)), fmt.Sprint(want.Recent(HistoryKeep)); got != w {
					t.Fatalf("trial %d sample %d: Recent differs before it is made", trial, i)
				}
			}
		}
		if makeAt == -1 && lz.Made() {
			// 3000 samples at 60 s span two days: past maxSegs.
			t.Logf("trial %d: made by its bounds", trial)
		}
		if got, w := say(lz.get()), say(want); got != w {
			t.Fatalf("trial %d (made at %d): the lazy predictor says\n%s\nwant\n%s", trial, makeAt, got, w)
		}
	}
}

// An idle agent's series are not made: a start-up blip then zeros, an
// hour of them, stays a few runs and one or two hours.
func TestLazyIdleStaysSmall(t *testing.T) {
	lz := newLazyPred(ml.Params{Horizons: []int{1, 5}, Min: 0.01, StepSeconds: 1})
	lz.Observe(0.3, 1764000000)
	for i := 1; i < 3600; i++ {
		lz.Observe(0, 1764000000+float64(i))
	}
	if lz.Made() || len(lz.runs) != 2 || lz.N() != 3600 {
		t.Fatalf("made=%v runs=%d n=%d, want unmade, 2 runs, 3600", lz.Made(), len(lz.runs), lz.N())
	}
	// Past maxRuns distinct values it is made, and stays made.
	for i := range maxRuns + 1 {
		lz.Observe(float64(i), 1764003600+float64(i))
	}
	if !lz.Made() || lz.N() != 3600+maxRuns+1 {
		t.Fatalf("made=%v n=%d after %d changes", lz.Made(), lz.N(), maxRuns+1)
	}
}

// Path of an idle series (a start-up blip, then one value for longer
// than the pattern window) is forecast flat without making the
// predictor, and that flat forecast is what the made predictor says,
// to within a millionth of a core; a series that still changes is made
// and answered exactly.
func TestLazyPathIdle(t *testing.T) {
	params := ml.Params{Horizons: []int{1, 5, 30, 60}, Min: 0.01, StepSeconds: 1}
	want := ml.NewPredictor(params)
	lz := newLazyPred(params)
	now := 1764000000.0
	for i := range 3600 {
		x := 0.02
		if i < 30 {
			x = 0.9 * float64(i%3) // the start-up blip
		}
		want.Observe(x, now+float64(i))
		lz.Observe(x, now+float64(i))
	}
	got, w := lz.Path(60), want.Path(60)
	if lz.Made() {
		t.Fatal("asking an idle series for its path made its predictor")
	}
	for i := range w {
		if math.Abs(got[i]-w[i]) > 1e-6 {
			t.Fatalf("step %d: flat %v, the predictor says %v", i+1, got[i], w[i])
		}
	}
	busy := newLazyPred(params)
	ref := ml.NewPredictor(params)
	for i := range 300 {
		x := float64(i%7) / 7
		busy.Observe(x, now+float64(i))
		ref.Observe(x, now+float64(i))
	}
	if fmt.Sprint(busy.Path(60)) != fmt.Sprint(ref.Path(60)) || !busy.Made() {
		t.Fatal("a changing series' path is not the made predictor's")
	}
}

// A predictor replayed from a snapshot outside the lock and adopted later,
// with the samples taken meanwhile (timed ones crossing hours, untimed
// ones, value changes), says exactly what get would have made.
func TestLazyAdopt(t *testing.T) {
	params := ml.Params{Horizons: []int{1, 5, 30, 60}, Min: 0.01, StepSeconds: 60}
	for trial, at := range [][2]int{{10, 0}, {10, 1}, {500, 37}, {1500, 400}, {2000, 1}, {2999, 0}} {
		r := rand.New(rand.NewPCG(3, uint64(trial)))
		want := ml.NewPredictor(params)
		lz := newLazyPred(params)
		var snap *lazyPred
		now := 1764000000.0 + float64(trial)*977
		x := 0.0
		for i := range at[0] + at[1] {
			if r.IntN(100) < 4 {
				x = r.Float64() * 3
			}
			ts := now + float64(i)*30
			if i < 50 && i%7 == 3 && trial%2 == 1 {
				ts = 0
			}
			want.Observe(x, ts)
			lz.Observe(x, ts)
			if i == at[0]-1 {
				snap = lz.snapshot()
			}
		}
		if lz.Made() {
			t.Fatalf("trial %d: made before the test makes it", trial)
		}
		p := ml.NewPredictor(params)
		snap.replay(p, 0)
		lz.adopt(p, snap)
		if !lz.Made() {
			t.Fatalf("trial %d: not adopted", trial)
		}
		if got, w := say(lz.get()), say(want); got != w {
			t.Fatalf("trial %d: adopted\n%s\nwant\n%s", trial, got, w)
		}
	}
}

// The first decision after `enforce on` at agents with an hour of idle
// history kept lazily does not make their predictors in the tick, under
// the engine's lock: they are left to makeAside and the agents' limits
// wait for them. Once made aside, they say exactly what predictors made
// in place (PassRemedies off) say, and the next decision sets limits.
func TestFirstDecisionMakesAside(t *testing.T) {
	defer SetPassRemedies(PassRemedies())
	engines := map[bool]*Engine{}
	agents := map[bool]*benchAgents{}
	var now time.Time
	for _, on := range []bool{false, true} {
		SetPassRemedies(on)
		ag := &benchAgents{recs: map[int]*agent.Record{}}
		for id := 1; id <= 3; id++ {
			ag.recs[id] = &agent.Record{ID: id, State: agent.StateRunning, Limits: agent.NoLimits}
		}
		e := New(Config{NCPU: 2, Agents: ag})
		now = hourIdle(e, 3)
		e.mu.Lock()
		e.set.Enforce, e.set.Interval = true, time.Second
		e.mu.Unlock()
		engines[on], agents[on] = e, ag
	}
	release := make(chan struct{})
	finished := make(chan struct{})
	asideHook = func(start bool) {
		if start {
			<-release
		} else {
			close(finished)
		}
	}
	defer func() { asideHook = func(bool) {} }()
	tick := func(on bool, at time.Time) {
		SetPassRemedies(on)
		latest := map[int]telemetry.Sample{}
		for id := 1; id <= 3; id++ {
			latest[id] = telemetry.Sample{Time: at, Mem: 3 << 20}
		}
		engines[on].Tick(at, latest)
	}
	now = now.Add(time.Second)
	tick(false, now)
	tick(true, now)
	on := engines[true]
	on.mu.Lock()
	for id := 1; id <= 3; id++ {
		st := on.agents[id]
		if st.pred[resCPU].Made() || st.pred[resMem].Made() || !st.making {
			t.Errorf("agent %d: predictors made in the tick (cpu %v, mem %v, making %v)", id, st.pred[resCPU].Made(), st.pred[resMem].Made(), st.making)
		}
	}
	on.mu.Unlock()
	if r := agents[true].recs[1].Limits; r != agent.NoLimits {
		t.Errorf("limits set before the predictors were made: %+v", r)
	}
	if r := agents[false].recs[1].Limits; r.CPUMax == 0 {
		t.Errorf("in place: no CPU limit at the first decision: %+v", r)
	}
	// a tick while makeAside runs: its sample is among those adopted
	now = now.Add(time.Second)
	tick(false, now)
	tick(true, now)
	close(release)
	<-finished
	off := engines[false]
	for id := 1; id <= 3; id++ {
		for _, r := range []int{resCPU, resMem} {
			on.mu.Lock()
			got := say(on.agents[id].pred[r].get())
			on.mu.Unlock()
			if w := say(off.agents[id].pred[r].get()); got != w {
				t.Fatalf("agent %d %s: made aside\n%s\nin place\n%s", id, Resources[r], got, w)
			}
		}
	}
	now = now.Add(time.Second)
	tick(true, now)
	if r := agents[true].recs[1].Limits; r.CPUMax == 0 {
		t.Errorf("no CPU limit once the predictors were made: %+v", r)
	}
}
