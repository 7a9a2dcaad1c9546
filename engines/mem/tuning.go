package mem

import "sync"

// Tuning holds the analyzer's cost remedies (issue 17, docs/cost.md), each
// a switch so that a bench can measure it off and on in one daemon run
// (SetTuning, SetTuningAll).
type Tuning struct {
	// Settle: a quiet period (procMem.quiet: the agent ran nothing since
	// the last one) updates only the agent's own figures (period count,
	// wss history, regret, locality) and leaves its mappings' (samples,
	// idle, freq, the rankings' picks) to be settled, by the same
	// arithmetic, when something next reads them (procMem.settle): a
	// file, a save, paging or the next period that reads smaps. What
	// every file shows and every save holds is unchanged
	// (TestSettleSameOutputs); what goes is the per-mapping work of the
	// quiet period, above all three sorts of the mappings (cold) for the
	// picks. Off: every quiet period updates every mapping.
	Settle bool
	// SkipClear: a process whose smaps shows no page referenced is not
	// written clear_refs. Referenced counts every mapped page whose
	// accessed bit or referenced flag is set, and clear_refs clears
	// exactly those, so there is nothing to clear. An idle agent's
	// refresh after maxQuiet quiet periods is such a read.
	SkipClear bool
	// HoldSave: an agent whose periods since its state file was last
	// written were all quiet is written every quietSaveEvery (10
	// minutes) rather than every procSaveEvery (a minute): what such a
	// save adds is only the quiet periods' counts (periods, samples,
	// idle, decayed freq, wss points of 0). A kill -9 then loses up to
	// ten minutes of them instead of one (a clean stop saves every
	// agent, as before); a period that reads smaps, a decision or a
	// policy change is saved as before.
	HoldSave bool
	// Every: a busy agent's period is Every ticks of the engine rather
	// than one (1 or 0: one). Between its periods its smaps is not read
	// nor its bits cleared, so the references of Every ticks accumulate
	// into one period, and idle, gap, freq, the wss history and the
	// pageouts' outcome windows count such periods. An agent under
	// pressure (paging on: PSI or near its limit) or with a pageout
	// waiting for its outcome is read every tick, and an operator's
	// `sample` reads at once. Quiet periods are periods too: an idle
	// agent is looked at every Every ticks. What it costs the paging
	// and prediction figures: `go run ./scripts/eval/mem -sampling`.
	Every int
}

// DefaultTuning is what New gives an engine. Every stays 1: K > 1 changes
// what wss means (docs/cost.md, "Run 11"). HoldSave stays off: it would
// let a kill -9 lose ten minutes of an idle agent's counts instead of
// one, for a saving not yet measured in a daemon run.
var DefaultTuning = Tuning{Settle: true, SkipClear: true, Every: 1}

var (
	enginesMu sync.Mutex
	engines   = map[*Engine]bool{}
)

// SetTuning switches the engine's remedies from its next tick.
func (e *Engine) SetTuning(t Tuning) {
	t.Every = max(t.Every, 1)
	e.mu.Lock()
	e.tun = t
	e.mu.Unlock()
}

// Tuning returns the engine's remedies in force.
func (e *Engine) Tuning() Tuning {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tun
}

// SetTuningAll switches every open engine of this process: for a bench
// that runs the daemon in-process and cannot reach its engine.
func SetTuningAll(t Tuning) {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	for e := range engines {
		e.SetTuning(t)
	}
}
