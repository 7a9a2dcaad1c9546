package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"aiosfs/ctl"
	"aiosfs/engines/bus"
	"aiosfs/fs"
)

// VerbFunc lets another engine add verbs to every agent's ctl.
type VerbFunc func(id int) ctl.Table

// Extend registers another engine's rows of agents/N (its Dirtab) and its
// verbs in agents/N/ctl.
func (e *Engine) Extend(files fs.Dirtab, verbs VerbFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if files != nil {
		e.files = append(e.files[:len(e.files):len(e.files)], files...)
	}
	if verbs != nil {
		e.verbs = append(e.verbs, verbs)
	}
}

// Table is agent id's whole ctl table: the engine's verbs and every
// extension's.
func (e *Engine) Table(id int) ctl.Table {
	t := e.Verbs(id)
	e.mu.Lock()
	ext := append([]VerbFunc(nil), e.verbs...)
	e.mu.Unlock()
	for _, v := range ext {
		t = append(t, v(id)...)
	}
	return e.heldTable(id, t)
}

// LogTail is the most of an agent's output agents/N/log shows: its last
// bytes, after a line saying how much came before (the whole file is
// STATE/logs/agent-N.log, root's).
const LogTail = 1 << 20

// tailFile reads the last n bytes of path; a missing file is empty.
func tailFile(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(st.Size()-n, 0)
	buf := make([]byte, st.Size()-off)
	k, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	buf = buf[:k]
	if off > 0 {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:] // start at a whole line
		}
		head := fmt.Sprintf("... %d bytes before; the whole output is %s\n", st.Size()-int64(len(buf)), path)
		buf = append([]byte(head), buf...)
	}
	return buf, nil
}

// Nodes returns the engine's top-level nodes: clone, quotas and agents/.
func (e *Engine) Nodes(ns *fs.NS) []fs.Node {
	root := fs.Owner{}
	ns.Document("/quotas", "quota uid= agents= weight= cpumax= memmax= pids= regionbytes= regions= per uid, then usage uid= agents= group=: Quota")
	ns.Document("/clone", "open allocates a new agent; read gives its number N; writes on that handle are agents/N/ctl's")
	ns.Document("/agents", "one directory per agent, N: its files as its README says")
	return []fs.Node{
		ns.Text("/quotas", 0444, root, func(fs.Caller) ([]byte, error) { return e.Quotas(), nil }),
		&cloneFile{e: e, ns: ns, attr: ns.Ctl("/clone", 0666, root, nil, nil).Attr()},
		ns.Dir("/agents", 0555, root, func() ([]fs.Node, error) {
			var out []fs.Node
			for _, id := range e.IDs() {
				if d, err := e.agentDir(ns, id); err == nil {
					out = append(out, d)
				}
			}
			return out, nil
		}, func(name string) (fs.Node, error) {
			id, err := strconv.Atoi(name)
			if err != nil || strconv.Itoa(id) != name {
				return nil, fs.ErrNotExist
			}
			d, err := e.agentDir(ns, id)
			if err != nil {
				// A missing agent is worth a line in the log (a script
				// naming a wrong number); other failed lookups are not.
				ns.Report("/agents/"+name, err)
			}
			return d, err
		}),
	}
}

// AgentTab is the whole table of agents/N: the agent engine's rows, then
// every other engine's (Extend), in the order they were registered.
func (e *Engine) AgentTab(ns *fs.NS) fs.Dirtab {
	e.mu.Lock()
	ext := e.files
	e.mu.Unlock()
	return append(e.baseTab(ns), ext...)
}

