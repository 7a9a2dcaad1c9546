package agent

import (
	"strconv"
	"time"

	"aiosfs/ctl"
	"aiosfs/engines/agent/view"
	"aiosfs/fs"
	"aiosfs/hal/cgroup"
)

// limit is one row of the table of an agent's cgroup limits: its ctl
// syntax (parse), the typed value another engine hands Apply (typed), the
// kernel write (write) and its value as events show it (get). The ctl
// verbs, spawn's keys, Apply and the kernel writes all come from limits,
// so a new limit is one row.
type limit struct {
	key, args, doc string
	parse          func(e *Engine, v string, l *Limits) error
	typed          func(v any, l *Limits) bool
	write          func(g cgroup.Group, l Limits) error
	get            func(l Limits) string
}

// limits in the order agents/N/ctl lists them.
var limits = []limit{
	{key: "weight", args: "N", doc: "cpu weight 1..10000 (v1: cpu.shares)",
		parse: func(_ *Engine, v string, l *Limits) error {
			wt, err := ctl.ParseInt(v, 1, 10000)
			l.Weight = uint64(wt)
			return err
		},
		typed: func(v any, l *Limits) (ok bool) {
			l.Weight, ok = v.(uint64)
			return ok && l.Weight >= 1 && l.Weight <= 10000
		},
		write: func(g cgroup.Group, l Limits) error {
			if l.Weight == 0 {
				return nil
			}
			return g.SetWeight(l.Weight)
		},
		get: func(l Limits) string { return strconv.FormatUint(l.Weight, 10) }},
	{key: "cpumax", args: "CORES", doc: "cpu bandwidth in cores (0.5, 150%, max)",
		parse: func(_ *Engine, v string, l *Limits) (err error) { l.CPUMax, err = parseCPUMax(v); return err },
		typed: func(v any, l *Limits) (ok bool) { l.CPUMax, ok = v.(float64); return ok && l.CPUMax >= 0 },
		write: writeCPUMax,
		get:   func(l Limits) string { return strconv.FormatFloat(l.CPUMax, 'f', -1, 64) }},
	{key: "cpuperiod", args: "DURATION", doc: "time slice cpumax's quota refills over, 1ms..1s (default 100ms)",
		parse: func(_ *Engine, v string, l *Limits) (err error) {
			if l.CPUPeriod, err = ctl.ParseDuration(v); err == nil {
				err = checkPeriod(l.CPUPeriod)
			}
			return err
		},
		typed: func(v any, l *Limits) (ok bool) {
			l.CPUPeriod, ok = v.(time.Duration)
			return ok && checkPeriod(l.CPUPeriod) == nil
		},
		write: writeCPUMax,
		get:   func(l Limits) string { return l.CPUPeriod.String() }},
	{key: "cpus", args: "LIST", doc: "cpuset, e.g. 0-1,3",
		parse: func(e *Engine, v string, l *Limits) error {
			cpus, err := ctl.ParseCPUList(v, e.cfg.Proc.NumCPU())
			if err == nil {
				l.Cpus = ctl.FormatCPUList(cpus)
			}
			return err
		},
		typed: func(v any, l *Limits) (ok bool) { l.Cpus, ok = v.(string); return ok },
		write: func(g cgroup.Group, l Limits) error { return g.SetCpus(l.Cpus) },
		get:   func(l Limits) string { return l.Cpus }},
	{key: "memhigh", args: "SIZE", doc: "memory.high (v1: soft limit), e.g. 512M, max",
		parse: func(_ *Engine, v string, l *Limits) (err error) { l.MemHigh, err = ctl.ParseSize(v); return err },
		typed: func(v any, l *Limits) (ok bool) { l.MemHigh, ok = v.(int64); return ok },
		write: func(g cgroup.Group, l Limits) error { return g.SetMemHigh(l.MemHigh) },
		get:   func(l Limits) string { return strconv.FormatInt(l.MemHigh, 10) }},
	{key: "memmax", args: "SIZE", doc: "memory hard limit, e.g. 2G, max",
		parse: func(_ *Engine, v string, l *Limits) (err error) { l.MemMax, err = ctl.ParseSize(v); return err },
		typed: func(v any, l *Limits) (ok bool) { l.MemMax, ok = v.(int64); return ok },
		write: func(g cgroup.Group, l Limits) error { return g.SetMemMax(l.MemMax) },
		get:   func(l Limits) string { return strconv.FormatInt(l.MemMax, 10) }},
	{key: "pidsmax", args: "N", doc: "most processes and threads at once (pids.max), or max",
		parse: func(_ *Engine, v string, l *Limits) error {
			n, err := countArg(v, 1<<22)
			if err == nil && n == 0 {
				err = ctl.Errorf("pidsmax 0 would allow no process (want 1..%d, or max)", 1<<22)
			}
			l.Pids = int64(max(n, 0))
			return err
		},
		typed: func(v any, l *Limits) (ok bool) { l.Pids, ok = v.(int64); return ok && l.Pids >= 0 },
		write: func(g cgroup.Group, l Limits) error {
			if l.Pids <= 0 {
				return g.SetPidsMax(-1)
			}
			return g.SetPidsMax(l.Pids)
		},
		get: func(l Limits) string { return strconv.FormatInt(l.Pids, 10) }},
}

func writeCPUMax(g cgroup.Group, l Limits) error { return g.SetCPUMax(l.CPUMax, l.CPUPeriod) }

func checkPeriod(p time.Duration) error {
	if p < cgroup.MinCPUPeriod || p > cgroup.MaxCPUPeriod {
		return ctl.Errorf("cpuperiod %v not in 1ms..1s", p)
	}
	return nil
}

// limitRow is the row of key.
func limitRow(key string) (*limit, bool) {
	for i := range limits {
		if limits[i].key == key {
			return &limits[i], true
		}
	}
	return nil, false
}

// Apply sets one of the agent's limits for another engine, typed:
// the kernel gets exactly l.Value (the scheduler's 0.245 cores is 0.245,
// not a two-decimal string parsed back). As Apply, it records reason in
// the event and lowers a value above the agent's ceiling to it.
func (e *Engine) Apply(id int, l view.Limit, reason string) error {
	a, err := e.Get(id)
	if err != nil {
		return err
	}
	if err := e.checkHold(id, reason); err != nil {
		return err
	}
	row, ok := limitRow(l.Key)
	if !ok {
		return ctl.Errorf("unknown limit %q", l.Key)
	}
	return e.setLimitWith(a, fs.RootCaller, l.Key, "", reason, true, func(old Limits) (settings, error) {
		s := settings{limits: old, given: map[string]bool{l.Key: true}}
		if !row.typed(l.Value, &s.limits) {
			return s, ctl.Errorf("bad value %v (%T) for %s", l.Value, l.Value, l.Key)
		}
		if s.limits.CPUMax > 0 {
			if err := cgroup.CheckCPUMax(s.limits.CPUMax, s.limits.CPUPeriod); err != nil {
				return s, ctl.Errorf("cpumax %g over cpuperiod %v: below the kernel's least quota of 1ms a period", s.limits.CPUMax, s.limits.Period())
			}
		}
		return s, nil
	})
}
