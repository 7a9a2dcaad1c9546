package gpu

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes the engine's numbers for the daemon's `metrics` file.
// It builds constant metrics at each scrape from the same state the files
// render, so the two never disagree. Device series carry labels dev and
// mock; agent series agent and mock.
func (e *Engine) Collector() prometheus.Collector { return &collector{e: e} }

type collector struct{ e *Engine }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("aiosfs_gpu_"+name, help, labels, nil)
}

var (
	mDevices  = desc("devices", "GPU devices served.", "mock")
	mTotal    = desc("memory_total_bytes", "Device memory.", "dev", "mock")
	mUsed     = desc("memory_used_bytes", "Device memory in use, as the driver reports it.", "dev", "mock")
	mReserved = desc("memory_reserved_bytes", "Device memory reserved by agents.", "dev", "mock")
	mUtil     = desc("utilization", "SM busy fraction (absent where the device cannot say).", "dev", "mock")
	mQueued   = desc("queued_requests", "Requests waiting on the device's queue.", "dev", "mock")
	mAgentRes = desc("agent_reserved_bytes", "GPU memory the agent reserved.", "agent", "mock")
	mAgentUse = desc("agent_used_bytes", "GPU memory of the agent's processes at the last watch.", "agent", "mock")
	mAgentEff = desc("agent_compute_share", "Compute share the agent's reservation has now.", "agent", "mock")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	mock := e.mock[len("mock="):]
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append(l, mock)...)
	}
	// Device readings first, without the lock: NVML may be slow.
	n := 0
	if e.cfg.Host != nil {
		n = e.cfg.Host.Count()
	}
	g(mDevices, float64(n))
	for d := 0; d < n; d++ {
		if inf, err := e.cfg.Host.Device(d); err == nil {
			g(mUsed, float64(inf.Used), strconv.Itoa(d))
			if inf.Util >= 0 {
				g(mUtil, inf.Util, strconv.Itoa(d))
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for d := 0; d < e.sched.Devices(); d++ {
		dev := strconv.Itoa(d)
		g(mTotal, float64(e.sched.Total(d)), dev)
		g(mReserved, float64(e.sched.Reserved(d)), dev)
		g(mQueued, float64(len(e.sched.Queue(d))), dev)
	}
	for _, a := range e.sched.Allocs() {
		id := strconv.Itoa(a.Agent)
		g(mAgentRes, float64(a.Bytes), id)
		g(mAgentEff, a.Eff, id)
	}
	for id, used := range e.used {
		g(mAgentUse, float64(used), strconv.Itoa(id))
	}
}
