package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"aiosfs/fs"
)

// aiosfs ctl [-t MOUNT|ADDR] PATH VERB [ARG...]: writes one line to a ctl
// file, as `echo 'VERB ARG...' > PATH` does, and when the tree refuses it,
// says why: the errno alone is terse, the reason is in `log` (the
// caller's own refusals are readable by the caller).
//
// PATH is a ctl in the tree: agents/3/ctl, /ctl, sched/ctl; a directory
// means its ctl (agents/3, sched, /) and a bare number N means agents/N/ctl.
// An absolute path through a local mount (/aios/agents/3/ctl) names the
// mount too. Otherwise the tree is -t's (a mount point or a 9P dial
// string), by default the mount at /aios, else the socket
// /var/lib/aiosfs/9p.sock.
//
// The words after PATH are the line. Each is quoted for the ctl's
// tokenizer if it holds a blank or a quote, so an argv passes through
// unchanged (`aiosfs ctl / spawn w -- sh -c 'sleep 1; echo hi'`); a single
// word with blanks is taken as the whole line (`aiosfs ctl 3 'memmax 1G'`).
func ctlCmd(args []string) error {
	fl := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	target := fl.String("t", "", "the tree: a mount point or a 9P address (default /aios, else unix!/var/lib/aiosfs/9p.sock)")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fl.NArg() < 2 {
		return fmt.Errorf("%w: ctl takes [-t MOUNT|ADDR] PATH VERB [ARG...]", errUsage)
	}
	t, p, err := ctlTarget(*target, fl.Arg(0))
	if err != nil {
		return err
	}
	defer t.Close()
	line := ctlLine(fl.Args()[1:])
	start := time.Now()
	werr := t.WriteFile(p, []byte(line+"\n"))
	if werr == nil {
		return nil
	}
	msg := fmt.Sprintf("%s: %q: %v", p, line, errnoText(werr))
	why := errstrReason(t, p, line)
	if why == "" {
		why = refusalReason(t, p, line, start)
	}
	if why != "" && !strings.HasPrefix(errnoText(werr), why+" (") {
		msg += ": " + why
	} else if why == "" {
		msg += " (no reason in " + t.String() + "/log)"
	}
	return errors.New(msg)
}

// ctlTarget finds the tree and the ctl's path in it.
func ctlTarget(target, p string) (tree, string, error) {
	if target == "" && filepath.IsAbs(p) {
		if _, err := os.Stat(p); err == nil {
			// A path through a local mount: its root is the nearest
			// directory above that looks like the tree's.
			for dir := p; ; dir = filepath.Dir(dir) {
				if isMountedTree(dir) {
					rel, _ := filepath.Rel(dir, p)
					return localTree(dir), ctlPath(rel), nil
				}
				if dir == "/" {
					break
				}
			}
		}
	}
	t, err := openTree(target)
	if err != nil {
		return nil, "", err
	}
	return t, ctlPath(p), nil
}

// ctlPath is p as a tree path to a ctl file.
func ctlPath(p string) string {
	if _, err := strconv.Atoi(p); err == nil {
		return "/agents/" + p + "/ctl"
	}
	p = path.Clean("/" + p)
	if path.Base(p) != "ctl" {
		p = path.Join(p, "ctl")
	}
	return p
}

// ctlLine joins words into a line ctl.Tokenize splits back into them.
func ctlLine(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	out := make([]string, len(words))
	for i, w := range words {
		if w == "" || strings.ContainsAny(w, " \t'\"\\#") {
			w = "'" + strings.ReplaceAll(w, "'", `'"'"'`) + "'"
		}
		out[i] = w
	}
	return strings.Join(out, " ")
}

// errnoText is err's errno as strerror says it, with its number.
func errnoText(err error) string {
	if n := fs.Errno(err); n != 0 {
		return fmt.Sprintf("%v (errno %d)", n, int(n))
	}
	return err.Error()
}

// errstrReason is the reason in the tree's errstr for a refusal of line
// at p, or "". errstr is the caller's last refusal (daemon.Errstr): over
// 9P its connection's, so a refusal at p there is this write's (each
// command dials its own connection); through a FUSE mount it is the
// uid's, so the command must match too.
func errstrReason(t tree, p, line string) string {
	b, err := t.ReadFile("/errstr")
	if err != nil {
		return ""
	}
	where, what, ok := strings.Cut(strings.TrimSuffix(string(b), "\n"), ": ")
	if !ok || where != path.Clean("/"+p) {
		return ""
	}
	cmd, why, ok := refused(what)
	if !ok {
		return ""
	}
	if _, session := t.(p9Tree); !session && cmd != line {
		return ""
	}
	return why
}

// refusalReason finds in `log` why the tree refused line at p, written
// at start. The daemon logs every refusal as
//
//	TIME uid=U PATH: refused "CMD": REASON
//
// and a failed lookup (no such agent) as `TIME PATH: REASON` for root
// only. Best is the latest refusal of this very command at p; else the
// latest refusal at p, or lookup failure on p's way, since start. Other
// users' lines are not shown to a non-root caller anyway.
func refusalReason(t tree, p, line string, start time.Time) string {
	b, err := t.ReadFile("/log")
	if err != nil {
		return ""
	}
	since := start.Add(-2 * time.Second) // log times are the daemon's, to the millisecond
	var exact, recent string
	for _, l := range strings.Split(string(b), "\n") {
		ts, rest, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		when, err := time.Parse("2006-01-02T15:04:05.000Z", ts)
		if err != nil {
			continue
		}
		if strings.HasPrefix(rest, "uid=") {
			_, rest, _ = strings.Cut(rest, " ")
		}
		where, what, ok := strings.Cut(rest, ": ")
		if !ok {
			continue
		}
		if where == p {
			if cmd, why, ok := refused(what); ok {
				if cmd == line {
					exact = why
				}
				if !when.Before(since) {
					recent = why
				}
				continue
			}
		}
		// A lookup that failed on the way to p: /agents/99 for
		// /agents/99/ctl.
		if strings.HasPrefix(p, where+"/") && !when.Before(since) {
			recent = what
		}
	}
	if exact != "" {
		return exact
	}
	return recent
}

// refused splits `refused "CMD": REASON`.
func refused(s string) (cmd, why string, ok bool) {
	s, ok = strings.CutPrefix(s, "refused ")
	if !ok {
		return "", "", false
	}
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", false
	}
	cmd, _ = strconv.Unquote(q)
	why = strings.TrimPrefix(s[len(q):], ": ")
	return cmd, why, true
}
