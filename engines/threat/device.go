package threat

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"aiosfs/ctl"
	"aiosfs/engines/agent/view"
	"aiosfs/engines/bus"
	"aiosfs/engines/ml"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
	"aiosfs/hal/kfile"
	"aiosfs/hal/netcut"
	"aiosfs/internal/statefile"
)

// The threat engine as the daemon runs it: fed by every sampler pass and
// the proc connector's events, it scores each agent once a window and
// carries out the policy's verb (Device.respond). Its files:
//
//	threat/ctl         verbs (read it for the table); policy, hook, release,
//	                   train and model are root's
//	threat/status      Status.StatusText, then a line per extra signal and
//	                   one for the responder (responder.line)
//	threat/alerts      every action as it happens, one line each (a
//	                   bus event of source=threat; blocks for the next)
//	threat/trends      TrendsText
//	threat/predict     PredictText
//	threat/quarantine  one line per quarantined agent (quarantineLines)
//	threat/model/      the model in force: manifest.json, manifest.sig,
//	                   threat-model.json, and key.pub (the key it is
//	                   checked against)
//	agents/N/threat    Assessment.AgentLine, or "-" before the first window
//
// Nothing an agent's owner writes lifts a quarantine: release is root's,
// and the agent is held (view.Registry.Hold) so its own ctl is root's
// alone until then.

// DeviceConfig is what the daemon gives the threat engine.
type DeviceConfig struct {
	NS     *fs.NS
	Bus    *bus.Bus
	Agents view.Registry
	// Dir is the engine's state directory (STATE/threat): model/,
	// model.key (the signing key, 0600, made at first start) and
	// state.json (policy, hook, quarantines).
	Dir string
	// PubKey pins the key models are checked against; nil: the public
	// half of model.key. A pinned key that is not model.key's also
	// means the daemon never trains and signs a model itself.
	PubKey ed25519.PublicKey
	// PinPrefix names the network cuts' pins under netcut.PinRoot
	// (PinPrefix-agent-N): the daemon's cgroup prefix, so two daemons
	// never share a pin.
	PinPrefix string
	// Proc is the procfs root, for exec paths and fd 0.
	Proc string
	// Training is the labelled windows the first model is trained on
	// when there is none (nil: stay on rules until `train` or a model
	// is put in place).
	Training func() ([]Labelled, error)
	Signals  []Signal
	Logf     func(format string, args ...any)

	// The feed beyond the telemetry sample (feed.go). Net is the
	// sampler's socket view of an agent (telemetry.Sampler.Net); nil:
	// Established is approximated by Sample.Sockets and the rest is 0.
	Net func(id int) (telemetry.NetView, bool)
	// AgentOf maps a pid to its agent (telemetry.Sampler.AgentOf), for
	// the sensitive opens' pids.
	AgentOf func(pid int) int
	// Sensitive are the files and directories whose opens feed
	// sensitive_opens (fanotify, from Run on; DefaultSensitive and the
	// state directory); nil: none. Agents' owners' ~/.ssh are added.
	Sensitive []string
}

// qrec is one quarantine as saved: enough to apply it again after a
// restart and to show what it was for.
type qrec struct {
	Since time.Time `json:"since"`
	Pin   string    `json:"pin"` // the cut's pin directory, "" if none
	Dir   string    `json:"dir"` // the agent's cgroup2 directory
	Score float64   `json:"score"`
	Type  string    `json:"type"`
	Why   string    `json:"why"` // "policy" or the ctl writer
}

// saved is state.json.
type saved struct {
	Policy     string       `json:"policy"`
	Hook       []string     `json:"hook,omitempty"`
	Quarantine map[int]qrec `json:"quarantine"`
}

// Device is the running threat engine.
type Device struct {
	cfg DeviceConfig
	e   *Engine
	pub ed25519.PublicKey
	key ed25519.PrivateKey // nil when the key is pinned to another

	mu      sync.Mutex
	st      saved
	pending map[int][]Event // events since the agent's last observation
	forked  map[int]bool    // the agent forked since its last observation
	acted   map[int]Action  // the strongest verb carried out, per agent
	cuts    map[int]*netcut.Cut
	cutErr  map[int]string
	hooks   struct{ run, skipped, failed uint64 }
	hookRun bool
	errs    uint64             // actions that failed
	done    [NumActions]uint64 // acts carried out by policy, per verb
	// tickNanos is the time spent in Tick since start (the engine's share
	// of the daemon's CPU in make bench; Tick computes, its only waits are
	// a few reads of /proc and pids.events).
	tickNanos atomic.Uint64

	opens opens // the sensitive opens' watch (feed.go)
}

