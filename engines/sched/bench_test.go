package sched

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"aiosfs/engines/agent"
	"aiosfs/engines/agent/view"
	"aiosfs/engines/ml"
	"aiosfs/engines/telemetry"
)

// BenchmarkObserve is one agent's update plus forecast for one resource:
// score the due predictions, update six forecasters, predict four
// horizons, reweight the ensemble (the amortised period/pattern pass
// included).
func BenchmarkObserve(b *testing.B) {
	pr := ml.NewPredictor(ml.Params{Horizons: []int{1, 5, 30, 60}, Min: 0.01, StepSeconds: 1})
	x := sine(4096, 37, 1, 2, 0.2, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pr.Observe(x[i&4095], 0)
	}
}

// BenchmarkTick1000 is one whole sampler tick with 1,000 agents (four
// resources each, enforcement off, so prediction only) on one core.
func BenchmarkTick1000(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	e := New(Config{NCPU: 2})
	r := rand.New(rand.NewPCG(1, 1))
	latest := make(map[int]telemetry.Sample, 1000)
	now := time.Unix(1764000000, 0)
	for id := 1; id <= 1000; id++ {
		latest[id] = telemetry.Sample{Time: now, CPU: r.Float64(), Mem: int64(r.IntN(1 << 30)), IOReadRate: r.Float64() * 1e6}
	}
	// Warm every agent past its first windows so the steady cost shows.
	for i := 0; i < 300; i++ {
		e.Tick(now, latest)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Second)
		for id, s := range latest {
			s.Time = now
			s.CPU = r.Float64()
			latest[id] = s
		}
		e.Tick(now, latest)
	}
}

