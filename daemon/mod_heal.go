package daemon

import (
	"context"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aiosfs/ctl"
	"aiosfs/engines/heal"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
)

// The healing engine: heal/, agents/N/health, agents/N/heartbeat and the
// heal verb in agents/N/ctl (package engines/heal). It follows the bus's
// agent and OOM events and every sampler pass, and carries out its
// actions through the registry. Agents spawned while the daemon has a
// mount get AIOS_HEARTBEAT, the path of their heartbeat file.
func init() {
	register("heal", func(d Deps) (Device, error) {
		dev, err := heal.NewDevice(heal.DeviceConfig{NS: d.NS, Bus: d.Bus, Agents: d.Registry,
			Dir: filepath.Join(d.Config.StateDir, "heal"), Proc: d.Proc, Interval: d.Tel.Interval(), IntervalNow: d.Tel.Interval, Logf: d.Log.Printf,
			Procs: func(id int) []int { p, _, _ := d.Tel.Procs(id); return p }})
		if err != nil {
			return nil, err
		}
		d.Tel.OnTick(func(now time.Time, latest map[int]telemetry.Sample) { dev.Tick(now, latest) })
		if m := absMount(d.Config.Mount); m != "" {
			d.Agents.ExtendEnv(func(id int) []string {
				return []string{"AIOS_HEARTBEAT=" + filepath.Join(m, "agents", strconv.Itoa(id), "heartbeat")}
			})
		}
		return healDevice{dev}, nil
	})
}

// healDevice is the healing engine as a Device.
type healDevice struct{ d *heal.Device }

func (m healDevice) Name() string                    { return "heal" }
func (m healDevice) Nodes() []fs.Node                { return m.d.Nodes() }
func (m healDevice) AgentTab() fs.Dirtab             { return m.d.AgentTab() }
func (m healDevice) AgentVerbs(id int) ctl.Table     { return m.d.AgentVerbs(id) }
func (m healDevice) GlobalVerbs() ctl.Table          { return nil }
func (m healDevice) Collector() prometheus.Collector { return m.d.Collector() }
func (m healDevice) Run(ctx context.Context)         { m.d.Run(ctx) }
func (m healDevice) Close() error                    { return m.d.Close() }
