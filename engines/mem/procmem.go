package mem

import (
	"math"
	"slices"
	"sort"
	"time"

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
	// The quiet test (see quiet): the pids of the last period, the
	// agent's telemetry CPU seconds then (telKnown: it had a sample),
	// and how many periods in a row were quiet.
	pids     []int
	telCPU   float64
	telAt    time.Time
	telKnown bool
	quietRun int
	// lag counts the quiet periods not yet applied to the mappings
	// (Tuning.Settle); settle applies them. Every reader of maps or
	// picks settles first.
	lag int
	// ticks counts the engine's ticks since the agent's last period
	// (Tuning.Every).
	ticks int
	// every is the length in ticks of its last period (Tuning.Every,
	// or fewer for a period taken early).
	every int
	// ranSince: a period since the last save of its state file was
	// not quiet (Tuning.HoldSave).
	ranSince bool
}

// settle applies the lag quiet periods to the mappings, as sample's
// update would have applied each of them: nothing referenced, so each
// mapping gains a sample and an idle period, its freq decays by the same
// expression, a mapping idle for two periods loses its hot ranges, and
// the rankings' picks are made again from the result (the quiet periods'
// own picks met no touched mapping, so the regret never saw them).
// Called with e.mu held.
func (pm *procMem) settle() {
	if pm.lag == 0 {
		return
	}
	const x = 0.0 // a quiet period's touch, as in sample
	for _, st := range pm.maps {
		st.m.Referenced = 0
		for range pm.lag {
			st.samples++
			st.idle++
			if st.idle >= 2 {
				st.hot = nil
			}
			st.freq = 0.7*st.freq + 0.3*x
		}
	}
	pm.lag = 0
	for _, r := range rankings {
		pm.picks[r] = pm.coldTop(r, 4)
	}
}

// waiting says whether a pageout or cold advice waits for its outcome,
// which needs the next periods' Rss and pagemap. Called with e.mu held.
func (pm *procMem) waiting() bool {
	for _, d := range pm.decisions {
		if d.Outcome == "pending" && d.Advice != vm.WillNeed && d.Advice != vm.Reclaim {
			return true
		}
	}
	return false
}

// maxQuiet is the most ticks in a row an agent's smaps is not read
// because it was quiet: figures that change without the agent running
// (Rss the kernel reclaims, a shared file page another process touches)
// are at most this many ticks old (10 s at the default 2 s period),
// as telemetry's own held samples are (Tuning.Hold). With periods of
// several ticks (Tuning.Every) that is fewer quiet periods in a row.
const maxQuiet = 5

