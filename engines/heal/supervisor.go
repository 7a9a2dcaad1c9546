package heal

import (
	"time"
)

// RestartMode is the agent's restart= setting, as systemd's Restart=.
type RestartMode int

const (
	RestartOnFailure RestartMode = iota // restart after a non-zero exit, a signal or a heal action (the default)
	RestartAlways                       // restart after any exit
	RestartNever                        // never restart; predictions still raise limits and escalate
)

func (m RestartMode) String() string {
	switch m {
	case RestartAlways:
		return "always"
	case RestartNever:
		return "never"
	}
	return "on-failure"
}

// Policy is one agent's supervisor policy. Zero fields take defaults
// (DefaultPolicy): systemd's start limit of 5 starts per 10 s, then a
// CrashLoopBackOff-style delay of 10 s doubling to 300 s, reset after the
// agent has run for ResetAfter; a circuit breaker that opens after
// BreakerTrips recoveries in a row failed and half-opens after
// BreakerCooldown. OTP's restart intensity of 1 per 5 s is Intensity=1,
// Period=5s.
type Policy struct {
	Restart         RestartMode
	Intensity       int // starts allowed per Period before backing off
	Period          time.Duration
	RestartDelay    time.Duration // delay of a restart within the intensity (systemd RestartSec; default 0: at once)
	BackoffBase     time.Duration
	BackoffMax      time.Duration
	ResetAfter      time.Duration // running this long clears the backoff (Kubernetes: 10 min)
	BreakerTrips    int
	BreakerCooldown time.Duration
	Maintenance     string        // the agent's maintenance command; "" none
	MaintEvery      time.Duration // preventive maintenance period; 0 none
	MaintDuration   time.Duration // its expected duration (default 30 s)
	// Observe: the engine watches the agent (health, predictions,
	// failures, learning) but asks for no action on it: no restart, no
	// recovery, no maintenance. The daemon's agents start so until their
	// owner or root sets a policy (Config.OptIn); Setting.Apply clears it.
	Observe bool
}

// DefaultPolicy is restart=on-failure with systemd's start limit and
// Kubernetes's backoff.
func DefaultPolicy() Policy {
	return Policy{Restart: RestartOnFailure, Intensity: 5, Period: 10 * time.Second, BackoffBase: 10 * time.Second,
		BackoffMax: 300 * time.Second, ResetAfter: 10 * time.Minute, BreakerTrips: 5, BreakerCooldown: 10 * time.Minute,
		MaintDuration: 30 * time.Second}
}

func (p Policy) withDefaults() Policy {
	d := DefaultPolicy()
	if p.Intensity <= 0 {
		p.Intensity = d.Intensity
	}
	if p.Period <= 0 {
		p.Period = d.Period
	}
	if p.BackoffBase <= 0 {
		p.BackoffBase = d.BackoffBase
	}
	if p.BackoffMax <= 0 {
		p.BackoffMax = d.BackoffMax
	}
	if p.BackoffMax < p.BackoffBase {
		p.BackoffMax = p.BackoffBase
	}
	if p.ResetAfter <= 0 {
		p.ResetAfter = d.ResetAfter
	}
	if p.BreakerTrips <= 0 {
		p.BreakerTrips = d.BreakerTrips
	}
	if p.BreakerCooldown <= 0 {
		p.BreakerCooldown = d.BreakerCooldown
	}
	if p.MaintDuration <= 0 {
		p.MaintDuration = d.MaintDuration
	}
	return p
}

// Breaker is a circuit breaker's state.
type Breaker int

const (
	Closed   Breaker = iota // recoveries run
	Open                    // recoveries are refused; only escalation
	HalfOpen                // one recovery is tried; its outcome closes or reopens
)

