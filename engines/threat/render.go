package threat

import (
	"strconv"
	"strings"

	"aiosfs/ctl"
)

// Renderers of the engine's files. Every file is text, one record per
// line, key=value fields in a fixed order separated by single spaces,
// fractions 0..1 with 3 decimals, "-" for nothing, values with blanks
// Go-quoted (docs/architecture.md §1).

func f3(b []byte, v float64) []byte { return strconv.AppendFloat(b, v, 'f', 3, 64) }

func appendTop(b []byte, top []TopFeature) []byte {
	if len(top) == 0 {
		return append(b, '-')
	}
	for i, t := range top {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, t.Name...)
		b = append(b, ':')
		b = f3(b, t.Weight)
	}
	return b
}

// AgentLine renders `agents/N/threat`, one line:
//
//	score=0.912 type=DataExfiltration confidence=0.830 action=quarantine escalate=1 trend=rising source=ml top=net_sent@10s:0.410,new_remotes@1s:0.220 warn=- time=1764795600.000
//
//	score       0..1, the larger of the rule floor's and the learned detector's
//	type        Benign ResourceExhaustion UnauthorizedAccess DataExfiltration DenialOfService PrivilegeEscalation Unknown
//	confidence  0..1: the classifier's probability of type (rules: 1; anomalies: the anomaly score)
//	action      none alert throttle quarantine kill: the policy's verb for score and type
//	escalate    1 when the score reaches the escalate threshold, else 0
//	trend       rising steady falling, over the last 10 windows
//	source      rules or ml: which one set the score
//	top         up to 3 features that drove it, name@window:weight, or -
//	warn        VERB@H: the forecast reaches VERB's threshold H windows ahead; - for none
//	time        the window's end, Unix seconds
//
// then one line per extra signal that had a verdict (Signal):
//
//	signal name=seq score=0.740 type=Unknown evidence=openat>mmap>mprotect,…
//
//	evidence    the signal's evidence, comma-separated and quoted when needed
func (a *Assessment) AgentLine() string {
	b := make([]byte, 0, 256)
	b = append(b, "score="...)
	b = f3(b, a.Score)
	b = append(b, " type="...)
	b = append(b, a.Type.String()...)
	b = append(b, " confidence="...)
	b = f3(b, a.Confidence)
	b = append(b, " action="...)
	b = append(b, a.Action.String()...)
	b = append(b, " escalate="...)
	if a.Escalate {
		b = append(b, '1')
	} else {
		b = append(b, '0')
	}
	b = append(b, " trend="...)
	b = append(b, a.Trend.String()...)
	b = append(b, " source="...)
	b = appendDash(b, a.Source)
	b = append(b, " top="...)
	b = appendTop(b, a.Top)
	b = append(b, " warn="...)
	b = appendWarn(b, a.Warning)
	b = append(b, " time="...)
	b = strconv.AppendFloat(b, float64(a.Time.UnixMilli())/1000, 'f', 3, 64)
	b = append(b, '\n')
	for _, sv := range a.Signals {
		l := new(ctl.Line).Str("name", sv.Name).Float("score", sv.Score, 3).Str("type", sv.Type.String())
		if len(sv.Evidence) == 0 {
			l.Str("evidence", "-")
		} else {
			l.Str("evidence", strings.Join(sv.Evidence, ","))
		}
		b = append(b, "signal "...)
		b = append(b, l.Bytes()...)
	}
	return string(b)
}

func appendDash(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return append(b, s...)
}

func appendWarn(b []byte, w *Warning) []byte {
	if w == nil {
		return append(b, '-')
	}
	b = append(b, w.Verb...)
	b = append(b, '@')
	return strconv.AppendInt(b, int64(w.In), 10)
}

// AlertLine renders one line of `threat/alerts` (and the hook command's
// AIOS_ALERT environment variable): the evidence an action carries.
//
//	time=1764795600.000 agent=7 action=quarantine escalate=1 score=0.912 type=DataExfiltration confidence=0.830 source=ml rules=exfiltration top=net_sent@10s:0.410
//
//	rules  the rule floor's fired rules, comma-separated, or -
func (a *Assessment) AlertLine() string {
	b := make([]byte, 0, 256)
	b = append(b, "time="...)
	b = strconv.AppendFloat(b, float64(a.Time.UnixMilli())/1000, 'f', 3, 64)
	b = append(b, " agent="...)
	b = strconv.AppendInt(b, int64(a.Agent), 10)
	b = append(b, " action="...)
	b = append(b, a.Action.String()...)
	if a.Escalate {
		b = append(b, " escalate=1"...)
	} else {
		b = append(b, " escalate=0"...)
	}
	b = append(b, " score="...)
	b = f3(b, a.Score)
	b = append(b, " type="...)
	b = append(b, a.Type.String()...)
	b = append(b, " confidence="...)
	b = f3(b, a.Confidence)
	b = append(b, " source="...)
	b = appendDash(b, a.Source)
	b = append(b, " rules="...)
	if len(a.Rules.Fired) == 0 {
		b = append(b, '-')
	} else {
		b = append(b, strings.Join(a.Rules.Fired, ",")...)
	}
	b = append(b, " top="...)
	b = appendTop(b, a.Top)
	return string(append(b, '\n'))
}