// quiet says whether this period of agent id can be taken from the last
// one without reading smaps or clearing the bits: its telemetry sample is
// newer than the one at the last period here and shows no CPU and the
// same cumulative CPU seconds, so none of its processes ran in between,
// and a process that did not run referenced nothing (what it touches
// after the sample is not lost: the bits are not cleared while quiet, so
// the next period that reads smaps counts it); it has the same pids; no pageout waits for its
// outcome (which needs the new Rss and pagemap); and its smaps was read
// within maxQuiet ticks, this period included. Called with e.mu held.
func (pm *procMem) quiet(pids []int, u *Sampled) bool {
	if u == nil || !pm.telKnown || pm.n == 0 || u.CPU != 0 || u.CPUSeconds != pm.telCPU || !u.Time.After(pm.telAt) ||
		(pm.quietRun+1)*max(pm.every, 1) > maxQuiet || !slices.Equal(pids, pm.pids) {
		return false
	}
	return !pm.waiting()
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
		why := e.pressured(a)
		e.sample(id, a.Pids, now, a.Sampled, why != "")
		if why != "" {
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
	// The usage is telemetry's, the limit the agent's record's; the
	// cgroup's files are read only for what the daemon did not give.
	u, l := int64(-1), a.MemLimit
	if a.Sampled != nil && a.Sampled.Mem > 0 {
		u = a.Sampled.Mem
	}
	if l == 0 || (u < 0 && l > 0) {
		if a.MemDir == "" {
			return ""
		}
		fu, fl, err := vm.CgroupMemory(a.MemDir)
		if err != nil {
			return ""
		}
		if u < 0 {
			u = fu
		}
		if l == 0 {
			l = fl
		}
	}
	if l > 0 && float64(u) >= lf*float64(l) {
		return "limit"
	}
	return ""
}

// SampleAgent reads and clears the referenced bits of pids for agent id.
func (e *Engine) SampleAgent(id int, pids []int, now time.Time) {
	e.sample(id, pids, now, nil, true)
}

// sample is SampleAgent with the agent's telemetry sample u (nil: none):
// a quiet period (procMem.quiet) is the last one again with nothing
// referenced, without reading smaps or clearing the bits. force says
// whether this tick must be a period (pressure, an operator's sample)
// whatever Tuning.Every says.
func (e *Engine) sample(id int, pids []int, now time.Time, u *Sampled, force bool) {
	pm := e.procMem(id)
	// One sample at a time: the smaps reader and its buffers are the
	// engine's.
	e.readMu.Lock()
	defer e.readMu.Unlock()
	var reads []read
	e.mu.Lock()
	tun := e.tun
	if tun.Every > 1 && !force && pm.n > 0 && pm.ticks+1 < tun.Every && !pm.waiting() {
		// Not a period of this agent's (Tuning.Every): its references
		// accumulate in the kernel's bits until the next one.
		pm.ticks++
		e.mu.Unlock()
		return
	}
	// The period's length in ticks: Every, or fewer when pressure or an
	// operator asked for it early. The cold thresholds and maxQuiet are
	// in ticks through it.
	pm.every = pm.ticks + 1
	pm.ticks = 0
	quiet := pm.quiet(pids, u)
	if quiet && tun.Settle {
		// The period's own figures now, its mappings' when next read
		// (settle): exactly what the update below does with reads of
		// the same mappings with nothing referenced.
		if pm.telKnown = u != nil; u != nil {
			pm.telCPU, pm.telAt = u.CPUSeconds, u.Time
		}
		pm.pids = append(pm.pids[:0], pids...)
		pm.quietRun++
		e.quietPeriods++
		pm.n++
		pm.lag++
		for _, r := range rankings {
			const miss = 0.0 // nothing touched: no pick of the last period's was
			pm.regret[r] = 0.8*pm.regret[r] + miss
		}
		pm.locality = Random // classify of an empty period
		clear(pm.prevHot)
		pm.wss = 0
		if pm.n > 1 {
			pm.hist = append(pm.hist, WSSPoint{now, 0})
			if len(pm.hist) > 120 {
				pm.hist = pm.hist[1:]
			}
		}
		e.mu.Unlock()
		e.saveProc(id, false)
		return
	}
	pm.settle()
	if quiet {
		byPid := map[int][]vm.Mapping{}
		for pid := range pm.seen {
			byPid[pid] = nil
		}
		for _, st := range pm.maps {
			m := st.m
			m.Referenced = 0
			byPid[st.pid] = append(byPid[st.pid], m)
		}
		for pid, maps := range byPid {
			reads = append(reads, read{pid, maps})
		}
	}
	if u != nil {
		pm.telCPU, pm.telAt, pm.telKnown = u.CPUSeconds, u.Time, true
	} else {
		pm.telKnown = false
	}
	pm.pids = append(pm.pids[:0], pids...)
	if quiet {
		pm.quietRun++
		e.quietPeriods++
	} else {
		pm.quietRun = 0
		pm.ranSince = true
	}
	e.mu.Unlock()
	// Read (and clear) the kernel's bits first, without the engine's
	// lock, so fabric reads do not wait on smaps of many processes. The
	// mappings are copied out of the reader's slices (st.m) under the
	// lock below, so the slices are the engine's again next time.
	for i := 0; !quiet && i < len(pids); i++ {
		pid := pids[i]
		if len(e.scratch) <= len(reads) {
			e.scratch = append(e.scratch, nil)
		}
		maps, err := e.smaps.Smaps(pid, e.scratch[len(reads)])
		e.scratch[len(reads)] = maps
		if err != nil {
			continue // the process ended between listing and reading
		}
		if !tun.SkipClear || referenced(maps) {
			e.cfg.Proc.ClearRefs(pid)
		}
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
	e.mu.Lock()
	// A decision resolved (perhaps teaching a hot range): saved at once.
	learned := pm.update(reads, backs, now)
	e.mu.Unlock()
	e.saveProc(id, learned)
}

// read is one process's mappings as a period read them.
type read struct {
	pid  int
	maps []vm.Mapping
}

// update is one period of the analyzer: reads are the agent's processes'
// mappings with what each referenced since the last period, backs the
// pages of waiting pageouts found resident again. It reports whether a
// decision was resolved. Called with e.mu held.
func (pm *procMem) update(reads []read, backs map[decisionKey][]vm.Range, now time.Time) (learned bool) {
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
		pm.picks[r] = pm.coldTop(r, 4)
	}
	return learned
}

// referenced says whether any page of maps was referenced: if none was,
// clear_refs would clear nothing (Tuning.SkipClear).
func referenced(maps []vm.Mapping) bool {
	for _, m := range maps {
		if m.Referenced > 0 {
			return true
		}
	}
	return false
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
		if pm.isCold(st) {
			out = append(out, st)
		}
	}
	score := pm.coldScore(r)
	sort.Slice(out, func(i, j int) bool { return colder(out[i], out[j], score(out[i]), score(out[j])) })
	return out
}

