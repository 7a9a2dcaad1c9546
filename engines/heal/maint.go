package heal

import (
	"sort"
	"time"
)

// MaintKind is why a maintenance window exists.
type MaintKind int

const (
	Preventive MaintKind = iota // periodic, from the agent's maintenance= every=
	Corrective                  // a follow-up after a recovery that only bought time (a raised limit)
	Predictive                  // before a predicted failure that is still far off
)

func (k MaintKind) String() string {
	switch k {
	case Corrective:
		return "Corrective"
	case Predictive:
		return "Predictive"
	}
	return "Preventive"
}

// MaintRequest asks for a window: of Duration, no later than Deadline
// (zero: within the forecast), Priority 0..1 (higher first).
type MaintRequest struct {
	Agent    int
	Kind     MaintKind
	Duration time.Duration
	Deadline time.Time
	Priority float64
	Reason   string
}

// Window is a scheduled maintenance window.
type Window struct {
	MaintRequest
	Start time.Time
	// Load is the forecast mean load over the window, when Forecast:
	// it was placed in a lull of a forecast (false: as soon as
	// possible, with no forecast or none that fits before the deadline).
	Load     float64
	Forecast bool
	State    string    // "scheduled", "running", "done", "failed"
	Ran      time.Time // when it was carried out (became running); zero not yet
	Ended    time.Time // when its action ended (done or failed); zero not yet
}

// Forecast is a load series from the scheduler: Load[i] is the expected
// load (any unit: cores, a 0..1 utilisation) at Start + i·Step.
type Forecast struct {
	Start time.Time
	Step  time.Duration
	Load  []float64
}

// Schedule places each request into the lull of f that minimises the
// mean forecast load over the window, starting no earlier than now and
// ending by the request's deadline, and never overlapping a window
// already placed (busy, then those placed here, one at a time: a
// maintenance window is a restart, and two at once double the risk).
// Requests are placed by priority, then deadline. A request that fits
// nowhere in the forecast gets the earliest free start after its
// deadline's latest start is missed, i.e. it runs as soon as possible,
// and says so in its Reason. Without a forecast (no points) windows are
// placed as early as possible.
func Schedule(reqs []MaintRequest, f Forecast, now time.Time, busy []Window) []Window {
	rs := append([]MaintRequest(nil), reqs...)
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].Priority != rs[j].Priority {
			return rs[i].Priority > rs[j].Priority
		}
		return rs[i].Deadline.Before(rs[j].Deadline)
	})
	placed := append([]Window(nil), busy...)
	free := func(s time.Time, d time.Duration) bool {
		for _, w := range placed {
			if s.Before(w.Start.Add(w.Duration)) && w.Start.Before(s.Add(d)) {
				return false
			}
		}
		return true
	}
	var out []Window
	for _, r := range rs {
		if r.Duration <= 0 {
			r.Duration = 30 * time.Second
		}
		best, bestLoad, found := time.Time{}, 0.0, false
		if len(f.Load) > 0 && f.Step > 0 {
			n := int(r.Duration / f.Step)
			if r.Duration%f.Step != 0 {
				n++
			}
			n = max(n, 1)
			for i := 0; i+n <= len(f.Load); i++ {
				s := f.Start.Add(time.Duration(i) * f.Step)
				if s.Before(now) || (!r.Deadline.IsZero() && s.Add(r.Duration).After(r.Deadline)) || !free(s, r.Duration) {
					continue
				}
				var sum float64
				for _, v := range f.Load[i : i+n] {
					sum += v
				}
				m := sum / float64(n)
				if !found || m < bestLoad-1e-9 {
					best, bestLoad, found = s, m, true
				}
			}
		}
		if !found {
			s := now
			for !free(s, r.Duration) {
				s = s.Add(time.Second)
			}
			best = s
			if len(f.Load) > 0 {
				r.Reason += " (no lull before the deadline: as soon as possible)"
			}
		}
		w := Window{MaintRequest: r, Start: best, Load: bestLoad, Forecast: found, State: "scheduled"}
		placed = append(placed, w)
		out = append(out, w)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}
