package daemon

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"aiosfs/ctl"
	"aiosfs/engines/agent"
	"aiosfs/engines/bus"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
)

// Deps is what an engine module is given: the shared pieces of the daemon.
// Engines talk to each other through these narrow Go values and the bus,
// never through each other's files.
type Deps struct {
	Config   Config
	NS       *fs.NS
	Bus      *bus.Bus
	Log      *Log
	Agents   *agent.Engine
	Tel      *telemetry.Sampler
	Cgroups  *cgroup.Manager
	Proc     proc.FS
	Registry *prometheus.Registry // add collectors for `metrics`
}

// Module is an engine plugged into the daemon (the scheduler, the memory
// manager, the GPU scheduler, ...). It owns its directory and may add
// files and verbs to every agent with Deps.Agents.Extend.
type Module interface {
	// Nodes are its top-level entries, e.g. the sched/ directory.
	Nodes() []fs.Node
	// Run does its background work until ctx ends; it may return at once.
	Run(ctx context.Context)
	// Close releases what it holds; called after Run has returned.
	Close() error
}

// RootVerber is a module that also adds rows to the global ctl.
type RootVerber interface {
	RootVerbs() ctl.Table
}

// Constructor builds a module. An error stops the daemon from starting,
// so a module that can run degraded (no GPU) should say so and return one.
type Constructor func(Deps) (Module, error)

type registration struct {
	name string
	new  Constructor
}

// modules are registered by this package's mod_*.go files, each in its own
// init, so adding an engine touches no shared file.
var modules []registration

func register(name string, c Constructor) {
	modules = append(modules, registration{name, c})
}
