package sched

import (
	"math"
	"sort"
	"strconv"
)

// Policy turns a forecast into an allocation for one resource: raised at
// once to the forecast plus Buffer ahead of a predicted rise, lowered by
// at most Fall of itself per decision after a fall (a dip that comes
// back costs nothing), never below Floor, the level that an OOM kill or
// heavy throttling taught (remembered, and let go by FloorDecay per
// decision).
//
// With Target > 0, NextUse also steers each allocation's own buffer
// toward a shortfall rate of Target (an online quantile controller, as
// adaptive conformal inference): every decision whose use exceeded the
// allocation raises the buffer by Gain×(1-Target), every other lowers it
// by Gain×Target, within [0, max(BufferMax, Buffer)]. It starts at Buffer, so a
// series that is rarely exceeded sheds headroom it does not need and one
// that is often exceeded gains some, up to BufferMax.
type Policy struct {
	Buffer     float64 // fraction above the forecast, e.g. 0.15 (the start, when adapted)
	Fall       float64 // most the allocation drops per decision, fraction
	FloorDecay float64 // fraction the remembered floor loses per decision
	Min        float64 // never allocate less (kernel minimums)
	Max        float64 // never allocate more (capacity); 0 for none
	Target     float64 // shortfall rate NextUse aims the buffer at; 0: fixed buffer
	Gain       float64 // buffer step per decision, scaled as above
	BufferMax  float64 // most the adapted buffer may reach
}

// Alloc is one resource's allocation state.
type Alloc struct {
	Value    float64 // current allocation; 0 = none yet
	Floor    float64 // remembered from an OOM kill or throttling
	Forecast float64 // the forecast behind Value
	Buffer   float64 // the adapted buffer (NextUse with a Target)
	Reason   string
	adapted  bool // Buffer has been set
}

// restored is a saved Alloc read back: an allocation that was decided
// has its buffer adapted already (the field that says so is not saved).
func (a Alloc) restored() Alloc {
	a.adapted = a.Value > 0
	return a
}

// Reasons, in events and `alloc`.
const (
	ReasonRise     = "predicted-rise"
	ReasonFall     = "predicted-fall"
	ReasonHold     = "hold"
	ReasonOOM      = "oom-bump"
	ReasonThrottle = "throttle-bump"
	ReasonInitial  = "initial"
	ReasonFair     = "fair-share"
	ReasonWarmup   = "warm-up-peak"
)

// Hold keeps a young agent's allocation at no less than peak, the highest
// use seen so far, and reports whether it raised it. Callers hold while
// the predictor is Young: its forecast and residual quantiles rest on
// too little history (no period found yet, losses barely scored), and
// the first misses would also inflate the adaptive buffer for a long
// time after. The VPA is as careful at the start (its p90 of all history
// plus 15 % sits above a young load's peak).
func (p Policy) Hold(a *Alloc, peak float64) bool {
	peak = p.clamp(peak)
	if peak <= a.Value {
		return false
	}
	a.Value, a.Reason = peak, ReasonWarmup
	return true
}

// Next moves a toward forecast with the fixed Buffer and returns whether
// the value changed.
func (p Policy) Next(a *Alloc, forecast float64) bool {
	return p.next(a, forecast, p.Buffer)
}

// NextUse is Next after seeing use, what was used while a's last value
// stood: with a Target, it first adapts a's buffer (see Policy), then
// moves a toward forecast × (1 + that buffer).
func (p Policy) NextUse(a *Alloc, forecast, use float64) bool {
	if p.Target <= 0 {
		return p.next(a, forecast, p.Buffer)
	}
	if !a.adapted {
		a.Buffer, a.adapted = p.Buffer, true
	}
	if a.Value > 0 {
		if use > a.Value {
			a.Buffer += p.Gain * (1 - p.Target)
		} else {
			a.Buffer -= p.Gain * p.Target
		}
		a.Buffer = math.Max(0, math.Min(math.Max(p.BufferMax, p.Buffer), a.Buffer))
	}
	return p.next(a, forecast, a.Buffer)
}

func (p Policy) next(a *Alloc, forecast, buffer float64) bool {
	a.Floor *= 1 - p.FloorDecay
	target := forecast * (1 + buffer)
	if target < a.Floor {
		target = a.Floor
	}
	target = p.clamp(target)
	old := a.Value
	a.Forecast = forecast
	switch {
	case a.Value == 0:
		a.Value, a.Reason = target, ReasonInitial
	case target > a.Value:
		a.Value, a.Reason = target, ReasonRise
	default:
		lowest := p.clamp(a.Value * (1 - p.Fall))
		if target < lowest {
			target = lowest
		}
		if target < a.Value {
			a.Value, a.Reason = target, ReasonFall
		} else {
			a.Reason = ReasonHold
		}
	}
	return a.Value != old
}

