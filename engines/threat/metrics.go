package threat

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descScore   = prometheus.NewDesc("aiosfs_threat_score", "Threat score 0..1 of the agent's last window.", []string{"agent", "type"}, nil)
	descWindows = prometheus.NewDesc("aiosfs_threat_windows_total", "Windows scored since the daemon started.", nil, nil)
	descActions = prometheus.NewDesc("aiosfs_threat_decisions_total", "Windows whose policy verb was action, since the daemon started.", []string{"action"}, nil)
	descQuar    = prometheus.NewDesc("aiosfs_threat_quarantined", "Agents under quarantine.", nil, nil)
	descTick    = prometheus.NewDesc("aiosfs_threat_tick_seconds_total", "Time spent scoring and responding in the sampler's passes since the daemon started.", nil, nil)
	descModel   = prometheus.NewDesc("aiosfs_threat_model_loaded", "1 when a verified model scores, 0 on the rule floor.", nil, nil)
)

type collector struct{ d *Device }

// Collector is the engine's numbers in `metrics`, from the same state
// its files render.
func (d *Device) Collector() prometheus.Collector { return collector{d} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descScore, descWindows, descActions, descQuar, descModel, descTick} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.d.e.Status()
	ch <- prometheus.MustNewConstMetric(descWindows, prometheus.CounterValue, float64(st.Windows))
	for a := Alert; a < NumActions; a++ {
		ch <- prometheus.MustNewConstMetric(descActions, prometheus.CounterValue, float64(st.Actions[a]), a.String())
	}
	ch <- prometheus.MustNewConstMetric(descTick, prometheus.CounterValue, float64(c.d.tickNanos.Load())/1e9)
	ch <- prometheus.MustNewConstMetric(descQuar, prometheus.GaugeValue, float64(st.Quarantined))
	loaded := 0.0
	if st.Mode == "ml" {
		loaded = 1
	}
	ch <- prometheus.MustNewConstMetric(descModel, prometheus.GaugeValue, loaded)
	for _, t := range c.d.e.Trends() {
		if t.Agent <= 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descScore, prometheus.GaugeValue, t.Score, strconv.Itoa(t.Agent), t.Type.String())
	}
}
