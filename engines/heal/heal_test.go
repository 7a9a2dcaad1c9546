package heal

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"aiosfs/engines/telemetry"
)

var t0 = time.Unix(1764795600, 0)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func obs(s float64, mem int64, fds int, cpu float64, cpuSec float64) Obs {
	return Obs{Sample: telemetry.Sample{Time: at(s), Mem: mem, FDs: fds, CPU: cpu, CPUSeconds: cpuSec, Procs: 1},
		MemMax: 64 << 20, FDMax: 1024, PidsMax: 100}
}

// A leak heading for memory.max is acted on before it gets there, the
// OOM kill is recorded as predicted with its lead.
func TestLeakPredictedBeforeOOM(t *testing.T) {
	e := New(Config{})
	var first *Action
	var s float64
	for s = 0; s < 60; s += 0.5 {
		mem := int64(8<<20) + int64(s*float64(1<<20)) // 1 MiB/s, limit at 56 s
		e.Observe(1, obs(s, mem, 10, 0.2, s*0.2))
		for _, a := range e.Tick(at(s), Forecast{}) {
			if a.Cause == "MemoryExhaustion" && first == nil {
				a := a
				first = &a
			}
		}
		if mem >= 64<<20 {
			break
		}
	}
	if first == nil {
		t.Fatal("no action before the limit")
	}
	lead := s - first.Time.Sub(t0).Seconds()
	if lead < 30 || first.Procedure == "" || first.Outcome != "pending" {
		t.Fatalf("lead %.1fs action %+v", lead, first)
	}
	e.Event(Event{Time: at(s), Agent: 1, Type: OOMKilled})
	e.Event(Event{Time: at(s), Agent: 1, Type: Exited, Signal: 9}) // the kill's exit: the same failure
	fs := e.Failures()
	if strings.Count(fs, "\n") != 1 || !strings.Contains(fs, "kind=MemoryExhaustion predicted=1") {
		t.Fatalf("failures: %q", fs)
	}
	if !strings.Contains(e.History(), "outcome=failed") {
		t.Fatalf("the recovery that did not prevent it is not failed:\n%s", e.History())
	}
	if !strings.Contains(e.AgentHealth(1), "trend=Critical") {
		t.Fatalf("health: %s", e.AgentHealth(1))
	}
}

// A recovery that only postpones the failure (a leaker restarted grows
// again) is judged failed when its failure is predicted again, after the
// prediction had cleared, and a second recovery comes before the limit,
// not two minutes later (its verification time), when the first would
// have blocked it until the OOM kill.
func TestRecurringLeakActedOnAgain(t *testing.T) {
	e := New(Config{})
	var acts []Action
	base, from := 0.0, int64(8<<20)
	for s := 0.0; s < 200; s += 0.5 {
		mem := from + int64((s-base)*float64(1<<20)) // 1 MiB/s
		if mem >= 64<<20 {
			t.Fatalf("reached the limit at %.1fs with %d recoveries:\n%s", s, len(acts), e.History())
		}
		e.Observe(1, obs(s, mem, 10, 0.2, s*0.2))
		for _, a := range e.Tick(at(s), Forecast{}) {
			if a.Cause == "MemoryExhaustion" {
				acts = append(acts, a)
				base = s + 1 // the recovery: a restart 1 s later, from 8 MiB again
			}
		}
		if len(acts) == 2 {
			break
		}
	}
	if len(acts) != 2 {
		t.Fatalf("%d recoveries in 200 s of a leak restarted each time; want 2:\n%s", len(acts), e.History())
	}
	if gap := acts[1].Time.Sub(acts[0].Time); gap >= 2*time.Minute {
		t.Fatalf("the second recovery came %v after the first: the first blocked it", gap)
	}
	h := e.History()
	if !strings.Contains(h, fmt.Sprintf("id=%d ", acts[0].ID)) || !strings.Contains(h, "predicted again after the recovery") {
		t.Fatalf("the first recovery is not failed as predicted again:\n%s", h)
	}
	for _, l := range strings.Split(h, "\n") {
		if strings.Contains(l, fmt.Sprintf("id=%d ", acts[0].ID)) && !strings.Contains(l, "outcome=failed") {
			t.Fatalf("first recovery: %s", l)
		}
	}
}