// NewDevice loads the state, the key and the model (training the first
// one when there is none and the key is the daemon's), and applies the
// saved quarantines again.
func NewDevice(cfg DeviceConfig) (*Device, error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Proc == "" {
		cfg.Proc = "/proc"
	}
	if err := os.MkdirAll(cfg.Dir, 0700); err != nil {
		return nil, err
	}
	d := &Device{cfg: cfg, pending: map[int][]Event{}, forked: map[int]bool{}, acted: map[int]Action{},
		cuts: map[int]*netcut.Cut{}, cutErr: map[int]string{}}
	d.e = New(Config{Signals: cfg.Signals, Logf: cfg.Logf})
	if err := d.load(); err != nil {
		// A damaged state file must not keep the daemon down: the
		// default policy, no hook; quarantines it named are lost, which
		// the log says.
		cfg.Logf("threat: %v: starting with the default policy and no quarantine", err)
		d.st = saved{Quarantine: map[int]qrec{}}
	}
	priv, made, err := ml.LoadOrCreateKey(filepath.Join(cfg.Dir, "model.key"))
	if err != nil {
		return nil, fmt.Errorf("threat: signing key: %w", err)
	}
	if made {
		cfg.Logf("threat: made the model signing key %s", filepath.Join(cfg.Dir, "model.key"))
	}
	own := priv.Public().(ed25519.PublicKey)
	d.pub = own
	if cfg.PubKey != nil {
		d.pub = cfg.PubKey
	}
	if bytes.Equal(d.pub, own) {
		d.key = priv
	}
	if _, err := os.Stat(d.modelDir()); errors.Is(err, os.ErrNotExist) && d.key != nil && cfg.Training != nil {
		if err := d.train("first start"); err != nil {
			cfg.Logf("threat: training the first model: %v; scoring on rules", err)
		}
	} else {
		d.e.LoadModel(d.modelDir(), d.pub) // a refusal is logged and leaves rules
	}
	return d, nil
}

func (d *Device) modelDir() string  { return filepath.Join(d.cfg.Dir, "model") }
func (d *Device) stateFile() string { return filepath.Join(d.cfg.Dir, "state.json") }

// Engine is the scoring engine behind the device.
func (d *Device) Engine() *Engine { return d.e }

func (d *Device) load() error {
	d.st = saved{Quarantine: map[int]qrec{}}
	b, err := os.ReadFile(d.stateFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var s saved
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("%s: %w", d.stateFile(), err)
	}
	if s.Policy != "" {
		p, err := ParsePolicy(s.Policy)
		if err != nil {
			return fmt.Errorf("%s: policy: %w", d.stateFile(), err)
		}
		d.e.SetPolicy(p)
	}
	if s.Quarantine == nil {
		s.Quarantine = map[int]qrec{}
	}
	d.st = s
	return nil
}

// save writes state.json; the caller holds d.mu.
func (d *Device) save() error {
	st := d.st
	st.Policy = d.e.Policy().String()
	b, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return err
	}
	return statefile.Write(d.stateFile(), append(b, '\n'))
}

// train trains a model on the configured windows, signs it with the
// daemon's key, writes it over model/ and loads it back through the
// same checks as any model.
func (d *Device) train(why string) error {
	if d.key == nil {
		return fs.Errorf(syscall.EPERM, "the model key is pinned to another key: train and sign the model there")
	}
	if d.cfg.Training == nil {
		return fs.Errorf(syscall.ENOENT, "no training windows in this build")
	}
	rows, err := d.cfg.Training()
	if err != nil {
		return err
	}
	t0 := time.Now()
	m, err := Train(rows, 1)
	if err != nil {
		return err
	}
	if err := SaveModel(d.modelDir(), m, d.key, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	if err := d.e.LoadModel(d.modelDir(), d.pub); err != nil {
		return err
	}
	d.cfg.Logf("threat: trained and signed a model on %d windows in %.1f s (%s)", len(rows), time.Since(t0).Seconds(), why)
	return nil
}

// ---- feeding ----

// Run follows the proc connector's events (published by telemetry),
// fanotify's opens of the sensitive paths (feed.go) and the agents' ends
// until ctx ends.
func (d *Device) Run(ctx context.Context) {
	d.startOpens(ctx)
	if d.cfg.Bus == nil {
		return
	}
	sub := d.cfg.Bus.Subscribe(func(ev bus.Event) bool {
		return ev.Agent != 0 && (ev.Source == "proc" || (ev.Source == "agent" && (ev.Kind == "exit" || ev.Kind == "remove")))
	}, 4096)
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-sub.C():
			d.event(ev)
		}
	}
}

// maxPending bounds the events kept for one agent between two passes: a
// fork storm is visible long before, and the counts past it are lost,
// not the daemon's memory.
const maxPending = 4096

