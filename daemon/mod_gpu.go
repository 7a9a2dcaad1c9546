package daemon

import (
	"context"
	"errors"
	"path/filepath"

	"aiosfs/engines/agent"
	"aiosfs/engines/gpu"
	"aiosfs/engines/sched"
	"aiosfs/fs"
	halgpu "aiosfs/hal/gpu"
)

// The GPU scheduler (engines/gpu) owns gpu/ and adds agents/N/gpu and the
// `gpu` verb to every agent. -gpu picks the devices: "" NVML, "none", or
// "mock:MODEL". A machine without a driver is not an error: the daemon
// logs why and serves gpu/ with no devices.
func init() {
	register("gpu", func(d Deps) (Module, error) {
		cfg := gpu.Config{NS: d.NS, Bus: d.Bus, Agents: agentsForGPU{d.Agents}, Interval: d.Config.Interval,
			StateFile: filepath.Join(d.Config.StateDir, "gpu.json")}
		if d.Config.GPU == "none" {
			cfg.HostErr = "disabled by -gpu=none"
		} else {
			h, err := halgpu.Open(d.Config.GPU)
			switch {
			case err == nil:
				cfg.Host = h
			case d.Config.GPU == "" && (errors.Is(err, halgpu.ErrNoDriver) || errors.Is(err, halgpu.ErrNoCgo)):
				cfg.HostErr = err.Error()
			default:
				// A mock or source the operator named and cannot have
				// is a mistake worth stopping for.
				return nil, err
			}
		}
		// The predict policy places by the agent's forecast GPU memory,
		// learned from what the watch measures.
		demand := sched.NewGPUDemand(cfg.Interval)
		cfg.Predictor, cfg.Usage = demand, demand.Observe
		e, err := gpu.New(cfg)
		if err != nil {
			if cfg.Host != nil {
				cfg.Host.Close()
			}
			return nil, err
		}
		d.Log.Printf("%s", e)
		d.Registry.MustRegister(e.Collector())
		d.Agents.Extend(e.AgentTab(), e.AgentVerbs)
		// Spawned agents get their devices and MPS limits in their
		// environment.
		d.Agents.ExtendEnv(e.EnvFor)
		return gpuModule{e}, nil
	})
}

type gpuModule struct{ e *gpu.Engine }

func (m gpuModule) Nodes() []fs.Node        { return m.e.Nodes() }
func (m gpuModule) Run(ctx context.Context) { m.e.Run(ctx) }
func (m gpuModule) Close() error            { return m.e.Close() }

// agentsForGPU adapts the agent registry to what the GPU engine needs.
// Acting goes through the agent's own verbs so its state stays true.
type agentsForGPU struct{ a *agent.Engine }

func (g agentsForGPU) IDs() []int { return g.a.IDs() }

func (g agentsForGPU) Pids(id int) ([]int, bool, bool) {
	a, pids, err := g.a.Snapshot(id)
	if err != nil {
		return nil, false, false
	}
	return pids, true, a.State == agent.StateExited
}

func (g agentsForGPU) Owner(id int) (uint32, error) {
	a, err := g.a.Record(id)
	if err != nil {
		return 0, err
	}
	return a.Uid, nil
}

func (g agentsForGPU) verb(id int, line string) error {
	return g.a.Table(id).Exec(context.Background(), fs.RootCaller, line)
}

func (g agentsForGPU) Freeze(id int) error { return g.verb(id, "freeze") }
func (g agentsForGPU) Kill(id int) error   { return g.verb(id, "kill KILL") }

// Pause works the agent's cgroup freezer directly: a throttle's many
// freezes and thaws are not state changes of the agent.
func (g agentsForGPU) Pause(id int, on bool) error {
	grp, err := g.a.Group(id)
	if err != nil {
		return err
	}
	if on {
		return grp.Freeze()
	}
	return grp.Thaw()
}
