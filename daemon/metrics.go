package daemon

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"aiosfs/engines/agent"
	"aiosfs/engines/telemetry"
)

// metrics is a Prometheus collector over the tree's numeric state. It
// builds constant metrics at each scrape (a read of `metrics`) from the
// same sources the files render, so the two never disagree. Agent series
// carry labels agent (the number) and name.
type metrics struct {
	agents *agent.Engine
	tel    *telemetry.Sampler
	seq    func() uint64

	state, cpu, cpuSec, rss, mem, ioR, ioW, netS, netR, threads, procs, fds, socks, majflt, throttled, ooms,
	memMax, memHigh, cpuMax, cpuPeriod, restarts, selfCPU, selfRSS, events *prometheus.Desc
}

func newMetrics(a *agent.Engine, t *telemetry.Sampler, seq func() uint64) *metrics {
	l := []string{"agent", "name"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("aiosfs_"+name, help, labels, nil)
	}
	return &metrics{agents: a, tel: t, seq: seq,
		state:     d("agents", "Agents by state.", "state"),
		cpu:       d("agent_cpu_cores", "CPU cores used over the last sampling interval.", l...),
		cpuSec:    d("agent_cpu_seconds_total", "CPU time used.", l...),
		rss:       d("agent_rss_bytes", "Resident memory of the agent's processes.", l...),
		mem:       d("agent_memory_bytes", "Memory charged to the agent's cgroup.", l...),
		ioR:       d("agent_io_read_bytes_total", "Bytes read by live processes.", l...),
		ioW:       d("agent_io_write_bytes_total", "Bytes written by live processes.", l...),
		netS:      d("agent_net_sent_bytes_total", "TCP bytes sent on live sockets.", l...),
		netR:      d("agent_net_received_bytes_total", "TCP bytes received on live sockets.", l...),
		threads:   d("agent_threads", "Threads.", l...),
		procs:     d("agent_processes", "Processes.", l...),
		fds:       d("agent_open_fds", "Open file descriptors.", l...),
		socks:     d("agent_sockets", "Open sockets.", l...),
		majflt:    d("agent_major_faults_total", "Major page faults of live processes.", l...),
		throttled: d("agent_cpu_throttled_periods_total", "CFS periods in which the agent was throttled.", l...),
		ooms:      d("agent_oom_kills_total", "OOM kills in the agent's cgroup.", l...),
		memMax:    d("agent_memory_max_bytes", "Memory hard limit (absent: none).", l...),
		memHigh:   d("agent_memory_high_bytes", "Memory high limit (absent: none).", l...),
		cpuMax:    d("agent_cpu_max_cores", "CPU bandwidth limit in cores (absent: none).", l...),
		cpuPeriod: d("agent_cpu_period_seconds", "CFS period the CPU limit's quota refills over (absent: no limit).", l...),
		restarts:  d("agent_restarts_total", "Restarts.", l...),
		selfCPU:   d("daemon_cpu_cores", "The daemon's own CPU use."),
		selfRSS:   d("daemon_rss_bytes", "The daemon's own resident memory."),
		events:    d("events_total", "Events published on the bus."),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	states := map[string]float64{agent.StateNew: 0, agent.StateRunning: 0, agent.StateFrozen: 0, agent.StateExited: 0}
	for _, id := range m.agents.IDs() {
		a, err := m.agents.Record(id)
		if err != nil {
			continue
		}
		states[a.State]++
		// Label values must be UTF-8 or the registry refuses the whole
		// scrape, and one agent's name would make `metrics` fail for
		// everyone. ctl now refuses such names, but a store written
		// before that may still hold one: bad bytes show as U+FFFD.
		lv := []string{strconv.Itoa(id), strings.ToValidUTF8(a.Name, "\uFFFD")}
		put := func(d *prometheus.Desc, t prometheus.ValueType, v float64) {
			// NewConstMetric, not Must...: a metric it refuses is left
			// out, never a panic that fails the scrape.
			if m, err := prometheus.NewConstMetric(d, t, v, lv...); err == nil {
				ch <- m
			}
		}
		put(m.restarts, counter, float64(a.Restarts))
		if a.Limits.MemMax >= 0 {
			put(m.memMax, gauge, float64(a.Limits.MemMax))
		}
		if a.Limits.MemHigh >= 0 {
			put(m.memHigh, gauge, float64(a.Limits.MemHigh))
		}
		if a.Limits.CPUMax > 0 {
			put(m.cpuMax, gauge, a.Limits.CPUMax)
			put(m.cpuPeriod, gauge, a.Limits.Period().Seconds())
		}
		s, ok := m.tel.Latest(id)
		if !ok || !a.Alive() {
			continue
		}
		put(m.cpu, gauge, s.CPU)
		put(m.cpuSec, counter, s.CPUSeconds)
		put(m.rss, gauge, float64(s.RSS))
		put(m.mem, gauge, float64(s.Mem))
		put(m.ioR, counter, float64(s.IORead))
		put(m.ioW, counter, float64(s.IOWrite))
		// Like the io counters, summed over what is live (here the
		// sockets): one closing lowers them, read as a counter reset.
		put(m.netS, counter, float64(s.NetSent))
		put(m.netR, counter, float64(s.NetRecv))
		put(m.threads, gauge, float64(s.Threads))
		put(m.procs, gauge, float64(s.Procs))
		put(m.fds, gauge, float64(s.FDs))
		put(m.socks, gauge, float64(s.Sockets))
		put(m.majflt, counter, float64(s.MajFaults))
		put(m.throttled, counter, float64(s.Throttled))
		put(m.ooms, counter, float64(s.OOMKills))
	}
	for st, n := range states {
		ch <- prometheus.MustNewConstMetric(m.state, gauge, n, st)
	}
	cpu, rss := m.tel.Self()
	ch <- prometheus.MustNewConstMetric(m.selfCPU, gauge, cpu)
	ch <- prometheus.MustNewConstMetric(m.selfRSS, gauge, float64(rss))
	ch <- prometheus.MustNewConstMetric(m.events, counter, float64(m.seq()))
}

// render gathers reg and writes the text exposition format. A collector
// that fails (a panic, a metric the registry refuses) costs its own
// metrics, not the file: what was gathered is written, then one comment
// line saying what failed, so a scrape or `cat metrics` still works.
// Only a gather that yields nothing at all is an error.
func render(reg *prometheus.Registry) ([]byte, error) {
	mfs, gerr := reg.Gather()
	if gerr != nil && len(mfs) == 0 {
		return nil, gerr
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, err
		}
	}
	if gerr != nil {
		first, _, _ := strings.Cut(gerr.Error(), "\n")
		b.WriteString("# aiosfs: some metrics could not be gathered: " + strings.ToValidUTF8(first, "\uFFFD") + "\n")
	}
	return b.Bytes(), nil
}