// Bump raises a at once by factor (an OOM kill: 1.2, as the VPA's OOM
// bump; heavy throttling: 1.5), at least to at+add, and remembers the new
// level as the floor.
func (p Policy) Bump(a *Alloc, at, factor, add float64, reason string) {
	v := math.Max(at*factor, at+add)
	v = math.Max(v, a.Value*factor)
	v = p.clamp(v)
	a.Value, a.Floor, a.Reason = v, v, reason
}

func (p Policy) clamp(v float64) float64 {
	if v < p.Min {
		v = p.Min
	}
	if p.Max > 0 && v > p.Max {
		v = p.Max
	}
	return v
}

// Claim is one agent's demand for a shared capacity.
type Claim struct {
	ID     int
	Demand float64
	Weight float64
}

// FairShare divides capacity among claims by weighted max-min fairness
// (water-filling): no claim gets more than its demand, and capacity left
// over by small claims goes to the others in proportion to their weights.
// When demand fits, each claim gets exactly its demand: the rest of the
// machine stays unreserved rather than padded onto whoever asked.
func FairShare(capacity float64, claims []Claim) map[int]float64 {
	out := make(map[int]float64, len(claims))
	cs := append([]Claim(nil), claims...)
	for i := range cs {
		if cs[i].Weight <= 0 {
			cs[i].Weight = 1
		}
	}
	// Visit claims by demand per unit of weight, smallest first: each is
	// either satisfied or caps the water level for all the rest.
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i].Demand/cs[i].Weight, cs[j].Demand/cs[j].Weight
		if a != b {
			return a < b
		}
		return cs[i].ID < cs[j].ID
	})
	left := capacity
	wsum := 0.0
	for _, c := range cs {
		wsum += c.Weight
	}
	for _, c := range cs {
		fair := left * c.Weight / wsum
		give := math.Min(c.Demand, fair)
		out[c.ID] = give
		left -= give
		wsum -= c.Weight
	}
	return out
}

// DefaultFallPerMinute is how much an allocation may drop in a minute
// after a predicted fall, by default: about 1 % a second.
const DefaultFallPerMinute = 0.45

// FallPer converts a per-minute fall rate into the fall allowed over one
// decision of the given length, so the descent takes the same time
// whether decisions come every second or every five minutes.
func FallPer(perMinute, seconds float64) float64 {
	if perMinute >= 1 {
		return 1
	}
	return 1 - math.Pow(1-perMinute, seconds/60)
}

// Defaults of the adaptive buffer (NextUse): aim at use exceeding the
// allocation in 0.5 % of decisions, steps of 0.01, at most 40 %.
const (
	DefaultTarget    = 0.005
	DefaultGain      = 0.01
	DefaultBufferMax = 0.4
)

// DefaultPolicy is the daemon's default for decisions every `seconds`:
// 15 % buffer to start, adapted toward DefaultTarget by NextUse,
// DefaultFallPerMinute, a remembered floor that halves in about ten
// minutes.
func DefaultPolicy(seconds float64) Policy {
	return Policy{Buffer: 0.15, Fall: FallPer(DefaultFallPerMinute, seconds), FloorDecay: FallPer(0.067, seconds),
		Target: DefaultTarget, Gain: DefaultGain, BufferMax: DefaultBufferMax}
}

// CoreClaim is an agent asking for dedicated cores: its predicted
// demand in cores.
type CoreClaim struct {
	ID     int
	Demand float64
}

// PlanCores is predictive core assignment: agents with heavy, steady
// demand get ceil(demand) cores of their own, from the highest cpu down,
// largest demand first, keeping at least one cpu out of every plan so
// the rest of the machine (and the daemon) always has somewhere to run.
// A claim that does not fit gets no plan. The result maps agent to a cpu
// list in the kernel's format.
func PlanCores(ncpu int, claims []CoreClaim) map[int]string {
	cs := append([]CoreClaim(nil), claims...)
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Demand != cs[j].Demand {
			return cs[i].Demand > cs[j].Demand
		}
		return cs[i].ID < cs[j].ID
	})
	out := map[int]string{}
	next := ncpu - 1 // highest free cpu
	for _, c := range cs {
		need := int(math.Ceil(c.Demand - 1e-9))
		if need < 1 {
			need = 1
		}
		lo := next - need + 1
		if lo < 1 { // cpu 0 stays shared
			continue
		}
		if lo == next {
			out[c.ID] = strconv.Itoa(lo)
		} else {
			out[c.ID] = strconv.Itoa(lo) + "-" + strconv.Itoa(next)
		}
		next = lo - 1
	}
	return out
}
