package heal

import "strings"

// Verb is one step of a recovery procedure, carried out by the daemon.
type Verb int

const (
	VerbNone       Verb = iota
	VerbRestart         // stop the agent (SIGTERM, then SIGKILL) and start it again
	VerbRaise           // raise a limit through the scheduler: Arg "memmax*1.5", "nofile*2", "pidsmax*2"
	VerbClearCache      // drop the agent's caches (its cache directory; page cache of its cgroup)
	VerbReset           // reset the agent's state (its state directory, declared by the agent) before restart
	VerbMaintain        // run the agent's maintenance command
	VerbEscalate        // tell an operator (events, log) and do nothing else
	VerbReallocate      // ask the scheduler for more CPU (weight, cpumax) for the agent
)

var verbNames = []string{"none", "restart", "raise", "clearcache", "reset", "maintain", "escalate", "reallocate"}

func (v Verb) String() string {
	if int(v) < len(verbNames) {
		return verbNames[v]
	}
	return "none"
}

// Step is one verb with its argument.
type Step struct {
	Verb Verb
	Arg  string
}

func (s Step) String() string {
	if s.Arg == "" {
		return s.Verb.String()
	}
	return s.Verb.String() + ":" + s.Arg
}

// Procedure is a named list of steps for one failure kind.
type Procedure struct {
	Name  string
	Kind  Kind
	Steps []Step
}

// StepsString renders the steps as "raise:memmax*1.5,restart".
func (p Procedure) StepsString() string {
	s := make([]string, len(p.Steps))
	for i, st := range p.Steps {
		s[i] = st.String()
	}
	return strings.Join(s, ",")
}

// Procedures is the table of recovery procedures per kind, in the order
// the rule-only (degraded) mode tries them: the first is the rule. The
// bandit chooses among all but escalate, which is what an open breaker or
// an exhausted table leaves.
var Procedures = [NumKinds][]Procedure{
	MemoryExhaustion: {
		{"raise-mem", MemoryExhaustion, []Step{{VerbRaise, "memmax*1.5"}}},
		{"restart", MemoryExhaustion, []Step{{VerbRestart, ""}}},
		{"clear-cache", MemoryExhaustion, []Step{{VerbClearCache, ""}}},
	},
	FDExhaustion: {
		{"restart", FDExhaustion, []Step{{VerbRestart, ""}}},
		{"raise-nofile", FDExhaustion, []Step{{VerbRaise, "nofile*2"}}},
	},
	DiskExhaustion: {
		{"clear-cache", DiskExhaustion, []Step{{VerbClearCache, ""}}},
		{"reset-restart", DiskExhaustion, []Step{{VerbReset, ""}, {VerbRestart, ""}}},
	},
	PIDExhaustion: {
		{"raise-pids", PIDExhaustion, []Step{{VerbRaise, "pidsmax*2"}}},
		{"restart", PIDExhaustion, []Step{{VerbRestart, ""}}},
	},
	CrashLoop: {
		{"restart-backoff", CrashLoop, []Step{{VerbRestart, ""}}},
		{"reset-restart", CrashLoop, []Step{{VerbReset, ""}, {VerbRestart, ""}}},
	},
	CPUOverload: {
		{"reallocate", CPUOverload, []Step{{VerbReallocate, "weight*2"}}},
	},
	Hang: {
		{"restart", Hang, []Step{{VerbRestart, ""}}},
		{"reset-restart", Hang, []Step{{VerbReset, ""}, {VerbRestart, ""}}},
	},
}

// Escalation is the procedure of last resort.
func Escalation(k Kind) Procedure {
	return Procedure{Name: "escalate", Kind: k, Steps: []Step{{VerbEscalate, ""}}}
}

func findProcedure(k Kind, name string) (Procedure, bool) {
	if name == "escalate" {
		return Escalation(k), true
	}
	for _, p := range Procedures[k] {
		if p.Name == name {
			return p, true
		}
	}
	return Procedure{}, false
}