// Healthy agents (steady, a sawtooth that frees, noise) raise no action
// over ten minutes.
func TestHealthyNoAlarm(t *testing.T) {
	e := New(Config{})
	for s := 0.0; s < 600; s += 1 {
		saw := int64(10<<20) + int64(math.Mod(s, 8)*float64(1<<20))
		noise := int64(20<<20) + int64(math.Sin(s*1.7)*float64(2<<20))
		e.Observe(1, obs(s, 20<<20, 12, 0.1, s*0.1))
		e.Observe(2, obs(s, saw, 12, 0.3, s*0.3))
		e.Observe(3, obs(s, noise, 12+int(s)%5, 0.5, s*0.5))
		if acts := e.Tick(at(s), Forecast{}); len(acts) > 0 {
			t.Fatalf("t=%v: %s", s, acts[0].Line())
		}
	}
	if h := e.AgentHealth(1); !strings.HasPrefix(h, "agent=1 score=") || strings.Contains(h, "Critical") {
		t.Fatalf("health %q", h)
	}
	e.Remove(1)
	if n := len(e.Snapshot().Negatives["MemoryExhaustion"]); n < 60 || e.AgentHealth(1) != "" {
		t.Fatalf("negatives %d", n)
	}
}

// A crash looper is restarted at once within the intensity (5 per 10 s)
// and then backs off 10 s, 20 s, 40 s ... capped at 300 s.
func TestCrashLoopBackoff(t *testing.T) {
	e := New(Config{})
	now := 0.0
	var delays []float64
	for i := 0; i < 14; i++ {
		e.Event(Event{Time: at(now), Agent: 5, Type: Started})
		now += 0.2
		acts := e.Event(Event{Time: at(now), Agent: 5, Type: Exited, Code: 1})
		if len(acts) != 1 || acts[0].Steps[0].Verb != VerbRestart {
			t.Fatalf("exit %d: %v", i, acts)
		}
		d := acts[0].At.Sub(acts[0].Time).Seconds()
		delays = append(delays, d)
		now += d
	}
	want := []float64{0, 0, 0, 0, 10, 0, 0, 0, 0, 20}
	for i, w := range want {
		if math.Abs(delays[i]-w) > 1e-9 {
			t.Fatalf("delays %v", delays)
		}
	}
	if n := strings.Count(e.Failures(), "kind=CrashLoop"); n != 1 {
		t.Fatalf("crash loop recorded %d times, want once per loop", n)
	}
	// restart=never: nothing; on-failure: a clean exit is not restarted
	e.SetPolicy(6, Policy{Restart: RestartNever})
	if a := e.Event(Event{Time: at(now), Agent: 6, Type: Exited, Code: 1}); len(a) != 0 {
		t.Fatal(a)
	}
	if a := e.Event(Event{Time: at(now), Agent: 7, Type: Exited}); len(a) != 0 {
		t.Fatal(a)
	}
	// OTP-style intensity 1 per 5 s
	e.SetPolicy(8, Policy{Intensity: 1, Period: 5 * time.Second, BackoffBase: time.Second, BackoffMax: 2 * time.Second})
	e.Event(Event{Time: at(now), Agent: 8, Type: Started})
	a := e.Event(Event{Time: at(now + 1), Agent: 8, Type: Exited, Signal: 9})
	if len(a) != 1 || a[0].At.Sub(a[0].Time) != time.Second {
		t.Fatalf("otp %v", a)
	}
}

