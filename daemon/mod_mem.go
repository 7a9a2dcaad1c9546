package daemon

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"aiosfs/ctl"
	"aiosfs/engines/agent"
	"aiosfs/engines/agent/view"
	"aiosfs/engines/mem"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
	"aiosfs/hal/vm"
)

// The memory manager: mem/ and agents/N/mem/ (package engines/mem).
func init() {
	register("mem", func(d Deps) (Device, error) {
		e, err := mem.New(mem.Config{
			StateDir: d.Config.StateDir,
			NS:       d.NS,
			Bus:      d.Bus,
			Agents:   memAgents{d.Registry, d.Tel},
			Proc:     vm.FS(d.Config.ProcRoot),
			Seed:     1,
			Logf:     d.Log.Printf,
			Quota:    memQuota(d.Agents),
		})
		if err != nil {
			return nil, err
		}
		return memDevice{e}, nil
	})
}

// memQuota is every uid's region quota from root's quota table (`quota
// USER regionbytes=SIZE regions=N` in /ctl, agent.Quota); root has none
// and the engine never asks for it.
func memQuota(a *agent.Engine) func(uid uint32) (int64, int) {
	return func(uid uint32) (int64, int) {
		q := a.QuotaOf(uid)
		return q.RegionBytes, q.Regions
	}
}

// memDevice is the memory manager as a Device: mem/, agents/N/mem/ (its
// verbs are in agents/N/mem/ctl, not agents/N/ctl) and its collector.
type memDevice struct{ e *mem.Engine }

func (m memDevice) Name() string                    { return "mem" }
func (m memDevice) Nodes() []fs.Node                { return m.e.Nodes() }
func (m memDevice) AgentTab() fs.Dirtab             { return m.e.AgentTab() }
func (m memDevice) AgentVerbs(id int) ctl.Table     { return nil }
func (m memDevice) GlobalVerbs() ctl.Table          { return nil }
func (m memDevice) Collector() prometheus.Collector { return m.e.Collector() }
func (m memDevice) Run(ctx context.Context)         { m.e.Run(ctx) }
func (m memDevice) Close() error                    { return m.e.Close() }

// memAgents is the agent registry as the memory manager sees it. The
// pids and the memory usage are telemetry's from its last pass (no read
// of cgroup.procs or memory files again), the limit the record's.
type memAgents struct {
	r   view.Registry
	tel *telemetry.Sampler
}

func (m memAgents) IDs() []int { return m.r.IDs() }

func (m memAgents) Agent(id int) (mem.AgentInfo, error) {
	in, err := m.r.Info(id)
	if err != nil {
		return mem.AgentInfo{}, err
	}
	info := mem.AgentInfo{Alive: in.Alive, Uid: in.Uid, Gid: in.Gid}
	switch l := in.Limits.MemMax; {
	case l < 0:
		info.MemLimit = vm.Unlimited
	case l > 0:
		info.MemLimit = l
	}
	var ok bool
	if m.tel != nil && in.Alive {
		info.Pids, _, ok = m.tel.Procs(id)
		if s, has := m.tel.Latest(id); has && ok {
			info.Sampled = &mem.Sampled{Time: s.Time, CPU: s.CPU, CPUSeconds: s.CPUSeconds, Mem: s.Mem}
		}
	}
	if !ok {
		info.Pids, _ = m.r.Procs(id)
	}
	if p, err := m.r.Cgroups(id); err == nil {
		if dir, ok := p["memory"]; ok {
			info.MemDir = dir
		} else {
			info.MemDir = p["unified"]
		}
	}
	return info, nil
}