func (b Breaker) String() string {
	switch b {
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "closed"
}

// supervisor is one agent's restart bookkeeping.
type supervisor struct {
	pol        Policy
	starts     []time.Time // recent starts, within the longest window that matters
	exits      []exitRec
	running    bool
	startedAt  time.Time
	backoffN   int       // restarts delayed so far in this loop
	nextStart  time.Time // a delayed restart's due time; zero none
	gaveUp     bool
	breaker    Breaker
	failsInRow int
	openedAt   time.Time
	restarts   uint64
}

type exitRec struct {
	t      time.Time
	uptime float64
	failed bool
}

func (s *supervisor) started(t time.Time) {
	s.running, s.startedAt = true, t
	s.starts = append(s.starts, t)
	if len(s.starts) > 64 {
		s.starts = s.starts[len(s.starts)-64:]
	}
	s.nextStart = time.Time{}
}

func (s *supervisor) recentStarts(now time.Time, d time.Duration) int {
	n := 0
	for _, t := range s.starts {
		if now.Sub(t) < d {
			n++
		}
	}
	return n
}

// exited decides what to do about an exit: restart now, restart after a
// delay, or nothing; crashLoop reports that the intensity was exceeded.
func (s *supervisor) exited(now time.Time, failed bool) (restart bool, delay time.Duration, crashLoop bool, why string) {
	up := 0.0
	if s.running {
		up = now.Sub(s.startedAt).Seconds()
	}
	s.running = false
	s.exits = append(s.exits, exitRec{now, up, failed})
	if len(s.exits) > 64 {
		s.exits = s.exits[len(s.exits)-64:]
	}
	if up >= s.pol.ResetAfter.Seconds() {
		s.backoffN = 0
	}
	if s.pol.Observe {
		return false, 0, false, "observed only: no policy set"
	}
	switch s.pol.Restart {
	case RestartNever:
		return false, 0, false, "restart=never"
	case RestartOnFailure:
		if !failed {
			return false, 0, false, "clean exit, restart=on-failure"
		}
	}
	if s.breaker == Open {
		return false, 0, false, "circuit breaker open"
	}
	if n := s.recentStarts(now, s.pol.Period); n >= s.pol.Intensity {
		d := s.pol.BackoffBase << uint(min(s.backoffN, 20))
		if d > s.pol.BackoffMax || d <= 0 {
			d = s.pol.BackoffMax
		}
		s.backoffN++
		s.nextStart = now.Add(d)
		// one crash-loop failure per loop: the first restart it delays
		return true, d, s.backoffN == 1, "restart intensity exceeded: back off"
	}
	s.nextStart = now.Add(s.pol.RestartDelay)
	return true, s.pol.RestartDelay, false, "exit, restart=" + s.pol.Restart.String()
}

// crashFeatures are the crash-loop hazard's features: recent short-lived
// failed runs (under a minute) over the intensity, and the share of the
// last exits that were short-lived failures; eta is the seconds until the
// intensity would be exceeded at the recent rate.
func (s *supervisor) crashFeatures(now time.Time) ([]float64, float64) {
	var n, short, seen float64
	var first time.Time
	for i := len(s.exits) - 1; i >= 0; i-- {
		e := s.exits[i]
		if now.Sub(e.t) > time.Minute {
			break
		}
		seen++
		if e.failed && e.uptime < 60 {
			short++
			n++
			first = e.t
		}
	}
	if seen == 0 {
		return nil, -1
	}
	x := []float64{n / float64(s.pol.Intensity), short / seen}
	eta := -1.0
	if n >= 2 {
		rate := n / now.Sub(first).Seconds()
		if rate > 0 {
			eta = max(0, (float64(s.pol.Intensity)-n)/rate)
		}
	}
	return x, eta
}

// outcome records a recovery's result in the breaker.
func (s *supervisor) outcome(now time.Time, ok bool) {
	if ok {
		s.failsInRow = 0
		s.breaker = Closed
		return
	}
	s.failsInRow++
	if s.breaker == HalfOpen || s.failsInRow >= s.pol.BreakerTrips {
		s.breaker, s.openedAt = Open, now
	}
}

func (s *supervisor) tick(now time.Time) {
	if s.breaker == Open && now.Sub(s.openedAt) >= s.pol.BreakerCooldown {
		s.breaker = HalfOpen
	}
}
