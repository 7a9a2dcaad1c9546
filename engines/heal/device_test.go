package heal

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"aiosfs/engines/agent/view"
	"aiosfs/engines/bus"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
	"aiosfs/hal/proc"
	"aiosfs/internal/testutil"
)

// fakeRegistry is the agent registry as the device sees it, recording
// what is done through it.
type fakeRegistry struct {
	mu    sync.Mutex
	infos map[int]view.Info
	calls []string
	bus   *bus.Bus
}

func (r *fakeRegistry) record(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
}

func (r *fakeRegistry) Calls() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.calls, "\n")
}

func (r *fakeRegistry) IDs() []int { return []int{1} }
func (r *fakeRegistry) Info(id int) (view.Info, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in, ok := r.infos[id]
	if !ok {
		return in, fs.Errorf(syscall.ENOENT, "no such agent %d", id)
	}
	return in, nil
}
func (r *fakeRegistry) Procs(int) ([]int, error)                 { return nil, nil }
func (r *fakeRegistry) Cgroups(int) (map[string]string, error)   { return map[string]string{}, nil }
func (r *fakeRegistry) Freeze(int, bool, string) error           { return nil }
func (r *fakeRegistry) Pause(int, bool) error                    { return nil }
func (r *fakeRegistry) Signal(int, syscall.Signal, string) error { return nil }
func (r *fakeRegistry) Hold(int, string, bool) error             { return nil }
func (r *fakeRegistry) Apply(id int, l view.Limit, why string) error {
	r.record("apply " + l.String() + " " + why)
	r.mu.Lock()
	in := r.infos[id]
	if l.Key == "memmax" {
		in.Limits.MemMax = l.Value.(int64)
	}
	r.infos[id] = in
	r.mu.Unlock()
	return nil
}
func (r *fakeRegistry) Restart(id int, why string) error {
	r.record("restart " + why)
	r.mu.Lock()
	in := r.infos[id]
	in.Alive, in.State = true, view.StateRunning
	in.Restarts++
	r.infos[id] = in
	r.mu.Unlock()
	r.bus.Publish(bus.Event{Source: "agent", Kind: "restart", Agent: id})
	return nil
}

func testDevice(t *testing.T, opts ...func(*DeviceConfig)) (*Device, *fakeRegistry, *bus.Bus) {
	t.Helper()
	b := bus.New(256)
	reg := &fakeRegistry{infos: map[int]view.Info{1: {ID: 1, State: view.StateRunning, Alive: true, Uid: 1000, Spawned: true}}, bus: b}
	pfs, err := proc.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DeviceConfig{NS: &fs.NS{}, Bus: b, Agents: reg, Dir: t.TempDir(), Proc: pfs, Interval: time.Second, Logf: t.Logf}
	for _, o := range opts {
		o(&cfg)
	}
	d, err := NewDevice(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; d.Close() })
	return d, reg, b
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func ctlWrite(d *Device, uid uint32, path, line string) error {
	root := d.cfg.NS.StaticDir("/", 0555, fs.Owner{}, d.Nodes()...)
	return fs.WriteFile(context.Background(), root, path, fs.Caller{Uid: uid, Gid: uid}, []byte(line+"\n"))
}

