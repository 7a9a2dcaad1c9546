package mem

import (
	"context"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"

	"aiosfs/ctl"
	"aiosfs/engines/bus"
	"aiosfs/fs"
	"aiosfs/hal/vm"
)

// agents/N/mem/: its table row, files, verbs and renderers.

// AgentTab is the memory manager's row of agents/N: the mem/ directory.
func (e *Engine) AgentTab() fs.Dirtab {
	return fs.Dirtab{{Name: "mem", Perm: os.ModeDir | 0555, Owner: "mem",
		Doc:  "ctl decisions hot pattern policy wss: the agent's memory (AgentFiles)",
		Make: func(id int, p string, own fs.Owner) fs.Node { return e.AgentFiles(id, path.Dir(p), own)[0] }}}
}

// AgentFiles is agents/N/mem/. The files that show the agent's memory
// layout (pattern, hot, decisions: mapping addresses and file paths;
// wss: its working set over time) are mode 0400 and owned by the agent's
// uid, as the kernel keeps /proc/PID/maps to the process's owner (and
// root): they defeat ASLR and tell which files a process uses. policy
// (a ranking and numbers) stays 0444; ctl is 0600, the owner's and
// root's, and its verbs check the caller again (EPERM).
func (e *Engine) AgentFiles(id int, dir string, own fs.Owner) []fs.Node {
	ns := e.cfg.NS
	d := path.Join(dir, "mem")
	text := func(name string, mode os.FileMode, f func(pm *procMem) string) fs.Node {
		return ns.Text(path.Join(d, name), mode, own, func(fs.Caller) ([]byte, error) {
			pm := e.procMem(id)
			e.mu.Lock()
			defer e.mu.Unlock()
			pm.settle()
			return []byte(f(pm)), nil
		})
	}
	verbs := e.agentVerbs(id)
	return []fs.Node{ns.StaticDir(d, 0555, own,
		ns.Ctl(path.Join(d, "ctl"), 0600, own, verbs.Help, verbs.Exec),
		text("decisions", 0400, decisionsText),
		text("hot", 0400, hotText),
		text("pattern", 0400, patternLine),
		text("policy", 0444, func(pm *procMem) string {
			return fmt.Sprintf("policy=%s ranking=%s regret_lru=%s regret_lfu=%s regret_predictive=%s\n",
				pm.policy, pm.ranking(), ff(pm.regret[LRU]), ff(pm.regret[LFU]), ff(pm.regret[Predictive]))
		}),
		text("wss", 0400, func(pm *procMem) string {
			var b strings.Builder
			fmt.Fprintf(&b, "wss=%d rss=%d samples=%d\n", pm.wss, pm.rss, pm.n)
			for _, p := range pm.hist {
				fmt.Fprintf(&b, "sample time=%.3f bytes=%d\n", float64(p.Time.UnixMilli())/1000, p.Bytes)
			}
			return b.String()
		}),
	)}
}

// mayAct refuses (EPERM) a caller who is neither root nor agent id's
// owner.
func (e *Engine) mayAct(c fs.Caller, id int) error {
	if c.Uid == 0 {
		return nil
	}
	if e.cfg.Agents == nil {
		return fs.Errorf(syscall.EPERM, "agent %d is not yours", id)
	}
	a, err := e.cfg.Agents.Agent(id)
	if err != nil {
		return err
	}
	if a.Uid != c.Uid {
		return fs.Errorf(syscall.EPERM, "agent %d is not yours", id)
	}
	return nil
}