// StatusText renders `threat/status`, one line:
//
//	mode=ml model=3f2a…(64 hex) agents=12 quarantined=1 windows=5400 alerts=3 throttles=1 quarantines=1 kills=0 host_score=0.120 host_trend=steady model_error=-
//
//	mode         ml (a verified model is loaded) or rules (the floor only)
//	model        the SHA-256 of the loaded model's manifest, or -
//	windows      windows scored since start; alerts..kills: windows whose verb was that
//	host_score   the highest agent score of the last complete window
//	model_error  why the last model load was refused, Go-quoted, or -
func (s Status) StatusText() string {
	b := make([]byte, 0, 256)
	b = append(b, "mode="...)
	b = append(b, s.Mode...)
	b = append(b, " model="...)
	b = append(b, s.Model...)
	b = append(b, " agents="...)
	b = strconv.AppendInt(b, int64(s.Agents), 10)
	b = append(b, " quarantined="...)
	b = strconv.AppendInt(b, int64(s.Quarantined), 10)
	b = append(b, " windows="...)
	b = strconv.AppendUint(b, s.Windows, 10)
	for a, k := range []string{"alerts", "throttles", "quarantines", "kills"} {
		b = append(b, ' ')
		b = append(b, k...)
		b = append(b, '=')
		b = strconv.AppendUint(b, s.Actions[Alert+Action(a)], 10)
	}
	b = append(b, " host_score="...)
	b = f3(b, s.HostScore)
	b = append(b, " host_trend="...)
	b = append(b, s.HostTrend.String()...)
	b = append(b, " model_error="...)
	if s.ModelErr == "" {
		b = append(b, '-')
	} else {
		b = strconv.AppendQuote(b, s.ModelErr)
	}
	return string(append(b, '\n'))
}

// TrendsText renders `threat/trends`: one line per agent, by number,
// then the host:
//
//	agent=7 score=0.412 type=DataExfiltration trend=rising slope=0.031
//	agent=host score=0.412 type=- trend=rising slope=0.031
//
//	slope  least-squares slope of the score per window over the last 10
func TrendsText(ts []AgentTrend) string {
	var b []byte
	for _, t := range ts {
		b = appendAgent(b, t)
		b = append(b, " score="...)
		b = f3(b, t.Score)
		b = append(b, " type="...)
		if t.Agent == 0 {
			b = append(b, '-')
		} else {
			b = append(b, t.Type.String()...)
		}
		b = append(b, " trend="...)
		b = append(b, t.Trend.String()...)
		b = append(b, " slope="...)
		b = f3(b, t.Slope)
		b = append(b, '\n')
	}
	return string(b)
}

func appendAgent(b []byte, t AgentTrend) []byte {
	b = append(b, "agent="...)
	if t.Agent == 0 {
		return append(b, "host"...)
	}
	return strconv.AppendInt(b, int64(t.Agent), 10)
}

// PredictText renders `threat/predict`: one line per agent, then the
// host, with the forecast of the next 10 windows and the early warning:
//
//	agent=7 score=0.412 next=0.480,0.530,...(10 values) warn=quarantine@4 predicted=0.861
//	agent=9 score=0.010 next=0.010,... warn=- predicted=-
//
//	warn       VERB@H: the forecast reaches VERB's policy threshold H windows
//	           ahead while the score is below it (the strongest such verb)
//	predicted  the forecast at H
func PredictText(ts []AgentTrend) string {
	var b []byte
	for _, t := range ts {
		b = appendAgent(b, t)
		b = append(b, " score="...)
		b = f3(b, t.Score)
		b = append(b, " next="...)
		for i, v := range t.Forecast {
			if i > 0 {
				b = append(b, ',')
			}
			b = f3(b, v)
		}
		b = append(b, " warn="...)
		b = appendWarn(b, t.Warning)
		b = append(b, " predicted="...)
		if t.Warning == nil {
			b = append(b, '-')
		} else {
			b = f3(b, t.Warning.Predicted)
		}
		b = append(b, '\n')
	}
	return string(b)
}
