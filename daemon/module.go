package daemon

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"aiosfs/ctl"
	"aiosfs/engines/agent"
	"aiosfs/engines/agent/view"
	"aiosfs/engines/bus"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
)

// Deps is what an engine's constructor is given: the shared pieces of the
// daemon. Engines talk to each other through these narrow Go values and
// the bus, never through each other's files.
type Deps struct {
	Config Config
	NS     *fs.NS
	Bus    *bus.Bus
	Log    *Log
	// Registry is the agent registry as engines see it: the one seam
	// between an engine and agents (ids, records, typed limits, freeze,
	// signals, restart; lifecycle is the bus's agent events).
	Registry view.Registry
	// Agents is the same registry's concrete engine, for the wiring only:
	// a device adds its agents/N rows and verbs (Extend) and environment
	// (ExtendEnv) through it, never acts on agents through it.
	Agents  *agent.Engine
	Tel     *telemetry.Sampler
	Cgroups *cgroup.Manager
	Proc    proc.FS
	// Peers is what devices offer one another beyond the bus (the
	// scheduler's host forecast, engines' loop timing), the same for
	// every device (peers.go).
	Peers *Peers
}

// Device is an engine plugged into the daemon (the scheduler, the memory
// manager, the GPU scheduler, and next the threat and healing engines),
// in one shape, as a Plan 9 device or a node_exporter collector is. The
// daemon wires every device the same way (Start): its nodes at the root,
// its rows of agents/N and its verbs in agents/N/ctl through the agent
// registry, its global verbs in /ctl, its collector in `metrics`, then Run
// until shutdown and Close.
type Device interface {
	// Name is the engine's name: its directory and its events' source.
	Name() string
	// Nodes are its top-level entries, e.g. the sched/ directory.
	Nodes() []fs.Node
	// AgentTab is its rows of agents/N (nil: none); each row documents
	// its format and builds its file only when looked up.
	AgentTab() fs.Dirtab
	// AgentVerbs are its rows of agents/N/ctl for agent id (nil: none).
	AgentVerbs(id int) ctl.Table
	// GlobalVerbs are its rows of /ctl (nil: none).
	GlobalVerbs() ctl.Table
	// Collector is its numbers in `metrics`, beside the code that
	// renders the same state in its files (noMetrics: none).
	Collector() prometheus.Collector
	// Run does its background work until ctx ends; it may return at once.
	Run(ctx context.Context)
	// Close releases what it holds; called after Run has returned.
	Close() error
}

// Restorer is a Device that puts its own state back onto the agents the
// daemon restored at start (the threat engine's quarantines: freeze, hold,
// network cut). The daemon calls Restored once, after the agents are back
// and before the tree is served or any Run starts, so that no writer sees
// a restored agent without it.
type Restorer interface {
	Restored()
}

// noMetrics is a Device's Collector when it has no numbers yet.
type noMetrics struct{}

func (noMetrics) Collector() prometheus.Collector { return nil }

// Constructor builds a device. An error stops the daemon from starting,
// so a device that can run degraded (no GPU) should say so and return one.
type Constructor func(Deps) (Device, error)

type registration struct {
	name string
	new  Constructor
}

// devices are registered by this package's mod_*.go files, each in its
// own init, so adding an engine touches no shared file. Their order (the
// files' names: gpu, mem, sched) is the order of their rows in agents/N
// and agents/N/ctl.
var devices []registration

func register(name string, c Constructor) {
	devices = append(devices, registration{name, c})
}

// wire plugs dev into the daemon: its rows of agents/N and agents/N/ctl,
// and its collector. Nodes, GlobalVerbs, Run and Close are taken from
// d.mods by the tree, rootVerbs, Start and Close.
func (d *Daemon) wire(dev Device) {
	d.Agents.Extend(dev.AgentTab(), dev.AgentVerbs)
	if c := dev.Collector(); c != nil && d.reg != nil {
		d.reg.MustRegister(c)
	}
}
