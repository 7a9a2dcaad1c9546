package threat

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// What an operator reads (agents/N/threat, threat/alerts' lines,
// threat/trends, threat/predict, threat/status) and the assessments
// themselves are the same with PassRemedies on and off, window by window:
// idle agents (held samples: the same window again and again, scored from
// the memo), a busy one with execs and connections, one that goes idle
// and wakes, at the daemon's jittered pass times.
func TestPassRemediesSameOutput(t *testing.T) {
	defer SetPassRemedies(PassRemedies())
	m, err := Train(synth(600, 8), 1)
	if err != nil {
		t.Fatal(err)
	}
	var eng [2]*Engine
	for i := range eng {
		eng[i] = New(Config{})
		eng[i].SetModel(m, "t")
	}
	observe := func(id, k int, at time.Time) Observation {
		o := Observation{}
		o.Time = at
		o.FDs, o.Procs, o.Threads, o.RSS, o.Mem = 5, 1, 1, 3<<20, 3<<20
		switch {
		case id == 2: // busy: CPU, execs, new peers
			o.CPU, o.FDs, o.Established = 0.3+0.1*float64(k%3), 20, 1
			o.Remotes = []string{fmt.Sprintf("10.0.0.%d:443", k%5)}
			if k%4 == 0 {
				o.Events = []Event{{Kind: EvExec, Path: fmt.Sprintf("/usr/bin/t%d", k%6)}, {Kind: EvFork}, {Kind: EvExit}}
			}
		case id == 3 && (k < 40 || k >= 120 && k < 130): // busy spells
			o.CPU, o.RSS = 0.9, 3<<20+int64(k)<<16
			o.Events = []Event{{Kind: EvExec, Path: "/bin/sh", SetID: k%9 == 0}}
		case id == 4 && k == 70: // one burst of writes
			o.IOWriteRate, o.CPU = 5e6, 0.2
		}
		return o
	}
	for k := range 200 {
		at := t0.Add(time.Duration(k)*time.Second + time.Duration((k*37)%11)*time.Millisecond)
		var out [2]string
		for i, e := range eng {
			SetPassRemedies(i == 1)
			var b strings.Builder
			for id := 1; id <= 4; id++ {
				if a, ok := e.Observe(id, observe(id, k, at)); ok {
					ml := "-"
					if a.ML != nil {
						ml = fmt.Sprintf("%+v", *a.ML)
					}
					fmt.Fprintf(&b, "%s%s%v %v %v ml=%s\n", a.AgentLine(), a.AlertLine(), a.Vector, a.Forecast, a.Rules, ml)
				}
			}
			b.WriteString(TrendsText(e.Trends()))
			b.WriteString(PredictText(e.Trends()))
			b.WriteString(e.Status().StatusText())
			out[i] = b.String()
		}
		if out[0] != out[1] {
			t.Fatalf("pass %d: remedies off\n%s\non\n%s", k, out[0], out[1])
		}
	}
}
