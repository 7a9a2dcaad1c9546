package ctl

import (
	"strings"
)

// Redacted replaces a secret in what Redact returns.
const Redacted = "…"

// Redact returns line with the values that may be secrets replaced by
// Redacted, for every place a command is kept or shown to someone other
// than the process that wrote it: `log`, the daemon's stderr and the
// `refused` event. It works on any text in the command language's
// shape (a command, or an error message quoting one) and never fails:
// an unbalanced quote runs to the end, as a line cut short would.
//
// Redacted, field by field (after quotes are taken off):
//
//   - env=NAME=VALUE keeps env=NAME= and loses the value; env=VALUE
//     (no NAME) loses everything after env=; the same wherever env= (in
//     any case) appears inside a field, so --env=NAME=VALUE and a quote
//     left open before env= are covered too;
//   - NAME=VALUE, and --NAME=VALUE, where NAME contains PASS, PWD,
//     SECRET, TOKEN, KEY, CRED or AUTH in any case, loses the value;
//   - the field after a field `env` (env(1) and the agent engine's
//     `bad env "..."` error) or after an option such as --password or
//     -token (a dash, then a secret-like name, no '=') is redacted the
//     same way: NAME=VALUE keeps NAME=, anything else is replaced.
//
// A redacted field is written back bare, without its quotes; other
// fields are kept byte for byte.
func Redact(line string) string {
	var (
		b        strings.Builder
		hideNext bool
		changed  bool
	)
	for i := 0; i < len(line); {
		// Copy blanks through.
		if c := line[i]; c == ' ' || c == '\t' {
			b.WriteByte(c)
			i++
			continue
		}
		start := i
		field, end := scanField(line, i)
		i = end
		raw := line[start:end]
		switch {
		case hideNext:
			hideNext = false
			b.WriteString(hideValue(field))
			changed = true
			continue
		}
		if j := envIndex(field); j >= 0 {
			b.WriteString(field[:j+len("env=")] + hideValue(field[j+len("env="):]))
			changed = true
			continue
		}
		if k, _, ok := strings.Cut(field, "="); ok && secretName(k) {
			b.WriteString(k + "=" + Redacted)
			changed = true
			continue
		}
		if field == "env" || (strings.HasPrefix(field, "-") && !strings.Contains(field, "=") && secretName(field)) {
			hideNext = true
		}
		b.WriteString(raw)
	}
	if !changed {
		return line
	}
	return b.String()
}

// scanField reads one field from line[i:] as Tokenize does, returning its
// text without quotes and the offset after it.
func scanField(line string, i int) (string, int) {
	var (
		f     strings.Builder
		quote byte
	)
	for ; i < len(line); i++ {
		ch := line[i]
		switch {
		case quote == '\'':
			if ch == '\'' {
				quote = 0
			} else {
				f.WriteByte(ch)
			}
		case quote == '"':
			switch {
			case ch == '"':
				quote = 0
			case ch == '\\' && i+1 < len(line):
				i++
				f.WriteByte(line[i])
			default:
				f.WriteByte(ch)
			}
		case ch == ' ' || ch == '\t':
			return f.String(), i
		case ch == '\'' || ch == '"':
			quote = ch
		default:
			f.WriteByte(ch)
		}
	}
	return f.String(), i
}

// envIndex is the offset of the first "env=", in any ASCII case, in f,
// or -1. (strings.ToLower would change the length of invalid UTF-8.)
func envIndex(f string) int {
	for j := 0; j+4 <= len(f); j++ {
		if f[j]|0x20 == 'e' && f[j+1]|0x20 == 'n' && f[j+2]|0x20 == 'v' && f[j+3] == '=' {
			return j
		}
	}
	return -1
}

// hideValue keeps the NAME= of NAME=VALUE and replaces the rest.
func hideValue(v string) string {
	if k, _, ok := strings.Cut(v, "="); ok {
		return k + "=" + Redacted
	}
	return Redacted
}

var secretWords = []string{"PASS", "PWD", "SECRET", "TOKEN", "KEY", "CRED", "AUTH"}

// secretName reports whether a variable or option name looks like it
// holds a secret.
func secretName(name string) bool {
	name = strings.ToUpper(strings.TrimLeft(name, "-"))
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
