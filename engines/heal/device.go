package heal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"aiosfs/ctl"
	"aiosfs/engines/agent/view"
	"aiosfs/engines/bus"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
	"aiosfs/hal/process"
	"aiosfs/internal/statefile"
)

// The healing engine as the daemon runs it (issue 14): fed by the bus's
// agent and OOM events and every sampler pass, it carries out the
// actions the Engine returns through the agent registry, one at a time
// per agent, reports their outcomes and saves its state. Its files:
//
//	heal/ctl          verbs (heal.Verbs; read it for the table); writes are root's
//	heal/status       Engine.Status, then the executor's line (executorLine)
//	heal/health       Engine.HealthFile
//	heal/failures     Engine.Failures
//	heal/procedures   Engine.ProceduresFile
//	heal/history      Engine.History
//	heal/maintenance  Engine.Maintenance
//	heal/forecast     Engine.ForecastFile
//	agents/N/health   Engine.AgentHealth, or "-" before the agent is seen
//	agents/N/heartbeat  the agent's heartbeat (heartbeatLine); its owner or
//	                  root writes it, and the write's time is the beat
//
// and the verb `heal restart=… intensity=… backoff=… maintenance=…
// every=… duration=…|off` in agents/N/ctl (its owner or root).
//
// Agents are observed only (Policy.Observe: health, predictions and
// failures, nothing done to them) until a policy is set for them, by
// that verb or `policy N` in heal/ctl: the daemon never restarts or
// changes an agent nobody asked it to supervise.

// DeviceConfig is what the daemon gives the healing engine.
type DeviceConfig struct {
	NS     *fs.NS
	Bus    *bus.Bus
	Agents view.Registry
	// Dir is the engine's state directory (STATE/heal): heal.json.
	Dir string
	// Proc is the host's procfs (RLIMIT_NOFILE of agents' processes,
	// the host's pressure, memory and load).
	Proc proc.FS
	// Procs are an agent's processes as last sampled (nil: Agents.Procs).
	Procs func(id int) []int
	// Interval is the sampling interval the engine is fed at; IntervalNow,
	// when set, is the one in force now (it can be changed at run time),
	// against which a pass's lateness is measured.
	Interval    time.Duration
	IntervalNow func() time.Duration
	Seed        uint64
	Logf        func(format string, args ...any)
	// Forecast is the scheduler's host load forecast over steps (0: its
	// own length; nil, or ok false: none, and maintenance windows go as
	// soon as possible). It is asked for only when windows are to be
	// placed. HasForecast says, without computing one, whether there is
	// one (nil: none): heal/status's forecast=, once per interval.
	Forecast    func(steps int) (f Forecast, ok bool)
	HasForecast func() bool
	// Engines are the daemon's engines' loops as of now (nil: none):
	// per engine its Name, its LoopLatency (the last pass's duration, or
	// how long the pass in progress has run) and the Time of the last
	// pass's end. The device adds telemetry's lateness and each engine's
	// error events (kind=error on the bus, by source), decides which have
	// failed (stalled or erring repeatedly, see watchEngines) and feeds
	// them all to ObserveEngine once per interval, from its own
	// goroutine, so a pass that never ends is seen.
	Engines func(now time.Time) []EngineStat
}

// Engine health thresholds (watchEngines): a loop is failed when its
// pass has run, or its next pass has been missing, for stallAfter
// intervals and at least stallMin; or when its engine published
// errFail error events within errWindow.
const (
	stallAfter = 5
	stallMin   = 5 * time.Second
	errFail    = 5
	errWindow  = time.Minute
)

// beat is one agent's heartbeat.
type beat struct {
	last  time.Time
	every time.Duration
}

type fdLimit struct {
	pid int
	max int64
	at  time.Time
}

// fdLimitAge is how long an agent's RLIMIT_NOFILE is taken as read: a
// process can change its own (a shell's ulimit -n) at any time.
const fdLimitAge = 2 * time.Second

