package sched

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"aiosfs/engines/ml"
	"aiosfs/fs"
)

// Bad lines to sched/ctl fail with EINVAL and change nothing.
func TestCtlBadInput(t *testing.T) {
	e := New(Config{NCPU: 2})
	tab := e.Verbs()
	before := e.renderStatus()
	for _, line := range []string{
		"", "bogus", "enforce", "enforce maybe", "enforce on off",
		"buffer", "buffer -1", "buffer 2", "buffer abc", "fall 150%",
		"horizons 5s,1s", "horizons 0s", "horizons 1s,,5s", "horizons 2h", "horizons 1s,2s,3s,4s,5s,6s,7s,8s,9s",
		"interval 1ms", "interval 2h", "interval x", "slice 10ms", "slice 2s", "slice", "slice fast", "warmup -1", "warmup many", "warmup 1000000", "capacity -1", "capacity lots",
		"pin", "pin x ewma", "pin 0 ewma",
		`enforce "on`,
	} {
		err := tab.Exec(context.Background(), fs.RootCaller, line)
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%q: %v, want EINVAL", line, err)
		}
	}
	if after := e.renderStatus(); string(after) != string(before) {
		t.Fatalf("refused lines changed the settings:\n%s\n%s", before, after)
	}
	// Only root may change the scheduler.
	err := tab.Exec(context.Background(), fs.Caller{Uid: 1000}, "enforce on")
	if !errors.Is(err, syscall.EPERM) {
		t.Fatalf("non-root: %v", err)
	}
}

func TestCtlGoodInput(t *testing.T) {
	e := New(Config{NCPU: 2})
	tab := e.Verbs()
	if !strings.HasPrefix(string(e.renderStatus()), "enforce=off ") {
		t.Fatalf("enforcement must be off by default: %s", e.renderStatus())
	}
	for _, line := range []string{"enforce on", "buffer 20%", "fall 0.3", "horizons 500ms,2s,10s", "interval 2s", "capacity 1.5", "slice 50ms", "warmup 0"} {
		if err := tab.Exec(context.Background(), fs.RootCaller, line); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
	}
	s := e.Settings()
	if !s.Enforce || s.Buffer != 0.2 || s.Fall != 0.3 || s.Interval != 2*time.Second || s.Capacity != 1.5 || s.Slice != 50*time.Millisecond || s.Warmup != 0 || len(s.Horizons) != 3 {
		t.Fatalf("settings %+v", s)
	}
	want := "enforce=on buffer=0.200 fall=0.300 interval=2.000 horizons=0.5,2,10 capacity=1.500 slice=0.050 warmup=0 agents=0"
	if got := string(e.renderStatus()); !strings.HasPrefix(got, want) {
		t.Fatalf("status %q, want prefix %q", got, want)
	}
	help := string(tab.Help())
	for _, v := range []string{"enforce on|off", "buffer FRACTION", "horizons", "interval", "capacity", "slice DURATION", "pin AGENT"} {
		if !strings.Contains(help, v) {
			t.Errorf("help lacks %q:\n%s", v, help)
		}
	}
}

func TestParseHorizons(t *testing.T) {
	hs, err := ParseHorizons("1s,5s,30s,60s")
	if err != nil || len(hs) != 4 || hs[3] != time.Minute {
		t.Fatalf("%v %v", hs, err)
	}
	if got := horizonSteps(hs, 0.2); got[0] != 5 || got[3] != 300 {
		t.Fatalf("steps %v", got)
	}
	// Two horizons under one step collapse into one.
	if got := horizonSteps([]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, time.Second}, 1); len(got) != 1 {
		t.Fatalf("collapsed %v", got)
	}
}

func FuzzParseHorizons(f *testing.F) {
	for _, s := range []string{"1s,5s,30s,60s", "0.5", "1h", ",", "1s,1s", "-1s", "1e9s", "NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hs, err := ParseHorizons(s)
		if err != nil {
			if !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("%q: error %v is not EINVAL", s, err)
			}
			return
		}
		if len(hs) == 0 || len(hs) > 8 {
			t.Fatalf("%q: %d horizons", s, len(hs))
		}
		for i, h := range hs {
			if h < 100*time.Millisecond || h > time.Hour || (i > 0 && h <= hs[i-1]) {
				t.Fatalf("%q: bad horizons %v", s, hs)
			}
		}
		steps := horizonSteps(hs, 0.2)
		for i := 1; i < len(steps); i++ {
			if steps[i] <= steps[i-1] {
				t.Fatalf("%q: steps %v", s, steps)
			}
		}
	})
}

func TestSliceFor(t *testing.T) {
	for _, c := range []struct {
		slice time.Duration
		class string
		want  time.Duration
	}{
		{DefaultSlice, ml.Steady, DefaultSlice},
		{DefaultSlice, ml.Periodic, DefaultSlice},
		{DefaultSlice, ml.Sporadic, MinSlice},
		{500 * time.Millisecond, ml.Sporadic, 100 * time.Millisecond},
		{50 * time.Millisecond, ml.Sporadic, MinSlice},
		{50 * time.Millisecond, ml.Growing, 50 * time.Millisecond},
	} {
		if got := SliceFor(c.slice, c.class); got != c.want {
			t.Errorf("SliceFor(%v, %s) = %v, want %v", c.slice, c.class, got, c.want)
		}
	}
}
