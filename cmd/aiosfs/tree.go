package main

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"aiosfs/fs/p9fs"
)

// The tree the client subcommands (ps, ctl) read and write: through a
// local FUSE mount, or over 9P. Paths are the tree's own ("/agents/3/ctl").
type tree interface {
	ReadFile(p string) ([]byte, error)
	// List is the names in directory p.
	List(p string) ([]string, error)
	// WriteFile writes data as `echo data > p` does: open, one write, close.
	WriteFile(p string, data []byte) error
	Close() error
	String() string // where it is, for messages
}

// Where the daemon's tree is when the command line names none: its
// default mount, then its default socket (serveFlags' defaults).
const (
	defaultMount  = "/aios"
	defaultSocket = "unix!/var/lib/aiosfs/9p.sock"
)

// openTree opens spec: a dial string (unix!PATH, tcp!HOST!PORT), a 9P
// socket's path, or a directory where the tree is mounted. "" is the
// default mount if the tree is there, else the default socket.
func openTree(spec string) (tree, error) {
	if spec == "" {
		if isMountedTree(defaultMount) {
			return localTree(defaultMount), nil
		}
		t, err := dialTree(defaultSocket)
		if err != nil {
			return nil, fmt.Errorf("no tree at %s, and %s: %v (name the mount point or socket)", defaultMount, defaultSocket, err)
		}
		return t, nil
	}
	if strings.Contains(spec, "!") {
		return dialTree(spec)
	}
	st, err := os.Stat(spec)
	switch {
	case err != nil:
		return nil, err
	case st.Mode()&os.ModeSocket != 0:
		return dialTree("unix!" + spec)
	case st.IsDir():
		if !isMountedTree(spec) {
			return nil, fmt.Errorf("%s: not an aiosfs tree (no version file and agents directory)", spec)
		}
		return localTree(spec), nil
	}
	return nil, fmt.Errorf("%s: neither a mount point nor a socket", spec)
}

// isMountedTree says whether dir looks like the root of the tree.
func isMountedTree(dir string) bool {
	v, err1 := os.Stat(filepath.Join(dir, "version"))
	a, err2 := os.Stat(filepath.Join(dir, "agents"))
	return err1 == nil && err2 == nil && v.Mode().IsRegular() && a.IsDir()
}

// localTree is the tree through a FUSE mount at its root directory.
type localTree string

func (l localTree) path(p string) string { return filepath.Join(string(l), path.Clean("/"+p)) }

func (l localTree) ReadFile(p string) ([]byte, error) { return os.ReadFile(l.path(p)) }

func (l localTree) List(p string) ([]string, error) {
	ents, err := os.ReadDir(l.path(p))
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, err
}

func (l localTree) WriteFile(p string, data []byte) error {
	f, err := os.OpenFile(l.path(p), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close() // a ctl runs an unfinished last line at close
	return errors.Join(werr, cerr)
}

func (l localTree) Close() error   { return nil }
func (l localTree) String() string { return string(l) }

// p9Tree is the tree over 9P.
type p9Tree struct {
	*p9fs.Client
	addr string
}

func dialTree(addr string) (tree, error) {
	c, err := p9fs.Dial(addr)
	if err != nil {
		return nil, err
	}
	return p9Tree{c, addr}, nil
}

func (t p9Tree) List(p string) ([]string, error) {
	ents, err := t.ReadDir(p)
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name
	}
	return names, err
}

func (t p9Tree) String() string { return t.addr }

// agentIDs lists agents/ in number order.
func agentIDs(t tree) ([]int, error) {
	names, err := t.List("/agents")
	if err != nil {
		return nil, err
	}
	var ids []int
	for _, n := range names {
		if id, err := strconv.Atoi(n); err == nil {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	return ids, nil
}

// record parses one key=value line of the tree's formats: blank-separated
// fields, a value with blanks double-quoted in Go syntax. The first word,
// when it has no "=", is the record's name (status's "agent", "cmd").
func record(line string) (name string, kv map[string]string) {
	kv = map[string]string{}
	s := strings.TrimSpace(line)
	for s != "" {
		var field string
		eq := strings.IndexByte(s, '=')
		sp := strings.IndexAny(s, " \t")
		switch {
		case eq < 0 || (sp >= 0 && sp < eq): // a bare word
			if sp < 0 {
				sp = len(s)
			}
			if name == "" && len(kv) == 0 {
				name = s[:sp]
			}
			s = strings.TrimLeft(s[sp:], " \t")
			continue
		case eq+1 < len(s) && s[eq+1] == '"':
			q, err := strconv.QuotedPrefix(s[eq+1:])
			if err != nil { // not Go syntax: up to the next blank
				q = s[eq+1:]
				if i := strings.IndexAny(q, " \t"); i >= 0 {
					q = q[:i]
				}
				kv[s[:eq]] = q
			} else {
				v, _ := strconv.Unquote(q)
				kv[s[:eq]] = v
			}
			field = s[:eq+1+len(q)]
		default:
			end := strings.IndexAny(s[eq:], " \t")
			if end < 0 {
				end = len(s) - eq
			}
			field = s[:eq+end]
			kv[s[:eq]] = s[eq+1 : eq+end]
		}
		s = strings.TrimLeft(s[len(field):], " \t")
	}
	return name, kv
}

// records is every line of text that is a record named name.
func records(text, name string) []map[string]string {
	var out []map[string]string
	for _, line := range strings.Split(text, "\n") {
		if n, kv := record(line); n == name {
			out = append(out, kv)
		}
	}
	return out
}
