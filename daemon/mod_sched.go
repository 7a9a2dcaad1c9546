package daemon

import (
	"context"
	"path/filepath"
	"time"

	"aiosfs/ctl"
	"aiosfs/engines/sched"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
)

// The predictive scheduler: sched/ and agents/N/{pattern,predict,alloc}.
// It follows every sampler pass; enforcement stays off until `enforce on`.
func init() {
	register("sched", func(d Deps) (Device, error) {
		e := sched.New(sched.Config{Agents: d.Agents, Tel: d.Tel, Bus: d.Bus, NCPU: d.Proc.NumCPU(),
			StateFile: filepath.Join(d.Config.StateDir, "sched.json")})
		// A damaged file must not keep the daemon (and every agent's
		// management) down: say so and start from the defaults.
		if err := e.Restore(); err != nil {
			d.Log.Printf("%v: starting with the default settings", err)
		}
		d.Tel.OnTick(d.Peers.Timed("sched", func(now time.Time, latest map[int]telemetry.Sample) { e.Tick(now, latest) }))
		d.Peers.SetForecast(e.HostForecast, e.Forecasting) // heal's maintenance windows go in its lulls
		return &schedDevice{e: e, log: d.Log, ns: d.NS, nodes: e.Nodes(d.NS)}, nil
	})
}

// schedDevice is the scheduler as a Device: sched/, agents/N/{pattern,
// predict,alloc} and its verbs in agents/N/ctl. It has no metrics yet.
type schedDevice struct {
	noMetrics
	e     *sched.Engine
	log   *Log
	ns    *fs.NS
	nodes []fs.Node
}

func (m *schedDevice) Name() string                { return "sched" }
func (m *schedDevice) Nodes() []fs.Node            { return m.nodes }
func (m *schedDevice) AgentTab() fs.Dirtab         { return m.e.AgentTab(m.ns) }
func (m *schedDevice) AgentVerbs(id int) ctl.Table { return m.e.AgentVerbs(id) }
func (m *schedDevice) GlobalVerbs() ctl.Table      { return nil }

// Run keeps the predictors' history on disk every minute, so that a
// kill -9 costs them at most a minute of learning.
func (m *schedDevice) Run(ctx context.Context) {
	t := time.NewTicker(historyEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.e.SaveHistory(); err != nil {
				m.log.Printf("sched: saving history: %v", err)
			}
		}
	}
}

// Close saves the history once more: a clean stop loses nothing.
func (m *schedDevice) Close() error { return m.e.SaveHistory() }

// historyEvery is how often the scheduler's history is saved.
const historyEvery = time.Minute
