package heal

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"aiosfs/engines/telemetry"
)

// Every file the engine renders, every prediction handed out and every
// action taken is the same with PassRemedies on and off, pass by pass:
// idle agents (flat series: the flat-fit shortcut), one that leaks memory
// into its limit (actions, their reasons), one whose fds climb and fall
// back, one with a lull, sampled at the daemon's jittered pass times.
func TestPassRemediesSameOutput(t *testing.T) {
	defer SetPassRemedies(PassRemedies())
	var eng [2]*Engine
	for i := range eng {
		eng[i] = New(Config{})
	}
	t0 := time.Unix(1764000000, 0)
	obs := func(id, k int, now time.Time) Obs {
		s := telemetry.Sample{Time: now, Mem: 8 << 20, FDs: 9, Procs: 1, CPUSeconds: 2}
		o := Obs{MemMax: 64 << 20, FDMax: 1024, PidsMax: 64, DiskUsed: 10 << 30, DiskSize: 100 << 30}
		switch id {
		case 2: // a leak that reaches the limit
			s.Mem += int64(k) * (512 << 10)
			s.CPU, s.CPUSeconds = 0.2, 2+0.2*float64(k)
		case 3: // fds that climb for a while, then hold
			s.FDs += min(k, 90)
		case 4: // busy, then idle from pass 100
			if k < 100 {
				s.CPU, s.CPUSeconds, s.Mem = 0.5, 2+0.5*float64(k), 8<<20+int64(k%7)<<12
			} else {
				s.CPUSeconds = 2 + 0.5*100
			}
		}
		if id == 5 && k > 150 {
			o.MemMax = 32 << 20 // a limit lowered while idle
		}
		o.Sample = s
		return o
	}
	files := func(e *Engine) string {
		var b strings.Builder
		for id := 1; id <= 5; id++ {
			b.WriteString(e.AgentHealth(id))
			for _, p := range e.Predictions(id) {
				fmt.Fprintf(&b, "%v %v %v %v %q %v\n", p.Kind, p.P, p.ETA, p.Source, p.Reason, p.X)
			}
		}
		for _, f := range []func() string{e.Status, e.HealthFile, e.Failures, e.ProceduresFile, e.History, e.Maintenance, e.ForecastFile} {
			b.WriteString(f())
		}
		return b.String()
	}
	for k := range 260 {
		// the daemon's passes: a second apart, a few ms late or early
		now := t0.Add(time.Duration(k)*time.Second + time.Duration((k*37)%11-5)*time.Millisecond)
		var out [2]string
		for i, e := range eng {
			SetPassRemedies(i == 1)
			for id := 1; id <= 5; id++ {
				e.Observe(id, obs(id, k, now))
			}
			var b strings.Builder
			for _, a := range e.Tick(now, Forecast{}) {
				b.WriteString(a.Line())
			}
			out[i] = b.String() + files(e)
		}
		if out[0] != out[1] {
			t.Fatalf("pass %d: remedies off\n%s\non\n%s", k, out[0], out[1])
		}
	}
	if h := eng[1].History(); !strings.Contains(h, "cause=MemoryExhaustion") {
		t.Fatalf("the leak was never acted on, so actions were not compared:\n%s", h)
	}
}
