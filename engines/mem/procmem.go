package mem

import (
	"context"
	"errors"
	"fmt"
	"math"
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

// The access-pattern analyzer for agents' process memory. Each period it
// reads /proc/PID/smaps of every process of an agent, takes each mapping's
// Referenced bytes (the pages touched since the last clear_refs), then
// clears the bits again. The kernel tells which mappings (VMAs) were
// touched and how much of each, not which pages. Below a mapping the
// analyzer learns from paging itself: after MADV_PAGEOUT of a file-backed
// range, /proc/PID/pagemap shows which of its pages were faulted back in
// (vm.FS.Resident), and those ranges are the mapping's learned hot
// ranges. A mapping with much more resident than it touches ("partly
// cold") is paged out whole once under pressure, a probe; the next time
// only what did not come back is.
//
//	agents/N/mem/
//	    wss        wss=BYTES rss=BYTES samples=N, then one "sample time=UNIX bytes=BYTES" a period
//	    pattern    one summary line, then one "mapping ..." line per mapping (see patternLine)
//	    hot        the mappings touched in the last period, most touched first, then learned hot ranges
//	    policy     the ranking of cold ranges in use and each ranking's learned regret
//	    decisions  each paging decision and whether its pages came back
//	    ctl        policy sample pageout
//
// Paging: under memory pressure (PSI some avg10 at or above the threshold,
// or the agent's cgroup usage at 90 % of its limit) the coldest mappings,
// ranked by the agent's policy, are advised with process_madvise:
// MADV_PAGEOUT for file-backed ones (clean file pages leave at once; these
// hosts have no swap, so anonymous pages get MADV_COLD, which only ages
// them) and MADV_WILLNEED for file-backed mappings predicted hot but not
// resident. An agent still near its limit after that has the kernel
// reclaim from its group through cgroup v2's memory.reclaim (Reclaim);
// these hosts run cgroup v1, which has none, so there only the advice
// acts.

// Rankings of cold mappings, the per-agent meaning of the policies.
var rankings = []string{LRU, LFU, Predictive}

type mapKey struct {
	pid        int
	start, end uint64
}

type mapState struct {
	m       vm.Mapping
	pid     int
	samples int
	freq    float64 // decayed share of periods it was touched in
	lastRef int     // period of the last touch, -1 never
	gap     float64 // mean periods between touches
	idle    int     // periods since the last touch
	// hot are the ranges (addresses, sorted) of this mapping that came
	// back after a pageout: learned from pagemap, kept out of later ones.
	hot []vm.Range
}

// partlyCold reports whether a touched, file-backed mapping holds much
// more than it uses: 2 MiB or more resident beyond what it touched in the
// last period, or beyond its learned hot ranges once it has some.
func (st *mapState) partlyCold() bool {
	if !st.m.FileBacked() || st.idle != 0 || st.samples < 3 {
		return false
	}
	used := st.m.Referenced
	if st.hot != nil {
		used = vm.Bytes(st.hot)
	}
	return st.m.Rss >= used+2<<20 && st.m.Rss >= 2*used
}

// decisionKey names a decision across the engine's lock being let go
// (the list may be trimmed meanwhile).
type decisionKey struct {
	t     time.Time
	pid   int
	start uint64
}

func (d *Decision) key() decisionKey { return decisionKey{d.Time, d.Pid, d.Start} }

// Decision is one piece of advice given to the kernel.
type Decision struct {
	Time      time.Time
	Pid       int
	Start     uint64
	Len       uint64
	Path      string
	Advice    int
	Reason    string
	Ranking   string
	RssBefore uint64
	RssAfter  int64 // -1 until the next period
	Outcome   string
	// Ranges are what was advised (the whole mapping, or for a partly
	// cold one the parts outside its learned hot ranges); Back is how
	// many of their bytes are resident again, from pagemap (-1 before the
	// first look; pageouts only).
	Ranges []vm.Range
	Back   int64
	stayed []vm.Range // advised pages still resident right after (shared ones the kernel keeps)
	at     int
}

type procMem struct {
	id       int
	policy   string
	n        int
	maps     map[mapKey]*mapState
	seen     map[int]bool // pids sampled once: their first Referenced counts since exec
	hist     []WSSPoint
	wss, rss int64
	locality string
	prevHot  map[mapKey]bool
	// regret per ranking: decayed count of its top cold picks that were
	// touched in the next period (learned without acting on them).
	regret    map[string]float64
	picks     map[string][]mapKey
	decisions []Decision
	savedAt   time.Time // last write of its state file (procstate.go)
}

func newProcMem(id int) *procMem {
	return &procMem{id: id, policy: Adaptive, maps: map[mapKey]*mapState{}, seen: map[int]bool{},
		prevHot: map[mapKey]bool{}, regret: map[string]float64{}, picks: map[string][]mapKey{}, locality: Random}
}

func (e *Engine) procMem(id int) *procMem {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.procs[id]
	if !ok {
		p = newProcMem(id)
		e.procs[id] = p
	}
	return p
}

// sampleAgents samples every live agent and pages under pressure.
func (e *Engine) sampleAgents(now time.Time) {
	psi, err := e.cfg.Proc.MemPressure()
	e.mu.Lock()
	e.lastPSI, e.psiErr = psi, err
	e.mu.Unlock()
	if e.cfg.Agents == nil {
		return
	}
	live := map[int]bool{}
	for _, id := range e.cfg.Agents.IDs() {
		a, err := e.cfg.Agents.Agent(id)
		if err != nil || !a.Alive || len(a.Pids) == 0 {
			continue
		}
		live[id] = true
		e.SampleAgent(id, a.Pids, now)
		if why := e.pressured(a); why != "" {
			e.Page(id, why)
			if why == "limit" {
				e.Reclaim(id, a.MemDir, why)
			}
		}
	}
	e.mu.Lock()
	var ended []int
	for id := range e.procs {
		if !live[id] {
			delete(e.procs, id)
			ended = append(ended, id)
		}
	}
	e.mu.Unlock()
	for _, id := range ended {
		e.forgetProc(id)
	}
}

// pressured says why agent a is under memory pressure, or "".
func (e *Engine) pressured(a AgentInfo) string {
	e.mu.Lock()
	on, th, lf, psi, psiErr := e.paging, e.threshold, e.limitFrac, e.lastPSI, e.psiErr
	e.mu.Unlock()
	if !on {
		return ""
	}
	if psiErr == nil && psi.Avg10 >= th {
		return "psi"
	}
	if a.MemDir != "" {
		if u, l, err := vm.CgroupMemory(a.MemDir); err == nil && l > 0 && float64(u) >= lf*float64(l) {
			return "limit"
		}
	}
	return ""
}

// SampleAgent reads and clears the referenced bits of pids for agent id.
func (e *Engine) SampleAgent(id int, pids []int, now time.Time) {
	pm := e.procMem(id)
	// Read (and clear) the kernel's bits first, without the engine's
	// lock, so fabric reads do not wait on smaps of many processes.
	type read struct {
		pid  int
		maps []vm.Mapping
	}
	var reads []read
	for _, pid := range pids {
		maps, err := e.cfg.Proc.Smaps(pid)
		if err != nil {
			continue // the process ended between listing and reading
		}
		e.cfg.Proc.ClearRefs(pid)
		reads = append(reads, read{pid, maps})
	}
	// Likewise pagemap, for the pageouts still waiting for an outcome:
	// which of their pages are back.
	type pending struct {
		key            decisionKey
		ranges, stayed []vm.Range
	}
	var pend []pending
	e.mu.Lock()
	for _, d := range pm.decisions {
		if d.Outcome == "pending" && d.Advice == vm.PageOut {
			pend = append(pend, pending{d.key(), d.Ranges, d.stayed})
		}
	}
	e.mu.Unlock()
	backs := map[decisionKey][]vm.Range{}
	for _, p := range pend {
		back := []vm.Range{}
		for _, r := range p.ranges {
			rs, err := e.cfg.Proc.Resident(p.key.pid, r.Start, r.Len)
			if err != nil {
				back = nil // the process ended: the smaps pass says so
				break
			}
			back = append(back, vm.Minus(rs, p.stayed)...)
		}
		if back != nil {
			backs[p.key] = back
		}
	}
	learned := false // a decision resolved (perhaps teaching a hot range): saved at once
	defer func() { e.saveProc(id, learned) }()
	e.mu.Lock()
	defer e.mu.Unlock()
	pm.n++
	// Only the pids read now stay seen: the set (and the saved state)
	// must not grow with every process the agent ever ran.
	seen := map[int]bool{}
	cur := map[mapKey]*mapState{}
	var wss, rss int64
	hot := map[mapKey]bool{}
	for _, rd := range reads {
		pid, maps := rd.pid, rd.maps
		first := !pm.seen[pid]
		seen[pid] = true
		for _, m := range maps {
			k := mapKey{pid, m.Start, m.End}
			st, ok := pm.maps[k]
			if !ok {
				st = &mapState{pid: pid, lastRef: -1}
			}
			st.m = m
			st.samples++
			rss += int64(m.Rss)
			touched := !first && m.Referenced > 0
			if first {
				// Referenced counts since exec here, not since a clear.
				st.m.Referenced = 0
			}
			x := 0.0
			if touched {
				x = 1
				wss += int64(m.Referenced)
				hot[k] = true
				if st.lastRef >= 0 {
					g := float64(pm.n - st.lastRef)
					if st.gap == 0 {
						st.gap = g
					} else {
						st.gap = 0.7*st.gap + 0.3*g
					}
				}
				st.lastRef = pm.n
				st.idle = 0
			} else {
				st.idle++
				if st.idle >= 2 {
					st.hot = nil // wholly cold now: nothing of it to keep
				}
			}
			st.freq = 0.7*st.freq + 0.3*x
			cur[k] = st
		}
	}
	// Learn which ranking picks well: its last picks should stay untouched.
	for _, r := range rankings {
		miss := 0.0
		for _, k := range pm.picks[r] {
			if hot[k] {
				miss++
			}
		}
		pm.regret[r] = 0.8*pm.regret[r] + miss
	}
	// Outcomes of earlier advice.
	for i := range pm.decisions {
		d := &pm.decisions[i]
		if d.Outcome != "pending" || d.Advice == vm.WillNeed || d.Advice == vm.Reclaim {
			continue
		}
		k := mapKey{d.Pid, d.Start, d.Start + d.Len}
		st := cur[k]
		if st != nil && d.RssAfter < 0 {
			d.RssAfter = int64(st.m.Rss)
		}
		back, read := backs[d.key()]
		if st != nil && read {
			d.Back = int64(vm.Bytes(back))
		}
		switch {
		case st == nil:
			d.Outcome = "unmapped"
		case hot[k]:
			d.Outcome = "came_back"
			// What came back is what the process uses of the mapping.
			st.hot = vm.Union(st.hot, back)
		case pm.n-d.at >= 3:
			d.Outcome = "stayed_out"
		}
		if d.Outcome != "pending" {
			learned = true
		}
	}
	pm.seen = seen
	pm.locality = classify(pm.prevHot, hot)
	pm.prevHot = hot
	pm.maps = cur
	pm.wss, pm.rss = wss, rss
	if pm.n > 1 {
		pm.hist = append(pm.hist, WSSPoint{now, wss})
		if len(pm.hist) > 120 {
			pm.hist = pm.hist[1:]
		}
	}
	for _, r := range rankings {
		pm.picks[r] = topKeys(pm.cold(r), 4)
	}
}

// classify names the locality of a period's touched mappings against the
// last period's: mostly the same ones is temporal, mostly new ones next to
// the old ones (same process, within 2 MiB) is spatial, else random.
func classify(prev, cur map[mapKey]bool) string {
	if len(cur) == 0 || len(prev) == 0 {
		return Random
	}
	same := 0
	var fresh []mapKey
	for k := range cur {
		if prev[k] {
			same++
		} else {
			fresh = append(fresh, k)
		}
	}
	union := len(prev) + len(cur) - same
	if float64(same)/float64(union) >= 0.5 {
		return Temporal
	}
	near := 0
	for _, f := range fresh {
		for p := range prev {
			if p.pid == f.pid && (absU(f.start, p.end) <= 2<<20 || absU(p.start, f.end) <= 2<<20) {
				near++
				break
			}
		}
	}
	if len(fresh) > 0 && 2*near >= len(fresh) {
		return Spatial
	}
	return Random
}

func absU(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}

// ranking is the agent's ranking in use: Adaptive takes the one with the
// least regret so far (LRU on ties).
func (pm *procMem) ranking() string {
	if pm.policy != Adaptive {
		return pm.policy
	}
	best := LRU
	for _, r := range rankings {
		if pm.regret[r] < pm.regret[best] {
			best = r
		}
	}
	return best
}

// cold lists the cold mappings (resident, untouched for two periods or
// more, watched for three), coldest first by ranking r.
func (pm *procMem) cold(r string) []*mapState {
	var out []*mapState
	for _, st := range pm.maps {
		if st.m.Rss > 0 && st.idle >= 2 && st.samples >= 3 {
			out = append(out, st)
		}
	}
	score := func(st *mapState) float64 {
		switch r {
		case LFU:
			return -st.freq
		case Predictive:
			if st.lastRef < 0 {
				return math.Inf(1)
			}
			next := float64(st.lastRef) + math.Max(st.gap, 1)
			if next < float64(pm.n) {
				next = float64(pm.n) + 2*(float64(pm.n)-next)
			}
			return next
		}
		return float64(st.idle)
	}
	sort.Slice(out, func(i, j int) bool {
		si, sj := score(out[i]), score(out[j])
		if si != sj {
			return si > sj
		}
		if out[i].m.Rss != out[j].m.Rss {
			return out[i].m.Rss > out[j].m.Rss
		}
		return out[i].m.Start < out[j].m.Start
	})
	return out
}

func topKeys(sts []*mapState, n int) []mapKey {
	var out []mapKey
	for i, st := range sts {
		if i == n {
			break
		}
		out = append(out, mapKey{st.pid, st.m.Start, st.m.End})
	}
	return out
}

// Page advises the kernel on agent id's cold mappings (up to 8) and its
// predicted-hot, non-resident file mappings, recording each decision.
func (e *Engine) Page(id int, reason string) (int, error) {
	pm := e.procMem(id)
	e.mu.Lock()
	rank := pm.ranking()
	cold := pm.cold(rank)
	var hot, partly []*mapState
	for _, st := range pm.maps {
		if st.m.FileBacked() && st.freq >= 0.5 && st.m.Rss < st.m.Size/2 {
			hot = append(hot, st)
		}
		if st.partlyCold() {
			partly = append(partly, st)
		}
	}
	// Most resident beyond use first.
	sort.Slice(partly, func(i, j int) bool {
		a, b := partly[i].m.Rss-min(partly[i].m.Rss, vm.Bytes(partly[i].hot)), partly[j].m.Rss-min(partly[j].m.Rss, vm.Bytes(partly[j].hot))
		if a != b {
			return a > b
		}
		return partly[i].m.Start < partly[j].m.Start
	})
	type job struct {
		st     *mapState
		ranges []vm.Range
	}
	var partJobs []job
	for _, st := range partly {
		rs := []vm.Range{{Start: st.m.Start, Len: st.m.Len()}}
		if st.hot != nil {
			rs = vm.Subtract(st.m.Start, st.m.Len(), st.hot)
		}
		if len(rs) > 0 {
			partJobs = append(partJobs, job{st, rs})
		}
	}
	hotRanges := map[*mapState][]vm.Range{}
	for _, st := range hot {
		if st.hot != nil {
			hotRanges[st] = append([]vm.Range(nil), st.hot...)
		}
	}
	n := pm.n
	e.mu.Unlock()
	var ds []Decision
	var firstErr error
	advise := func(st *mapState, adv int, ranges []vm.Range) {
		if ranges == nil {
			ranges = []vm.Range{{Start: st.m.Start, Len: st.m.Len()}}
		}
		d := Decision{Time: time.Now(), Pid: st.pid, Start: st.m.Start, Len: st.m.Len(), Path: st.m.Path,
			Advice: adv, Reason: reason, Ranking: rank, RssBefore: st.m.Rss, RssAfter: -1, Outcome: "pending",
			Ranges: ranges, Back: -1, at: n}
		if _, err := vm.Advise(st.pid, adv, ranges); err != nil {
			d.Outcome = "error"
			if firstErr == nil {
				firstErr = err
			}
		} else if adv == vm.PageOut {
			// Pages still there now never left (the kernel keeps pages
			// other processes map too): they must not read as came back.
			for _, r := range ranges {
				rs, err := e.cfg.Proc.Resident(st.pid, r.Start, r.Len)
				if err != nil {
					break
				}
				d.stayed = append(d.stayed, rs...)
			}
		}
		ds = append(ds, d)
		// No address (and no path) in the event: events and
		// agents/N/events are readable by every user, and a mapping's
		// address is the agent owner's alone (agents/N/mem/decisions
		// has it, mode 0400).
		e.publishFor(id, "advise", bus.F("pid", st.pid),
			bus.F("length", st.m.Len()), bus.F("advised", vm.Bytes(ranges)), bus.F("advice", vm.AdviceName(adv)),
			bus.F("reason", reason), bus.F("outcome", d.Outcome))
	}
	// Up to 8 of the coldest whole mappings, and up to 4 partly cold ones
	// (their learned hot ranges kept), the most resident beyond use first:
	// separate budgets, since a partly cold mapping usually holds more
	// than many small cold ones.
	for i, st := range cold {
		if i == 8 {
			break
		}
		if st.m.FileBacked() {
			advise(st, vm.PageOut, nil)
		} else {
			advise(st, vm.Cold, nil)
		}
	}
	for i, j := range partJobs {
		if i == 4 {
			break
		}
		advise(j.st, vm.PageOut, j.ranges)
	}
	for _, st := range hot {
		// A mapping whose hot ranges were learned gets them back, not
		// the whole file: the rest was paged out for not being used.
		advise(st, vm.WillNeed, hotRanges[st])
	}
	e.mu.Lock()
	pm.decisions = append(pm.decisions, ds...)
	if len(pm.decisions) > 256 {
		pm.decisions = pm.decisions[len(pm.decisions)-256:]
	}
	e.mu.Unlock()
	if len(ds) > 0 {
		e.saveProc(id, true)
	}
	return len(ds), firstErr
}

// Reclaim is the cgroup v2 lever: after the advice, an agent still near
// its limit has the kernel reclaim from its memory group (memory.reclaim)
// down to ten points under the pressure line (80 % of the limit by
// default). The decision records usage before and after. On cgroup v1,
// which has no memory.reclaim, nothing is written or recorded.
func (e *Engine) Reclaim(id int, dir, reason string) error {
	u, l, err := vm.CgroupMemory(dir)
	if err != nil || l <= 0 {
		return err
	}
	e.mu.Lock()
	goal := int64((e.limitFrac - 0.1) * float64(l))
	pm := e.procs[id]
	n := 0
	if pm != nil {
		n = pm.n
	}
	e.mu.Unlock()
	if u <= goal {
		return nil
	}
	d := Decision{Time: time.Now(), Len: uint64(u - goal), Path: dir, Advice: vm.Reclaim, Reason: reason,
		RssBefore: uint64(u), RssAfter: -1, Back: -1, Outcome: "reclaimed", at: n}
	err = vm.ReclaimCgroup(dir, u-goal)
	if errors.Is(err, vm.ErrNoReclaim) {
		return nil
	}
	if err != nil {
		d.Outcome = "error" // EAGAIN: the kernel got back less than asked
	}
	if after, _, aerr := vm.CgroupMemory(dir); aerr == nil {
		d.RssAfter = after
	}
	e.publishFor(id, "reclaim", bus.F("bytes", u-goal), bus.F("reason", reason), bus.F("outcome", d.Outcome))
	e.mu.Lock()
	if pm := e.procs[id]; pm != nil {
		pm.decisions = append(pm.decisions, d)
		if len(pm.decisions) > 256 {
			pm.decisions = pm.decisions[len(pm.decisions)-256:]
		}
	}
	e.mu.Unlock()
	e.saveProc(id, true)
	return err
}

// ---- per-agent files and verbs ----

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