// agentVerbs is agents/N/mem/ctl: every verb is the agent's owner's and
// root's (mayAct).
func (e *Engine) agentVerbs(id int) ctl.Table {
	return ctl.Table{
		{Name: "policy", Args: "lru|lfu|predictive|adaptive", Min: 1, Max: 1, Doc: "how cold ranges are ranked for paging",
			Run: func(_ context.Context, c fs.Caller, a []string) error {
				if !validCtlPolicy(a[0]) {
					return ctl.Errorf("bad policy %q (want lru, lfu, predictive or adaptive)", a[0])
				}
				if err := e.mayAct(c, id); err != nil {
					return err
				}
				p := a[0]
				return e.commitSettings(func(s *savedSettings) error {
					if p == Adaptive {
						delete(s.Policies, id)
					} else {
						s.Policies[id] = p
					}
					return nil
				}, func() {
					pm, ok := e.procs[id]
					if !ok {
						pm = newProcMem(id)
						e.procs[id] = pm
					}
					pm.policy = p
				})
			}},
		{Name: "sample", Min: 0, Max: 0, Doc: "sample the working set now (and clear the referenced bits)",
			Run: func(_ context.Context, c fs.Caller, _ []string) error {
				if err := e.mayAct(c, id); err != nil {
					return err
				}
				pids, err := e.pids(id)
				if err != nil {
					return err
				}
				e.SampleAgent(id, pids, time.Now())
				return nil
			}},
		{Name: "pageout", Min: 0, Max: 0, Doc: "advise the kernel on cold and predicted-hot ranges now",
			Run: func(_ context.Context, c fs.Caller, _ []string) error {
				if err := e.mayAct(c, id); err != nil {
					return err
				}
				if _, err := e.pids(id); err != nil {
					return err
				}
				_, err := e.Page(id, "manual")
				return err
			}},
	}
}

func (e *Engine) pids(id int) ([]int, error) {
	if e.cfg.Agents == nil {
		return nil, fs.Errorf(syscall.ENOENT, "no such agent %d", id)
	}
	a, err := e.cfg.Agents.Agent(id)
	if err != nil {
		return nil, err
	}
	if !a.Alive || len(a.Pids) == 0 {
		return nil, fs.Errorf(syscall.EBUSY, "agent %d is not running", id)
	}
	return a.Pids, nil
}

func kind(m vm.Mapping) string {
	if m.FileBacked() {
		return "file"
	}
	return "anon"
}

func pathOrDash(p string) string {
	if p == "" {
		return "-"
	}
	return bus.Quote(p)
}

func (pm *procMem) sorted() []*mapState {
	out := make([]*mapState, 0, len(pm.maps))
	for _, st := range pm.maps {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].pid != out[j].pid {
			return out[i].pid < out[j].pid
		}
		return out[i].m.Start < out[j].m.Start
	})
	return out
}

// patternLine is agents/N/mem/pattern:
//
//	samples=N wss=BYTES rss=BYTES locality=temporal|spatial|random mappings=N hot=N cold=N next_pid=N next_start=ADDR next_length=BYTES policy=P ranking=R
//	mapping pid=N start=ADDR length=BYTES rss=BYTES referenced=BYTES freq=F idle=PERIODS kind=file|anon path=P
//
// Addresses are hex (0x...), as in /proc/PID/maps. next_* is the mapping
// predicted hot next: the most often touched one (decayed frequency).
func patternLine(pm *procMem) string {
	var b strings.Builder
	sts := pm.sorted()
	var next *mapState
	hot := 0
	for _, st := range sts {
		if st.idle == 0 && st.lastRef >= 0 {
			hot++
		}
		if st.freq > 0 && (next == nil || st.freq > next.freq || (st.freq == next.freq && st.m.Referenced > next.m.Referenced)) {
			next = st
		}
	}
	np, ns, nl := "-", "-", "-"
	if next != nil {
		np, ns, nl = itoa(next.pid), fmt.Sprintf("%#x", next.m.Start), fmt.Sprint(next.m.Len())
	}
	fmt.Fprintf(&b, "samples=%d wss=%d rss=%d locality=%s mappings=%d hot=%d cold=%d next_pid=%s next_start=%s next_length=%s policy=%s ranking=%s\n",
		pm.n, pm.wss, pm.rss, pm.locality, len(sts), hot, len(pm.cold(pm.ranking())), np, ns, nl, pm.policy, pm.ranking())
	for _, st := range sts {
		fmt.Fprintf(&b, "mapping pid=%d start=%#x length=%d rss=%d referenced=%d freq=%s idle=%d kind=%s path=%s\n",
			st.pid, st.m.Start, st.m.Len(), st.m.Rss, st.m.Referenced, ff(st.freq), st.idle, kind(st.m), pathOrDash(st.m.Path))
	}
	return b.String()
}

