package heal

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descScore    = prometheus.NewDesc("aiosfs_heal_agent_score", "Health score 0..1 of the agent (agents/N/health score).", []string{"agent"}, nil)
	descFailures = prometheus.NewDesc("aiosfs_heal_failures", "Failures kept in heal/failures, and of them those predicted.", []string{"predicted"}, nil)
	descActions  = prometheus.NewDesc("aiosfs_heal_actions_total", "Actions carried out since the daemon started, by result.", []string{"result"}, nil)
	descPending  = prometheus.NewDesc("aiosfs_heal_pending", "Recoveries awaiting their verdict.", nil, nil)
	descBreakers = prometheus.NewDesc("aiosfs_heal_breakers_open", "Agents whose circuit breaker is open.", nil, nil)
	descRules    = prometheus.NewDesc("aiosfs_heal_rules_mode", "1 when the engine runs on its rules (degraded or set by ctl).", nil, nil)
	descSaveErrs = prometheus.NewDesc("aiosfs_heal_save_errors_total", "Saves of heal.json that failed since the daemon started.", nil, nil)
)

type collector struct{ d *Device }

// Collector is the engine's numbers in `metrics`, from the state its
// files render.
func (d *Device) Collector() prometheus.Collector { return collector{d} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descScore, descFailures, descActions, descPending, descBreakers, descRules, descSaveErrs} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.d.e.Stats()
	ch <- prometheus.MustNewConstMetric(descFailures, prometheus.GaugeValue, float64(st.Failures-st.Predicted), "0")
	ch <- prometheus.MustNewConstMetric(descFailures, prometheus.GaugeValue, float64(st.Predicted), "1")
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(descBreakers, prometheus.GaugeValue, float64(st.BreakersOpen))
	rules := 0.0
	if st.Rules {
		rules = 1
	}
	ch <- prometheus.MustNewConstMetric(descRules, prometheus.GaugeValue, rules)
	c.d.mu.Lock()
	n := c.d.counts
	c.d.mu.Unlock()
	for _, r := range []struct {
		name string
		v    uint64
	}{{"done", n.ok}, {"failed", n.failed}, {"skipped", n.skipped}} {
		ch <- prometheus.MustNewConstMetric(descActions, prometheus.CounterValue, float64(r.v), r.name)
	}
	c.d.saveMu.Lock()
	se := c.d.saveErrs
	c.d.saveMu.Unlock()
	ch <- prometheus.MustNewConstMetric(descSaveErrs, prometheus.CounterValue, float64(se))
	for _, id := range c.d.e.Agents() {
		if s, ok := c.d.e.AgentScore(id); ok {
			ch <- prometheus.MustNewConstMetric(descScore, prometheus.GaugeValue, s, strconv.Itoa(id))
		}
	}
}
