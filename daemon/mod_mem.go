package daemon

import (
	"context"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"aiosfs/engines/agent"
	"aiosfs/engines/mem"
	"aiosfs/fs"
	"aiosfs/hal/vm"
)

// The memory manager: mem/ and agents/N/mem/ (package engines/mem).
func init() {
	register("mem", func(d Deps) (Module, error) {
		e, err := mem.New(mem.Config{
			StateDir: d.Config.StateDir,
			NS:       d.NS,
			Bus:      d.Bus,
			Agents:   memAgents{d.Agents},
			Proc:     vm.FS(d.Config.ProcRoot),
			Seed:     1,
			Logf:     d.Log.Printf,
			Quota:    memQuota(d.Agents),
		})
		if err != nil {
			return nil, err
		}
		d.Agents.Extend(e.AgentTab(), nil)
		if d.Registry != nil {
			d.Registry.MustRegister(newMemMetrics(e))
		}
		return memModule{e}, nil
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

type memModule struct{ e *mem.Engine }

func (m memModule) Nodes() []fs.Node        { return m.e.Nodes() }
func (m memModule) Run(ctx context.Context) { m.e.Run(ctx) }
func (m memModule) Close() error            { return m.e.Close() }

// memAgents is the agent registry as the memory manager sees it.
type memAgents struct{ a *agent.Engine }

func (m memAgents) IDs() []int { return m.a.IDs() }

func (m memAgents) Agent(id int) (mem.AgentInfo, error) {
	rec, pids, err := m.a.Snapshot(id)
	if err != nil {
		return mem.AgentInfo{}, err
	}
	info := mem.AgentInfo{Alive: rec.Alive(), Uid: rec.Uid, Gid: rec.Gid, Pids: pids}
	if g, err := m.a.Group(id); err == nil {
		p := g.Paths()
		if dir, ok := p["memory"]; ok {
			info.MemDir = dir
		} else {
			info.MemDir = p["unified"]
		}
	}
	return info, nil
}

// memMetrics exposes the memory manager's numbers in `metrics`, built at
// each scrape from the same state mem/cache and agents/N/mem/wss render.
type memMetrics struct {
	e                                                        *mem.Engine
	size, capacity, resident, hits, misses, pfIssued, pfUsed *prometheus.Desc
	wss, decisions                                           *prometheus.Desc
}

func newMemMetrics(e *mem.Engine) *memMetrics {
	r := []string{"region", "kind", "policy"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("aiosfs_mem_"+name, help, labels, nil)
	}
	return &memMetrics{e: e,
		size:      d("region_bytes", "Size of the region.", r...),
		capacity:  d("region_cache_capacity_bytes", "The region's page cache capacity.", r...),
		resident:  d("region_cache_resident_bytes", "Bytes of the region in its page cache.", r...),
		hits:      d("region_cache_hits_total", "Demand page accesses served from the cache.", r...),
		misses:    d("region_cache_misses_total", "Demand page accesses read from the backing store.", r...),
		pfIssued:  d("region_prefetch_issued_total", "Pages loaded ahead of demand.", r...),
		pfUsed:    d("region_prefetch_used_total", "Prefetched pages demanded before eviction.", r...),
		wss:       d("agent_wss_bytes", "Working set of the agent's processes over the last period.", "agent"),
		decisions: d("agent_advice", "Pieces of advice kept in agents/N/mem/decisions.", "agent"),
	}
}

func (m *memMetrics) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }

func (m *memMetrics) Collect(ch chan<- prometheus.Metric) {
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	for _, r := range m.e.RegionStats() {
		l := []string{r.Name, r.Kind, r.Policy}
		s := r.Info.Stats
		ch <- prometheus.MustNewConstMetric(m.size, g, float64(r.Size), l...)
		ch <- prometheus.MustNewConstMetric(m.capacity, g, float64(r.Info.CapPages*mem.PageSize), l...)
		ch <- prometheus.MustNewConstMetric(m.resident, g, float64(r.Info.Resident*mem.PageSize), l...)
		ch <- prometheus.MustNewConstMetric(m.hits, c, float64(s.Hits), l...)
		ch <- prometheus.MustNewConstMetric(m.misses, c, float64(s.Misses), l...)
		ch <- prometheus.MustNewConstMetric(m.pfIssued, c, float64(s.PrefetchIssued), l...)
		ch <- prometheus.MustNewConstMetric(m.pfUsed, c, float64(s.PrefetchUsed), l...)
	}
	for _, a := range m.e.AgentStats() {
		id := strconv.Itoa(a.ID)
		ch <- prometheus.MustNewConstMetric(m.wss, g, float64(a.WSS), id)
		ch <- prometheus.MustNewConstMetric(m.decisions, g, float64(a.Decisions), id)
	}
}
