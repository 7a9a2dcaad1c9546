package threat

import "time"

// Signal is an extra per-agent anomaly source beside the rule floor and
// the learned detector (the syscall-sequence model of issue 13). The
// engine asks each signal for its verdict on every window it scores;
// a signal's score enters the assessment's Score as a maximum, with
// Source set to the signal's name.
type Signal interface {
	Name() string
	// Score is the agent's anomaly for the window ending at end; ok is
	// false while the signal has nothing to say (no profile learned yet).
	// It is called with the engine's lock held and must not call back.
	Score(agent int, end time.Time) (v SignalVerdict, ok bool)
	// Learn (re)starts learning agent's normal profile (threat/ctl learn N).
	Learn(agent int) error
	// Forget drops the agent (it ended).
	Forget(agent int)
	// Status is one line for threat/status (capture running, drops, why not).
	Status() string
}

// SignalVerdict is one signal's verdict on one window.
type SignalVerdict struct {
	Score    float64  // 0..1
	Type     Type     // Unknown unless the signal can name it
	Evidence []string // e.g. the rarest n-grams seen, by syscall name
}

// NamedVerdict is a signal's verdict in an assessment.
type NamedVerdict struct {
	Name string
	SignalVerdict
}