func (d *Device) event(ev bus.Event) {
	if ev.Source == "agent" {
		if ev.Kind == "remove" {
			d.forget(ev.Agent)
		}
		return
	}
	pid, _ := strconv.Atoi(ev.Get("pid"))
	d.notePid(pid, ev.Agent) // for the sensitive opens' pids (feed.go)
	e := Event{Time: ev.Time, Pid: pid}
	switch ev.Kind {
	case "fork":
		e.Kind = EvFork
	case "exit":
		e.Kind = EvExit
	case "uid":
		e.Kind = EvUID
	case "gid":
		e.Kind = EvGID
	case "exec":
		e.Kind = EvExec
		// The executable and its set-id bits, read now: the process may
		// be gone by the next pass.
		exe := filepath.Join(d.cfg.Proc, strconv.Itoa(pid), "exe")
		e.Path, _ = os.Readlink(exe)
		if st, err := os.Stat(exe); err == nil && st.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
			e.SetID = true
		}
	default:
		return
	}
	d.mu.Lock()
	if len(d.pending[ev.Agent]) < maxPending {
		d.pending[ev.Agent] = append(d.pending[ev.Agent], e)
	}
	if e.Kind == EvFork {
		d.forked[ev.Agent] = true
	}
	d.mu.Unlock()
}

// Tick observes every sampled agent; a closed window is scored and its
// verb carried out.
func (d *Device) Tick(now time.Time, latest map[int]telemetry.Sample) {
	start := time.Now()
	defer func() { d.tickNanos.Add(uint64(time.Since(start))) }()
	d.feedPass(latest)
	for id, s := range latest {
		d.mu.Lock()
		evs := d.pending[id]
		delete(d.pending, id)
		forked := d.forked[id]
		delete(d.forked, id)
		d.mu.Unlock()
		o := Observation{Sample: s, Events: evs}
		d.netFacts(&o, id)
		if forked {
			// pids.events' max is read only after forks: only a fork
			// can be refused by pids.max.
			o.ForkFails = d.forkFails(id)
		}
		if a, ok := d.e.Observe(id, o); ok {
			d.respond(id, a, s)
		}
	}
}

// forkFails is the agent's pids.events "max" count (v1 and v2 alike).
func (d *Device) forkFails(id int) uint64 {
	cg, err := d.cfg.Agents.Cgroups(id)
	if err != nil {
		return 0
	}
	dir := cg["pids"]
	if dir == "" {
		dir = cg["unified"]
	}
	var n uint64
	kfile.Read(filepath.Join(dir, "pids.events"), func(b []byte) error {
		n, _ = kfile.Keyed(b, "max")
		return nil
	})
	return n
}

func (d *Device) forget(id int) {
	d.e.Forget(id)
	d.forgetOpens(id)
	d.mu.Lock()
	delete(d.pending, id)
	delete(d.forked, id)
	delete(d.acted, id)
	_, held := d.st.Quarantine[id]
	d.mu.Unlock()
	if held {
		// The agent is gone: its cut has nothing left to cut.
		d.lift(id, "agent removed")
	}
}

// ---- responding ----

// respond carries out a's verb once per step up the ladder: an alert is
// published when an agent first reaches it (again after its score fell
// back under the alert threshold), a throttle, quarantine or kill when
// the score first reaches that verb. Every action is an event carrying
// the assessment (its evidence) on the bus, so it is in agents/N/events,
// events and threat/alerts.
func (d *Device) respond(id int, a Assessment, s telemetry.Sample) {
	d.mu.Lock()
	_, quarantined := d.st.Quarantine[id]
	prev := d.acted[id]
	if a.Action == None && prev <= Alert {
		delete(d.acted, id) // fell back: a new climb alerts again
	}
	d.mu.Unlock()
	if quarantined || a.Action <= prev {
		return
	}
	d.mu.Lock()
	d.acted[id] = a.Action
	d.mu.Unlock()
	var err error
	switch a.Action {
	case Throttle:
		// Half of what it used over the window, at least a tenth of a
		// core: slowed enough to matter, alive enough to inspect. It
		// stays until root or the owner sets cpumax again.
		cores := max(0.1, s.CPU/2)
		err = d.cfg.Agents.Apply(id, view.CPUMax(cores), "threat: throttle")
	case Quarantine:
		err = d.quarantine(id, a, "policy")
	case Kill:
		err = d.cfg.Agents.Signal(id, syscall.SIGKILL, "threat: kill")
	}
	fields := alertFields(a)
	d.mu.Lock()
	if err != nil {
		fields = append(fields, bus.F("err", err.Error()))
		d.errs++
	} else {
		d.done[a.Action]++
	}
	d.mu.Unlock()
	if a.Action != Quarantine || err != nil { // quarantine publishes its own
		d.publish(a.Action.String(), id, fields...)
	}
	if a.Escalate {
		d.escalate(a)
	}
}

