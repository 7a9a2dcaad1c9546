package heal

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"aiosfs/engines/bus"
	"aiosfs/engines/telemetry"
)

// lullForecast is a forecast from now in 100 ms steps: 3 cores, a lull
// of 0.2 cores from step 6 to 9, then 3 cores again.
func lullForecast(now time.Time) Forecast {
	load := make([]float64, 20)
	for i := range load {
		load[i] = 3
		if i >= 6 && i < 10 {
			load[i] = 0.2
		}
	}
	return Forecast{Start: now.Add(100 * time.Millisecond), Step: 100 * time.Millisecond, Load: load}
}

func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// A maintenance window asked for with a forecast at hand is placed in
// its lull (not at once, where the load is high), shows the lull's load
// in heal/maintenance, heal/status says forecast=sched and heal/forecast
// the forecast it used; the window is carried out when due and says when.
func TestHealDeviceMaintenanceInLull(t *testing.T) {
	var fc Forecast
	d, reg, _ := testDevice(t, func(c *DeviceConfig) {
		c.Forecast = func(int) (Forecast, bool) { return fc, len(fc.Load) > 0 }
		c.HasForecast = func() bool { return len(fc.Load) > 0 }
	})
	now := time.Now()
	fc = lullForecast(now)
	d.watchEngines(now)
	if st := d.e.Status(); field(st, "forecast") != "sched" {
		t.Fatalf("heal/status: %s", st)
	}
	if err := ctlWrite(d, 0, "heal/ctl", "policy 1 restart=always"); err != nil {
		t.Fatal(err)
	}
	if err := ctlWrite(d, 0, "heal/ctl", "maintain 1 duration=200ms within=10s"); err != nil {
		t.Fatal(err)
	}
	d.Tick(now, map[int]telemetry.Sample{1: {Time: now, Mem: 1 << 20, CPU: 0.1, CPUSeconds: 1, Procs: 1}})
	m := d.e.Maintenance()
	lull := fc.Start.Add(6 * fc.Step)
	if field(m, "start") != strconv.FormatFloat(float64(lull.UnixMilli())/1000, 'f', 3, 64) || field(m, "load") != "0.200" ||
		field(m, "state") != "scheduled" || field(m, "ran") != "-" {
		t.Fatalf("want the window at the lull %v with load=0.200; heal/maintenance:\n%s", lull, m)
	}
	if f := d.e.ForecastFile(); !strings.HasPrefix(f, "forecast=sched placed=") || !strings.Contains(f, "steps=20\n") || strings.Count(f, "\ntime=") != 20 {
		t.Fatalf("heal/forecast:\n%s", f)
	}
	for tick := now; !strings.Contains(d.e.Maintenance(), "state=done"); time.Sleep(20 * time.Millisecond) {
		if time.Since(now) > 5*time.Second {
			t.Fatalf("the window was not carried out:\n%s\n%s", d.e.Maintenance(), d.e.History())
		}
		tick = time.Now()
		d.Tick(tick, map[int]telemetry.Sample{1: {Time: tick, Mem: 1 << 20, CPU: 0.1, CPUSeconds: 1, Procs: 1}})
	}
	m = d.e.Maintenance()
	ran, _ := strconv.ParseFloat(field(m, "ran"), 64)
	if ran < float64(lull.UnixMilli())/1000 || field(m, "ended") == "-" {
		t.Fatalf("ran before its start %v:\n%s", lull, m)
	}
	if !strings.Contains(reg.Calls(), "restart") {
		t.Fatalf("no restart through the registry: %s", reg.Calls())
	}
}

// With no forecast (no scheduler, or nothing sampled) heal/status says
// forecast=none and a window goes as soon as possible with load=-.
func TestHealDeviceMaintenanceNoForecast(t *testing.T) {
	d, _, _ := testDevice(t, func(c *DeviceConfig) {
		c.Forecast = func(int) (Forecast, bool) { return Forecast{}, false }
		c.HasForecast = func() bool { return false }
	})
	now := time.Now()
	d.watchEngines(now)
	if st := d.e.Status(); field(st, "forecast") != "none" {
		t.Fatalf("heal/status: %s", st)
	}
	if err := ctlWrite(d, 0, "heal/ctl", "policy 1 restart=always"); err != nil {
		t.Fatal(err)
	}
	if err := ctlWrite(d, 0, "heal/ctl", "maintain 1 duration=200ms within=10s"); err != nil {
		t.Fatal(err)
	}
	d.Tick(now, map[int]telemetry.Sample{1: {Time: now, Mem: 1 << 20, CPU: 0.1, CPUSeconds: 1, Procs: 1}})
	m := d.e.Maintenance()
	if field(m, "load") != "-" || field(m, "ran") == "-" {
		t.Fatalf("want the window at once with load=-; heal/maintenance:\n%s", m)
	}
	if f := d.e.ForecastFile(); f != "forecast=none\n" {
		t.Fatalf("heal/forecast: %q", f)
	}
}

