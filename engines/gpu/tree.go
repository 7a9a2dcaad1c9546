package gpu

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"aiosfs/ctl"
	"aiosfs/engines/bus"
	"aiosfs/fs"
	hal "aiosfs/hal/gpu"
)

// This file is the engine's part of the tree: its ctl tables and the
// renderers of its files, each documenting its format.

// rootVerbs is gpu/ctl.
func (e *Engine) rootVerbs() ctl.Table {
	t := ctl.Table{
		{Name: "policy", Args: "bestfit|spread|pack|predict", Min: 1, Max: 1, Root: true,
			Doc: "placement of dev=any requests",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				p, err := ParsePolicy(a[0])
				if err != nil {
					return err
				}
				e.mu.Lock()
				err = e.transact(func() error { e.sched.SetPolicy(p); return nil })
				e.mu.Unlock()
				if err != nil {
					return err
				}
				e.publish("policy", 0, bus.F("policy", string(p)))
				return nil
			}},
		{Name: "overuse", Args: "event|throttle [DUTY]|freeze|kill", Min: 1, Max: 2, Root: true,
			Doc: "what to do to an agent using more GPU memory than it reserved",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				o := Overuse(a[0])
				switch o {
				case OverEvent, OverFreeze, OverKill, OverThrottle:
				default:
					return ctl.Errorf("unknown overuse action %q (want event, throttle, freeze or kill)", a[0])
				}
				duty := -1.0
				if len(a) == 2 {
					if o != OverThrottle {
						return ctl.Errorf("%s: only throttle takes a duty fraction", ctl.MsgBadArgs)
					}
					f, err := ctl.ParseFraction(a[1])
					if err != nil {
						return err
					}
					if f <= 0 || f >= 1 {
						return ctl.Errorf("throttle duty %q must be between 0 and 1", a[1])
					}
					duty = f
				}
				e.mu.Lock()
				err := e.transact(func() error {
					e.overuse = o
					if duty > 0 {
						e.duty = duty
					}
					return nil
				})
				e.mu.Unlock()
				if err != nil {
					return err
				}
				e.publish("overuse-policy", 0, bus.F("action", string(o)))
				return nil
			}},
		{Name: "horizon", Args: "DURATION", Min: 1, Max: 1, Root: true,
			Doc: "how far ahead the predict policy looks",
			Run: func(_ context.Context, _ fs.Caller, a []string) error {
				d, err := ctl.ParseDuration(a[0])
				if err != nil {
					return err
				}
				if d <= 0 {
					return ctl.Errorf("horizon %q must be above 0", a[0])
				}
				e.mu.Lock()
				defer e.mu.Unlock()
				return e.transact(func() error { e.sched.SetPredictor(e.cfg.Predictor, d); return nil })
			}},
	}
	if mc, ok := e.cfg.Host.(hal.MockControl); ok && e.cfg.Host.Mock() {
		t = append(t, ctl.Verb{Name: "mockproc", Args: "DEV PID SIZE", Min: 3, Max: 3, Root: true,
			Doc: "mock devices only: show process PID on DEV using SIZE of GPU memory (0 removes it)",
			Run: func(_ context.Context, _ fs.Caller, a []string) error { return e.mockProc(mc, a) }})
	}
	return t
}

func (e *Engine) mockProc(mc hal.MockControl, a []string) error {
	dev, err := ctl.ParseInt(a[0], 0, int64(e.cfg.Host.Count()-1))
	if err != nil {
		return fs.Errorf(syscall.ENOENT, "no such device %q", a[0])
	}
	pid, err := ctl.ParseInt(a[1], 1, 1<<22)
	if err != nil {
		return err
	}
	size, err := ctl.ParseSize(a[2])
	if err != nil {
		return err
	}
	ps, err := e.cfg.Host.Procs(int(dev))
	if err != nil {
		return err
	}
	var out []hal.Proc
	for _, p := range ps {
		if p.Pid != int(pid) {
			out = append(out, p)
		}
	}
	if size > 0 {
		out = append(out, hal.Proc{Pid: int(pid), Bytes: size})
	}
	return mc.SetProcs(int(dev), out)
}

func (e *Engine) devVerbs(d int) ctl.Table {
	set := func(off bool) func(context.Context, fs.Caller, []string) error {
		return func(context.Context, fs.Caller, []string) error {
			e.mu.Lock()
			var grants []*Alloc
			if err := e.transact(func() error { grants = e.sched.SetOffline(d, off, e.cfg.Now()); return nil }); err != nil {
				e.mu.Unlock()
				return err
			}
			var copies []Alloc
			for _, g := range grants {
				copies = append(copies, *g)
			}
			e.mu.Unlock()
			e.publish(map[bool]string{true: "offline", false: "online"}[off], 0, bus.F("dev", d))
			for _, g := range copies {
				e.publishGrant(g)
			}
			return nil
		}
	}
	return ctl.Table{
		{Name: "offline", Root: true, Doc: "grant nothing more on this device (reservations stay)", Run: set(true)},
		{Name: "online", Root: true, Doc: "grant on this device again, starting with its queue", Run: set(false)},
	}
}

