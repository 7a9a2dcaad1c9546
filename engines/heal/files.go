package heal

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"time"

	"aiosfs/ctl"
	"aiosfs/engines/bus"
	"aiosfs/fs"
)

// Nodes is heal/.
func (d *Device) Nodes() []fs.Node {
	ns := d.cfg.NS
	root := fs.Owner{}
	text := func(name string, f func() string) fs.Node {
		return ns.Text("/heal/"+name, 0444, root, func(fs.Caller) ([]byte, error) { return []byte(f()), nil })
	}
	ns.Document("/heal/maintenance", "agent= kind= start= duration= deadline= priority= load= state= ran= ended= reason=: Engine.Maintenance (load: the forecast's mean cores over the window, - placed as soon as possible)")
	ns.Document("/heal/forecast", "forecast= placed= start= step= steps=, then time= load= per step: the host CPU forecast (cores) the last placement of maintenance windows used")
	return []fs.Node{ns.StaticDir("/heal", 0555, root,
		// 0666 as threat/ctl: the open succeeds for anyone and a
		// non-root writer gets EPERM from the command, not EACCES.
		ns.Ctl("/heal/ctl", 0666, root, func() []byte { return []byte(Verbs) }, d.ctlExec),
		text("status", func() string { return d.e.Status() + d.executorLine() }),
		text("health", d.e.HealthFile),
		text("failures", d.e.Failures),
		text("procedures", d.e.ProceduresFile),
		text("history", d.e.History),
		text("maintenance", d.e.Maintenance),
		text("forecast", d.e.ForecastFile),
	)}
}

// executorLine is heal/status's second line, the daemon's side:
//
//	executor queued=1 running=0 done=12 failed=1 skipped=0 save_errors=0 save_error=-
//
//	queued    actions waiting for their time (a backoff) or for the agent's running one
//	running   actions being carried out (at most one per agent)
//	done failed skipped  actions carried out since the daemon started: all steps
//	          done; a step failed (reported to the engine as the outcome); not
//	          carried out (the agent was running again, or frozen)
//	save_errors  saves of heal.json that failed since the start; save_error the last one's error, - none since
func (d *Device) executorLine() string {
	d.mu.Lock()
	l := new(ctl.Line).Int("queued", int64(len(d.queue))).Int("running", int64(len(d.running))).
		Uint("done", d.counts.ok).Uint("failed", d.counts.failed).Uint("skipped", d.counts.skipped)
	d.mu.Unlock()
	d.saveMu.Lock()
	e := d.saveErr
	if e == "" {
		e = "-"
	}
	l.Uint("save_errors", d.saveErrs).Str("save_error", e)
	d.saveMu.Unlock()
	return "executor " + l.String()
}

// ctlExec runs one heal/ctl line: root's alone (EPERM), parsed whole
// before anything changes (EINVAL), the agent or action named must exist
// (ENOENT), and the change saved before it is kept. mode and policy are
// put back exactly when their save fails; forget, maintain and outcome
// (whose effects reach the bandit and the windows) are refused unchanged
// when a save of the state as it is fails first, and when only the save
// after them fails the write says that the change stands unsaved until
// the next save. Every failure carries the save's errno.
func (d *Device) ctlExec(_ context.Context, c fs.Caller, line string) error {
	if c.Uid != 0 {
		return fs.Errorf(syscall.EPERM, "%s: heal/ctl is root's alone", ctl.MsgPerm)
	}
	cmd, err := ParseCmd(line)
	if err != nil {
		return err
	}
	switch cmd.Verb {
	case "policy", "reset", "forget", "maintain":
		if _, err := d.cfg.Agents.Info(cmd.Agent); err != nil {
			return fs.Errorf(syscall.ENOENT, "no such agent %d", cmd.Agent)
		}
	case "outcome":
		if _, ok := d.e.Action(cmd.ID); !ok {
			return fs.Errorf(syscall.ENOENT, "no action %d in heal/history", cmd.ID)
		}
	case "save":
		if err := d.save(); err != nil {
			return fs.Errorf(errnoOf(err), "heal: not saved: %v", err)
		}
		return nil
	}
	var undo func()
	switch cmd.Verb {
	case "mode":
		old := d.e.Rules()
		undo = func() { d.e.SetRules(old) }
	case "policy":
		old := d.e.Policy(cmd.Agent)
		undo = func() { d.e.SetPolicy(cmd.Agent, old) }
	case "reset":
	default:
		if err := d.save(); err != nil {
			return fs.Errorf(errnoOf(err), "heal: the state cannot be saved, nothing changed: %v", err)
		}
	}
	if _, err := d.e.Exec(cmd, time.Now()); err != nil {
		return fs.Errorf(syscall.ENOENT, "%v", err)
	}
	if cmd.Verb == "reset" {
		d.publish("reset", cmd.Agent)
		return nil // the breaker and backoff are not saved state
	}
	if err := d.save(); err != nil {
		if undo == nil {
			return fs.Errorf(errnoOf(err), "heal: %s done but not saved (saved at the next change that saves): %v", cmd.Verb, err)
		}
		undo()
		return fs.Errorf(errnoOf(err), "heal: not saved, nothing changed: %v", err)
	}
	d.publish("ctl", cmd.Agent, bus.F("cmd", line))
	return nil
}