// An agent nobody set a policy for is observed only: its failed exit is
// recorded, it is not restarted. With a policy its exits restart it
// through the registry, with the action published.
func TestHealDeviceOptInRestart(t *testing.T) {
	d, reg, b := testDevice(t)
	sub := b.Subscribe(func(ev bus.Event) bool { return ev.Source == "heal" }, 64)
	defer sub.Close()
	exit := func() {
		reg.mu.Lock()
		in := reg.infos[1]
		in.Alive, in.State = false, view.StateExited
		reg.infos[1] = in
		reg.mu.Unlock()
		b.Publish(bus.Event{Source: "agent", Kind: "exit", Agent: 1, Fields: []bus.Field{bus.F("status", "exit 3")}})
	}
	b.Publish(bus.Event{Source: "agent", Kind: "spawn", Agent: 1})
	exit()
	waitUntil(t, "the exit seen", func() bool { return strings.Contains(d.e.AgentHealth(1), "state=exited restart=off") })
	time.Sleep(50 * time.Millisecond)
	if c := reg.Calls(); c != "" {
		t.Fatalf("an observed agent was acted on: %s", c)
	}
	// Its owner sets a policy; the next failed exit restarts it.
	if err := d.AgentVerbs(1).Exec(context.Background(), fs.Caller{Uid: 1000}, "heal restart=on-failure"); err != nil {
		t.Fatal(err)
	}
	if err := d.AgentVerbs(1).Exec(context.Background(), fs.Caller{Uid: 2000}, "heal restart=always"); fs.Errno(err) != syscall.EPERM {
		t.Fatalf("a stranger's heal verb: %v", err)
	}
	b.Publish(bus.Event{Source: "agent", Kind: "restart", Agent: 1})
	exit()
	waitUntil(t, "the restart", func() bool { return strings.Contains(reg.Calls(), "restart heal: exit restart #") })
	waitUntil(t, "the action's event", func() bool {
		select {
		case ev := <-sub.C():
			return ev.Kind == "action" && ev.Get("result") == "done" && strings.Contains(ev.Get("reason"), "code 3")
		default:
			return false
		}
	})
	// An exit after an operator's kill is a stop: no restart.
	n := strings.Count(reg.Calls(), "restart")
	b.Publish(bus.Event{Source: "agent", Kind: "kill", Agent: 1})
	exit()
	time.Sleep(100 * time.Millisecond)
	if m := strings.Count(reg.Calls(), "restart"); m != n {
		t.Fatalf("restarted after an operator's kill:\n%s", reg.Calls())
	}
	if b, err := os.ReadFile(filepath.Join(d.cfg.Dir, "heal.json")); err != nil || !strings.Contains(string(b), `"restart":"on-failure"`) {
		t.Fatalf("heal.json: %v %s", err, b)
	}
}

// A leak toward memmax is met by raising it through the registry (rules
// mode: the first procedure), before the limit.
func TestHealDeviceRaisesMemmax(t *testing.T) {
	d, reg, _ := testDevice(t)
	reg.mu.Lock()
	in := reg.infos[1]
	in.Limits.MemMax = 64 << 20
	reg.infos[1] = in
	reg.mu.Unlock()
	if err := ctlWrite(d, 0, "heal/ctl", "mode rules"); err != nil {
		t.Fatal(err)
	}
	if err := ctlWrite(d, 0, "heal/ctl", "policy 1 restart=on-failure"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(-30 * time.Second) // the actions are due at once
	for s := 0.0; s < 30; s += 0.5 {
		tt := now.Add(time.Duration(s * float64(time.Second)))
		mem := int64(8<<20) + int64(s*float64(1<<20))
		d.Tick(tt, map[int]telemetry.Sample{1: {Time: tt, Mem: mem, CPU: 0.2, CPUSeconds: s * 0.2, Procs: 1}})
		if strings.Contains(reg.Calls(), "apply memmax") {
			break
		}
	}
	waitUntil(t, "memmax raised", func() bool {
		return strings.Contains(reg.Calls(), "apply memmax=100663296 heal: MemoryExhaustion raise-mem #")
	})
}

// heal/ctl: root's alone, bad lines change nothing, and a change that
// cannot be saved is put back and fails with the save's errno.
func TestHealDeviceCtl(t *testing.T) {
	d, _, _ := testDevice(t)
	if err := ctlWrite(d, 1000, "heal/ctl", "mode rules"); fs.Errno(err) != syscall.EPERM {
		t.Fatalf("non-root: %v", err)
	}
	for _, l := range []string{"bogus", "policy 1 restart=sometimes", "policy 7 restart=always", "outcome 9 ok", "mode"} {
		if err := ctlWrite(d, 0, "heal/ctl", l); err == nil {
			t.Errorf("%q accepted", l)
		}
	}
	if m, _ := d.e.Mode(); m != "learned" || d.e.Policy(1).Observe != true {
		t.Fatalf("refused lines changed the engine: mode %s policy %+v", m, d.e.Policy(1))
	}
	// heal.json's place taken by a directory: saves fail.
	if err := os.Mkdir(d.path, 0700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(d.path, "x"), nil, 0600)
	err := ctlWrite(d, 0, "heal/ctl", "policy 1 restart=always")
	if err == nil || fs.Errno(err) == syscall.EINVAL || !strings.Contains(err.Error(), "not saved, nothing changed") {
		t.Fatalf("unsaveable policy: %v", err)
	}
	if p := d.e.Policy(1); p.Restart == RestartAlways || !p.Observe {
		t.Fatalf("an unsaved policy was kept: %+v", p)
	}
	if err := ctlWrite(d, 0, "heal/ctl", "mode rules"); err == nil {
		t.Fatal("unsaveable mode accepted")
	}
	if err := ctlWrite(d, 0, "heal/ctl", "maintain 1"); err == nil || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("unsaveable maintain: %v", err)
	}
	if m := d.e.Maintenance(); m != "" {
		t.Fatalf("an unsaved maintenance request was kept: %s", m)
	}
	if m, _ := d.e.Mode(); m != "learned" {
		t.Fatal("an unsaved mode was kept")
	}
	if st := d.executorLine(); !strings.Contains(st, "save_errors=3 ") || strings.Contains(st, "save_error=-") {
		t.Fatalf("save errors not shown: %s", st)
	}
}

