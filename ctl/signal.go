package ctl

import (
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Signals are named by one table, the one golang.org/x/sys/unix has for
// this system (unix.SignalName and unix.SignalNum), so that the names
// `kill` accepts and the names events and statuses print can never
// disagree: ParseSignal(SignalName(s)) == s for every signal.

// MaxSignal is the highest signal number Linux has (_NSIG - 1): the
// real-time signals go up to 64 and have numbers but no names.
const MaxSignal = 64

// ParseSignal parses a signal as `kill` takes it: a number (9), a name
// with or without SIG in any case (KILL, SIGKILL, term), and either with
// kill(1)'s leading dash (-9, -KILL, -SIGTERM). Numbers run 1..MaxSignal;
// 0 (kill(2)'s existence check) is refused because it signals nothing.
func ParseSignal(s string) (syscall.Signal, error) {
	v := strings.TrimPrefix(s, "-")
	if n, err := strconv.Atoi(v); err == nil && !strings.HasPrefix(v, "+") && !strings.HasPrefix(v, "-") {
		if n < 1 || n > MaxSignal {
			return 0, badSignal(s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(v)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, badSignal(s)
}

func badSignal(s string) error {
	return Errorf("bad signal %q (want a number 1..%d or a name such as TERM, KILL, HUP, INT, USR1; SIG and a leading - are optional)", s, MaxSignal)
}

// SignalName is a signal's short name without SIG ("KILL", "TERM"), or
// its decimal number for signals without a name (the real-time ones).
// This is the form events, statuses and `kill` use.
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return strings.TrimPrefix(n, "SIG")
	}
	return strconv.Itoa(int(sig))
}