func TestBreakerOpensAndEscalates(t *testing.T) {
	e := New(Config{Verify: time.Second})
	s := 0.0
	for i := 0; i < 5; i++ {
		// a leak each time; the recovery never helps
		e.Event(Event{Time: at(s), Agent: 1, Type: Started})
		for m := 0.0; m < 30; m += 0.5 {
			e.Observe(1, obs(s, int64(40<<20)+int64(m*float64(1<<20)), 10, 0.2, s))
			e.Tick(at(s), Forecast{})
			s += 0.5
		}
		e.Event(Event{Time: at(s), Agent: 1, Type: OOMKilled})
	}
	if !strings.Contains(e.AgentHealth(1), "breaker=open") {
		t.Fatalf("%s\n%s", e.AgentHealth(1), e.History())
	}
	e.Event(Event{Time: at(s), Agent: 1, Type: Started})
	var got []Action
	for m := 0.0; m < 20; m += 0.5 {
		e.Observe(1, obs(s, int64(40<<20)+int64(m*float64(1<<20)), 10, 0.2, s))
		got = append(got, e.Tick(at(s), Forecast{})...)
		s += 0.5
	}
	if len(got) == 0 || got[0].Procedure != "escalate" {
		t.Fatalf("%v", got)
	}
	c, _ := ParseCmd("reset 1")
	if _, err := e.Exec(c, at(s)); err != nil || !strings.Contains(e.AgentHealth(1), "breaker=closed") {
		t.Fatal(err)
	}
}

// Idle with no progress past the allowed stretch is a hang; so is a
// heartbeat three intervals late.
func TestHang(t *testing.T) {
	e := New(Config{})
	var acts []Action
	for s := 0.0; s < 20; s += 0.5 {
		cpu, sec := 0.3, s*0.3
		if s >= 8 {
			cpu, sec = 0, 8*0.3
		}
		e.Observe(1, obs(s, 10<<20, 10, cpu, sec))
		acts = append(acts, e.Tick(at(s), Forecast{})...)
	}
	if len(acts) == 0 || acts[0].Cause != "Hang" || acts[0].Time.Sub(at(8)) > 7*time.Second {
		t.Fatalf("%v", acts)
	}
	e2 := New(Config{})
	for s := 0.0; s < 10; s += 0.5 {
		o := obs(s, 10<<20, 10, 0.3, s*0.3)
		o.Heartbeat, o.HeartbeatEvery = at(math.Min(s, 4)), time.Second
		e2.Observe(2, o)
		e2.Tick(at(s), Forecast{})
	}
	if p := e2.Predictions(2); !hasP(p, Hang, 0.5) {
		t.Fatalf("%v", p)
	}
}

func TestDegradedMode(t *testing.T) {
	e := New(Config{})
	e.ObserveEngine(EngineStat{Name: "telemetry", Time: at(0), Failed: true, Why: "stale 12s"})
	if m, why := e.Mode(); m != "rules" || why != "telemetry: stale 12s" {
		t.Fatal(m, why)
	}
	if !strings.HasPrefix(e.Status(), `mode=rules why="telemetry: stale 12s" `) {
		t.Fatal(e.Status())
	}
	e.ObserveEngine(EngineStat{Name: "telemetry", Time: at(1)})
	if m, _ := e.Mode(); m != "learned" {
		t.Fatal(m)
	}
	e.ObserveHost(HostSample{Time: at(1), PSICPU: 95, PSIMem: 0, PSIIO: 1, MemAvailable: 1 << 30, MemTotal: 4 << 30, NCPU: 2, Load1: 7})
	h := e.HealthFile()
	if !strings.Contains(h, "component=host metric=psi_cpu value=95.000") || !strings.Contains(h, "component=engine:telemetry metric=loop_latency") {
		t.Fatal(h)
	}
}

// Everything learned survives a save and a load into a new engine.
func TestSaveLoad(t *testing.T) {
	e := New(Config{})
	leakOn(t, e)
	e.SetPolicy(4, Policy{Restart: RestartAlways, Maintenance: "make clean"})
	var buf bytes.Buffer
	if err := e.Save(&buf); err != nil {
		t.Fatal(err)
	}
	saved := buf.String()
	e2 := New(Config{})
	if err := e2.Load(strings.NewReader(saved)); err != nil {
		t.Fatal(err)
	}
	if e2.Failures() != e.Failures() || e2.ProceduresFile() != e.ProceduresFile() || e2.Policy(4).Maintenance != "make clean" {
		t.Fatalf("\n%s\n%s", e.Failures(), e2.Failures())
	}
	if err := e2.Load(strings.NewReader(`{"version":99}`)); err == nil {
		t.Fatal("version 99 accepted")
	}
	if e2.Failures() != e.Failures() {
		t.Fatal("a refused load changed the engine")
	}
	path := t.TempDir() + "/heal.json"
	if err := e.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	e3 := New(Config{})
	if err := e3.LoadFile(path); err != nil || e3.Failures() != e.Failures() {
		t.Fatal(err)
	}
}

