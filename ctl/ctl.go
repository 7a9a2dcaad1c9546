// Package ctl is the command language of every ctl file in the tree: a
// tokenizer, a Cmdtab-style verb table, value parsers (sizes, durations,
// cpu lists, cores, fractions) and Plan 9's error words.
//
// A ctl file is one Table. Writing a line runs Exec: split the line into
// fields (Tokenize), look the verb up, check its argument count, check that
// the caller may use it, then call the verb's Run, which only converts its
// arguments and calls the engine. Reading the ctl file prints Help, the same
// table, so the help can never drift from the code.
//
// A line is text: valid UTF-8 with no control characters but tab
// (CheckLine), at most fs.MaxCtlLine bytes (the ctl handle refuses longer
// ones with EMSGSIZE before they get here). Whatever of a line is kept or
// shown to others goes through Redact first.
package ctl

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"aiosfs/fs"
)

// Plan 9's fixed error words (lib9p parse.c). Each error carries the
// offending command after a colon so `log` shows what was refused.
const (
	MsgEmpty   = "empty control message"
	MsgUnknown = "unknown control message"
	MsgBadArgs = "bad # args to command"
	MsgPerm    = "permission denied"
)

// Verb is one row of a table.
type Verb struct {
	Name string
	// Args is the usage after the verb, e.g. "SIZE" or "[SIG]"; Help
	// prints "Name Args".
	Args string
	// Min and Max bound the number of arguments after the verb; Max < 0
	// means no upper bound.
	Min, Max int
	// Root marks verbs that only root may use (lifting a quarantine,
	// changing capabilities).
	Root bool
	// Doc is one line saying what the verb does.
	Doc string
	// Run converts the arguments and acts. args excludes the verb.
	Run func(ctx context.Context, c fs.Caller, args []string) error
}

// Table is a ctl file's verbs.
type Table []Verb

// Help renders the table, one verb a line: "verb ARGS\tdoc".
func (t Table) Help() []byte {
	var b strings.Builder
	for _, v := range t {
		u := v.Name
		if v.Args != "" {
			u += " " + v.Args
		}
		if v.Root {
			u += " (root)"
		}
		// Usage, then the doc at column 36 or, for a long usage, after
		// two blanks, so the two never run together.
		fmt.Fprintf(&b, "%-34s  %s\n", u, v.Doc)
	}
	return []byte(b.String())
}

// Lookup finds the verb for fields, checking the argument count; it is
// Plan 9's lookupcmd.
func (t Table) Lookup(fields []string) (*Verb, error) {
	if len(fields) == 0 {
		return nil, &fs.Error{Errno: syscall.EINVAL, Msg: MsgEmpty}
	}
	for i := range t {
		v := &t[i]
		if v.Name != fields[0] {
			continue
		}
		n := len(fields) - 1
		if n < v.Min || (v.Max >= 0 && n > v.Max) {
			return nil, &fs.Error{Errno: syscall.EINVAL, Msg: MsgBadArgs + ": " + strings.Join(fields, " ")}
		}
		return v, nil
	}
	return nil, &fs.Error{Errno: syscall.EINVAL, Msg: MsgUnknown + ": " + strings.Join(fields, " ")}
}

// Exec runs one command line for caller c. It has the signature of fs.Exec
// so a table plugs straight into fs.NS.Ctl.
func (t Table) Exec(ctx context.Context, c fs.Caller, line string) error {
	fields, err := Tokenize(line)
	if err != nil {
		return err
	}
	v, err := t.Lookup(fields)
	if err != nil {
		return err
	}
	if v.Root && c.Uid != 0 {
		return &fs.Error{Errno: syscall.EPERM, Msg: MsgPerm + ": " + v.Name + " is root's alone"}
	}
	return v.Run(ctx, c, fields[1:])
}

// Errorf is an EINVAL error in the engine's own words.
func Errorf(format string, args ...any) error {
	return fs.Errorf(syscall.EINVAL, format, args...)
}

// CheckLine refuses a command line that is not text: every line of the
// command language is valid UTF-8 with no control characters but tab
// (C0, DEL and C1; a trailing CR or LF is not part of the line). Names,
// commands and values then reach every file that shows them (status,
// metrics labels, events, log) as text, and one user's odd bytes cannot
// break a file everyone reads. The error is EINVAL and says where the
// first bad byte is; it does not repeat the line (the refusal report
// carries it).
func CheckLine(line string) error {
	line = strings.TrimRight(line, "\r\n")
	for i, r := range line {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(line[i:], "\uFFFD"):
			return Errorf("control message is not valid UTF-8: byte %#02x at offset %d", line[i], i)
		case r == 0:
			return Errorf("NUL byte in control message at offset %d", i)
		case r != '\t' && unicode.IsControl(r):
			return Errorf("control character %U in control message at offset %d (only tab is allowed)", r, i)
		}
	}
	return nil
}

// Tokenize splits a command line into fields at blanks. Single and double
// quotes group blanks into one field (`-g "daemon off;"`); inside double
// quotes a backslash escapes the next character; an unbalanced quote is an
// error. Blank lines and lines starting with # give no fields. A line
// CheckLine refuses is an error.
func Tokenize(line string) ([]string, error) {
	if err := CheckLine(line); err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	var (
		out     []string
		cur     strings.Builder
		inField bool
		quote   byte
	)
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quote == '\'':
			if ch == '\'' {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
		case quote == '"':
			switch ch {
			case '"':
				quote = 0
			case '\\':
				if i+1 < len(line) {
					i++
					cur.WriteByte(line[i])
				} else {
					cur.WriteByte(ch)
				}
			default:
				cur.WriteByte(ch)
			}
		case ch == ' ' || ch == '\t':
			if inField {
				out = append(out, cur.String())
				cur.Reset()
				inField = false
			}
		case ch == '#' && !inField && len(out) == 0:
			return nil, nil
		case ch == '\'' || ch == '"':
			quote = ch
			inField = true
		case ch == 0:
			return nil, Errorf("NUL byte in control message")
		default:
			cur.WriteByte(ch)
			inField = true
		}
	}
	if quote != 0 {
		return nil, Errorf("unbalanced %c quote in control message", quote)
	}
	if inField {
		out = append(out, cur.String())
	}
	return out, nil
}

// KV is one key=value argument.
type KV struct{ Key, Value string }

// KeyValues splits leading key=value fields off args, stopping at "--"
// (which it consumes) or at the first field without '='. allowed names the
// keys; a name ending in "*" may repeat (env*). Unknown and repeated keys
// are errors.
func KeyValues(args []string, allowed ...string) (kvs []KV, rest []string, err error) {
	repeat := map[string]bool{}
	for _, a := range allowed {
		k, multi := strings.CutSuffix(a, "*")
		repeat[k] = multi
	}
	seen := map[string]bool{}
	for i, a := range args {
		if a == "--" {
			return kvs, args[i+1:], nil
		}
		k, v, found := strings.Cut(a, "=")
		if !found {
			return kvs, args[i:], nil
		}
		multi, ok := repeat[k]
		if !ok {
			return nil, nil, Errorf("unknown key %q", k)
		}
		if seen[k] && !multi {
			return nil, nil, Errorf("key %q given twice", k)
		}
		seen[k] = true
		kvs = append(kvs, KV{k, v})
	}
	return kvs, nil, nil
}