// An engine whose pass has run for longer than the stall limit is
// Critical in heal/health and turns heal to its rules, named in
// heal/status; when its passes come again heal goes back to learning.
// An engine publishing errors repeatedly does the same; one whose loop
// is not timed lists only its errors.
func TestHealEngineStall(t *testing.T) {
	var loops []EngineStat
	d, _, b := testDevice(t, func(c *DeviceConfig) {
		c.Engines = func(time.Time) []EngineStat { return loops }
	})
	now := time.Now()
	loops = []EngineStat{{Name: "sched", LoopLatency: 2 * time.Millisecond}, {Name: "mem", NoLoop: true}}
	d.watchEngines(now)
	if m, why := d.e.Mode(); m != "learned" {
		t.Fatalf("mode %s why %s", m, why)
	}
	h := d.e.HealthFile()
	for _, want := range []string{"component=engine:sched metric=loop_latency value=0.002", "component=engine:sched metric=errors value=0.000",
		"component=engine:mem metric=errors value=0.000"} {
		if !strings.Contains(h, want) {
			t.Fatalf("heal/health lacks %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, "engine:mem metric=loop_latency") {
		t.Fatalf("an untimed loop has a latency:\n%s", h)
	}
	loops[0].LoopLatency = 6 * time.Second // stalled: over max(5 intervals, 5 s)
	d.watchEngines(now.Add(time.Second))
	st := d.e.Status()
	if field(st, "mode") != "rules" || !strings.Contains(st, `why="sched: pass running 6.0s"`) {
		t.Fatalf("heal/status: %s", st)
	}
	if h := d.e.HealthFile(); !strings.Contains(h, "component=engine:sched metric=loop_latency value=6.000 baseline=") ||
		!strings.Contains(h, "trend=Critical score=0.000") {
		t.Fatalf("heal/health:\n%s", h)
	}
	loops[0].LoopLatency = 3 * time.Millisecond
	d.watchEngines(now.Add(2 * time.Second))
	if m, why := d.e.Mode(); m != "learned" {
		t.Fatalf("after the stall: mode %s why %s", m, why)
	}
	for i := 0; i < errFail; i++ {
		b.Publish(bus.Event{Source: "mem", Kind: "error", Fields: []bus.Field{bus.F("op", "test"), bus.F("err", "EIO")}})
	}
	waitUntil(t, "the errors counted", func() bool {
		d.watchEngines(time.Now())
		return strings.Contains(d.e.Status(), `why="mem: 5 errors in 1m0s"`)
	})
	if h := d.e.HealthFile(); !strings.Contains(h, "component=engine:mem metric=errors value=5.000") {
		t.Fatalf("heal/health:\n%s", h)
	}
}

// A window's forecast load and when it ran and ended are saved: the
// next daemon's heal/maintenance shows the same line; a window placed
// without a forecast keeps load=-.
func TestMaintenanceSaved(t *testing.T) {
	e := New(Config{})
	e.SetPolicy(1, Policy{Maintenance: "true", MaintDuration: time.Second})
	e.SetPolicy(2, Policy{Maintenance: "true", MaintDuration: time.Second})
	e.Observe(1, obs(0, 1<<20, 3, 0.1, 0))
	e.Observe(2, obs(0, 1<<20, 3, 0.1, 0))
	f := lullForecast(t0)
	e.RequestMaintenance(MaintRequest{Agent: 1, Kind: Corrective, Duration: 200 * time.Millisecond, Deadline: t0.Add(10 * time.Second), Priority: 0.5, Reason: "op"})
	var acts []Action
	for s := 0.0; s < 1.5; s += 0.1 {
		acts = append(acts, e.Tick(at(s), f)...)
	}
	if len(acts) != 1 {
		t.Fatalf("%v\n%s", acts, e.Maintenance())
	}
	e.MaintenanceEnded(1, acts[0].Window, at(1.2), true)
	e.RequestMaintenance(MaintRequest{Agent: 2, Kind: Corrective, Duration: 200 * time.Millisecond, Deadline: at(30), Priority: 0.5, Reason: "op"})
	e.Tick(at(1.5), Forecast{})
	want := e.Maintenance()
	if !strings.Contains(want, "agent=1 kind=Corrective start=1764795600.700 duration=0.200") || !strings.Contains(want, "load=0.200 state=done ran=1764795600.700 ended=1764795601.200") ||
		!strings.Contains(want, "agent=2 kind=Corrective start=1764795601.500 duration=0.200 deadline=1764795630.000 priority=0.500 load=- state=running ran=1764795601.500 ended=-") {
		t.Fatalf("heal/maintenance:\n%s", want)
	}
	path := t.TempDir() + "/heal.json"
	if err := e.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	e2 := New(Config{})
	if err := e2.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	// a window running when the daemon died loads as failed
	if got := e2.Maintenance(); got != strings.Replace(want, "state=running", "state=failed", 1) {
		t.Fatalf("after load:\n%s\nwant:\n%s", got, want)
	}
}