func leakOn(t *testing.T, e *Engine) {
	for s := 0.0; s < 30; s += 0.5 {
		e.Observe(1, obs(s, int64(40<<20)+int64(s*float64(1<<20)), 10, 0.2, s))
		e.Tick(at(s), Forecast{})
	}
	e.Event(Event{Time: at(30), Agent: 1, Type: OOMKilled})
}

// The hazard learns from failure windows: a history where failures come
// at low fill teaches it to alarm earlier than the prior.
func TestHazardLearnsFromHistory(t *testing.T) {
	e := New(Config{})
	var fails []Failure
	var neg [NumKinds][]Snap
	for i := 0; i < 10; i++ {
		f := Failure{Kind: "FDExhaustion"}
		for ago := 0.0; ago < 40; ago += 4 {
			f.Windows = append(f.Windows, Snap{Ago: ago, X: []float64{0.2, 0.1, 0.9, 1}})
		}
		fails = append(fails, f)
		neg[FDExhaustion] = append(neg[FDExhaustion], Snap{Ago: -1, X: []float64{0.2, 0, 0.1, 1}})
	}
	before := e.haz[FDExhaustion].P([]float64{0.2, 0.1, 0.9, 1})
	e.Train(fails, neg)
	after := e.haz[FDExhaustion].P([]float64{0.2, 0.1, 0.9, 1})
	if before > 0.3 || after < 0.7 || !strings.Contains(e.Status(), "FDExhaustion:learned") {
		t.Fatalf("before %.3f after %.3f %s", before, after, e.Status())
	}
}

func TestScheduleIntoLulls(t *testing.T) {
	f := Forecast{Start: t0, Step: time.Minute, Load: []float64{5, 5, 1, 1, 5, 5, 0.5, 0.5, 0.5, 5}}
	ws := Schedule([]MaintRequest{
		{Agent: 1, Kind: Preventive, Duration: 2 * time.Minute, Priority: 0.2},
		{Agent: 2, Kind: Predictive, Duration: 2 * time.Minute, Priority: 0.9, Deadline: t0.Add(5 * time.Minute)},
	}, f, t0, nil)
	if len(ws) != 2 || ws[0].Agent != 2 || !ws[0].Start.Equal(t0.Add(2*time.Minute)) || !ws[1].Start.Equal(t0.Add(6*time.Minute)) {
		t.Fatalf("%+v", ws)
	}
	// a preventive window is requested and carried out when due
	e := New(Config{})
	e.SetPolicy(3, Policy{Maintenance: "vacuum", MaintEvery: time.Hour, MaintDuration: time.Minute})
	e.Observe(3, obs(0, 1<<20, 3, 0.1, 0))
	var acts []Action
	for m := 0; m < 10; m++ {
		acts = append(acts, e.Tick(t0.Add(time.Duration(m)*time.Minute), f)...)
	}
	if len(acts) != 1 || acts[0].Steps[0].Verb != VerbMaintain || acts[0].Time != t0.Add(6*time.Minute) {
		t.Fatalf("%v\n%s", acts, e.Maintenance())
	}
	if !strings.Contains(e.Maintenance(), "agent=3 kind=Preventive") {
		t.Fatal(e.Maintenance())
	}
}

