package daemon

import (
	"context"
	"errors"
	"path/filepath"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"aiosfs/ctl"
	"aiosfs/engines/agent/view"
	"aiosfs/engines/gpu"
	"aiosfs/engines/ml"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
	halgpu "aiosfs/hal/gpu"
)

// The GPU scheduler (engines/gpu) owns gpu/ and adds agents/N/gpu and the
// `gpu` verb to every agent. -gpu picks the devices: "" NVML, "none", or
// "mock:MODEL". A machine without a driver is not an error: the daemon
// logs why and serves gpu/ with no devices.
func init() {
	register("gpu", func(d Deps) (Device, error) {
		cfg := gpu.Config{NS: d.NS, Bus: d.Bus, Agents: agentsForGPU{d.Registry, d.Tel}, Interval: d.Config.Interval,
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
		demand := ml.NewGPUDemand(cfg.Interval)
		cfg.Predictor, cfg.Usage = demand, demand.Observe
		e, err := gpu.New(cfg)
		if err != nil {
			if cfg.Host != nil {
				cfg.Host.Close()
			}
			return nil, err
		}
		d.Log.Printf("%s", e)
		// Spawned agents get their devices and MPS limits in their
		// environment.
		d.Agents.ExtendEnv(e.EnvFor)
		return gpuDevice{e}, nil
	})
}

// gpuDevice is the GPU scheduler as a Device: gpu/, agents/N/gpu, the
// agent's gpu verb and its collector.
type gpuDevice struct{ e *gpu.Engine }

func (m gpuDevice) Name() string                    { return "gpu" }
func (m gpuDevice) Nodes() []fs.Node                { return m.e.Nodes() }
func (m gpuDevice) AgentTab() fs.Dirtab             { return m.e.AgentTab() }
func (m gpuDevice) AgentVerbs(id int) ctl.Table     { return m.e.AgentVerbs(id) }
func (m gpuDevice) GlobalVerbs() ctl.Table          { return nil }
func (m gpuDevice) Collector() prometheus.Collector { return m.e.Collector() }
func (m gpuDevice) Run(ctx context.Context)         { m.e.Run(ctx) }
func (m gpuDevice) Close() error                    { return m.e.Close() }

// agentsForGPU adapts the agent registry to what the GPU engine needs.
// Acting goes through the registry, as a root ctl write would, so the
// agent's state stays true and its events say the GPU engine did it. The
// pids are telemetry's from its last pass (Sampler.Procs), not
// cgroup.procs of every agent read again on every pass of the watch.
type agentsForGPU struct {
	r   view.Registry
	tel *telemetry.Sampler
}

func (g agentsForGPU) IDs() []int { return g.r.IDs() }

func (g agentsForGPU) Pids(id int) ([]int, bool, bool) {
	in, err := g.r.Info(id)
	if err != nil {
		return nil, false, false
	}
	if in.State == view.StateExited {
		return nil, true, true
	}
	if g.tel != nil {
		if pids, _, ok := g.tel.Procs(id); ok {
			return pids, true, false
		}
	}
	// Not sampled yet (new): its group, as it is now.
	pids, _ := g.r.Procs(id)
	return pids, true, false
}

func (g agentsForGPU) Owner(id int) (uint32, error) {
	in, err := g.r.Info(id)
	if err != nil {
		return 0, err
	}
	return in.Uid, nil
}

func (g agentsForGPU) Freeze(id int) error { return g.r.Freeze(id, true, "gpu") }
func (g agentsForGPU) Kill(id int) error   { return g.r.Signal(id, syscall.SIGKILL, "gpu") }

// Pause works the agent's cgroup freezer directly: a throttle's many
// freezes and thaws are not state changes of the agent.
func (g agentsForGPU) Pause(id int, on bool) error { return g.r.Pause(id, on) }
