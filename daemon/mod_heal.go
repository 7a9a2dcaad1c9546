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
			Procs:    func(id int) []int { p, _, _ := d.Tel.Procs(id); return p },
			Forecast: healForecast(d.Peers), HasForecast: d.Peers.ForecastReady, Engines: healEngines(d.Peers)})
		if err != nil {
			return nil, err
		}
		d.Tel.OnTick(d.Peers.Timed("heal", func(now time.Time, latest map[int]telemetry.Sample) { dev.Tick(now, latest) }))
		if m := absMount(d.Config.Mount); m != "" {
			d.Agents.ExtendEnv(func(id int) []string {
				return []string{"AIOS_HEARTBEAT=" + filepath.Join(m, "agents", strconv.Itoa(id), "heartbeat")}
			})
		}
		return healDevice{dev}, nil
	})
}

// healForecast is the scheduler's host CPU forecast (cores, summed over
// agents; engines/sched HostForecast) as the healing engine takes it.
func healForecast(p *Peers) func(int) (heal.Forecast, bool) {
	return func(steps int) (heal.Forecast, bool) {
		start, step, load, ok := p.Forecast(steps)
		return heal.Forecast{Start: start, Step: step, Load: load}, ok
	}
}

// healEngines are the devices' loops as the healing engine takes them;
// telemetry's lateness and every engine's errors it adds itself.
func healEngines(p *Peers) func(time.Time) []heal.EngineStat {
	return func(now time.Time) []heal.EngineStat {
		var out []heal.EngineStat
		for _, l := range p.Loops(now) {
			out = append(out, heal.EngineStat{Name: l.Name, Time: now, LoopLatency: l.Latency, NoLoop: !l.Timed})
		}
		return out
	}
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
