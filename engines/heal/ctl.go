package heal

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"aiosfs/ctl"
)

// Setting is a parsed set of an agent's supervisor settings, as written
// to `agents/N/ctl` or after `policy N` in `heal/ctl`:
//
//	restart=always|on-failure|never   systemd's Restart=
//	intensity=N/PERIOD                 starts allowed per period before backing off (5/10s; OTP: 1/5s)
//	backoff=BASE[..MAX]                first delay and cap of the doubling backoff (10s..300s)
//	maintenance=CMD|none               the command a maintenance window runs (quote blanks)
//	every=DURATION                     preventive maintenance period
//	duration=DURATION                  a window's expected length (30s)
//
// Only the keys given change; Apply merges them into a Policy.
type Setting struct {
	Restart       *RestartMode
	Intensity     int
	Period        time.Duration
	BackoffBase   time.Duration
	BackoffMax    time.Duration
	Maintenance   *string
	MaintEvery    time.Duration
	MaintDuration time.Duration
}

// SettingKeys are the keys ParseSetting accepts.
var SettingKeys = []string{"restart", "intensity", "backoff", "maintenance", "every", "duration"}

// ParseSetting parses key=value fields (already tokenized, see
// ctl.Tokenize). Every field must be a known key; an empty list is an
// error.
func ParseSetting(args []string) (Setting, error) {
	var s Setting
	kvs, rest, err := ctl.KeyValues(args, SettingKeys...)
	if err != nil {
		return s, err
	}
	if len(rest) > 0 {
		return s, ctl.Errorf("unexpected %q: want key=value (%s)", rest[0], strings.Join(SettingKeys, " "))
	}
	if len(kvs) == 0 {
		return s, ctl.Errorf("no settings: want key=value (%s)", strings.Join(SettingKeys, " "))
	}
	for _, kv := range kvs {
		switch kv.Key {
		case "restart":
			var m RestartMode
			switch kv.Value {
			case "always":
				m = RestartAlways
			case "on-failure":
				m = RestartOnFailure
			case "never":
				m = RestartNever
			default:
				return s, ctl.Errorf("bad restart %q: want always, on-failure or never", kv.Value)
			}
			s.Restart = &m
		case "intensity":
			n, per, ok := strings.Cut(kv.Value, "/")
			if !ok {
				return s, ctl.Errorf("bad intensity %q: want N/PERIOD, e.g. 5/10s", kv.Value)
			}
			v, err := strconv.Atoi(n)
			if err != nil || v < 1 || v > 1000 {
				return s, ctl.Errorf("bad intensity %q: N must be 1..1000", kv.Value)
			}
			d, err := ctl.ParseDuration(per)
			if err != nil {
				return s, err
			}
			s.Intensity, s.Period = v, d
		case "backoff":
			lo, hi, two := strings.Cut(kv.Value, "..")
			b, err := ctl.ParseDuration(lo)
			if err != nil {
				return s, err
			}
			m := b
			if two {
				if m, err = ctl.ParseDuration(hi); err != nil {
					return s, err
				}
				if m < b {
					return s, ctl.Errorf("bad backoff %q: the cap is below the first delay", kv.Value)
				}
			}
			s.BackoffBase, s.BackoffMax = b, m
		case "maintenance":
			v := kv.Value
			if v == "" {
				return s, ctl.Errorf("empty maintenance: give a command or none")
			}
			if v == "none" {
				v = ""
			}
			s.Maintenance = &v
		case "every", "duration":
			d, err := ctl.ParseDuration(kv.Value)
			if err != nil {
				return s, err
			}
			if kv.Key == "every" {
				s.MaintEvery = d
			} else {
				s.MaintDuration = d
			}
		}
	}
	return s, nil
}

// Apply returns p with the setting's keys changed.
func (s Setting) Apply(p Policy) Policy {
	if s.Restart != nil {
		p.Restart = *s.Restart
	}
	if s.Intensity > 0 {
		p.Intensity, p.Period = s.Intensity, s.Period
	}
	if s.BackoffBase > 0 {
		p.BackoffBase, p.BackoffMax = s.BackoffBase, s.BackoffMax
	}
	if s.Maintenance != nil {
		p.Maintenance = *s.Maintenance
	}
	if s.MaintEvery > 0 {
		p.MaintEvery = s.MaintEvery
	}
	if s.MaintDuration > 0 {
		p.MaintDuration = s.MaintDuration
	}
	p.Observe = false // a policy set is the agent's opt-in
	return p.withDefaults()
}

// Cmd is one parsed `heal/ctl` command.
type Cmd struct {
	Verb    string // mode policy outcome reset forget maintain save
	Agent   int
	Rules   bool    // mode: true for rules
	Setting Setting // policy
	ID      uint64  // outcome
	OK      bool    // outcome
	Why     string  // outcome's reason
	Maint   MaintRequest
	Within  time.Duration // maintain: deadline from now (0 none)
}