func alertFields(a Assessment) []bus.Field {
	top := make([]string, 0, len(a.Top))
	for _, t := range a.Top {
		top = append(top, t.Name+":"+strconv.FormatFloat(t.Weight, 'f', 3, 64))
	}
	f := []bus.Field{bus.F("score", strconv.FormatFloat(a.Score, 'f', 3, 64)), bus.F("type", a.Type.String()),
		bus.F("confidence", strconv.FormatFloat(a.Confidence, 'f', 3, 64)), bus.F("source", a.Source),
		bus.F("escalate", ctl.OnOff(a.Escalate)), bus.F("rules", strings.Join(a.Rules.Fired, ",")), bus.F("top", strings.Join(top, ","))}
	for _, sv := range a.Signals {
		f = append(f, bus.F("signal_"+sv.Name, strconv.FormatFloat(sv.Score, 'f', 3, 64)))
	}
	return f
}

func (d *Device) publish(kind string, id int, fields ...bus.Field) {
	if d.cfg.Bus != nil {
		d.cfg.Bus.Publish(bus.Event{Source: "threat", Kind: kind, Agent: id, Fields: fields})
	}
}

// escalate runs the hook, if root set one, with the alert in its
// environment (AIOS_ALERT, AIOS_AGENT, AIOS_ACTION, AIOS_SCORE,
// AIOS_TYPE), for at most 10 s, one at a time: an alert while one runs
// is counted as skipped, not queued behind it.
func (d *Device) escalate(a Assessment) {
	d.mu.Lock()
	hook := append([]string(nil), d.st.Hook...)
	if len(hook) == 0 {
		d.mu.Unlock()
		return
	}
	if d.hookRun {
		d.hooks.skipped++
		d.mu.Unlock()
		return
	}
	d.hookRun = true
	d.hooks.run++
	d.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, hook[0], hook[1:]...)
		cmd.Env = append(os.Environ(), "AIOS_ALERT="+strings.TrimSuffix(a.AlertLine(), "\n"), "AIOS_AGENT="+strconv.Itoa(a.Agent),
			"AIOS_ACTION="+a.Action.String(), "AIOS_SCORE="+strconv.FormatFloat(a.Score, 'f', 3, 64), "AIOS_TYPE="+a.Type.String())
		out, err := cmd.CombinedOutput()
		d.mu.Lock()
		d.hookRun = false
		if err != nil {
			d.hooks.failed++
		}
		d.mu.Unlock()
		if err != nil {
			d.cfg.Logf("threat: hook %q for agent %d: %v: %s", hook[0], a.Agent, err, bytes.TrimSpace(out[:min(len(out), 512)]))
		}
		d.publish("escalate", a.Agent, bus.F("hook", hook[0]), bus.F("ok", ctl.OnOff(err == nil)))
	}()
}

// quarantine freezes agent id, holds it (only root may change it), cuts
// its network and saves the quarantine before it is reported. A cut that
// cannot be made (no cgroup2 directory, no BPF) leaves the agent frozen
// and held, and says why in the event and threat/quarantine.
func (d *Device) quarantine(id int, a Assessment, why string) error {
	d.mu.Lock()
	if _, ok := d.st.Quarantine[id]; ok {
		d.mu.Unlock()
		return fs.Errorf(syscall.EALREADY, "agent %d is already quarantined", id)
	}
	d.mu.Unlock()
	if err := d.cfg.Agents.Freeze(id, true, "threat: quarantine"); err != nil {
		return err
	}
	if err := d.cfg.Agents.Hold(id, "threat", true); err != nil {
		return err
	}
	rec := qrec{Since: time.Now(), Score: a.Score, Type: a.Type.String(), Why: why}
	cutErr := ""
	if cg, err := d.cfg.Agents.Cgroups(id); err == nil && cg["unified"] != "" {
		rec.Dir = cg["unified"]
		c, pin, err := d.cut(id, rec.Dir)
		if err != nil {
			cutErr = err.Error()
		} else {
			rec.Pin = pin
			d.mu.Lock()
			d.cuts[id] = c
			d.mu.Unlock()
		}
	} else {
		cutErr = "the agent has no cgroup2 directory"
	}
	d.mu.Lock()
	d.st.Quarantine[id] = rec
	d.cutErr[id] = cutErr
	d.acted[id] = Quarantine
	serr := d.save()
	d.mu.Unlock()
	d.e.SetQuarantined(id, true)
	if serr != nil {
		// The quarantine stays in force (it is the safe side); what is
		// lost is that a restart would not apply it again. Say so.
		d.cfg.Logf("threat: quarantine of agent %d not saved: %v", id, serr)
	}
	fields := append(alertFields(a), bus.F("why", why), bus.F("net", cutState(rec.Pin, cutErr)))
	if serr != nil {
		fields = append(fields, bus.F("err", "not saved: "+serr.Error()))
	}
	d.publish("quarantine", id, fields...)
	return nil
}