// isCold: resident, untouched for two periods, watched for three. With
// periods of every ticks (Tuning.Every) the same in ticks: untouched for
// at least two ticks' worth of periods, watched for three ticks' worth.
func (pm *procMem) isCold(st *mapState) bool {
	k := max(pm.every, 1)
	return st.m.Rss > 0 && st.idle >= (2+k-1)/k && st.samples >= (3+k-1)/k
}

// coldScore is ranking r's score of a mapping: the higher, the colder.
func (pm *procMem) coldScore(r string) func(st *mapState) float64 {
	return func(st *mapState) float64 {
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
}

// colder orders cold mappings: higher score, then more resident, then
// lower address, then lower pid (a total order, so that the coldest n
// are the same however they are found).
func colder(a, b *mapState, sa, sb float64) bool {
	if sa != sb {
		return sa > sb
	}
	if a.m.Rss != b.m.Rss {
		return a.m.Rss > b.m.Rss
	}
	if a.m.Start != b.m.Start {
		return a.m.Start < b.m.Start
	}
	return a.pid < b.pid
}

// coldTop is topKeys(pm.cold(r), n) without sorting every mapping: the n
// coldest kept in order by insertion, in one pass. It is what each
// period's picks take.
func (pm *procMem) coldTop(r string, n int) []mapKey {
	score := pm.coldScore(r)
	type scored struct {
		st *mapState
		s  float64
	}
	var top [8]scored
	best := top[:0]
	if n > len(top) {
		best = make([]scored, 0, n)
	}
	for _, st := range pm.maps {
		if !pm.isCold(st) {
			continue
		}
		c := scored{st, score(st)}
		if len(best) == n && !colder(c.st, best[n-1].st, c.s, best[n-1].s) {
			continue
		}
		if len(best) < n {
			best = append(best, c)
		} else {
			best[n-1] = c
		}
		for k := len(best) - 1; k > 0 && colder(best[k].st, best[k-1].st, best[k].s, best[k-1].s); k-- {
			best[k], best[k-1] = best[k-1], best[k]
		}
	}
	var out []mapKey
	for _, c := range best {
		out = append(out, mapKey{c.st.pid, c.st.m.Start, c.st.m.End})
	}
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