// AgentTab is the healing engine's rows of agents/N.
func (d *Device) AgentTab() fs.Dirtab {
	return fs.Dirtab{
		{Name: "health", Perm: 0444, Owner: "heal",
			Doc: "agent=N score=0..1 trend=T state=S restart=always|on-failure|never|off starts=N backoff=S breaker=B, then failure= and component= lines: Engine.AgentHealth; - before the agent is seen",
			Make: func(id int, p string, own fs.Owner) fs.Node {
				return d.cfg.NS.Text(p, 0444, own, func(fs.Caller) ([]byte, error) {
					if s := d.e.AgentHealth(id); s != "" {
						return []byte(s), nil
					}
					return []byte("-\n"), nil
				})
			}},
		{Name: "heartbeat", Perm: 0644, Owner: "heal",
			Doc: "read: heartbeat=T|- every=S|- age=S|-; write (owner or root): a line (empty, beat, or every=DURATION|off) whose time is the beat: heartbeatLine",
			Make: func(id int, p string, own fs.Owner) fs.Node {
				return d.cfg.NS.Ctl(p, 0644, own, func() []byte { return []byte(d.heartbeatLine(id)) },
					func(_ context.Context, c fs.Caller, line string) error { return d.beat(c, id, line) })
			}},
	}
}

// mayAct refuses (EPERM) a caller who is neither root nor agent id's
// owner; the file's mode refuses them first, this is the second check.
func (d *Device) mayAct(c fs.Caller, id int) error {
	in, err := d.cfg.Agents.Info(id)
	if err != nil {
		return err
	}
	if c.Uid != 0 && c.Uid != in.Uid {
		return fs.Errorf(syscall.EPERM, "agent %d is not yours", id)
	}
	return nil
}

// heartbeatLine is agents/N/heartbeat when read:
//
//	heartbeat=1764795600.000 every=1.000 age=0.412
//
//	heartbeat  the last beat (Unix seconds), - none since the agent last started
//	every      the interval the agent declared, - none (the engine learns it from the gaps)
//	age        seconds since the last beat, - none
func (d *Device) heartbeatLine(id int) string {
	d.mu.Lock()
	b := d.beats[id]
	d.mu.Unlock()
	l := new(ctl.Line)
	if b.last.IsZero() {
		l.Str("heartbeat", "-")
	} else {
		l.Time("heartbeat", b.last)
	}
	if b.every > 0 {
		l.Float("every", b.every.Seconds(), 3)
	} else {
		l.Str("every", "-")
	}
	if b.last.IsZero() {
		l.Str("age", "-")
	} else {
		l.Float("age", time.Since(b.last).Seconds(), 3)
	}
	return l.String()
}

// beat records a write to agents/N/heartbeat: an empty line or "beat" is
// a beat; "every=DURATION" also declares the interval ("every=off"
// withdraws it).
func (d *Device) beat(c fs.Caller, id int, line string) error {
	if err := d.mayAct(c, id); err != nil {
		return err
	}
	f, err := ctl.Tokenize(line)
	if err != nil {
		return err
	}
	every, set := time.Duration(0), false
	for _, a := range f {
		switch {
		case a == "beat":
		case strings.HasPrefix(a, "every="):
			v := strings.TrimPrefix(a, "every=")
			set = true
			if v == "off" || v == "0" {
				every = 0
				break
			}
			dv, err := ctl.ParseDuration(v)
			if err != nil {
				return err
			}
			if dv < 10*time.Millisecond || dv > 24*time.Hour {
				return ctl.Errorf("heartbeat every=%s: want 10ms..24h", v)
			}
			every = dv
		default:
			return ctl.Errorf("heartbeat %q: want an empty line, beat, or every=DURATION|off", a)
		}
	}
	d.mu.Lock()
	b := d.beats[id]
	b.last = time.Now()
	if set {
		b.every = every
	}
	d.beats[id] = b
	d.mu.Unlock()
	return nil
}

// AgentVerbs are the healing engine's rows of agents/N/ctl: the agent's
// supervisor policy. Its owner's and root's: agents/N/ctl opens for
// writing only for them, and the verb checks the caller again.
func (d *Device) AgentVerbs(id int) ctl.Table {
	return ctl.Table{{Name: "heal", Args: "restart=always|on-failure|never intensity=N/PERIOD backoff=BASE[..MAX] maintenance=CMD|none every=D duration=D | off",
		Min: 1, Max: -1, Doc: "supervise the agent with this policy (the keys given change); off: observe it only",
		Run: func(_ context.Context, c fs.Caller, a []string) error {
			if err := d.mayAct(c, id); err != nil {
				return err
			}
			old := d.e.Policy(id)
			var p Policy
			if len(a) == 1 && a[0] == "off" {
				p = old
				p.Observe = true
			} else {
				s, err := ParseSetting(a)
				if err != nil {
					return err
				}
				p = s.Apply(old)
			}
			d.e.SetPolicy(id, p)
			if err := d.save(); err != nil {
				d.e.SetPolicy(id, old)
				return fs.Errorf(errnoOf(err), "heal: not saved, nothing changed: %v", err)
			}
			d.publish("policy", id, bus.F("value", strings.Join(a, " ")), bus.F("uid", strconv.Itoa(int(c.Uid))))
			return nil
		}}}
}
