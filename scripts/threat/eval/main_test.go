package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"aiosfs/engines/threat"
	"aiosfs/engines/threat/dataset"
)

func load(t *testing.T) []dataset.Row {
	t.Helper()
	f, err := os.Open("../../../testdata/threat/windows.csv")
	if err != nil {
		t.Skip("no recorded data set:", err)
	}
	defer f.Close()
	rows, err := dataset.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// The committed data set replays in seconds and the learned detector
// keeps what docs/threat.md reports: every attack run detected, most
// benign runs silent.
func TestEvalOnRecordedData(t *testing.T) {
	rows := load(t)
	rep, err := Evaluate(rows, 1)
	if err != nil {
		t.Fatal(err)
	}
	all := func(*Run) bool { return true }
	ml := rep.Stats("ml", all)
	if ml.AttackRuns < 20 || ml.BenignRuns < 20 {
		t.Fatalf("%d attack and %d benign runs", ml.AttackRuns, ml.BenignRuns)
	}
	if ml.rate() < 0.95 {
		t.Errorf("ml detects %d/%d attack runs", ml.Detected, ml.AttackRuns)
	}
	if ml.BenignAlarmRuns > ml.BenignRuns/5 {
		t.Errorf("ml alarms on %d/%d benign runs", ml.BenignAlarmRuns, ml.BenignRuns)
	}
	var b bytes.Buffer
	rep.Print(&b)
	for _, d := range Detectors {
		if !strings.Contains(b.String(), "| "+d+" |") {
			t.Errorf("report lacks %s", d)
		}
	}
	// deterministic under the seed
	rep2, _ := Evaluate(rows, 1)
	var b2 bytes.Buffer
	rep2.Print(&b2)
	cut := func(s string) string { return s[strings.Index(s, "\n"):] } // first line has the training time
	if cut(b.String()) != cut(b2.String()) {
		t.Fatal("two evaluations with one seed differ")
	}
}

func TestDatasetRoundTrip(t *testing.T) {
	rows := []dataset.Row{{Run: "x-r1", Round: 1, Scenario: "x", Label: threat.DataExfiltration, Window: 0, TEnd: 0.5}}
	rows[0].V[3] = 1.5
	var b bytes.Buffer
	if err := dataset.Write(&b, rows); err != nil {
		t.Fatal(err)
	}
	got, err := dataset.Read(&b)
	if err != nil || len(got) != 1 || got[0].V != rows[0].V || got[0].Label != threat.DataExfiltration {
		t.Fatalf("%v %+v", err, got)
	}
	if _, err := dataset.Read(strings.NewReader("run,round\n")); err == nil {
		t.Fatal("foreign header accepted")
	}
}

func TestEvaluateNeedsTwoRounds(t *testing.T) {
	rows := []dataset.Row{{Run: "x-r1", Round: 1, Scenario: "x"}}
	if _, err := Evaluate(rows, 1); err == nil {
		t.Fatal("one round evaluated")
	}
}
