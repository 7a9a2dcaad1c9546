package mem

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector is the memory manager's numbers for `metrics`, beside the
// code that renders the same state in mem/cache and agents/N/mem/wss.
func (e *Engine) Collector() prometheus.Collector { return newMemMetrics(e) }

// memMetrics exposes the memory manager's numbers in `metrics`, built at
// each scrape from the same state mem/cache and agents/N/mem/wss render.
type memMetrics struct {
	e                                                        *Engine
	size, capacity, resident, hits, misses, pfIssued, pfUsed *prometheus.Desc
	wss, decisions                                           *prometheus.Desc
}

func newMemMetrics(e *Engine) *memMetrics {
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
		ch <- prometheus.MustNewConstMetric(m.capacity, g, float64(r.Info.CapPages*PageSize), l...)
		ch <- prometheus.MustNewConstMetric(m.resident, g, float64(r.Info.Resident*PageSize), l...)
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
