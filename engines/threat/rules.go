package threat

// The rule floor: fixed thresholds on the window features, the
// behaviour analyser the original plan had. It needs no training and no
// model file, so it is the baseline the learned detector is measured
// against and the fallback when a model is missing or refused.
//
// Each rule names a type and a score; a window's rule score is the
// highest score among the rules it fires, its type that rule's type,
// and its top features the features of every fired rule, strongest
// first. Thresholds are deliberately generous (a compile forks and
// execs a lot; a backup reads and writes a lot): the floor is meant to
// catch the loud cases without false alarms, not the quiet ones.

// Rule is one threshold rule: it fires when every condition holds.
//
// Floor marks a rule whose evidence is unambiguous on its own (an open
// of a credential file, a set-uid exec, a shell on a socket, forks
// refused by pids.max, a fork rate no build reaches, hundreds of open
// connections): such a rule stays a floor under the learned detector.
// The others are rate thresholds that heavy benign work can reach (file
// writes of a backup, bytes sent, a busy CPU); with a model loaded they
// are reported (Fired) but the model's score stands.
type Rule struct {
	Name  string
	Type  Type
	Score float64
	Floor bool
	When  []Cond
}

// Cond is feature F over window W (0: 1 s, 1: 10 s) at or above Min.
type Cond struct {
	F   Feature
	W   int
	Min float64
}

const (
	mib = 1 << 20
)

// DefaultRules is the rule floor. Revised once after the first
// recording (docs/threat.md, "Evaluation"): mass-rewrite from 20 to 200
// files/s, setid-exec above credential-read so that su reading
// /etc/shadow for an unprivileged caller is named PrivilegeEscalation.
var DefaultRules = []Rule{
	{"fork-storm", ResourceExhaustion, 0.95, true, []Cond{{Forks, 0, 100}}},
	{"fork-storm-limit", ResourceExhaustion, 0.9, true, []Cond{{ForkFails, 0, 1}}},
	{"process-flood", ResourceExhaustion, 0.8, true, []Cond{{Procs, 0, 256}}},
	{"memory-runaway", ResourceExhaustion, 0.8, false, []Cond{{MemGrowth, 1, 200 * mib}}},
	{"oom", ResourceExhaustion, 0.6, false, []Cond{{OOMKills, 0, 1}}},
	{"miner", ResourceExhaustion, 0.75, false, []Cond{{CPU, 1, 0.8}, {CPUSteady, 1, 0.8}, {Established, 1, 1}}},
	{"setid-exec", PrivilegeEscalation, 0.92, true, []Cond{{SetIDExecs, 0, 1}}},
	{"id-change", PrivilegeEscalation, 0.7, false, []Cond{{IDChanges, 0, 1}}},
	{"cap-change", PrivilegeEscalation, 0.7, false, []Cond{{CapChanges, 0, 1}}},
	{"credential-read", UnauthorizedAccess, 0.9, true, []Cond{{SensitiveOpens, 0, 1}}},
	{"mass-rewrite", UnauthorizedAccess, 0.85, false, []Cond{{FilesWritten, 1, 200}}},
	{"remote-shell", UnauthorizedAccess, 0.9, true, []Cond{{StdinSockets, 0, 1}}},
	{"exfiltration", DataExfiltration, 0.85, false, []Cond{{NetSent, 1, 4 * mib}}},
	{"connection-flood", DenialOfService, 0.9, true, []Cond{{Established, 0, 200}}},
	{"endpoint-sweep", DenialOfService, 0.85, true, []Cond{{NewRemotes, 0, 100}}},
}

// RuleVerdict is the rule floor's answer for one window.
type RuleVerdict struct {
	Score float64
	Type  Type
	Fired []string  // rule names, strongest first
	Top   []Feature // the fired rules' features, strongest rule first, each once
	// FloorScore and FloorType are those of the strongest fired Floor
	// rule (0 and Benign when none fired).
	FloorScore float64
	FloorType  Type
}

// EvalRules runs rules over v.
func EvalRules(rules []Rule, v *Vector) RuleVerdict {
	var out RuleVerdict
	out.Type = Benign
	type hit struct {
		r *Rule
	}
	var hits []*Rule
	for i := range rules {
		r := &rules[i]
		ok := len(r.When) > 0
		for _, c := range r.When {
			if v.At(c.F, c.W) < c.Min {
				ok = false
				break
			}
		}
		if ok {
			hits = append(hits, r)
		}
	}
	// strongest first, stable
	for i := 1; i < len(hits); i++ {
		for j := i; j > 0 && hits[j].Score > hits[j-1].Score; j-- {
			hits[j], hits[j-1] = hits[j-1], hits[j]
		}
	}
	seen := map[Feature]bool{}
	for _, r := range hits {
		out.Fired = append(out.Fired, r.Name)
		for _, c := range r.When {
			if !seen[c.F] {
				seen[c.F] = true
				out.Top = append(out.Top, c.F)
			}
		}
	}
	if len(hits) > 0 {
		out.Score, out.Type = hits[0].Score, hits[0].Type
	}
	for _, r := range hits {
		if r.Floor {
			out.FloorScore, out.FloorType = r.Score, r.Type
			break
		}
	}
	return out
}