func cutState(pin, err string) string {
	if err != "" {
		return "uncut: " + err
	}
	if pin == "" {
		return "-"
	}
	return "cut"
}

// cut attaches and pins a network cut on dir.
func (d *Device) cut(id int, dir string) (*netcut.Cut, string, error) {
	if err := netcut.Supported(); err != nil {
		return nil, "", err
	}
	if _, err := netcut.MountBPFFS(); err != nil {
		return nil, "", err
	}
	c, err := netcut.New(dir)
	if err != nil {
		return nil, "", err
	}
	pin := filepath.Join(netcut.PinRoot, fmt.Sprintf("%s-agent-%d", d.cfg.PinPrefix, id))
	if err := c.Pin(pin); err != nil {
		// Unpinned, the cut still holds while this daemon runs.
		d.cfg.Logf("threat: pin the cut of agent %d: %v (it holds until the daemon stops)", id, err)
		return c, "", nil
	}
	return c, pin, nil
}

// Release lifts agent id's quarantine: the cut goes, the hold goes, the
// agent is thawed. Root's alone (checked by the verb).
func (d *Device) Release(id int) error {
	d.mu.Lock()
	_, ok := d.st.Quarantine[id]
	d.mu.Unlock()
	if !ok {
		return fs.Errorf(syscall.ENOENT, "agent %d is not quarantined", id)
	}
	return d.lift(id, "release")
}

func (d *Device) lift(id int, why string) error {
	d.mu.Lock()
	c := d.cuts[id]
	rec := d.st.Quarantine[id]
	d.mu.Unlock()
	var errs []error
	if c != nil {
		errs = append(errs, c.Close())
	} else if rec.Pin != "" {
		if c, err := netcut.Load(rec.Pin); err == nil {
			errs = append(errs, c.Close())
		}
	}
	d.cfg.Agents.Hold(id, "threat", false)
	if why == "release" {
		// An agent that ended while quarantined has nothing to thaw: the
		// release still lifts its cut and its record. One that ends
		// between this check and the thaw (root's kill is delivered as the
		// thaw begins) is the registry's ErrEnded.
		if in, err := d.cfg.Agents.Info(id); err == nil && in.State != view.StateExited {
			if err := d.cfg.Agents.Freeze(id, false, "threat: release"); err != nil && !errors.Is(err, view.ErrEnded) {
				errs = append(errs, err)
			}
		}
	}
	d.mu.Lock()
	delete(d.cuts, id)
	delete(d.cutErr, id)
	delete(d.st.Quarantine, id)
	delete(d.acted, id)
	serr := d.save()
	d.mu.Unlock()
	d.e.SetQuarantined(id, false)
	if serr != nil {
		errs = append(errs, fmt.Errorf("threat: not saved: %w", serr))
	}
	err := errors.Join(errs...)
	f := []bus.Field{bus.F("why", why)}
	if err != nil {
		f = append(f, bus.F("err", err.Error()))
	}
	d.publish("release", id, f...)
	return err
}

// Reapply puts every saved quarantine back after a start: the freeze,
// the hold and the cut (the pinned one if it still cuts this agent's
// cgroup, else a new one). Never trusts the pins alone nor the state
// alone. Call it once the registry has its agents back (not from
// NewDevice: before the registry's restore every agent looks gone, and
// the quarantine would be lifted) and before anyone can write to them.
func (d *Device) Reapply() {
	d.mu.Lock()
	ids := make([]int, 0, len(d.st.Quarantine))
	for id := range d.st.Quarantine {
		ids = append(ids, id)
	}
	d.mu.Unlock()
	sort.Ints(ids)
	for _, id := range ids {
		d.mu.Lock()
		rec := d.st.Quarantine[id]
		d.mu.Unlock()
		in, err := d.cfg.Agents.Info(id)
		if err != nil || in.State == view.StateExited {
			d.lift(id, "agent gone")
			continue
		}
		d.cfg.Agents.Hold(id, "threat", true)
		if err := d.cfg.Agents.Freeze(id, true, "threat: quarantine (restart)"); err != nil {
			d.cfg.Logf("threat: freeze quarantined agent %d again: %v", id, err)
		}
		cutErr := ""
		var c *netcut.Cut
		if rec.Pin != "" {
			if lc, err := netcut.Load(rec.Pin); err == nil {
				if want, err := netcut.CgroupID(rec.Dir); err == nil && want != 0 && lc.CgroupID() == want {
					c = lc
				} else {
					lc.Close()
				}
			}
		}
		if c == nil && rec.Dir != "" {
			if nc, pin, err := d.cut(id, rec.Dir); err != nil {
				cutErr = err.Error()
			} else {
				c, rec.Pin = nc, pin
			}
		}
		d.mu.Lock()
		if c != nil {
			d.cuts[id] = c
		}
		d.cutErr[id] = cutErr
		d.st.Quarantine[id] = rec
		d.acted[id] = Quarantine
		serr := d.save()
		d.mu.Unlock()
		if serr != nil {
			// In force all the same; the state file still names the old
			// pin, which the next start checks against the cgroup.
			d.cfg.Logf("threat: quarantine of agent %d restored but not saved: %v", id, serr)
		}
		d.e.SetQuarantined(id, true)
		d.publish("quarantine", id, bus.F("why", "restored"), bus.F("net", cutState(rec.Pin, cutErr)))
	}
}