// baseTab is the agent engine's own rows of agents/N. Each file renders
// the agent's state when opened; a handle kept after the agent is removed
// gets ENOENT.
func (e *Engine) baseTab(ns *fs.NS) fs.Dirtab {
	text := func(name string, perm os.FileMode, doc string, render func(id int) ([]byte, error)) fs.Entry {
		return fs.Entry{Name: name, Perm: perm, Owner: "agent", Doc: doc, Make: func(id int, p string, own fs.Owner) fs.Node {
			return ns.Text(p, perm, own, func(fs.Caller) ([]byte, error) { return render(id) })
		}}
	}
	return fs.Dirtab{
		{Name: "ctl", Perm: 0644, Owner: "agent", Doc: "the agent's verbs (reading it lists them); its owner's and root's",
			Make: func(id int, p string, own fs.Owner) fs.Node {
				exec := func(ctx context.Context, c fs.Caller, line string) error {
					if _, err := e.Get(id); err != nil {
						return err
					}
					return e.Table(id).Exec(ctx, c, line)
				}
				return ns.Ctl(p, 0644, own, func() []byte { return e.Table(id).Help() }, exec)
			}},
		text("status", 0444, "agent=N name=... state=... pids=... limits...: Agent.Status", func(id int) ([]byte, error) {
			a, pids, err := e.Snapshot(id)
			if err != nil {
				return nil, err
			}
			return []byte(a.Status(pids)), nil
		}),
		text("stat", 0444, "the latest telemetry sample, one line: telemetry.Sample.Line", func(id int) ([]byte, error) {
			if _, err := e.Get(id); err != nil {
				return nil, err
			}
			s, ok := e.cfg.Telemetry.Latest(id)
			if !ok {
				return nil, nil
			}
			return []byte(s.Line()), nil
		}),
		text("history", 0444, "the kept telemetry samples, oldest first, one line each: telemetry.Sample.Line", func(id int) ([]byte, error) {
			if _, err := e.Get(id); err != nil {
				return nil, err
			}
			var b strings.Builder
			for _, s := range e.cfg.Telemetry.History(id) {
				b.WriteString(s.Line())
			}
			return []byte(b.String()), nil
		}),
		{Name: "events", Perm: 0444, Owner: "agent", Doc: "the agent's events, one line each: bus.Event.Line",
			Make: func(id int, p string, own fs.Owner) fs.Node {
				return ns.StreamOf(p, 0444, own, func(c fs.Caller) (fs.Stream, error) {
					return e.cfg.Bus.SubscribeFor(c.Uid, func(ev bus.Event) bool { return ev.Agent == id }, 256), nil
				})
			}},
		text("limits", 0444, "who changed which limit, oldest first, the last LimitLogLen: time= limit= old= new= by=uid:N|ENGINE [why=]: LimitChange.Line", func(id int) ([]byte, error) {
			a, err := e.Get(id)
			if err != nil {
				return nil, err
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			var b strings.Builder
			for _, ch := range a.LimitLog {
				b.WriteString(ch.Line())
			}
			return []byte(b.String()), nil
		}),
		// Output is the owner's, as a process's own files would be.
		text("log", 0400, "the agent's output, its last LogTail bytes", func(id int) ([]byte, error) {
			if _, err := e.Get(id); err != nil {
				return nil, err
			}
			return tailFile(e.logPath(id), LogTail)
		}),
	}
}

// agentDir is agents/N, built from the table: a walk to one file builds
// that file alone (FUSE and 9P walks are not cached, so this is every
// read's path). It reads only the owner; status lists the pids itself.
func (e *Engine) agentDir(ns *fs.NS, id int) (fs.Node, error) {
	own, err := e.owner(id)
	if err != nil {
		return nil, err
	}
	tab := e.AgentTab(ns)
	return ns.TabDir("/agents/"+strconv.Itoa(id), 0755, own, id, func() fs.Dirtab { return tab }), nil
}

func (e *Engine) owner(id int) (fs.Owner, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.agents[id]
	if !ok {
		return fs.Owner{}, fs.Errorf(syscall.ENOENT, "no such agent %d", id)
	}
	return fs.Owner{Uid: a.Uid, Gid: a.Gid}, nil
}

// cloneFile is Plan 9's clone: each open allocates a new agent owned by the
// caller; reading the handle gives its number, writing it is its ctl.
type cloneFile struct {
	e    *Engine
	ns   *fs.NS
	attr fs.Attr
}

func (f *cloneFile) Attr() fs.Attr { return f.attr }

func (f *cloneFile) Open(ctx context.Context, c fs.Caller, m fs.OpenMode) (fs.Handle, error) {
	a, err := f.e.Alloc(c)
	if err != nil {
		return nil, err
	}
	id := a.ID
	exec := func(ctx context.Context, c fs.Caller, line string) error {
		if _, err := f.e.Get(id); err != nil {
			return fs.Errorf(syscall.ENOENT, "agent %d has gone", id)
		}
		return f.e.Table(id).Exec(ctx, c, line)
	}
	return f.ns.NewCtlHandle(fmt.Sprintf("/agents/%d/ctl", id), c, []byte(strconv.Itoa(id)+"\n"), exec), nil
}
