package sched

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"aiosfs/engines/bus"
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
	root := e.persisting(e.Verbs())
	run(root, "enforce on")
	run(root, "buffer 0.2")
	run(root, "horizons 1s,10s")
	run(root, "slice 40ms")
	run(e.persisting(e.AgentVerbs(3)), "sched manual")
	run(e.persisting(e.AgentVerbs(4)), "forecaster ewma")
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
	if !s.Enforce || s.Buffer != 0.2 || len(s.Horizons) != 2 || s.Horizons[1] != 10*time.Second || s.Slice != 40*time.Millisecond {
		t.Fatalf("restored settings %+v", s)
	}
	if !e2.agents[3].manual || e2.agents[4].pin != "ewma" || e2.agents[4].manual {
		t.Fatalf("restored agents: 3 manual=%v, 4 pin=%q", e2.agents[3].manual, e2.agents[4].pin)
	}

	// A file from before slices were settable gets the default slice.
	old := filepath.Join(t.TempDir(), "old.json")
	os.WriteFile(old, []byte(`{"settings":{"Enforce":true,"Buffer":0.15,"Fall":0.45,"Horizons":[1000000000],"Interval":5000000000,"Capacity":2}}`), 0600)
	e3 := New(Config{NCPU: 2, StateFile: old})
	if err := e3.Restore(); err != nil || e3.Settings().Slice != DefaultSlice || !e3.Settings().Enforce {
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