// Device is the running healing engine.
type Device struct {
	cfg  DeviceConfig
	e    *Engine
	path string
	ncpu int

	mu      sync.Mutex
	beats   map[int]beat
	killed  map[int]bool // an operator or engine ended the agent: its exit is a stop
	fds     map[int]fdLimit
	queue   []Action
	running map[int]bool // agents with an action being carried out
	counts  struct{ ok, failed, skipped uint64 }
	lastTel time.Time
	telLate time.Duration          // the last pass's lateness
	errs    map[string][]time.Time // error events by source within errWindow
	nerrs   map[string]uint64      // error events by source since the start
	kick    chan struct{}
	wg      sync.WaitGroup
	sub     *bus.Sub // from NewDevice on, so no event before Run is lost

	queueMu   sync.Mutex // orders writes of queue.json
	saveMu    sync.Mutex
	savedGen  uint64
	saveErrs  uint64
	saveErr   string
	saveLog   time.Time
	savedOnce bool
}

// NewDevice makes the engine and loads STATE/heal/heal.json. A file that
// cannot be loaded is kept aside (heal.json.bad) and the engine starts
// afresh, saying so: a damaged file must not keep the daemon down, nor be
// overwritten unseen.
func NewDevice(cfg DeviceConfig) (*Device, error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Procs == nil {
		cfg.Procs = func(id int) []int { p, _ := cfg.Agents.Procs(id); return p }
	}
	if err := os.MkdirAll(cfg.Dir, 0700); err != nil {
		return nil, err
	}
	d := &Device{cfg: cfg, path: filepath.Join(cfg.Dir, "heal.json"), ncpu: runtime.NumCPU(),
		beats: map[int]beat{}, killed: map[int]bool{}, fds: map[int]fdLimit{}, running: map[int]bool{}, kick: make(chan struct{}, 1),
		errs: map[string][]time.Time{}, nerrs: map[string]uint64{}}
	if n := cfg.Proc.NumCPU(); n > 0 {
		d.ncpu = n
	}
	d.e = New(Config{Seed: cfg.Seed, Interval: cfg.Interval, OptIn: true, HangByHeartbeat: true, Logf: cfg.Logf})
	if err := d.e.LoadFile(d.path); err != nil {
		bad := d.path + ".bad"
		rerr := os.Rename(d.path, bad)
		cfg.Logf("heal: %s: %v: starting afresh (the file is kept as %s: %v)", d.path, err, bad, rerr)
	}
	d.savedGen = d.e.Changes()
	d.loadQueue()
	if cfg.Bus != nil {
		d.sub = cfg.Bus.Subscribe(func(ev bus.Event) bool {
			return ev.Kind == "error" || ev.Agent != 0 && (ev.Source == "agent" || ev.Source == "telemetry" && ev.Kind == "oom")
		}, 4096)
	}
	return d, nil
}

// Engine is the engine behind the device.
func (d *Device) Engine() *Engine { return d.e }

// ---- saving ----

// save writes heal.json now.
func (d *Device) save() error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	gen := d.e.Changes()
	err := d.e.SaveFile(d.path)
	if err == nil {
		d.savedGen = gen
		d.saveErr = ""
	} else {
		d.saveErrs++
		d.saveErr = err.Error()
	}
	return err
}

// saveIfChanged saves when a failure, an action, an outcome, a policy or
// a window changed since the last save. A failure is logged (at most
// every 30 s while it lasts), published and counted in heal/status and
// metrics; the next change tries again.
func (d *Device) saveIfChanged() {
	d.saveMu.Lock()
	same := d.e.Changes() == d.savedGen
	d.saveMu.Unlock()
	if same {
		return
	}
	if err := d.save(); err != nil {
		d.saveMu.Lock()
		logIt := time.Since(d.saveLog) >= 30*time.Second
		if logIt {
			d.saveLog = time.Now()
		}
		d.saveMu.Unlock()
		if logIt {
			d.cfg.Logf("heal: state not saved to %s: %v", d.path, err)
		}
		d.publish("error", 0, bus.F("op", "save"), bus.F("err", err.Error()))
	}
}