// help is a table's help, followed on mock devices by a line saying so.
func (e *Engine) help(t ctl.Table) func() []byte {
	return func() []byte {
		b := t.Help()
		if e.mock == "mock=1" {
			b = append(b, "# mock=1: these are go-nvml mock devices\n"...)
		}
		return b
	}
}

// Nodes is the gpu/ directory.
func (e *Engine) Nodes() []fs.Node {
	ns := e.cfg.NS
	root := fs.Owner{}
	rv := e.rootVerbs()
	ns.Document("/gpu/ctl", "the GPU scheduler's verbs (read it for the table)")
	ns.Document("/gpu/status", "mock= source= driver= devices= policy= overuse= horizon= total= reserved= free= allocations= queued= err=: renderStatus")
	ns.Document("/gpu/allocations", "one line per allocation: renderAllocations")
	kids := []fs.Node{
		ns.Ctl("/gpu/ctl", 0644, root, e.help(rv), rv.Exec),
		ns.Text("/gpu/status", 0444, root, func(fs.Caller) ([]byte, error) { return e.renderStatus(), nil }),
		ns.Text("/gpu/allocations", 0444, root, func(fs.Caller) ([]byte, error) { return e.renderAllocations(), nil }),
	}
	for d := 0; d < e.sched.Devices(); d++ {
		dir := "/gpu/" + strconv.Itoa(d)
		dv := e.devVerbs(d)
		kids = append(kids, ns.StaticDir(dir, 0555, root,
			ns.Text(dir+"/info", 0444, root, func(fs.Caller) ([]byte, error) { return e.renderInfo(d) }),
			ns.Text(dir+"/procs", 0444, root, func(fs.Caller) ([]byte, error) { return e.renderProcs(d) }),
			ns.Text(dir+"/queue", 0444, root, func(fs.Caller) ([]byte, error) { return e.renderQueue(d), nil }),
			ns.Ctl(dir+"/ctl", 0644, root, e.help(dv), dv.Exec),
		))
	}
	return []fs.Node{ns.StaticDir("/gpu", 0555, root, kids...)}
}

// AgentTab is the GPU engine's row of agents/N.
func (e *Engine) AgentTab() fs.Dirtab {
	return fs.Dirtab{{Name: "gpu", Perm: 0444, Owner: "gpu", Doc: "state=... devices=... mem=...: renderAgent",
		Make: func(id int, p string, own fs.Owner) fs.Node {
			return e.cfg.NS.Text(p, 0444, own, func(fs.Caller) ([]byte, error) { return e.renderAgent(id), nil })
		}}}
}

// AgentFiles is agents/N/gpu.
func (e *Engine) AgentFiles(id int, dir string, own fs.Owner) []fs.Node {
	return []fs.Node{e.cfg.NS.Text(dir+"/gpu", 0444, own, func(fs.Caller) ([]byte, error) { return e.renderAgent(id), nil })}
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func unix(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64) }

// renderStatus is gpu/status, one line:
//
//	mock=0 source=nvml driver=550.54.15 devices=8 policy=bestfit overuse=event horizon=300
//	    total=B reserved=B free=B allocations=N queued=N err=""
//
// source is nvml, mock:MODEL or none; err says why there are no devices
// (no driver, built without cgo) and is "" otherwise.
func (e *Engine) renderStatus() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	source, driver := "none", ""
	if h := e.cfg.Host; h != nil {
		source, driver = h.Source(), h.Driver()
	}
	var total, resv int64
	for d := 0; d < e.sched.Devices(); d++ {
		total += e.sched.Total(d)
		resv += e.sched.Reserved(d)
	}
	return []byte(fmt.Sprintf("%s source=%s driver=%s devices=%d policy=%s overuse=%s horizon=%s total=%d reserved=%d free=%d allocations=%d queued=%d err=%s\n",
		e.mock, source, bus.Quote(driver), e.sched.Devices(), e.sched.Policy(), e.overuse, ftoa(e.sched.Horizon().Seconds()),
		total, resv, total-resv, len(e.sched.Allocs()), e.sched.Queued(), bus.Quote(e.cfg.HostErr)))
}