// Close is the daemon's clean stop. The agents' cgroups go next (the
// agent engine's Shutdown stops spawned agents and removes every cgroup it
// made), so a pinned cut would only hold a dead cgroup and its program
// past the daemon: the cuts are detached and unpinned. The quarantine
// records stay in state.json, and Reapply puts each back, with a new cut,
// on the agent the next start resumes. After a kill -9 nothing runs here:
// the pins keep the cuts in force until the next start takes them over.
func (d *Device) Close() error {
	d.closeOpens()
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for id, c := range d.cuts {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("threat: lift the cut of agent %d: %w", id, err))
		}
	}
	d.cuts = map[int]*netcut.Cut{}
	return errors.Join(errs...)
}

// ---- files ----

// Nodes is threat/.
func (d *Device) Nodes() []fs.Node {
	ns := d.cfg.NS
	root := fs.Owner{}
	t := d.verbs()
	text := func(name string, f func() string) fs.Node {
		return ns.Text("/threat/"+name, 0444, root, func(fs.Caller) ([]byte, error) { return []byte(f()), nil })
	}
	for p, doc := range map[string]string{
		"/threat/ctl":        "the threat engine's verbs and the policy in force (read it for both)",
		"/threat/status":     "mode= model= agents= quarantined= windows= alerts= ... host_score= host_trend= model_error=, then the responder's acts",
		"/threat/alerts":     "the threat engine's events: time=... agent= action= score= type= confidence= source= rules= ...",
		"/threat/trends":     "each agent's score trend: TrendsText",
		"/threat/predict":    "each agent's predicted score: PredictText",
		"/threat/quarantine": "one line per quarantined agent",
		"/threat/model":      "the signed model in force: its files and key.pub",
	} {
		ns.Document(p, doc)
	}
	return []fs.Node{ns.StaticDir("/threat", 0555, root,
		ns.Ctl("/threat/ctl", 0666, root, func() []byte { return append(t.Help(), []byte("# policy in force:\n"+d.e.Policy().String())...) }, t.Exec),
		text("status", d.statusText),
		ns.StreamOf("/threat/alerts", 0444, root, func(c fs.Caller) (fs.Stream, error) {
			return d.cfg.Bus.SubscribeFor(c.Uid, func(ev bus.Event) bool { return ev.Source == "threat" }, 1024), nil
		}),
		text("trends", func() string { return TrendsText(d.e.Trends()) }),
		text("predict", func() string { return PredictText(d.e.Trends()) }),
		text("quarantine", d.quarantineLines),
		ns.Dir("/threat/model", 0555, root, d.modelFiles, func(name string) (fs.Node, error) {
			for _, n := range mustList(d.modelFiles()) {
				if n.Attr().Name == name {
					return n, nil
				}
			}
			return nil, fs.ErrNotExist
		}),
	)}
}

func mustList(n []fs.Node, _ error) []fs.Node { return n }

// modelFiles are threat/model/'s files: the model directory's three and
// key.pub, each read afresh (bounded: a model is at most a few MB).
func (d *Device) modelFiles() ([]fs.Node, error) {
	ns := d.cfg.NS
	root := fs.Owner{}
	out := []fs.Node{ns.Text("/threat/model/key.pub", 0444, root, func(fs.Caller) ([]byte, error) {
		return []byte(ml.PublicKeyString(d.pub) + "\n"), nil
	})}
	for _, name := range []string{"manifest.json", "manifest.sig", ModelFile} {
		p := filepath.Join(d.modelDir(), name)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		out = append(out, ns.Text("/threat/model/"+name, 0444, root, func(fs.Caller) ([]byte, error) {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, fs.Errorf(syscall.EIO, "%v", err)
			}
			return b, nil
		}))
	}
	return out, nil
}

