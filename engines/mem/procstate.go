package mem

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"aiosfs/hal/vm"
	"aiosfs/internal/statefile"
)

// What the analyzer learned of an agent's process memory is kept in
// <state>/mem/agents/N.json, so that a restart of the daemon (kill -9
// included) loses neither the learned hot ranges nor the paging decisions
// and their outcomes (the history the next decisions learn from): the
// agents outlive the daemon, and their mappings with them. The file is
// JSON, rewritten whole through a rename:
//
//	{"periods":41,"wss":8388608,"rss":33554432,"locality":"Temporal",
//	 "regret":{"lru":0.8,...},"seen":[4242],"wss_history":[{"Time":"...","Bytes":8388608},...],
//	 "mappings":[{"pid":4242,"start":..,"end":..,"mapping":{...smaps fields...},
//	              "samples":41,"freq":0.97,"last_ref":41,"gap":1,"idle":0,"hot":[{"Start":..,"Len":..}]}],
//	 "decisions":[{...the decisions file's fields...,"stayed":[...],"at":12}]}
//
// It is written after a sampling period that resolved a decision (and
// so perhaps learned a hot range), after every paging or reclaim, at least once a
// minute while the agent is sampled (for the statistics; every ten
// minutes while all its periods are quiet, Tuning.HoldSave), and at a clean
// stop; it is removed when the agent ends. A damaged file is logged and
// renamed N.json.bad, and that agent starts learning afresh.
type savedProc struct {
	N         int                   `json:"periods"`
	WSS       int64                 `json:"wss"`
	RSS       int64                 `json:"rss"`
	Locality  string                `json:"locality"`
	Regret    map[string]float64    `json:"regret"`
	Seen      []int                 `json:"seen"`
	Hist      []WSSPoint            `json:"wss_history"`
	Maps      []savedMap            `json:"mappings"`
	PrevHot   []savedKey            `json:"prev_hot,omitempty"`
	Picks     map[string][]savedKey `json:"picks,omitempty"`
	Decisions []savedDecision       `json:"decisions"`
}

type savedKey struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
}

type savedMap struct {
	Pid     int        `json:"pid"`
	M       vm.Mapping `json:"mapping"`
	Samples int        `json:"samples"`
	Freq    float64    `json:"freq"`
	LastRef int        `json:"last_ref"`
	Gap     float64    `json:"gap"`
	Idle    int        `json:"idle"`
	Hot     []vm.Range `json:"hot,omitempty"`
}

type savedDecision struct {
	Decision
	Stayed []vm.Range `json:"stayed,omitempty"`
	At     int        `json:"at"`
}

// procSaveEvery bounds how much of an agent's statistics a kill -9 loses;
// quietSaveEvery does for an agent that ran nothing since its last save
// (Tuning.HoldSave).
const (
	procSaveEvery  = time.Minute
	quietSaveEvery = 10 * time.Minute
)

func (e *Engine) procDir() string        { return filepath.Join(e.dir, "agents") }
func (e *Engine) procFile(id int) string { return filepath.Join(e.procDir(), strconv.Itoa(id)+".json") }

// snapshot copies pm into its saved form (settled first, so the file is
// what it would be without Tuning.Settle); the caller holds e.mu.
func (pm *procMem) snapshot() savedProc {
	pm.settle()
	s := savedProc{N: pm.n, WSS: pm.wss, RSS: pm.rss, Locality: pm.locality, Regret: map[string]float64{},
		Hist: append([]WSSPoint(nil), pm.hist...), Picks: map[string][]savedKey{}}
	for r, v := range pm.regret {
		s.Regret[r] = v
	}
	for pid := range pm.seen {
		s.Seen = append(s.Seen, pid)
	}
	for _, st := range pm.sorted() {
		s.Maps = append(s.Maps, savedMap{Pid: st.pid, M: st.m, Samples: st.samples, Freq: st.freq,
			LastRef: st.lastRef, Gap: st.gap, Idle: st.idle, Hot: append([]vm.Range(nil), st.hot...)})
	}
	for k := range pm.prevHot {
		s.PrevHot = append(s.PrevHot, savedKey{k.pid, k.start, k.end})
	}
	for r, ks := range pm.picks {
		for _, k := range ks {
			s.Picks[r] = append(s.Picks[r], savedKey{k.pid, k.start, k.end})
		}
	}
	for _, d := range pm.decisions {
		s.Decisions = append(s.Decisions, savedDecision{Decision: d, Stayed: d.stayed, At: d.at})
	}
	return s
}

