package ctl

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The tree's records are lines of key=value fields separated by single
// blanks (status, events, threat, health, ...). Line writes one, Field
// reads a field back; every engine renders and every test and client
// parses through these two, so quoting is the same everywhere:
//
//   - a value with a blank, tab, newline, quote, '=' or backslash, a
//     control character or invalid UTF-8 is a Go double-quoted string
//     (strconv.Quote); an empty value is "";
//   - times are Unix seconds with three decimals (milliseconds);
//   - durations are seconds with three decimals;
//   - booleans are on/off, as the ctl verbs take them.

// Quote renders v as a field's value (see above).
func Quote(v string) string {
	if v == "" {
		return `""`
	}
	if strings.ContainsAny(v, " \t\n\"'=\\") || !printable(v) {
		return strconv.Quote(v)
	}
	return v
}

// printable: valid UTF-8 with no control characters.
func printable(v string) bool {
	for _, r := range v {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Line builds one record. The zero Line is empty; each method appends one
// field and returns the Line, so a record is one expression.
type Line struct{ b []byte }

func (l *Line) key(k string) {
	if len(l.b) > 0 {
		l.b = append(l.b, ' ')
	}
	l.b = append(l.b, k...)
	l.b = append(l.b, '=')
}

// Str appends k=v, quoted when v needs it.
func (l *Line) Str(k, v string) *Line { l.key(k); l.b = append(l.b, Quote(v)...); return l }

// Int appends k=v in decimal.
func (l *Line) Int(k string, v int64) *Line { l.key(k); l.b = strconv.AppendInt(l.b, v, 10); return l }

// Uint appends k=v in decimal.
func (l *Line) Uint(k string, v uint64) *Line {
	l.key(k)
	l.b = strconv.AppendUint(l.b, v, 10)
	return l
}

// Float appends k=v with prec decimals.
func (l *Line) Float(k string, v float64, prec int) *Line {
	l.key(k)
	l.b = strconv.AppendFloat(l.b, v, 'f', prec, 64)
	return l
}

// Time appends k as Unix seconds with milliseconds (0 for the zero time).
func (l *Line) Time(k string, t time.Time) *Line {
	if t.IsZero() {
		return l.Float(k, 0, 3)
	}
	return l.Float(k, float64(t.UnixMilli())/1000, 3)
}

// Seconds appends k as d in seconds with milliseconds.
func (l *Line) Seconds(k string, d time.Duration) *Line { return l.Float(k, d.Seconds(), 3) }

// OnOff appends k=on or k=off.
func (l *Line) OnOff(k string, v bool) *Line { l.key(k); l.b = append(l.b, OnOff(v)...); return l }

// Bytes is the record with its newline.
func (l *Line) Bytes() []byte { return append(l.b[:len(l.b):len(l.b)], '\n') }

// String is the record with its newline.
func (l *Line) String() string { return string(l.Bytes()) }

// Field returns the value of the first field named key in text (one
// record or several lines of them), unquoted, and whether it was there.
func Field(text, key string) (string, bool) {
	for i := 0; i < len(text); {
		j := strings.Index(text[i:], key+"=")
		if j < 0 {
			return "", false
		}
		j += i
		if j > 0 && text[j-1] != ' ' && text[j-1] != '\n' && text[j-1] != '\t' {
			i = j + 1
			continue
		}
		v := text[j+len(key)+1:]
		if strings.HasPrefix(v, `"`) {
			if q, err := strconv.QuotedPrefix(v); err == nil {
				u, _ := strconv.Unquote(q)
				return u, true
			}
		}
		if k := strings.IndexAny(v, " \t\n"); k >= 0 {
			v = v[:k]
		}
		return v, true
	}
	return "", false
}