// statusText is threat/status: the engine's line (Status.StatusText),
// one line per extra signal (signal=NAME status="..."), then the
// responder's:
//
//	responder quarantined=1 cut=1 uncut=0 hook=/usr/local/bin/page acts=alert:1,throttle:0,quarantine:1,kill:0 hook_runs=2 hook_skipped=0 hook_failed=0 errors=0 opens=on opens_fed=3
//
// opens is the sensitive opens' watch (fanotify): on, or off: WHY (no
// CAP_SYS_ADMIN, not configured); opens_fed counts the opens fed to an
// agent since the start.
//
// acts counts what the responder did on its own by policy since the
// daemon started (once per step up of an agent's verb; the engine's
// alerts..kills count windows); errors counts acts that failed.
func (d *Device) statusText() string {
	var b strings.Builder
	b.WriteString(d.e.Status().StatusText())
	b.WriteString(d.e.SignalStatus())
	d.mu.Lock()
	cut, uncut := 0, 0
	for id := range d.st.Quarantine {
		if d.cutErr[id] == "" && d.cuts[id] != nil {
			cut++
		} else {
			uncut++
		}
	}
	hook := "-"
	if len(d.st.Hook) > 0 {
		hook = strings.Join(d.st.Hook, " ")
	}
	watch, fed := d.opensState() // its own lock, never held when taking d.mu
	l := new(ctl.Line).Int("quarantined", int64(len(d.st.Quarantine))).Int("cut", int64(cut)).Int("uncut", int64(uncut)).
		Str("hook", hook).Str("acts", d.actsText()).Uint("hook_runs", d.hooks.run).Uint("hook_skipped", d.hooks.skipped).Uint("hook_failed", d.hooks.failed).Uint("errors", d.errs).
		Str("opens", watch).Uint("opens_fed", fed)
	d.mu.Unlock()
	b.WriteString("responder ")
	b.Write(l.Bytes())
	return b.String()
}

// quarantineLines is threat/quarantine, one line per quarantined agent:
//
//	agent=7 since=1764795600.000 score=0.912 type=DataExfiltration why=policy net=cut pin=/sys/fs/bpf/aiosfs/aiosfs-agent-7
//
//	why  policy (the engine's verb) or ctl (a writer's quarantine N)
//	net  cut, or uncut: REASON (the agent is frozen and held all the same)
func (d *Device) quarantineLines() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]int, 0, len(d.st.Quarantine))
	for id := range d.st.Quarantine {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	var b strings.Builder
	for _, id := range ids {
		r := d.st.Quarantine[id]
		pin := r.Pin
		if pin == "" {
			pin = "-"
		}
		b.WriteString(new(ctl.Line).Int("agent", int64(id)).Time("since", r.Since).Float("score", r.Score, 3).Str("type", r.Type).
			Str("why", r.Why).Str("net", cutState(r.Pin, d.cutErr[id])).Str("pin", pin).String())
	}
	return b.String()
}

// AgentTab is the threat engine's row of agents/N.
func (d *Device) AgentTab() fs.Dirtab {
	return fs.Dirtab{{Name: "threat", Perm: 0444, Owner: "threat",
		Doc: "score=0..1 type=T confidence=0..1 action=VERB escalate=0|1 trend=rising|steady|falling source=rules|ml|SIGNAL top=F@W:w,... warn=VERB@H|- time=T, then signal lines: Assessment.AgentLine",
		Make: func(id int, p string, own fs.Owner) fs.Node {
			return d.cfg.NS.Text(p, 0444, own, func(fs.Caller) ([]byte, error) {
				a, ok := d.e.Assessment(id)
				if !ok {
					return []byte("-\n"), nil
				}
				return []byte(a.AgentLine()), nil
			})
		}}}
}

// ---- ctl ----

// owner checks that c may act on agent id: root or its owner.
func (d *Device) owner(c fs.Caller, id int) error {
	in, err := d.cfg.Agents.Info(id)
	if err != nil {
		return err
	}
	if c.Uid != 0 && c.Uid != in.Uid {
		return fs.Errorf(syscall.EPERM, "agent %d is not yours", id)
	}
	return nil
}

// ownedAgent is the agent a verb names, once c is found to be its owner
// or root.
func (d *Device) ownedAgent(c fs.Caller, arg string) (int, error) {
	id, err := parseAgent(arg)
	if err != nil {
		return 0, err
	}
	return id, d.owner(c, id)
}

func parseAgent(s string) (int, error) {
	n, err := ctl.ParseInt(s, 1, 1<<31-1)
	return int(n), err
}