// exitStatus reads the agent engine's statuses.
func TestHealExitStatus(t *testing.T) {
	for in, want := range map[string][3]int{"exit 0": {0, 0, 0}, "exit 3": {3, 0, 0}, "signal KILL": {0, 9, 0},
		"signal TERM (stopped)": {0, 15, 1}, "unknown": {-1, 0, 0}, "exit 0 (daemon shutdown)": {0, 0, 1}} {
		c, s, st := exitStatus(in)
		if c != want[0] || s != want[1] || st != (want[2] == 1) {
			t.Errorf("%q: %d %d %v", in, c, s, st)
		}
	}
}

// Under OptIn an agent is observed only until a policy is set; with
// HangByHeartbeat idleness alone is no hang; the history, the mode and
// the observe flag survive a save and a load (a pending action loads as
// not verified).
func TestHealEngineOptInHangHistory(t *testing.T) {
	e := New(Config{OptIn: true, HangByHeartbeat: true})
	for s := 0.0; s < 20; s += 0.5 {
		e.Observe(1, obs(s, 10<<20, 10, 0, 0)) // idle from the start, no heartbeat
		if acts := e.Tick(at(s), Forecast{}); len(acts) > 0 {
			t.Fatalf("acted on an observed agent: %+v", acts)
		}
	}
	if hasP(e.Predictions(1), Hang, 0.5) {
		t.Fatalf("an idle agent that never beat is hung: %v", e.Predictions(1))
	}
	if a := e.Event(Event{Time: at(20), Agent: 1, Type: Exited, Code: 1}); len(a) != 0 {
		t.Fatalf("restarted an observed agent: %+v", a)
	}
	s, _ := ParseSetting([]string{"restart=always"})
	e.SetPolicy(1, s.Apply(e.Policy(1)))
	e.Event(Event{Time: at(21), Agent: 1, Type: Started})
	// It beats, then stops: a hang, acted on.
	var acts []Action
	for t := 21.0; t < 35; t += 0.5 {
		o := obs(t, 10<<20, 10, 0, 0)
		o.Heartbeat, o.HeartbeatEvery = at(math.Min(t, 25)), time.Second
		e.Observe(1, o)
		acts = append(acts, e.Tick(at(t), Forecast{})...)
	}
	if len(acts) == 0 || acts[0].Cause != "Hang" || acts[0].Outcome != "pending" {
		t.Fatalf("no hang recovery: %+v", acts)
	}
	e.SetRules(true)
	var buf bytes.Buffer
	if err := e.Save(&buf); err != nil {
		t.Fatal(err)
	}
	e2 := New(Config{OptIn: true})
	if err := e2.Load(&buf); err != nil {
		t.Fatal(err)
	}
	h := e2.History()
	if strings.Count(h, "\n") != strings.Count(e.History(), "\n") || !strings.Contains(h, "cause=Hang") || !strings.Contains(h, "outcome=- ") || !strings.Contains(h, "not verified: the daemon restarted") {
		t.Fatalf("history after a load:\n%s\nbefore:\n%s", h, e.History())
	}
	if m, _ := e2.Mode(); m != "rules" || e2.Policy(1).Observe || e2.Policy(1).Restart != RestartAlways {
		t.Fatalf("mode %s policy %+v after a load", m, e2.Policy(1))
	}
}