// Verbs lists the heal/ctl verbs, as a read of `heal/ctl` shows them.
const Verbs = `mode learned|rules
policy N restart=always|on-failure|never intensity=N/PERIOD backoff=BASE[..MAX] maintenance=CMD|none every=D duration=D
outcome ID ok|failed [reason...]
reset N
forget N
maintain N [kind=Preventive|Corrective|Predictive] [duration=D] [within=D] [priority=P]
save
`

// ParseCmd parses one line written to `heal/ctl`. Errors are EINVAL in
// Plan 9 words ("unknown control message", "bad # args to command") or
// say what was wrong with which argument.
func ParseCmd(line string) (Cmd, error) {
	f, err := ctl.Tokenize(line)
	if err != nil {
		return Cmd{}, err
	}
	if len(f) == 0 {
		return Cmd{}, ctl.Errorf("empty control message")
	}
	c := Cmd{Verb: f[0]}
	args := f[1:]
	agent := func() error {
		if len(args) < 1 {
			return ctl.Errorf("bad # args to command: %s needs an agent number", c.Verb)
		}
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 0 {
			return ctl.Errorf("bad agent %q", args[0])
		}
		c.Agent, args = n, args[1:]
		return nil
	}
	switch c.Verb {
	case "mode":
		if len(args) != 1 {
			return c, ctl.Errorf("bad # args to command: mode learned|rules")
		}
		switch args[0] {
		case "learned":
		case "rules":
			c.Rules = true
		default:
			return c, ctl.Errorf("bad mode %q: want learned or rules", args[0])
		}
	case "policy":
		if err := agent(); err != nil {
			return c, err
		}
		if c.Setting, err = ParseSetting(args); err != nil {
			return c, err
		}
	case "outcome":
		if len(args) < 2 {
			return c, ctl.Errorf("bad # args to command: outcome ID ok|failed [reason]")
		}
		id, err := strconv.ParseUint(args[0], 10, 64)
		if err != nil || id == 0 {
			return c, ctl.Errorf("bad action id %q", args[0])
		}
		c.ID = id
		switch args[1] {
		case "ok":
			c.OK = true
		case "failed":
		default:
			return c, ctl.Errorf("bad outcome %q: want ok or failed", args[1])
		}
		c.Why = strings.Join(args[2:], " ")
	case "reset", "forget":
		if err := agent(); err != nil {
			return c, err
		}
		if len(args) > 0 {
			return c, ctl.Errorf("bad # args to command: %s N", c.Verb)
		}
	case "maintain":
		if err := agent(); err != nil {
			return c, err
		}
		c.Maint = MaintRequest{Agent: c.Agent, Kind: Corrective, Duration: 30 * time.Second, Priority: 0.5, Reason: "operator"}
		kvs, rest, err := ctl.KeyValues(args, "kind", "duration", "within", "priority")
		if err != nil {
			return c, err
		}
		if len(rest) > 0 {
			return c, ctl.Errorf("unexpected %q: want key=value", rest[0])
		}
		for _, kv := range kvs {
			switch kv.Key {
			case "kind":
				switch kv.Value {
				case "Preventive":
					c.Maint.Kind = Preventive
				case "Corrective":
					c.Maint.Kind = Corrective
				case "Predictive":
					c.Maint.Kind = Predictive
				default:
					return c, ctl.Errorf("bad kind %q: want Preventive, Corrective or Predictive", kv.Value)
				}
			case "duration", "within":
				d, err := ctl.ParseDuration(kv.Value)
				if err != nil {
					return c, err
				}
				if kv.Key == "duration" {
					c.Maint.Duration = d
				} else {
					c.Within = d
				}
			case "priority":
				p, err := ctl.ParseFraction(kv.Value)
				if err != nil {
					return c, err
				}
				c.Maint.Priority = p
			}
		}
	case "save":
		if len(args) > 0 {
			return c, ctl.Errorf("bad # args to command: save")
		}
	default:
		return c, ctl.Errorf("unknown control message %q", c.Verb)
	}
	return c, nil
}

// Exec carries out a parsed command on the engine, except save, which
// the wiring does (it knows the state file): Exec returns save=true.
func (e *Engine) Exec(c Cmd, now time.Time) (save bool, err error) {
	switch c.Verb {
	case "mode":
		e.SetRules(c.Rules)
	case "policy":
		e.SetPolicy(c.Agent, c.Setting.Apply(e.Policy(c.Agent)))
		return false, nil // SetPolicy counted the change
	case "outcome":
		e.Outcome(c.ID, c.OK, c.Why)
	case "reset":
		e.mu.Lock()
		if a := e.agents[c.Agent]; a != nil {
			a.sup.breaker, a.sup.failsInRow, a.sup.backoffN, a.sup.nextStart = Closed, 0, 0, time.Time{}
		} else {
			e.mu.Unlock()
			return false, fmt.Errorf("heal: no agent %d", c.Agent)
		}
		e.mu.Unlock()
	case "forget":
		e.mu.Lock()
		delete(e.bandit.Agents, strconv.Itoa(c.Agent))
		e.changes++
		e.mu.Unlock()
	case "maintain":
		r := c.Maint
		if c.Within > 0 {
			r.Deadline = now.Add(c.Within)
		}
		e.RequestMaintenance(r)
	case "save":
		return true, nil
	}
	return false, nil
}
