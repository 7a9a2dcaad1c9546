package daemon

import (
	"context"
	"path/filepath"
	"time"

	"aiosfs/engines/sched"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
)

// The predictive scheduler: sched/ and agents/N/{pattern,predict,alloc}.
// It follows every sampler pass; enforcement stays off until `enforce on`.
func init() {
	register("sched", func(d Deps) (Module, error) {
		e := sched.New(sched.Config{Agents: d.Agents, Tel: d.Tel, Bus: d.Bus, NCPU: d.Proc.NumCPU(),
			StateFile: filepath.Join(d.Config.StateDir, "sched.json")})
		// A damaged file must not keep the daemon (and every agent's
		// management) down: say so and start from the defaults.
		if err := e.Restore(); err != nil {
			d.Log.Printf("%v: starting with the default settings", err)
		}
		d.Tel.OnTick(func(now time.Time, latest map[int]telemetry.Sample) { e.Tick(now, latest) })
		return &schedModule{nodes: e.Nodes(d.NS)}, nil
	})
}

type schedModule struct{ nodes []fs.Node }

func (m *schedModule) Nodes() []fs.Node    { return m.nodes }
func (m *schedModule) Run(context.Context) {}
func (m *schedModule) Close() error        { return nil }