// hotText is agents/N/mem/hot: the mappings touched in the last period,
// most bytes first, then the hot ranges learned below a mapping (the
// parts that came back after a pageout, from pagemap), by address:
//
//	pid=N start=ADDR length=BYTES referenced=BYTES freq=F kind=file|anon path=P
//	range pid=N start=ADDR length=BYTES mapping=ADDR source=refault path=P
func hotText(pm *procMem) string {
	var hs []*mapState
	for _, st := range pm.maps {
		if st.m.Referenced > 0 && st.idle == 0 {
			hs = append(hs, st)
		}
	}
	sort.Slice(hs, func(i, j int) bool {
		if hs[i].m.Referenced != hs[j].m.Referenced {
			return hs[i].m.Referenced > hs[j].m.Referenced
		}
		return hs[i].m.Start < hs[j].m.Start
	})
	var b strings.Builder
	for _, st := range hs {
		fmt.Fprintf(&b, "pid=%d start=%#x length=%d referenced=%d freq=%s kind=%s path=%s\n",
			st.pid, st.m.Start, st.m.Len(), st.m.Referenced, ff(st.freq), kind(st.m), pathOrDash(st.m.Path))
	}
	for _, st := range pm.sorted() {
		for _, r := range st.hot {
			fmt.Fprintf(&b, "range pid=%d start=%#x length=%d mapping=%#x source=refault path=%s\n",
				st.pid, r.Start, r.Len, st.m.Start, pathOrDash(st.m.Path))
		}
	}
	return b.String()
}

// decisionsText is agents/N/mem/decisions, oldest first:
//
//	time=UNIX pid=N start=ADDR length=BYTES advice=pageout|cold|willneed reason=psi|limit|manual ranking=R rss_before=BYTES rss_after=BYTES advised=BYTES back=BYTES outcome=pending|came_back|stayed_out|unmapped|error path=P
//
// start and length are the mapping's; advised the bytes advised (less
// than length when a partly cold mapping kept its learned hot ranges);
// rss_after is the mapping's Rss one period later ("-" until then); back
// the advised bytes resident again at the last look, from pagemap ("-"
// before it, and for advice other than pageout); came_back means the
// mapping was touched again within three periods. A reclaim decision
// (cgroup v2's memory.reclaim) has pid=0 start=0x0, length the bytes
// asked of the kernel, rss_before/rss_after the group's usage, outcome
// reclaimed or error (the kernel got back less), path the group.
func decisionsText(pm *procMem) string {
	var b strings.Builder
	for _, d := range pm.decisions {
		ra := "-"
		if d.RssAfter >= 0 {
			ra = fmt.Sprint(d.RssAfter)
		}
		advised := vm.Bytes(d.Ranges)
		if d.Advice == vm.Reclaim {
			advised = d.Len
		}
		back := "-"
		if d.Back >= 0 {
			back = fmt.Sprint(d.Back)
		}
		fmt.Fprintf(&b, "time=%.3f pid=%d start=%#x length=%d advice=%s reason=%s ranking=%s rss_before=%d rss_after=%s advised=%d back=%s outcome=%s path=%s\n",
			float64(d.Time.UnixMilli())/1000, d.Pid, d.Start, d.Len, vm.AdviceName(d.Advice), d.Reason, d.Ranking, d.RssBefore, ra,
			advised, back, d.Outcome, pathOrDash(d.Path))
	}
	return b.String()
}
