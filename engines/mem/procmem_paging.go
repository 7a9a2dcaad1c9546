package mem

import (
	"errors"
	"sort"
	"time"

	"aiosfs/engines/bus"
	"aiosfs/hal/vm"
)

// Paging: what the analyzer does with what it learned (Page, MADV_PAGEOUT
// of cold ranges) and the cgroup reclaim of an agent near its limit.

// Page advises the kernel on agent id's cold mappings (up to 8) and its
// predicted-hot, non-resident file mappings, recording each decision.
func (e *Engine) Page(id int, reason string) (int, error) {
	pm := e.procMem(id)
	e.mu.Lock()
	pm.settle()
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