// BenchmarkSaveHistory1000 is one save of the predictors' history (512
// samples × 4 resources of 1,000 agents, JSON, written through a rename),
// what the daemon does once a minute.
func BenchmarkSaveHistory1000(b *testing.B) {
	e := New(Config{NCPU: 2, StateFile: b.TempDir() + "/sched.json"})
	r := rand.New(rand.NewPCG(1, 1))
	latest := make(map[int]telemetry.Sample, 1000)
	now := time.Unix(1764000000, 0)
	for i := 0; i < ml.WarmSamples*2; i++ {
		for id := 1; id <= 1000; id++ {
			latest[id] = telemetry.Sample{Time: now, CPU: r.Float64(), Mem: int64(r.IntN(1 << 30)), IOReadRate: r.Float64() * 1e6}
		}
		e.Tick(now, latest)
		now = now.Add(time.Second)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.SaveHistory(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchAgents stands in for the agent registry in the enforcement
// benchmark: records of running agents, and Apply keeping the limits it is
// given (what the daemon's *agent.Engine does minus the cgroup write, which
// costs one write(2) per changed limit).
type benchAgents struct{ recs map[int]*agent.Record }

func (b *benchAgents) Info(id int) (view.Info, error) {
	r, ok := b.recs[id]
	if !ok {
		return view.Info{ID: id}, nil
	}
	return view.Info{ID: r.ID, Name: r.Name, State: r.State, Alive: r.Alive(), Uid: r.Uid, Gid: r.Gid,
		Prio: r.Prio, CapAdd: r.CapAdd, Limits: r.Limits}, nil
}

func (b *benchAgents) Apply(id int, l view.Limit, _ string) error {
	r := b.recs[id]
	switch l.Key {
	case "cpumax":
		r.Limits.CPUMax = l.Value.(float64)
	case "memmax":
		r.Limits.MemMax = l.Value.(int64)
	case "memhigh":
		r.Limits.MemHigh = l.Value.(int64)
	case "weight":
		r.Limits.Weight = l.Value.(uint64)
	case "cpus":
		r.Limits.Cpus = l.Value.(string)
	case "cpuperiod":
		r.Limits.CPUPeriod = l.Value.(time.Duration)
	}
	return nil
}

// BenchmarkTick1000Enforce is BenchmarkTick1000 with enforcement on and
// a decision every tick: prediction, allocation, fair share, core plans
// and the limits handed to Apply, for 1,000 agents on one core.
func BenchmarkTick1000Enforce(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ag := &benchAgents{recs: map[int]*agent.Record{}}
	for id := 1; id <= 1000; id++ {
		ag.recs[id] = &agent.Record{ID: id, State: agent.StateRunning, Limits: agent.NoLimits}
	}
	e := New(Config{NCPU: 2, Agents: ag})
	e.set.Enforce, e.set.Interval = true, time.Second
	r := rand.New(rand.NewPCG(1, 1))
	latest := make(map[int]telemetry.Sample, 1000)
	now := time.Unix(1764000000, 0)
	tick := func() {
		now = now.Add(time.Second)
		for id := 1; id <= 1000; id++ {
			latest[id] = telemetry.Sample{Time: now, CPU: r.Float64(), Mem: int64(r.IntN(1 << 30)), IOReadRate: r.Float64() * 1e6}
		}
		e.Tick(now, latest)
	}
	for i := 0; i < 300; i++ {
		tick()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tick()
	}
	b.StopTimer()
	if e.decisions == 0 || e.changes == 0 {
		b.Fatalf("no decisions (%d) or no limits applied (%d)", e.decisions, e.changes)
	}
}

// BenchmarkRestoreHistory1000 is the cost of warming 1,000 agents'
// predictors from their saved history (512 samples × 4 resources each,
// replayed in the background), and how long Restore itself takes, which
// is what delays the daemon's start.
func BenchmarkRestoreHistory1000(b *testing.B) {
	file := b.TempDir() + "/sched.json"
	e := New(Config{NCPU: 2, StateFile: file})
	r := rand.New(rand.NewPCG(1, 1))
	latest := make(map[int]telemetry.Sample, 1000)
	now := time.Unix(1764000000, 0)
	for i := 0; i < HistoryKeep; i++ {
		for id := 1; id <= 1000; id++ {
			latest[id] = telemetry.Sample{Time: now, CPU: r.Float64(), Mem: int64(r.IntN(1 << 30)), IOReadRate: r.Float64() * 1e6}
		}
		e.Tick(now, latest)
		now = now.Add(time.Second)
	}
	if err := e.SaveHistory(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var returned time.Duration
	for i := 0; i < b.N; i++ {
		e2 := New(Config{NCPU: 2, StateFile: file})
		t0 := time.Now()
		err := e2.Restore()
		returned += time.Since(t0) // what delays the daemon's start
		e2.waitWarm()
		if err != nil || len(e2.agents) != 1000 {
			b.Fatalf("restore: %v, %d agents", err, len(e2.agents))
		}
	}
	b.ReportMetric(float64(returned.Nanoseconds())/float64(b.N), "ns-until-Restore-returns/op")
}

// BenchmarkTickIdle200 is one tick with 200 idle agents: every sample
// held (CPU 0, the same CPU seconds and memory, no I/O), as the daemon's
// passes are for the bench's idle agents.
func BenchmarkTickIdle200(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	e := New(Config{NCPU: 2})
	latest := make(map[int]telemetry.Sample, 200)
	now := time.Unix(1764000000, 0)
	for id := 1; id <= 200; id++ {
		latest[id] = telemetry.Sample{Time: now, CPUSeconds: 1.5, Mem: 3 << 20, RSS: 3 << 20, Procs: 1}
	}
	for i := 0; i < 300; i++ {
		now = now.Add(time.Second)
		for id, s := range latest {
			s.Time = now
			latest[id] = s
		}
		e.Tick(now, latest)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Second)
		for id, s := range latest {
			s.Time = now
			latest[id] = s
		}
		e.Tick(now, latest)
	}
}

// BenchmarkHeap200 is the live heap of the engine after an hour of 200
// agents at 1 s sampling (3,600 ticks), with every predictor made at the
// agent's first sample (eager, as before lazyPred) and made when needed
// (lazy), enforcement off as in the daemon's default. "idle" agents are
// the bench's: a start-up blip of CPU, then zeros, memory that moves a
// page at every tenth sample (a full sample of a held agent), no I/O;
// "busy" agents' CPU and memory change at every sample. Each op is the
// whole hour; MB-live is the heap the engine holds after a GC, and
// ms-tick the mean tick.
//
//	go test -run '^$' -bench Heap200 -benchtime 1x -count 3 ./engines/sched/
func BenchmarkHeap200(b *testing.B) {
	for _, kind := range []string{"idle", "busy"} {
		for _, eager := range []bool{true, false} {
			name := kind + "/lazy"
			if eager {
				name = kind + "/eager"
			}
			b.Run(name, func(b *testing.B) {
				defer func(v bool) { eagerPredictors = v }(eagerPredictors)
				eagerPredictors = eager
				var live, tick float64
				for range b.N {
					l, t := heapHour(kind == "busy")
					live += l
					tick += t
				}
				b.ReportMetric(live/float64(b.N)/1e6, "MB-live")
				b.ReportMetric(tick/float64(b.N)*1e3, "ms-tick")
			})
		}
	}
}

// heapHour runs the hour of BenchmarkHeap200 and returns the engine's
// live heap in bytes and the mean tick in seconds.
func heapHour(busy bool) (live, tick float64) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	e := New(Config{NCPU: 2})
	r := rand.New(rand.NewPCG(1, 1))
	latest := make(map[int]telemetry.Sample, 200)
	now := time.Unix(1764000000, 0)
	for id := 1; id <= 200; id++ {
		latest[id] = telemetry.Sample{Time: now, CPU: 0.05, CPUSeconds: 0.05, Mem: 3 << 20, RSS: 3 << 20, Procs: 1}
	}
	start := time.Now()
	for i := range 3600 {
		now = now.Add(time.Second)
		for id, s := range latest {
			s.Time = now
			switch {
			case busy:
				s.CPU = r.Float64()
				s.Mem = 3<<20 + int64(r.IntN(1<<20))
			default:
				s.CPU = 0
				if i%10 == 0 {
					s.Mem = 3<<20 + int64(r.IntN(4))*4096
				}
			}
			latest[id] = s
		}
		e.Tick(now, latest)
	}
	tick = time.Since(start).Seconds() / 3600
	runtime.GC()
	runtime.ReadMemStats(&m1)
	runtime.KeepAlive(e)
	return float64(m1.HeapAlloc) - float64(m0.HeapAlloc), tick
}

// BenchmarkMakeIdleHour is what making one predictor costs when it is
// first needed (a decision with enforcement on, a read of the agent's
// sched files) after an hour of an idle agent's samples kept lazily: the
// replay of 3,600 samples, a blip and then zeros.
//
//	go test -run '^$' -bench MakeIdleHour -count 3 ./engines/sched/
func BenchmarkMakeIdleHour(b *testing.B) {
	p := ml.Params{Horizons: horizonSteps([]time.Duration{time.Second, 5 * time.Second, 30 * time.Second, time.Minute}, 1), Min: 0.01, StepSeconds: 1}
	for range b.N {
		b.StopTimer()
		l := newLazyPred(p)
		l.Observe(0.3, 1764000000)
		for i := 1; i < 3600; i++ {
			l.Observe(0, 1764000000+float64(i))
		}
		b.StartTimer()
		l.get()
	}
}

// hourIdle gives every agent of e an hour of an idle agent's samples at
// 1 s (a start-up blip, then zeros; memory moving a page now and then),
// kept lazily, and returns the time of the last.
func hourIdle(e *Engine, n int) time.Time {
	latest := make(map[int]telemetry.Sample, n)
	now := time.Unix(1764000000, 0)
	r := rand.New(rand.NewPCG(1, 1))
	for id := 1; id <= n; id++ {
		latest[id] = telemetry.Sample{Time: now, CPU: 0.3, CPUSeconds: 0.3, Mem: 3 << 20, RSS: 3 << 20, Procs: 1}
	}
	for i := range 3600 {
		now = now.Add(time.Second)
		for id := 1; id <= n; id++ { // in order: the same draws for the same agent in every engine
			s := latest[id]
			s.Time, s.CPU = now, 0
			if i%10 == 0 {
				s.Mem = 3<<20 + int64(r.IntN(4))*4096
			}
			latest[id] = s
		}
		e.Tick(now, latest)
	}
	return now
}

// BenchmarkFirstDecisionHour200 is the tick that takes the first
// decision after `enforce on` at 200 agents with an hour of idle history
// each, kept lazily: "inline" makes their CPU and memory predictors under
// the engine's lock in that tick, as before; "aside" leaves them to
// makeAside (ms-aside: how long it took to make them all, while ticks
// went on).
//
//	go test -run '^$' -bench FirstDecisionHour200 -benchtime 1x -count 3 ./engines/sched/
func BenchmarkFirstDecisionHour200(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "inline"
		if on {
			name = "aside"
		}
		b.Run(name, func(b *testing.B) {
			defer SetPassRemedies(PassRemedies())
			SetPassRemedies(on)
			var tick, aside time.Duration
			for range b.N {
				ag := &benchAgents{recs: map[int]*agent.Record{}}
				for id := 1; id <= 200; id++ {
					ag.recs[id] = &agent.Record{ID: id, State: agent.StateRunning, Limits: agent.NoLimits}
				}
				e := New(Config{NCPU: 2, Agents: ag})
				now := hourIdle(e, 200)
				done := make(chan time.Time, 1)
				asideHook = func(start bool) {
					if !start {
						done <- time.Now()
					}
				}
				e.mu.Lock()
				e.set.Enforce, e.set.Interval = true, time.Second
				e.mu.Unlock()
				latest := map[int]telemetry.Sample{}
				for id := 1; id <= 200; id++ {
					latest[id] = telemetry.Sample{Time: now.Add(time.Second), Mem: 3 << 20}
				}
				start := time.Now()
				e.Tick(now.Add(time.Second), latest)
				tick += time.Since(start)
				if on {
					aside += (<-done).Sub(start)
				}
				asideHook = func(bool) {}
			}
			b.ReportMetric(tick.Seconds()*1e3/float64(b.N), "ms-tick")
			b.ReportMetric(aside.Seconds()*1e3/float64(b.N), "ms-aside")
		})
	}
}
