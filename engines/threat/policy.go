package threat

import (
	"fmt"
	"strconv"
	"strings"
)

// Type is a threat type.
type Type uint8

const (
	Benign Type = iota
	ResourceExhaustion
	UnauthorizedAccess
	DataExfiltration
	DenialOfService
	PrivilegeEscalation
	Unknown
	NumTypes
)

var typeNames = [NumTypes]string{"Benign", "ResourceExhaustion", "UnauthorizedAccess", "DataExfiltration", "DenialOfService", "PrivilegeEscalation", "Unknown"}

func (t Type) String() string {
	if t < NumTypes {
		return typeNames[t]
	}
	return "Unknown"
}

// ParseType reads a type name (case-insensitive).
func ParseType(s string) (Type, bool) {
	for i, n := range typeNames {
		if strings.EqualFold(n, s) {
			return Type(i), true
		}
	}
	return 0, false
}

// Action is a response verb, weakest first.
type Action uint8

const (
	None Action = iota
	Alert
	Throttle
	Quarantine
	Kill
	NumActions
)

var actionNames = [NumActions]string{"none", "alert", "throttle", "quarantine", "kill"}

func (a Action) String() string {
	if a < NumActions {
		return actionNames[a]
	}
	return "none"
}

// Policy is the response table: for each verb the score at or above
// which it applies, globally and optionally per threat type. A negative
// threshold means "never" (the verb is off). Escalate is not a step on
// the ladder but a flag: at or above it the alert also goes to the
// alerts stream's escalation and the hook command.
type Policy struct {
	Threshold [NumActions]float64          // by Action; [None] unused
	Escalate  float64                      // -1: off
	ByType    map[Type][NumActions]float64 // overrides; a -2 entry means "use the global"
}

// DefaultPolicy alerts at 0.5, throttles at 0.7, quarantines at 0.85,
// escalates at 0.85 and never kills on its own.
func DefaultPolicy() Policy {
	return Policy{Threshold: [NumActions]float64{0, 0.5, 0.7, 0.85, -1}, Escalate: 0.85}
}

// threshold is verb a's threshold for type t.
func (p *Policy) threshold(a Action, t Type) float64 {
	if o, ok := p.ByType[t]; ok && o[a] != -2 {
		return o[a]
	}
	return p.Threshold[a]
}

// Decide returns the strongest verb whose threshold score reaches for
// type t, and whether to escalate.
func (p *Policy) Decide(score float64, t Type) (Action, bool) {
	act := None
	for a := Alert; a < NumActions; a++ {
		if th := p.threshold(a, t); th >= 0 && score >= th {
			act = a
		}
	}
	return act, p.Escalate >= 0 && score >= p.Escalate
}

// Threshold returns verb a's threshold for type t (-1: off).
func (p *Policy) ThresholdFor(a Action, t Type) float64 { return p.threshold(a, t) }

// ParsePolicy reads a policy table, one rule per line:
//
//	# comment
//	alert      0.5
//	throttle   0.7
//	quarantine 0.85
//	kill       off
//	escalate   0.85
//	quarantine 0.6 DataExfiltration     a per-type override
//
// or the same rules on one line separated by ';' or as verb=value
// words ("alert=0.5 quarantine=0.9"), the form a ctl write uses. Verbs:
// alert throttle quarantine kill escalate. A threshold is a decimal in
// [0, 1] or "off". Rules not given keep DefaultPolicy's values. Any
// unknown verb, bad number, threshold outside 0..1, unknown type or
// repeated rule fails the whole table with an error naming the rule;
// the caller's policy is then left as it was.
func ParsePolicy(text string) (Policy, error) {
	p := DefaultPolicy()
	seen := map[string]bool{}
	text = strings.ReplaceAll(text, ";", "\n")
	for ln, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		words := strings.Fields(line)
		if len(words) == 0 {
			continue
		}
		var rules [][]string
		if strings.Contains(words[0], "=") {
			for _, w := range words {
				k, v, ok := strings.Cut(w, "=")
				if !ok {
					return Policy{}, fmt.Errorf("policy line %d: %q: want verb=threshold", ln+1, w)
				}
				rules = append(rules, []string{k, v})
			}
		} else {
			rules = [][]string{words}
		}
		for _, r := range rules {
			if err := p.rule(r, seen); err != nil {
				return Policy{}, fmt.Errorf("policy line %d: %w", ln+1, err)
			}
		}
	}
	return p, nil
}

func (p *Policy) rule(w []string, seen map[string]bool) error {
	if len(w) < 2 || len(w) > 3 {
		return fmt.Errorf("%q: want \"verb threshold [type]\"", strings.Join(w, " "))
	}
	verb := strings.ToLower(w[0])
	var a Action
	switch verb {
	case "alert":
		a = Alert
	case "throttle":
		a = Throttle
	case "quarantine":
		a = Quarantine
	case "kill":
		a = Kill
	case "escalate":
	default:
		return fmt.Errorf("unknown verb %q (want alert, throttle, quarantine, kill or escalate)", w[0])
	}
	var th float64
	if strings.EqualFold(w[1], "off") {
		th = -1
	} else {
		v, err := strconv.ParseFloat(w[1], 64)
		if err != nil || strings.ContainsAny(w[1], "xXpP_") {
			return fmt.Errorf("%s: threshold %q is not a number", verb, w[1])
		}
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("%s: threshold %s outside 0..1", verb, w[1])
		}
		th = v
	}
	key := verb
	if len(w) == 3 {
		t, ok := ParseType(w[2])
		if !ok {
			return fmt.Errorf("%s: unknown threat type %q", verb, w[2])
		}
		if verb == "escalate" {
			return fmt.Errorf("escalate takes no type")
		}
		key += " " + t.String()
		if seen[key] {
			return fmt.Errorf("%s given twice", key)
		}
		seen[key] = true
		if p.ByType == nil {
			p.ByType = map[Type][NumActions]float64{}
		}
		o, ok := p.ByType[t]
		if !ok {
			o = [NumActions]float64{-2, -2, -2, -2, -2}
		}
		o[a] = th
		p.ByType[t] = o
		return nil
	}
	if seen[key] {
		return fmt.Errorf("%s given twice", key)
	}
	seen[key] = true
	if verb == "escalate" {
		p.Escalate = th
	} else {
		p.Threshold[a] = th
	}
	return nil
}

// String renders the policy in the form ParsePolicy reads, one rule per
// line, globals first then overrides by type: what `threat/ctl` lists.
func (p Policy) String() string {
	var b strings.Builder
	f := func(v float64) string {
		if v < 0 {
			return "off"
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	for a := Alert; a < NumActions; a++ {
		fmt.Fprintf(&b, "%s %s\n", a, f(p.Threshold[a]))
	}
	fmt.Fprintf(&b, "escalate %s\n", f(p.Escalate))
	for t := Type(0); t < NumTypes; t++ {
		o, ok := p.ByType[t]
		if !ok {
			continue
		}
		for a := Alert; a < NumActions; a++ {
			if o[a] != -2 {
				fmt.Fprintf(&b, "%s %s %s\n", a, f(o[a]), t)
			}
		}
	}
	return b.String()
}