func TestParseCmd(t *testing.T) {
	good := map[string]func(Cmd) bool{
		"mode rules":   func(c Cmd) bool { return c.Rules },
		"mode learned": func(c Cmd) bool { return !c.Rules },
		`policy 3 restart=always intensity=1/5s backoff=10s..300s maintenance="make clean" every=24h`: func(c Cmd) bool {
			p := c.Setting.Apply(DefaultPolicy())
			return c.Agent == 3 && p.Restart == RestartAlways && p.Intensity == 1 && p.Period == 5*time.Second && p.Maintenance == "make clean" && p.MaintEvery == 24*time.Hour
		},
		"outcome 7 failed EPERM from cgroup": func(c Cmd) bool { return c.ID == 7 && !c.OK && c.Why == "EPERM from cgroup" },
		"reset 2":                            func(c Cmd) bool { return c.Agent == 2 },
		"maintain 2 kind=Preventive duration=1m within=1h priority=0.8": func(c Cmd) bool {
			return c.Maint.Kind == Preventive && c.Maint.Duration == time.Minute && c.Within == time.Hour && c.Maint.Priority == 0.8
		},
		"save": func(c Cmd) bool { return true },
	}
	for line, ok := range good {
		c, err := ParseCmd(line)
		if err != nil || !ok(c) {
			t.Errorf("%q: %+v %v", line, c, err)
		}
	}
	bad := map[string]string{
		"":                                      "empty",
		"frob":                                  "unknown control message",
		"mode":                                  "bad # args",
		"policy x restart=always":               "bad agent",
		"policy 1":                              "no settings",
		"policy 1 restart=sometimes":            "bad restart",
		"policy 1 intensity=5":                  "N/PERIOD",
		"policy 1 backoff=5m..10s":              "cap is below",
		"policy 1 colour=red":                   "unknown key",
		"outcome 0 ok":                          "bad action id",
		"outcome 3 maybe":                       "bad outcome",
		"maintain 1 kind=Sometimes":             "bad kind",
		"policy 1 restart=always restart=never": "twice",
	}
	for line, want := range bad {
		if _, err := ParseCmd(line); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", line, err, want)
		}
	}
}

func FuzzParseCmd(f *testing.F) {
	for _, s := range []string{"mode rules", "policy 3 restart=always intensity=5/10s backoff=10s..300s", `policy 1 maintenance="a b"`, "outcome 1 ok", "maintain 1 within=1h", "reset 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseCmd(line)
		if err != nil {
			return
		}
		p := c.Setting.Apply(DefaultPolicy())
		if p.Intensity < 1 || p.Period <= 0 || p.BackoffBase <= 0 || p.BackoffMax < p.BackoffBase {
			t.Fatalf("%q gave policy %+v", line, p)
		}
		e := New(Config{})
		e.Exec(c, t0)
	})
}

func TestHostParsers(t *testing.T) {
	if v, err := ParsePSI("some avg10=12.50 avg60=1.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"); err != nil || v != 12.5 {
		t.Fatal(v, err)
	}
	if _, err := ParsePSI("full avg10=1"); err == nil {
		t.Fatal("no some line accepted")
	}
	a, tot, err := ParseMeminfo("MemTotal:       16000 kB\nMemFree: 1 kB\nMemAvailable:    8000 kB\n")
	if err != nil || a != 8000*1024 || tot != 16000*1024 {
		t.Fatal(a, tot, err)
	}
	if u, m, err := ParseFileNr("1024\t0\t9223372036854775807\n"); err != nil || u != 1024 || m <= 0 {
		t.Fatal(u, m, err)
	}
	if l, err := ParseLoadavg("0.50 0.40 0.30 1/100 42\n"); err != nil || l != 0.5 {
		t.Fatal(l, err)
	}
	h, _ := ReadHost("/proc", []string{"/"}, 2)
	if len(h.Disks) != 1 || h.Disks[0].Total <= 0 {
		t.Fatalf("%+v", h)
	}
}

// Every rendered line is key=value fields with no stray blanks.
func TestRenderFormat(t *testing.T) {
	e := New(Config{})
	leakOn(t, e)
	e.ObserveHost(HostSample{Time: at(30), PSICPU: 10, PSIMem: -1, PSIIO: -1})
	for name, s := range map[string]string{"health": e.AgentHealth(1), "status": e.Status(), "heal/health": e.HealthFile(),
		"failures": e.Failures(), "procedures": e.ProceduresFile(), "history": e.History(), "maintenance": e.Maintenance()} {
		if name != "maintenance" && s == "" {
			t.Errorf("%s empty", name)
		}
		for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
			if line == "" {
				continue
			}
			for _, f := range splitQuoted(line) {
				if k, _, ok := strings.Cut(f, "="); !ok || k == "" {
					t.Errorf("%s: field %q in %q", name, f, line)
				}
			}
		}
	}
}