// verbs is threat/ctl's table. Every verb checks all it is given before
// it changes anything; a refused line changes nothing.
func (d *Device) verbs() ctl.Table {
	return ctl.Table{
		{Name: "policy", Args: "RULE[;RULE...]|default", Min: 1, Max: -1, Root: true,
			Doc: "the response table, e.g. policy alert 0.5; throttle 0.7; quarantine 0.85; kill off; escalate 0.85 (read ctl for the one in force)",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				p := DefaultPolicy()
				if !(len(a) == 1 && a[0] == "default") {
					var err error
					if p, err = ParsePolicy(strings.Join(a, " ")); err != nil {
						return ctl.Errorf("%v", err)
					}
				}
				d.mu.Lock()
				defer d.mu.Unlock()
				old := d.e.Policy()
				d.e.SetPolicy(p)
				if err := d.save(); err != nil {
					d.e.SetPolicy(old)
					return fmt.Errorf("threat: not saved, nothing changed: %w", err)
				}
				return nil
			}},
		{Name: "quarantine", Args: "N", Min: 1, Max: 1, Doc: "freeze agent N, hold it and cut its network (its owner or root; only root releases)",
			Run: func(_ context.Context, c fs.Caller, a []string) error {
				id, err := d.ownedAgent(c, a[0])
				if err != nil {
					return err
				}
				as, _ := d.e.Assessment(id)
				as.Agent = id
				return d.quarantine(id, as, "ctl uid="+strconv.Itoa(int(c.Uid)))
			}},
		{Name: "release", Args: "N", Min: 1, Max: 1, Root: true, Doc: "lift agent N's quarantine: its cut, its hold, its freeze",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				id, err := parseAgent(a[0])
				if err != nil {
					return err
				}
				return d.Release(id)
			}},
		{Name: "kill", Args: "N", Min: 1, Max: 1, Doc: "KILL every process of agent N (its owner or root)",
			Run: func(_ context.Context, c fs.Caller, a []string) error {
				id, err := d.ownedAgent(c, a[0])
				if err != nil {
					return err
				}
				if c.Uid != 0 && d.isQuarantined(id) {
					return fs.Errorf(syscall.EPERM, "agent %d is quarantined: only root may change it", id)
				}
				return d.cfg.Agents.Signal(id, syscall.SIGKILL, "threat: kill by uid "+strconv.Itoa(int(c.Uid)))
			}},
		{Name: "learn", Args: "N", Min: 1, Max: 1, Doc: "learn agent N's normal behaviour afresh (its baseline and every signal's profile)",
			Run: func(_ context.Context, c fs.Caller, a []string) error {
				id, err := d.ownedAgent(c, a[0])
				if err != nil {
					return err
				}
				if d.isQuarantined(id) {
					return fs.Errorf(syscall.EPERM, "agent %d is quarantined: nothing is learned from it", id)
				}
				return d.e.Learn(id)
			}},
		{Name: "model", Args: "reload", Min: 1, Max: 1, Root: true, Doc: "load model/ again, checked against the key (refused: the model in force stays)",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				if a[0] != "reload" {
					return ctl.Errorf("model %q: want reload", a[0])
				}
				// A refused model is bad input: EINVAL with the reason,
				// and the model in force stays.
				if err := d.e.ReloadModel(d.modelDir(), d.pub); err != nil {
					return ctl.Errorf("model refused, nothing changed: %v", err)
				}
				return nil
			}},
		{Name: "train", Min: 0, Max: 0, Root: true, Doc: "train a model on the recorded windows this build carries, sign it with the daemon's key, load it",
			Run: func(context.Context, fs.Caller, []string) error { return d.train("ctl") }},
		{Name: "hook", Args: "CMD [ARGS...]|off", Min: 1, Max: -1, Root: true,
			Doc: "run CMD at each escalation with the alert in AIOS_ALERT (absolute path; off: none)",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				var hook []string
				if !(len(a) == 1 && a[0] == "off") {
					if !filepath.IsAbs(a[0]) {
						return ctl.Errorf("hook %q: want an absolute path", a[0])
					}
					if st, err := os.Stat(a[0]); err != nil || st.IsDir() || st.Mode()&0111 == 0 {
						return ctl.Errorf("hook %q: not an executable file", a[0])
					}
					hook = a
				}
				d.mu.Lock()
				defer d.mu.Unlock()
				old := d.st.Hook
				d.st.Hook = hook
				if err := d.save(); err != nil {
					d.st.Hook = old
					return fmt.Errorf("threat: not saved, nothing changed: %w", err)
				}
				return nil
			}},
	}
}

// actsText is the responder's acts per verb: alert:N,throttle:N,...
// Call with d.mu held.
func (d *Device) actsText() string {
	var b strings.Builder
	for a := Alert; a < NumActions; a++ {
		if a > Alert {
			b.WriteByte(',')
		}
		b.WriteString(a.String())
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(d.done[a], 10))
	}
	return b.String()
}

func (d *Device) isQuarantined(id int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.st.Quarantine[id]
	return ok
}