// renderAllocations is gpu/allocations: every reservation by device, then
// every waiting request by device in grant order:
//
//	mock=0 agent=3 state=granted dev=0 bytes=8589934592 prio=0 share=0.2 eff=0.2 since=1764092400.123
//	mock=0 agent=4 state=queued dev=0 bytes=42949672960 prio=5 share=0 eff=0 since=1764092401.500
//
// share is what was asked (0: proportional to memory), eff what it has now;
// since is when it was granted, or when it began to wait.
func (e *Engine) renderAllocations() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, a := range e.sched.Allocs() {
		fmt.Fprintf(&b, "%s agent=%d state=granted dev=%d bytes=%d prio=%d share=%s eff=%s since=%s\n",
			e.mock, a.Agent, a.Dev, a.Bytes, a.Prio, ftoa(a.Share), ftoa(round3(a.Eff)), unix(a.Since))
	}
	for d := 0; d < e.sched.Devices(); d++ {
		for _, w := range e.sched.Queue(d) {
			fmt.Fprintf(&b, "%s agent=%d state=queued dev=%d bytes=%d prio=%d share=%s eff=0 since=%s\n",
				e.mock, w.Agent, w.On, w.Bytes, w.Prio, ftoa(w.Share), unix(w.Since))
		}
	}
	return []byte(b.String())
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// renderInfo is gpu/N/info, one line:
//
//	mock=0 index=0 uuid=GPU-... name="NVIDIA A100-SXM4-40GB" total=B free=B used=B reserved=B
//	    util=0.31 memutil=0.12 cc=8.0 mig=0 offline=0 allocations=N queued=N
//
// free and used are the driver's; reserved is what aiosfs granted. util
// and memutil are -1 where the device cannot say; mig is - where the
// device has no MIG.
func (e *Engine) renderInfo(d int) ([]byte, error) {
	inf, err := e.cfg.Host.Device(d)
	if err != nil {
		return nil, fs.Errorf(syscall.EIO, "%v", err)
	}
	mig := "-"
	if inf.MIGKnown {
		mig = map[bool]string{false: "0", true: "1"}[inf.MIG]
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	nalloc := 0
	for _, a := range e.sched.Allocs() {
		if a.Dev == d {
			nalloc++
		}
	}
	return []byte(fmt.Sprintf("%s index=%d uuid=%s name=%s total=%d free=%d used=%d reserved=%d util=%s memutil=%s cc=%d.%d mig=%s offline=%d allocations=%d queued=%d\n",
		e.mock, d, inf.UUID, bus.Quote(inf.Name), inf.Total, inf.Free, inf.Used, e.sched.Reserved(d),
		ftoa(inf.Util), ftoa(inf.MemUtil), inf.CCMajor, inf.CCMinor, mig, b2i(e.sched.Offline(d)), nalloc, len(e.sched.Queue(d)))), nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// renderProcs is gpu/N/procs: one line per compute process on device N,
// as NVML reports it, with the agent it belongs to (0: none):
//
//	mock=0 dev=0 pid=1234 agent=3 bytes=1073741824
//
// bytes is -1 where the driver cannot attribute memory to the process.
func (e *Engine) renderProcs(d int) ([]byte, error) {
	ps, err := e.cfg.Host.Procs(d)
	if err != nil {
		return nil, fs.Errorf(syscall.EIO, "%v", err)
	}
	owner := map[int]int{}
	if e.cfg.Agents != nil {
		for _, id := range e.cfg.Agents.IDs() {
			pids, _, _ := e.cfg.Agents.Pids(id)
			for _, p := range pids {
				owner[p] = id
			}
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Pid < ps[j].Pid })
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s dev=%d pid=%d agent=%d bytes=%d\n", e.mock, d, p.Pid, owner[p.Pid], p.Bytes)
	}
	return []byte(b.String()), nil
}

// renderQueue is gpu/N/queue: the requests waiting on device N in the
// order they will be granted (priority, then arrival):
//
//	mock=0 pos=1 agent=5 bytes=34359738368 prio=5 share=0 since=1764092401.500 waited=12.250
func (e *Engine) renderQueue(d int) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.cfg.Now()
	var b strings.Builder
	for i, w := range e.sched.Queue(d) {
		fmt.Fprintf(&b, "%s pos=%d agent=%d bytes=%d prio=%d share=%s since=%s waited=%.3f\n",
			e.mock, i+1, w.Agent, w.Bytes, w.Prio, ftoa(w.Share), unix(w.Since), now.Sub(w.Since).Seconds())
	}
	return []byte(b.String())
}

// renderAgent is agents/N/gpu, one line:
//
//	mock=0 agent=3 state=granted dev=0 bytes=8589934592 prio=0 share=0 eff=0.2 used=1073741824 over=0
//
// state is granted, queued (dev is the queue's device) or none; used is
// the GPU memory of the agent's processes at the last watch; over is 1
// while used exceeds bytes.
func (e *Engine) renderAgent(id int) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	state, dev, bytes, prio, share, eff := "none", -1, int64(0), 0, 0.0, 0.0
	if a := e.sched.Alloc(id); a != nil {
		state, dev, bytes, prio, share, eff = "granted", a.Dev, a.Bytes, a.Prio, a.Share, round3(a.Eff)
	} else if w := e.sched.Waiting(id); w != nil {
		state, dev, bytes, prio, share = "queued", w.On, w.Bytes, w.Prio, w.Share
	}
	return []byte(fmt.Sprintf("%s agent=%d state=%s dev=%d bytes=%d prio=%d share=%s eff=%s used=%d over=%d\n",
		e.mock, id, state, dev, bytes, prio, ftoa(share), ftoa(eff), e.used[id], b2i(e.over[id])))
}

// String says where the devices came from, for the daemon log.
func (e *Engine) String() string {
	if e.cfg.Host == nil {
		return "gpu: no devices: " + e.cfg.HostErr
	}
	return fmt.Sprintf("gpu: %d devices from %s (driver %s)", e.cfg.Host.Count(), e.cfg.Host.Source(), e.cfg.Host.Driver())
}