// errnoOf is err's errno, EIO when it carries none.
func errnoOf(err error) syscall.Errno {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return syscall.EIO
}

// ---- feeding ----

// Run follows the agents' lifecycle on the bus and carries out the
// actions as they fall due until ctx ends.
func (d *Device) Run(ctx context.Context) {
	var evs <-chan bus.Event
	if d.sub != nil {
		evs = d.sub.C()
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	watch := time.NewTicker(d.interval())
	defer watch.Stop()
	for {
		next := d.dispatch(ctx)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case ev := <-evs:
			d.event(ev)
		case <-d.kick:
		case <-timer.C:
		case now := <-watch.C:
			d.watchEngines(now)
			watch.Reset(d.interval())
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (d *Device) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// exitStatus parses the agent engine's exit status: "exit N", "signal
// NAME", "unknown", each perhaps followed by " (why)" when the daemon or
// an operator stopped it.
func exitStatus(s string) (code, sig int, stopped bool) {
	if i := strings.Index(s, " ("); i >= 0 {
		stopped = true
		s = s[:i]
	}
	switch {
	case strings.HasPrefix(s, "exit "):
		code, _ = strconv.Atoi(strings.TrimPrefix(s, "exit "))
	case strings.HasPrefix(s, "signal "):
		if v, err := ctl.ParseSignal(strings.TrimPrefix(s, "signal ")); err == nil {
			sig = int(v)
		} else {
			code = -1
		}
	default:
		code = -1 // unknown: the kernel's status was lost; not a clean exit
	}
	return
}

// event feeds one bus event to the engine.
func (d *Device) event(ev bus.Event) {
	if ev.Kind == "error" {
		d.mu.Lock()
		d.nerrs[ev.Source]++
		d.errs[ev.Source] = append(d.errs[ev.Source], ev.Time)
		d.mu.Unlock()
		return
	}
	id := ev.Agent
	var acts []Action
	if ev.Source == "telemetry" {
		acts = d.e.Event(Event{Time: ev.Time, Agent: id, Type: OOMKilled})
	} else {
		switch ev.Kind {
		case "spawn", "restart":
			if ev.Get("err") != "" {
				break
			}
			d.mu.Lock()
			delete(d.killed, id)
			delete(d.fds, id)
			if b, ok := d.beats[id]; ok {
				d.beats[id] = beat{every: b.every} // the new run has not beaten yet
			}
			d.mu.Unlock()
			acts = d.e.Event(Event{Time: ev.Time, Agent: id, Type: Started})
		case "kill", "stop":
			d.mu.Lock()
			d.killed[id] = true
			d.mu.Unlock()
		case "exit":
			code, sig, stopped := exitStatus(ev.Get("status"))
			d.mu.Lock()
			stopped = stopped || d.killed[id]
			delete(d.killed, id)
			delete(d.fds, id)
			d.mu.Unlock()
			if stopped {
				acts = d.e.Event(Event{Time: ev.Time, Agent: id, Type: Stopped})
			} else {
				acts = d.e.Event(Event{Time: ev.Time, Agent: id, Type: Exited, Code: code, Signal: sig})
			}
		case "remove":
			d.e.Remove(id)
			d.mu.Lock()
			delete(d.beats, id)
			delete(d.killed, id)
			delete(d.fds, id)
			q := d.queue[:0]
			for _, a := range d.queue {
				if a.Agent != id {
					q = append(q, a)
				}
			}
			d.queue = q
			d.mu.Unlock()
			d.saveQueue()
		}
	}
	d.enqueue(acts)
	d.saveIfChanged()
}

// Tick observes every sampled agent, the host and telemetry itself, and
// queues the engine's actions. Called after every sampler pass.
func (d *Device) Tick(now time.Time, latest map[int]telemetry.Sample) {
	for id, s := range latest {
		in, err := d.cfg.Agents.Info(id)
		if err != nil || !in.Alive {
			continue
		}
		d.mu.Lock()
		b := d.beats[id]
		d.mu.Unlock()
		used, size := diskOf(in.Dir)
		d.e.Observe(id, Obs{Sample: s, MemMax: positive(in.Limits.MemMax), MemHigh: positive(in.Limits.MemHigh),
			PidsMax: positive(in.Limits.Pids), FDMax: d.fdMax(id), Heartbeat: b.last, HeartbeatEvery: b.every,
			DiskUsed: used, DiskSize: size})
	}
	if h, _ := ReadHost(d.cfg.Proc.Root(), []string{d.cfg.Dir}, d.ncpu); !h.Time.IsZero() {
		d.e.ObserveHost(h)
	}
	iv := d.interval()
	d.mu.Lock()
	if !d.lastTel.IsZero() && iv > 0 {
		d.telLate = max(0, now.Sub(d.lastTel)-iv)
	}
	d.lastTel = now
	d.mu.Unlock()
	d.enqueue(d.e.TickWith(now, d.forecast))
	d.saveIfChanged()
}

// interval is the sampling interval in force.
func (d *Device) interval() time.Duration {
	iv := d.cfg.Interval
	if d.cfg.IntervalNow != nil {
		iv = d.cfg.IntervalNow()
	}
	if iv <= 0 {
		iv = time.Second
	}
	return iv
}

// forecast is the scheduler's forecast over its longest horizon, for the
// engine to place maintenance windows by.
func (d *Device) forecast() (Forecast, bool) {
	if d.cfg.Forecast == nil {
		return Forecast{}, false
	}
	return d.cfg.Forecast(0)
}

// watchEngines feeds the health of the daemon's engines, once per
// interval from Run's goroutine (not the sampler's: a stalled pass must
// not stop its own detection). Telemetry's loop latency is the last
// pass's lateness, or, while no pass comes, how late the next one is; a
// loop stalled for stallAfter intervals (and stallMin) or an engine that
// published errFail errors within errWindow is Failed, which turns the
// engine to its rules (Engine.Mode) until it recovers. It also says in
// heal/status whether the scheduler has a forecast (HasForecast: the
// forecast itself is made only when windows are placed).
func (d *Device) watchEngines(now time.Time) {
	iv := d.interval()
	stall := max(stallAfter*iv, stallMin)
	var stats []EngineStat
	d.mu.Lock()
	if !d.lastTel.IsZero() {
		late := max(d.telLate, now.Sub(d.lastTel)-iv)
		st := EngineStat{Name: "telemetry", Time: now, LoopLatency: late}
		if late >= stall {
			st.Failed, st.Why = true, "no pass for "+strconv.FormatFloat(now.Sub(d.lastTel).Seconds(), 'f', 1, 64)+"s"
		}
		stats = append(stats, st)
	}
	d.mu.Unlock()
	if d.cfg.Engines != nil {
		for _, st := range d.cfg.Engines(now) {
			st.Time = now
			if st.LoopLatency >= stall {
				st.Failed, st.Why = true, "pass running "+strconv.FormatFloat(st.LoopLatency.Seconds(), 'f', 1, 64)+"s"
			}
			stats = append(stats, st)
		}
	}
	d.mu.Lock()
	seen := map[string]bool{}
	for i := range stats {
		seen[stats[i].Name] = true
	}
	for src := range d.nerrs {
		if !seen[src] {
			stats = append(stats, EngineStat{Name: src, Time: now})
		}
	}
	for i := range stats {
		st := &stats[i]
		ts := d.errs[st.Name]
		for len(ts) > 0 && now.Sub(ts[0]) > errWindow {
			ts = ts[1:]
		}
		d.errs[st.Name] = ts
		st.Errors = d.nerrs[st.Name]
		if len(ts) >= errFail && !st.Failed {
			st.Failed, st.Why = true, strconv.Itoa(len(ts))+" errors in "+errWindow.String()
		}
	}
	d.mu.Unlock()
	for _, st := range stats {
		d.e.ObserveEngine(st)
	}
	src := ""
	if d.cfg.Forecast != nil && d.cfg.HasForecast != nil && d.cfg.HasForecast() {
		src = "sched"
	}
	d.e.SetForecastSource(src)
}

func positive(v int64) int64 {
	if v > 0 {
		return v
	}
	return 0
}

// fdMax is RLIMIT_NOFILE of the agent's first process
// (/proc/PID/limits), read again when the process changes or the value
// is older than fdLimitAge.
// diskOf is the space used and the size of the filesystem holding dir
// (the agent's working directory), from one statfs(2); 0, 0 when dir is
// "" or cannot be read (then disk is not watched for the agent). Blocks
// reserved for root count as used: an agent that is not root cannot
// write them.
func diskOf(dir string) (used, size int64) {
	if dir == "" {
		return 0, 0
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Blocks == 0 {
		return 0, 0
	}
	bs := int64(st.Bsize)
	return int64(st.Blocks-st.Bavail) * bs, int64(st.Blocks) * bs
}

func (d *Device) fdMax(id int) int64 {
	pids := d.cfg.Procs(id)
	if len(pids) == 0 {
		return 0
	}
	pid := pids[0]
	d.mu.Lock()
	c, ok := d.fds[id]
	d.mu.Unlock()
	if ok && c.pid == pid && time.Since(c.at) < fdLimitAge {
		return c.max
	}
	var n int64
	if rl, err := d.cfg.Proc.Rlimits(pid); err == nil {
		for _, r := range rl {
			if r.Resource == syscall.RLIMIT_NOFILE && r.Cur < 1<<40 {
				n = int64(r.Cur)
			}
		}
	}
	d.mu.Lock()
	d.fds[id] = fdLimit{pid, n, time.Now()}
	d.mu.Unlock()
	return n
}

// ---- carrying out ----

// enqueue adds actions to the queue; one due later is announced now.
func (d *Device) enqueue(acts []Action) {
	if len(acts) == 0 {
		return
	}
	now := time.Now()
	d.mu.Lock()
	d.queue = append(d.queue, acts...)
	sort.SliceStable(d.queue, func(i, j int) bool { return d.queue[i].At.Before(d.queue[j].At) })
	d.mu.Unlock()
	d.saveQueue()
	for _, a := range acts {
		if a.At.After(now.Add(10 * time.Millisecond)) {
			d.publish("scheduled", a.Agent, append(actionFields(a), bus.F("delay", strconv.FormatFloat(a.At.Sub(a.Time).Seconds(), 'f', 3, 64)))...)
		}
	}
	d.poke()
}

// dispatch starts every due action whose agent has none running, and
// returns when the next queued one falls due (zero: none).
func (d *Device) dispatch(ctx context.Context) time.Time {
	next, started := d.startDue(ctx)
	if started {
		d.saveQueue()
	}
	return next
}

func (d *Device) startDue(ctx context.Context) (next time.Time, started bool) {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queue[:0]
	for _, a := range d.queue {
		switch {
		case a.At.After(now):
			if next.IsZero() || a.At.Before(next) {
				next = a.At
			}
			q = append(q, a)
		case d.running[a.Agent]:
			q = append(q, a) // one at a time per agent: it waits for the one running
		default:
			started = true
			d.running[a.Agent] = true
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				d.carry(ctx, a)
				d.mu.Lock()
				delete(d.running, a.Agent)
				d.mu.Unlock()
				d.poke()
			}()
		}
	}
	d.queue = q
	return next, started
}

// supervised reports whether a is the supervisor's restart after an
// exit (verdict "-"), which only makes sense while the agent is down.
func supervised(a Action) bool {
	return a.Outcome == "-" && a.Cause != "maintenance"
}

// carry carries out a's steps in order, stopping at the first that
// fails; a failure is reported to the engine (Outcome) and every action
// is published with its reason and result.
func (d *Device) carry(ctx context.Context, a Action) {
	why := fmt.Sprintf("heal: %s %s #%d", a.Cause, a.Procedure, a.ID)
	in, err := d.cfg.Agents.Info(a.Agent)
	skip := ""
	switch {
	case err != nil:
	case supervised(a) && in.Alive && len(a.Steps) > 0 && a.Steps[0].Verb == VerbRestart:
		skip = "the agent is running again"
	case !supervised(a) && a.Cause != "maintenance" && !in.Alive:
		skip = "the agent is not running"
	case in.State == view.StateFrozen:
		skip = "the agent is frozen"
	case d.e.Policy(a.Agent).Observe:
		skip = "the agent is observed only (heal off)"
	}
	var notes []string
	if err == nil && skip == "" {
		for _, st := range a.Steps {
			var note string
			note, err = d.step(ctx, a, st, in, why)
			if note != "" {
				notes = append(notes, st.String()+": "+note)
			}
			if err != nil {
				err = fmt.Errorf("%s: %w", st, err)
				break
			}
			if st.Verb == VerbRaise || st.Verb == VerbRestart {
				if in, err = d.cfg.Agents.Info(a.Agent); err != nil {
					break
				}
			}
		}
	}
	f := actionFields(a)
	d.mu.Lock()
	switch {
	case skip != "":
		d.counts.skipped++
		f = append(f, bus.F("result", "skipped"), bus.F("why", skip))
	case err != nil:
		d.counts.failed++
		f = append(f, bus.F("result", "failed"), bus.F("err", err.Error()))
	default:
		d.counts.ok++
		f = append(f, bus.F("result", "done"))
	}
	d.mu.Unlock()
	if len(notes) > 0 {
		f = append(f, bus.F("note", strings.Join(notes, "; ")))
	}
	if err != nil {
		d.e.Outcome(a.ID, false, err.Error())
	}
	if a.Cause == "maintenance" && !a.Window.IsZero() {
		d.e.MaintenanceEnded(a.Agent, a.Window, time.Now(), err == nil && skip == "")
	}
	d.publish("action", a.Agent, f...)
	d.saveIfChanged()
}

func actionFields(a Action) []bus.Field {
	steps := make([]string, len(a.Steps))
	for i, s := range a.Steps {
		steps[i] = s.String()
	}
	return []bus.Field{bus.F("id", a.ID), bus.F("cause", a.Cause), bus.F("procedure", a.Procedure),
		bus.F("steps", strings.Join(steps, ",")), bus.F("p", strconv.FormatFloat(a.P, 'f', 3, 64)), bus.F("reason", a.Reason)}
}

// raiseArg parses "memmax*1.5".
func raiseArg(s string) (string, float64, error) {
	k, f, ok := strings.Cut(s, "*")
	v, err := strconv.ParseFloat(f, 64)
	if !ok || err != nil || v <= 1 || v > 16 {
		return "", 0, fmt.Errorf("bad step argument %q", s)
	}
	return k, v, nil
}

// step carries out one step; note says what it did when that is not
// obvious (a step with nothing to do).
func (d *Device) step(ctx context.Context, a Action, st Step, in view.Info, why string) (note string, err error) {
	id := a.Agent
	switch st.Verb {
	case VerbRestart:
		return "", d.cfg.Agents.Restart(id, why)
	case VerbRaise:
		key, f, err := raiseArg(st.Arg)
		if err != nil {
			return "", err
		}
		switch key {
		case "memmax":
			l := in.Limits
			if l.MemMax <= 0 && l.MemHigh <= 0 {
				return "", errors.New("the agent has no memory limit to raise")
			}
			var done []string
			if l.MemMax > 0 {
				v := int64(float64(l.MemMax) * f)
				if err := d.cfg.Agents.Apply(id, view.MemMax(v), why); err != nil {
					return "", err
				}
				done = append(done, fmt.Sprintf("memmax %d -> %d", l.MemMax, v))
			}
			if l.MemHigh > 0 {
				v := int64(float64(l.MemHigh) * f)
				if err := d.cfg.Agents.Apply(id, view.MemHigh(v), why); err != nil {
					return strings.Join(done, ", "), err
				}
				done = append(done, fmt.Sprintf("memhigh %d -> %d", l.MemHigh, v))
			}
			return strings.Join(done, ", "), nil
		case "pidsmax":
			if in.Limits.Pids <= 0 {
				return "", errors.New("the agent has no pids.max to raise")
			}
			v := int64(float64(in.Limits.Pids) * f)
			return fmt.Sprintf("pidsmax %d -> %d", in.Limits.Pids, v), d.cfg.Agents.Apply(id, view.PidsMax(v), why)
		case "nofile":
			pids, err := d.cfg.Agents.Procs(id)
			if err != nil {
				return "", err
			}
			if len(pids) == 0 {
				return "", errors.New("the agent has no processes")
			}
			var errs []error
			var old, v uint64
			for _, p := range pids {
				var rl []proc.Rlimit
				if rl, err = d.cfg.Proc.Rlimits(p); err != nil {
					continue // gone
				}
				for _, r := range rl {
					if r.Resource == syscall.RLIMIT_NOFILE {
						old, v = r.Cur, uint64(float64(r.Cur)*f)
					}
				}
				if v == 0 {
					continue
				}
				if _, err := process.RaiseNofile(p, v); err != nil && !errors.Is(err, syscall.ESRCH) {
					errs = append(errs, fmt.Errorf("pid %d: %w", p, err))
				}
			}
			d.mu.Lock()
			delete(d.fds, id)
			d.mu.Unlock()
			return fmt.Sprintf("nofile %d -> %d", old, v), errors.Join(errs...)
		}
		return "", fmt.Errorf("no such limit %q to raise", key)
	case VerbReallocate:
		key, f, err := raiseArg(st.Arg)
		if err != nil || key != "weight" {
			return "", fmt.Errorf("bad step argument %q", st.Arg)
		}
		w := in.Limits.Weight
		if w == 0 {
			w = 100 // the kernel's default
		}
		v := min(uint64(float64(w)*f), 10000)
		return fmt.Sprintf("weight %d -> %d", w, v), d.cfg.Agents.Apply(id, view.Weight(v), why)
	case VerbClearCache:
		cg, err := d.cfg.Agents.Cgroups(id)
		if err != nil {
			return "", err
		}
		var mem int64
		if s, ok := d.e.lastSample(id); ok {
			mem = s.Mem
		}
		return "", cgroup.Reclaim(cg, mem)
	case VerbReset:
		// Nothing of an agent's state is declared to the daemon yet (no
		// state directory it could wipe): the step does nothing, says so,
		// and the restart that follows it runs.
		return "no state declared to reset: skipped", nil
	case VerbMaintain:
		return "", d.maintain(ctx, a, st.Arg, in)
	case VerbEscalate:
		d.cfg.Logf("heal: agent %d needs an operator: %s (%s)", id, a.Cause, a.Reason)
		d.publish("escalate", id, bus.F("id", a.ID), bus.F("cause", a.Cause), bus.F("reason", a.Reason))
		return "", nil
	}
	return "", fmt.Errorf("unknown step %q", st)
}

// maintain runs the agent's maintenance command with /bin/sh as the
// agent's user, for at most twice the window's duration (at least a
// minute), with AIOS_AGENT in its environment.
func (d *Device) maintain(ctx context.Context, a Action, cmdline string, in view.Info) error {
	limit := max(2*d.e.Policy(a.Agent).MaintDuration, time.Minute)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", cmdline)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "AIOS_AGENT=" + strconv.Itoa(a.Agent)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: in.Uid, Gid: in.Gid}, Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("maintenance %q: %v: %s", cmdline, err, bytes.TrimSpace(out[:min(len(out), 256)]))
	}
	return nil
}

func (d *Device) publish(kind string, id int, fields ...bus.Field) {
	if d.cfg.Bus != nil {
		d.cfg.Bus.Publish(bus.Event{Source: "heal", Kind: kind, Agent: id, Fields: fields})
	}
}

// Close waits (at most 10 s) for the actions being carried out, then
// saves the state.
func (d *Device) Close() error {
	if d.sub != nil {
		d.sub.Close()
	}
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		d.cfg.Logf("heal: actions still running at shutdown")
	}
	// Always: the negative reservoir moves without counting as a change.
	if err := d.save(); err != nil {
		d.cfg.Logf("heal: state not saved at shutdown to %s: %v", d.path, err)
		return fmt.Errorf("heal: state not saved: %w", err)
	}
	return nil
}

// queuedAction is one supervisor restart waiting in the queue, as saved
// in queue.json: a restart delayed by a backoff must still happen when
// the daemon is killed and started again meanwhile (no new exit event
// will come for an agent already down).
type queuedAction struct {
	ID        uint64    `json:"id"`
	At        time.Time `json:"at"`
	Agent     int       `json:"agent"`
	Cause     string    `json:"cause"`
	Procedure string    `json:"procedure"`
	Reason    string    `json:"reason"`
}

func (d *Device) queuePath() string { return filepath.Join(d.cfg.Dir, "queue.json") }

// saveQueue writes the supervisor restarts waiting in the queue to
// queue.json (the others, recoveries and maintenance, belong to a
// prediction or window that does not outlive the daemon). A failure is
// logged and counted like heal.json's.
func (d *Device) saveQueue() {
	d.queueMu.Lock()
	defer d.queueMu.Unlock()
	d.mu.Lock()
	q := []queuedAction{}
	for _, a := range d.queue {
		if supervised(a) && len(a.Steps) == 1 && a.Steps[0].Verb == VerbRestart {
			q = append(q, queuedAction{a.ID, a.At, a.Agent, a.Cause, a.Procedure, a.Reason})
		}
	}
	d.mu.Unlock()
	b, _ := json.Marshal(q)
	if err := statefile.Write(d.queuePath(), append(b, '\n')); err != nil {
		d.saveMu.Lock()
		d.saveErrs++
		d.saveErr = err.Error()
		d.saveMu.Unlock()
		d.cfg.Logf("heal: queued restarts not saved to %s: %v", d.queuePath(), err)
	}
}

// loadQueue puts back the supervisor restarts queue.json holds; each is
// carried out at its time unless its agent is running again, gone, or no
// longer supervised by then (carry's checks).
func (d *Device) loadQueue() {
	b, err := os.ReadFile(d.queuePath())
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var q []queuedAction
	if err == nil {
		err = json.Unmarshal(b, &q)
	}
	if err != nil {
		d.cfg.Logf("heal: %s: %v: no queued restarts restored", d.queuePath(), err)
		return
	}
	for _, s := range q {
		d.queue = append(d.queue, Action{ID: s.ID, Time: s.At, At: s.At, Agent: s.Agent, Cause: s.Cause, Procedure: s.Procedure,
			Steps: []Step{{VerbRestart, ""}}, ETA: -1, Reason: s.Reason + "; queued before the daemon restarted", Outcome: "-"})
	}
	if len(q) > 0 {
		d.cfg.Logf("heal: %d queued restarts restored from %s", len(q), d.queuePath())
	}
}
