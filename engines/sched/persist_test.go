package sched

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aiosfs/engines/bus"
	"aiosfs/engines/ml"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
)

// Settings and agents' modes written through the ctl files survive a
// restart; a refused line saves nothing.
func TestSettingsSurviveRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sched.json")
	cfg := Config{Bus: bus.New(16), NCPU: 2, StateFile: file}
	e := New(cfg)
	ctx := context.Background()
	run := func(tab interface {
		Exec(context.Context, fs.Caller, string) error
	}, line string) {
		t.Helper()
		if err := tab.Exec(ctx, fs.RootCaller, line); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	root := e.Verbs()
	run(root, "enforce on")
	run(root, "buffer 0.2")
	run(root, "horizons 1s,10s")
	run(root, "slice 40ms")
	run(root, "warmup 0")
	run(e.AgentVerbs(3), "sched manual")
	run(e.AgentVerbs(4), "forecaster ewma")
	before, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Exec(ctx, fs.RootCaller, "buffer 7"); err == nil {
		t.Fatal("buffer 7 accepted")
	}
	if after, _ := os.ReadFile(file); string(after) != string(before) {
		t.Fatal("a refused line rewrote the saved state")
	}

	e2 := New(cfg)
	if err := e2.Restore(); err != nil {
		t.Fatal(err)
	}
	s := e2.Settings()
	if !s.Enforce || s.Buffer != 0.2 || len(s.Horizons) != 2 || s.Horizons[1] != 10*time.Second || s.Slice != 40*time.Millisecond || s.Warmup != 0 {
		t.Fatalf("restored settings %+v", s)
	}
	if !e2.agents[3].manual || e2.agents[4].pin != "ewma" || e2.agents[4].manual {
		t.Fatalf("restored agents: 3 manual=%v, 4 pin=%q", e2.agents[3].manual, e2.agents[4].pin)
	}

	// A file from before slices were settable gets the default slice.
	old := filepath.Join(t.TempDir(), "old.json")
	os.WriteFile(old, []byte(`{"settings":{"Enforce":true,"Buffer":0.15,"Fall":0.45,"Horizons":[1000000000],"Interval":5000000000,"Capacity":2}}`), 0600)
	e3 := New(Config{NCPU: 2, StateFile: old})
	if err := e3.Restore(); err != nil || e3.Settings().Slice != DefaultSlice || e3.Settings().Warmup != ml.WarmSamples || !e3.Settings().Enforce {
		t.Fatalf("old file: %v, settings %+v", err, e3.Settings())
	}

	// A first start has no file; a damaged file is an error, not silence.
	if err := New(Config{NCPU: 2, StateFile: filepath.Join(t.TempDir(), "none.json")}).Restore(); err != nil {
		t.Fatalf("first start: %v", err)
	}
	os.WriteFile(file, []byte("{"), 0600)
	if err := New(cfg).Restore(); err == nil {
		t.Fatal("a damaged state file restored without error")
	}
}

