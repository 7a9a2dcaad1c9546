// Package heal is the self-healing engine's core (issue 14): health per
// component, failure prediction, learned recovery under supervisor
// semantics, and predictive maintenance. It is plain Go with no files and
// no daemon wiring: the daemon feeds it samples, limits and events and
// carries out the Actions it returns; the renderers here build the text
// of `agents/N/health` and `heal/*`. See docs/heal.md.
package heal

import (
	"strconv"
	"time"
)

// Kind is a failure type.
type Kind int

const (
	MemoryExhaustion Kind = iota // memory.current reaching memory.max (OOM kill) or memory.high (reclaim stalls)
	FDExhaustion                 // open fds reaching RLIMIT_NOFILE (EMFILE)
	DiskExhaustion               // a filesystem the agent writes filling (ENOSPC)
	PIDExhaustion                // tasks reaching pids.max (EAGAIN on fork)
	CrashLoop                    // restarts exceeding the restart intensity
	CPUOverload                  // CPU pressure starving the agent or its neighbours
	Hang                         // no CPU and no progress, or a missed heartbeat
	NumKinds
)

var kindNames = [NumKinds]string{"MemoryExhaustion", "FDExhaustion", "DiskExhaustion", "PIDExhaustion", "CrashLoop", "CPUOverload", "Hang"}

func (k Kind) String() string {
	if k >= 0 && k < NumKinds {
		return kindNames[k]
	}
	return "Unknown"
}

// ParseKind is String's inverse.
func ParseKind(s string) (Kind, bool) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), true
		}
	}
	return 0, false
}

// Trend is a component's direction.
type Trend int

const (
	Stable Trend = iota
	Improving
	Degrading
	Critical
)

func (t Trend) String() string {
	switch t {
	case Improving:
		return "Improving"
	case Degrading:
		return "Degrading"
	case Critical:
		return "Critical"
	}
	return "Stable"
}

func f3(b []byte, v float64) []byte { return strconv.AppendFloat(b, v, 'f', 3, 64) }

// appendSecs writes a duration in seconds with 3 decimals, or "-" for
// none (negative or infinite).
func appendSecs(b []byte, s float64) []byte {
	if s < 0 || s > 1e12 || s != s {
		return append(b, '-')
	}
	return f3(b, s)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, '-')
	}
	return strconv.AppendFloat(b, float64(t.UnixMilli())/1000, 'f', 3, 64)
}

func appendQ(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '"' || c == '\\' || c >= 0x7f || c == '=' {
			return strconv.AppendQuote(b, s)
		}
	}
	return append(b, s...)
}

func clamp01(v float64) float64 {
	if v < 0 || v != v {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}