func splitQuoted(s string) []string {
	var out []string
	var cur strings.Builder
	inq := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && inq && i+1 < len(s):
			cur.WriteByte(c)
			i++
			cur.WriteByte(s[i])
		case c == '"':
			inq = !inq
			cur.WriteByte(c)
		case c == ' ' && !inq:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(out, cur.String())
}

// A slow leak whose limit is still minutes away gets a Predictive
// maintenance window in the forecast's lull before it, carried out as a
// restart when due.
func TestPredictiveMaintenance(t *testing.T) {
	e := New(Config{})
	f := Forecast{Start: t0, Step: 10 * time.Second, Load: []float64{5, 5, 5, 1, 1, 1, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5}}
	var acts []Action
	for s := 0.0; s < 100; s += 1 {
		e.Observe(1, obs(s, int64(46<<20)+int64(s*0.2*float64(1<<20)), 10, 0.2, s*0.2))
		acts = append(acts, e.Tick(at(s), f)...)
	}
	m := e.Maintenance()
	if !strings.Contains(m, "agent=1 kind=Predictive start=1764795630.000") {
		t.Fatalf("maintenance:\n%s", m)
	}
	var got *Action
	for i := range acts {
		if acts[i].Cause == "maintenance" {
			got = &acts[i]
		}
	}
	if got == nil || got.Steps[0].Verb != VerbRestart || !got.Time.Equal(at(30)) {
		t.Fatalf("%v", acts)
	}
	e.MaintenanceDone(1, at(30), true)
	if !strings.Contains(e.Maintenance(), "state=done") {
		t.Fatal(e.Maintenance())
	}
}

// TestSupervisorSurvivesLoad: a crash loop's bookkeeping (starts and
// exits within the intensity window, the back-off step) is saved, so a
// daemon restarted in the middle of a loop delays the next restart as the
// one before it would have, instead of starting the count afresh.
func TestSupervisorSurvivesLoad(t *testing.T) {
	loop := func(e *Engine, from, upto int, now *float64) (delays []float64) {
		for i := from; i < upto; i++ {
			e.Event(Event{Time: at(*now), Agent: 5, Type: Started})
			*now += 0.2
			acts := e.Event(Event{Time: at(*now), Agent: 5, Type: Exited, Code: 1})
			if len(acts) != 1 {
				t.Fatalf("exit %d: %v", i, acts)
			}
			d := acts[0].At.Sub(acts[0].Time).Seconds()
			delays = append(delays, d)
			*now += d
		}
		return delays
	}
	// One engine all along: the 5th exit in 10 s backs off 10 s.
	var n1 float64
	whole := loop(New(Config{}), 0, 6, &n1)

	// Three exits, saved, loaded into a new engine, three more.
	e := New(Config{})
	var n2 float64
	first := loop(e, 0, 3, &n2)
	var buf bytes.Buffer
	if err := e.Save(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"supervisors"`) {
		t.Fatalf("no supervisor state saved: %s", buf.String())
	}
	e2 := New(Config{})
	if err := e2.Load(&buf); err != nil {
		t.Fatal(err)
	}
	got := append(first, loop(e2, 3, 6, &n2)...)
	if fmt.Sprint(got) != fmt.Sprint(whole) {
		t.Fatalf("delays across a load %v, want %v as without one", got, whole)
	}
	// A damaged breaker value is ignored, the rest of the state loads.
	bad := `{"version":1,"supervisors":{"5":{"breaker":7}},"policies":{"5":{"restart":"always","intensity":5,"period":10,"backoff":10,"backoff_max":300}}}`
	e3 := New(Config{})
	if err := e3.Load(strings.NewReader(bad)); err != nil {
		t.Fatal(err)
	}
	if e3.Policy(5).Restart != RestartAlways {
		t.Fatal("the policy beside a bad supervisor entry was not loaded")
	}
}