// The predictors' history survives a restart: a periodic series learned
// before SaveHistory is forecast by the new engine as by the old one,
// where a fresh engine knows nothing; the adapted buffer and the floor an
// OOM kill taught come back too.
func TestHistorySurvivesRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sched.json")
	cfg := Config{Bus: bus.New(16), NCPU: 2, StateFile: file}
	e := New(cfg)
	st := e.newState()
	e.agents[7] = st
	for i := 0; i < 600; i++ {
		x := 0.1
		if i%20 < 10 {
			x = 0.9
		}
		for _, p := range st.pred {
			p.Observe(x, 0)
		}
	}
	st.cpu = Alloc{Value: 1.1, Buffer: 0.07, Floor: 0.8, Reason: ReasonThrottle, adapted: true}
	st.memMax = Alloc{Value: 300 << 20, Floor: 300 << 20, Reason: ReasonOOM, adapted: true}
	if err := e.SaveHistory(); err != nil {
		t.Fatal(err)
	}

	e2 := New(cfg)
	if err := e2.Restore(); err != nil {
		t.Fatal(err)
	}
	// The replay runs in the background; a sample the agent takes
	// meanwhile follows its saved ones, whichever comes first.
	e2.Tick(time.Unix(1764000000, 0), map[int]telemetry.Sample{7: {Time: time.Unix(1764000000, 0), CPU: 0.9}})
	e2.waitWarm()
	st2 := e2.agents[7]
	if n := st2.pred[resCPU].N(); n != HistoryKeep+1 {
		t.Errorf("restored predictor has %d samples, want the %d saved and the new one", n, HistoryKeep)
	}
	if x := st2.pred[resCPU].Recent(1); len(x) != 1 || x[0] != 0.9 {
		t.Errorf("newest sample %v, want the one taken after the restart", x)
	}
	if st2 == nil {
		t.Fatal("agent 7's state not restored")
	}
	if p := st2.pred[resCPU].get().Pattern(); p.Class != ml.Periodic || p.Period != 20 {
		t.Errorf("restored pattern %+v, want periodic with period 20", p)
	}
	// The next 60 steps, forecast one step ahead by the engine that never
	// stopped, the restored one and one started from nothing: the
	// restored one must be about as good as the first, far better than
	// the last (replaying the last HistoryKeep samples rebuilds the models
	// from those alone, so not bit for bit).
	// Sample 600 (0.9), which the restored engine took through Tick
	// above, goes to the other two as well.
	freshPred := e.newState().pred[resCPU]
	st.pred[resCPU].Observe(0.9, 0)
	freshPred.Observe(0.9, 0)
	var errCont, errRest, errFresh float64
	for i := 601; i < 661; i++ {
		x := 0.1
		if i%20 < 10 {
			x = 0.9
		}
		errCont += math.Abs(x - st.pred[resCPU].get().Forecasts()[0].Point)
		errRest += math.Abs(x - st2.pred[resCPU].get().Forecasts()[0].Point)
		errFresh += math.Abs(x - freshPred.get().Forecasts()[0].Point)
		for _, p := range []*ml.Predictor{st.pred[resCPU].get(), st2.pred[resCPU].get(), freshPred.get()} {
			p.Observe(x, 0)
		}
	}
	t.Logf("one-step MAE over 60 steps after the restart: continuous %.4f, restored %.4f, fresh %.4f", errCont/60, errRest/60, errFresh/60)
	if errRest > 2*errCont+0.6 || errRest > errFresh/2 {
		t.Errorf("restored predictor's error %.3f: continuous %.3f, fresh %.3f", errRest/60, errCont/60, errFresh/60)
	}
	if st2.cpu.Buffer != 0.07 || st2.cpu.Floor != 0.8 || !st2.cpu.adapted || st2.memMax.Floor != 300<<20 {
		t.Errorf("restored allocations cpu %+v memmax %+v", st2.cpu, st2.memMax)
	}
	// A fresh engine (no history) has nothing to forecast from.
	fresh := New(Config{NCPU: 2, StateFile: filepath.Join(t.TempDir(), "none.json")})
	if err := fresh.Restore(); err != nil || len(fresh.agents) != 0 {
		t.Fatalf("fresh engine: %v, %d agents", err, len(fresh.agents))
	}
	// History taken at another sampling step is not replayed; a damaged
	// file is an error.
	other := New(Config{NCPU: 2, StateFile: file, Tel: nil})
	b, _ := os.ReadFile(file + ".history")
	os.WriteFile(file+".history", []byte(strings.Replace(string(b), `"step":1`, `"step":0.2`, 1)), 0600)
	if err := other.Restore(); err != nil || len(other.agents) != 0 {
		t.Errorf("history at another step: %v, %d agents restored", err, len(other.agents))
	}
	os.WriteFile(file+".history", []byte("{"), 0600)
	if err := New(cfg).Restore(); err == nil {
		t.Error("a damaged history file restored without error")
	}
}