// restoreProc rebuilds an agent's state from its saved form, checking
// what later code relies on.
func restoreProc(id int, s savedProc) (*procMem, error) {
	pm := newProcMem(id)
	if s.N < 0 {
		return nil, fmt.Errorf("periods %d", s.N)
	}
	pm.n, pm.wss, pm.rss, pm.hist = s.N, s.WSS, s.RSS, s.Hist
	switch s.Locality {
	case Temporal, Spatial, Random:
		pm.locality = s.Locality
	default:
		return nil, fmt.Errorf("locality %q", s.Locality)
	}
	for r, v := range s.Regret {
		if !isRanking(r) {
			return nil, fmt.Errorf("regret of unknown ranking %q", r)
		}
		pm.regret[r] = v
	}
	for _, pid := range s.Seen {
		pm.seen[pid] = true
	}
	for _, m := range s.Maps {
		if m.M.End <= m.M.Start {
			return nil, fmt.Errorf("mapping %#x-%#x", m.M.Start, m.M.End)
		}
		for i, r := range m.Hot {
			if r.Start < m.M.Start || r.Start >= m.M.End || r.Len == 0 || r.Len > m.M.End-r.Start {
				return nil, fmt.Errorf("hot range %#x+%d outside its mapping %#x-%#x", r.Start, r.Len, m.M.Start, m.M.End)
			}
			// vm.Subtract and vm.Union take sorted, disjoint ranges.
			if i > 0 && r.Start < m.Hot[i-1].Start+m.Hot[i-1].Len {
				return nil, fmt.Errorf("hot ranges of mapping %#x not sorted and disjoint", m.M.Start)
			}
		}
		pm.maps[mapKey{m.Pid, m.M.Start, m.M.End}] = &mapState{m: m.M, pid: m.Pid, samples: m.Samples, freq: m.Freq,
			lastRef: m.LastRef, gap: m.Gap, idle: m.Idle, hot: m.Hot}
	}
	for _, k := range s.PrevHot {
		pm.prevHot[mapKey{k.Pid, k.Start, k.End}] = true
	}
	for r, ks := range s.Picks {
		if !isRanking(r) {
			return nil, fmt.Errorf("picks of unknown ranking %q", r)
		}
		for _, k := range ks {
			pm.picks[r] = append(pm.picks[r], mapKey{k.Pid, k.Start, k.End})
		}
	}
	for _, d := range s.Decisions {
		switch d.Advice {
		case vm.PageOut, vm.Cold, vm.WillNeed, vm.Reclaim:
		default:
			return nil, fmt.Errorf("decision of unknown advice %d", d.Advice)
		}
		if d.At > s.N {
			return nil, fmt.Errorf("decision at period %d, after the %d periods sampled", d.At, s.N)
		}
		d.Decision.stayed, d.Decision.at = d.Stayed, d.At
		pm.decisions = append(pm.decisions, d.Decision)
	}
	return pm, nil
}

func isRanking(r string) bool {
	for _, q := range rankings {
		if r == q {
			return true
		}
	}
	return false
}

// saveProc writes agent id's file if it changed in a way worth keeping at
// once (force) or its last save is older than procSaveEvery.
func (e *Engine) saveProc(id int, force bool) {
	e.mu.Lock()
	pm, ok := e.procs[id]
	every := procSaveEvery
	if ok && !pm.ranSince && e.tun.HoldSave {
		every = quietSaveEvery
	}
	if !ok || (!force && time.Since(pm.savedAt) < every) {
		e.mu.Unlock()
		return
	}
	pm.savedAt, pm.ranSince = time.Now(), false
	s := pm.snapshot()
	e.mu.Unlock()
	b, err := json.Marshal(s)
	if err == nil {
		if err = os.MkdirAll(e.procDir(), 0700); err == nil {
			err = statefile.Write(e.procFile(id), b)
		}
	}
	if err != nil {
		// The next save retries (forced at the next decision, else within
		// procSaveEvery); until one succeeds a restart resumes from the
		// last file that was written.
		e.warn("save-agent", "agent %d: %s not saved: %v", id, e.procFile(id), err)
	}
}

// saveProcs writes every agent's file (at a clean stop).
func (e *Engine) saveProcs() {
	e.mu.Lock()
	var ids []int
	for id := range e.procs {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	for _, id := range ids {
		e.saveProc(id, true)
	}
}

// forgetProc removes an ended agent's file.
func (e *Engine) forgetProc(id int) {
	if err := os.Remove(e.procFile(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		e.warn("forget-agent", "agent %d: %v", id, err)
	}
}

// loadProcs restores every agent's file; a damaged one is logged and
// skipped. It runs before loadSettings, which sets policies on top.
func (e *Engine) loadProcs() {
	files, _ := filepath.Glob(filepath.Join(e.procDir(), "*.json"))
	for _, f := range files {
		id, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(f), ".json"))
		if err != nil || id < 1 {
			continue // statefile's temporaries, or not ours
		}
		b, err := os.ReadFile(f)
		var s savedProc
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		var pm *procMem
		if err == nil {
			pm, err = restoreProc(id, s)
		}
		if err != nil {
			// Kept for a look, but not read again.
			os.Rename(f, f+".bad")
			e.cfg.Logf("mem: %s: %v: agent %d starts learning afresh (the file is now %s.bad)", f, err, id, filepath.Base(f))
			continue
		}
		pm.savedAt = time.Now()
		e.procs[id] = pm
	}
}