// A maintenance window asked for by `maintain N` runs the agent's
// maintenance command as the agent's user, and the window is marked done.
func TestHealDeviceMaintenance(t *testing.T) {
	testutil.RequireRoot(t, "runs the command as the agent's uid")
	d, _, _ := testDevice(t)
	dir, err := os.MkdirTemp("", "heal-maint-") // not under t.TempDir(), whose parent is 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0777)
	mark := filepath.Join(dir, "maintained")
	if err := ctlWrite(d, 0, "heal/ctl", `policy 1 restart=never maintenance="touch `+mark+`" duration=1s`); err != nil {
		t.Fatal(err)
	}
	if err := ctlWrite(d, 0, "heal/ctl", "maintain 1 duration=1s"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	d.Tick(now, map[int]telemetry.Sample{1: {Time: now, Mem: 1 << 20, CPU: 0.1, CPUSeconds: 1, Procs: 1}})
	waitUntil(t, "the window done", func() bool { return strings.Contains(d.e.Maintenance(), "state=done") })
	var st os.FileInfo
	st, err = os.Stat(mark)
	if err != nil {
		t.Fatalf("the command did not run: %v\n%s", err, d.e.History())
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 1000 {
		t.Fatalf("the command ran as uid %d, want the agent's 1000", uid)
	}
	if h := d.e.History(); !strings.Contains(h, "cause=maintenance procedure=maintain") {
		t.Fatalf("history:\n%s", h)
	}
}

// An agent that beat and then exited cleanly under restart=on-failure is
// down, not hung: no recovery starts it again behind its policy.
func TestHealEngineExitedNotHung(t *testing.T) {
	e := New(Config{OptIn: true, HangByHeartbeat: true})
	s, _ := ParseSetting([]string{"restart=on-failure"})
	e.SetPolicy(1, s.Apply(e.Policy(1)))
	e.Event(Event{Time: at(0), Agent: 1, Type: Started})
	for s := 0.0; s < 5; s += 0.5 {
		o := obs(s, 10<<20, 10, 0.1, s*0.1)
		o.Heartbeat, o.HeartbeatEvery = at(s), time.Second
		e.Observe(1, o)
		e.Tick(at(s), Forecast{})
	}
	if a := e.Event(Event{Time: at(5), Agent: 1, Type: Exited}); len(a) != 0 {
		t.Fatalf("a clean exit under on-failure restarted: %+v", a)
	}
	for s := 5.0; s < 30; s += 0.5 {
		if a := e.Tick(at(s), Forecast{}); len(a) != 0 {
			t.Fatalf("acted on an agent that is down: %+v", a[0])
		}
	}
	if !strings.Contains(e.AgentHealth(1), "state=exited") || strings.Contains(e.AgentHealth(1), "failure=Hang") {
		t.Fatalf("health:\n%s", e.AgentHealth(1))
	}
}
