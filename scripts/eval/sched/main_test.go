package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestStepOf(t *testing.T) {
	for name, want := range map[string]float64{
		"day_1.10s.csv.gz":       10,
		"week1.300s.csv.gz":      300,
		"day_3.2.5s.csv":         2.5,
		"periodic_avg_78.csv.gz": 300,
		"day_7.csv":              300,
	} {
		if got := stepOf(name, 300); got != want {
			t.Errorf("%s: step %v, want %v", name, got, want)
		}
	}
}

// Files of the documented layout are found by pattern, in natural order,
// whatever their days or counts.
func TestFilesNaturalOrder(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"day_10.10s.csv.gz", "day_2.10s.csv", "day_1.10s.csv.gz", "other.csv"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := files(dir, "day_*.csv*")
	want := []string{"day_1.10s.csv.gz", "day_2.10s.csv", "day_10.10s.csv.gz"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if filepath.Base(got[i]) != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

// The frontier at a shortfall is the least slack among points with no
// more shortfall.
func TestFrontierAt(t *testing.T) {
	c := &curve{pts: []simResult{
		{over: 30, use: 100, short: 1, steps: 100},  // 0.30 / 0.01
		{over: 20, use: 100, short: 3, steps: 100},  // 0.20 / 0.03
		{over: 10, use: 100, short: 10, steps: 100}, // 0.10 / 0.10
	}}
	for _, tc := range []struct {
		s    float64
		want float64
		i    int
	}{{0.005, 0, -1}, {0.01, 0.30, 0}, {0.05, 0.20, 1}, {1, 0.10, 2}} {
		v, i := c.at(tc.s)
		if i != tc.i || (i >= 0 && v != tc.want) {
			t.Errorf("at %v: %v (point %d), want %v (point %d)", tc.s, v, i, tc.want, tc.i)
		}
	}
	if verdict(0.2004, 0.2001) != "tie" || verdict(0.1, 0.2) != "met" || verdict(0.3, 0.2) != "not met" {
		t.Error("verdict")
	}
}

func TestUsable(t *testing.T) {
	g := usable(group{name: "g", series: []series{
		{name: "short", x: make([]float64, 10)},
		{name: "idle", x: make([]float64, 500)},
		{name: "ok", x: append(make([]float64, 499), 1)},
	}})
	if g.skip != "" || len(g.series) != 1 || g.series[0].name != "ok" {
		t.Fatalf("kept %+v", g)
	}
	if g := usable(group{name: "g", series: []series{{name: "idle", x: make([]float64, 500)}}}); g.skip == "" {
		t.Fatal("a group of idle series is not skipped")
	}
}

// autopilot-ml's default is picked on the first halves: the least slack
// at no more shortfall than autopilot's default there, whatever the
// second halves say; with none as reliable, the most reliable.
func TestMLDefaultFirstHalf(t *testing.T) {
	r := func(slack, sf float64) simResult {
		return simResult{over: slack * 100, use: 100, short: sf * 100, steps: 100}
	}
	ap := &curve{name: "autopilot", def: 0, halves: [2][]simResult{{r(0.5, 0.02)}, {r(0.5, 0.02)}}}
	ml := &curve{name: "autopilot-ml", halves: [2][]simResult{
		{r(0.2, 0.05), r(0.4, 0.02), r(0.6, 0.01), r(0.3, 0.03)},
		{r(0.1, 0.00), r(0.9, 0.09), r(0.9, 0.09), r(0.9, 0.09)},
	}}
	mlDefault([]*curve{ap, ml})
	if ml.def != 1 {
		t.Fatalf("default %d, want 1", ml.def)
	}
	ap.halves[0][0] = r(0.5, 0.001)
	mlDefault([]*curve{ap, ml})
	if ml.def != 2 {
		t.Fatalf("none as reliable: default %d, want 2 (the least shortfall)", ml.def)
	}
}
