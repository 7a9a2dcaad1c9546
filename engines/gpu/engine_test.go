//go:build cgo

package gpu

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aiosfs/ctl"
	"aiosfs/engines/bus"
	"aiosfs/fs"
	hal "aiosfs/hal/gpu"
)

// agentTable stands in for the agent registry in these unit tests (the
// daemon test drives real agents): a table of pids and a record of what
// was done to whom.
type agentTable struct {
	mu     sync.Mutex
	pids   map[int][]int
	ended  map[int]bool
	did    []string
	thawed chan int
	uids   map[int]uint32 // owners; 0 (root) unless set
}

func newAgentTable() *agentTable {
	return &agentTable{pids: map[int][]int{}, ended: map[int]bool{}, thawed: make(chan int, 100), uids: map[int]uint32{}}
}

func (a *agentTable) IDs() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []int
	for id := range a.pids {
		out = append(out, id)
	}
	return out
}

func (a *agentTable) Pids(id int) ([]int, bool, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pids[id]
	return p, ok, a.ended[id]
}

func (a *agentTable) Owner(id int) (uint32, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pids[id]; !ok {
		return 0, fs.Errorf(syscall.ENOENT, "no such agent %d", id)
	}
	return a.uids[id], nil
}

func (a *agentTable) record(s string) {
	a.mu.Lock()
	a.did = append(a.did, s)
	a.mu.Unlock()
}

func (a *agentTable) Freeze(id int) error { a.record("freeze " + itoa(id)); return nil }
func (a *agentTable) Kill(id int) error   { a.record("kill " + itoa(id)); return nil }

func (a *agentTable) Pause(id int, on bool) error {
	if on {
		a.record("pause " + itoa(id))
		return nil
	}
	a.record("resume " + itoa(id))
	a.thawed <- id
	return nil
}

func (a *agentTable) actions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.did...)
}

func itoa(i int) string { return strconv.Itoa(i) }

type rig struct {
	e      *Engine
	host   hal.Host
	agents *agentTable
	bus    *bus.Bus
	root   fs.Dir
	now    time.Time
	usage  map[int]int64 // what the last watch told the Usage hook
}

// newRig is an engine over go-nvml's DGX A100 mock with agents 1..3.
func newRig(t *testing.T) *rig {
	t.Helper()
	h, err := hal.Open("mock:dgxa100")
	if err != nil {
		t.Fatal(err)
	}
	return newRigOn(t, h, "")
}

// newRigOn builds a rig over host h keeping its state in the file state
// (none if ""). Rigs may share a mock host: its Close can run twice.
func newRigOn(t *testing.T, h hal.Host, state string) *rig {
	t.Helper()
	var err error
	r := &rig{host: h, agents: newAgentTable(), bus: bus.New(1000), now: t0, usage: map[int]int64{}}
	for id := 1; id <= 3; id++ {
		r.agents.pids[id] = []int{1000 * id, 1000*id + 1}
	}
	ns := &fs.NS{}
	r.e, err = New(Config{Host: h, NS: ns, Bus: r.bus, Agents: r.agents, Now: func() time.Time { return r.now }, Interval: 10 * time.Millisecond, StateFile: state,
		Usage: func(used map[int]int64, _ time.Time) { r.usage = used }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.e.Close() })
	var agents []fs.Node
	for id := 1; id <= 3; id++ {
		dir := "/agents/" + itoa(id)
		agents = append(agents, ns.StaticDir(dir, 0555, fs.Owner{}, append(r.e.AgentFiles(id, dir, fs.Owner{}),
			ns.Ctl(dir+"/ctl", 0644, fs.Owner{}, r.e.AgentVerbs(id).Help, r.e.AgentVerbs(id).Exec))...))
	}
	kids := append(r.e.Nodes(), ns.StaticDir("/agents", 0555, fs.Owner{}, agents...))
	r.root = ns.StaticDir("/", 0555, fs.Owner{}, kids...)
	return r
}

func (r *rig) cat(t *testing.T, p string) string {
	t.Helper()
	b, err := fs.ReadFile(context.Background(), r.root, p, fs.RootCaller)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

func (r *rig) echo(t *testing.T, p, line string) error {
	t.Helper()
	return fs.WriteFile(context.Background(), r.root, p, fs.RootCaller, []byte(line+"\n"))
}

// field returns key's value on the first line of text that has it.
// field is the value of key in text's records (ctl.Field).
func field(text, key string) string {
	v, _ := ctl.Field(text, key)
	return v
}

// Every line of every file says mock=1.
func checkMock(t *testing.T, p, text string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if l != "" && !strings.HasPrefix(l, "mock=1 ") {
			t.Errorf("%s: line without mock=1: %q", p, l)
		}
	}
}

func TestTreeOnMockDevices(t *testing.T) {
	r := newRig(t)
	st := r.cat(t, "/gpu/status")
	checkMock(t, "status", st)
	if field(st, "source") != "mock:dgxa100" || field(st, "devices") != "8" || field(st, "total") != itoa(8*40960<<20) || field(st, "policy") != "bestfit" {
		t.Fatalf("status: %s", st)
	}
	info := r.cat(t, "/gpu/5/info")
	checkMock(t, "info", info)
	if field(info, "index") != "5" || field(info, "cc") != "8.0" || field(info, "mig") != "0" || field(info, "name") != "Mock NVIDIA A100-SXM4-40GB" || !strings.Contains(info, `name="Mock NVIDIA A100-SXM4-40GB"`) {
		t.Fatalf("info: %s", info)
	}
	if !strings.Contains(r.cat(t, "/gpu/ctl"), "policy bestfit|spread|pack|predict") || !strings.Contains(r.cat(t, "/gpu/ctl"), "# mock=1") {
		t.Fatalf("gpu/ctl help: %s", r.cat(t, "/gpu/ctl"))
	}
	if !strings.Contains(r.cat(t, "/gpu/0/ctl"), "offline") || !strings.Contains(r.cat(t, "/agents/1/ctl"), "gpu SIZE") {
		t.Fatal("device or agent ctl help missing verbs")
	}

	// Reserve, then read it back everywhere it shows.
	if err := r.echo(t, "/agents/1/ctl", "gpu 8G prio=2 share=0.5"); err != nil {
		t.Fatal(err)
	}
	ag := r.cat(t, "/agents/1/gpu")
	checkMock(t, "agents/1/gpu", ag)
	if field(ag, "state") != "granted" || field(ag, "dev") != "0" || field(ag, "bytes") != itoa(8*int(G)) || field(ag, "eff") != "0.5" {
		t.Fatalf("agents/1/gpu: %s", ag)
	}
	al := r.cat(t, "/gpu/allocations")
	checkMock(t, "allocations", al)
	if field(al, "agent") != "1" || field(al, "state") != "granted" {
		t.Fatalf("allocations: %s", al)
	}
	if field(r.cat(t, "/gpu/0/info"), "reserved") != itoa(8*int(G)) {
		t.Fatalf("gpu/0/info reserved: %s", r.cat(t, "/gpu/0/info"))
	}

	// Environment at spawn: the device by UUID, MPS limits.
	env := strings.Join(r.e.EnvFor(1), " ")
	uuid := field(r.cat(t, "/gpu/0/info"), "uuid")
	if env != "CUDA_VISIBLE_DEVICES="+uuid+" CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=8192M CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=50" {
		t.Fatalf("env: %s", env)
	}
	if got := r.e.EnvFor(2); len(got) != 1 || got[0] != "CUDA_VISIBLE_DEVICES=" {
		t.Fatalf("agent without reservation gets %v", got)
	}

	// Bad requests: errno and nothing changed.
	before := r.cat(t, "/gpu/allocations")
	for _, c := range []struct {
		line string
		want syscall.Errno
	}{
		{"gpu 41G", syscall.ENOSPC},
		{"gpu 1G dev=8", syscall.ENOENT},
		{"gpu 8Q", syscall.EINVAL},
		{"gpu", syscall.EINVAL},
		{"gpu 1G color=red", syscall.EINVAL},
		{"gpu release now", syscall.EINVAL},
	} {
		if err := r.echo(t, "/agents/2/ctl", c.line); !errors.Is(err, c.want) {
			t.Errorf("%q: %v, want %v", c.line, err, c.want)
		}
	}
	if err := r.echo(t, "/agents/1/ctl", "gpu 1G"); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("second reservation: %v, want EBUSY", err)
	}
	if err := r.echo(t, "/agents/2/ctl", "gpu release"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("release of nothing: %v, want ENOENT", err)
	}
	if after := r.cat(t, "/gpu/allocations"); after != before {
		t.Fatalf("refused requests changed allocations:\n%s\n%s", before, after)
	}

	// Queueing through the tree: fill gpu 3, queue, release, grant.
	r.echo(t, "/gpu/ctl", "policy spread")
	if err := r.echo(t, "/agents/2/ctl", "gpu 40G dev=3"); err != nil {
		t.Fatal(err)
	}
	if err := r.echo(t, "/agents/3/ctl", "gpu 20G dev=3 prio=1"); err != nil {
		t.Fatal(err)
	}
	q := r.cat(t, "/gpu/3/queue")
	checkMock(t, "queue", q)
	if field(q, "pos") != "1" || field(q, "agent") != "3" || field(r.cat(t, "/agents/3/gpu"), "state") != "queued" {
		t.Fatalf("queue: %s", q)
	}
	r.now = t0.Add(5 * time.Second)
	if err := r.echo(t, "/agents/2/ctl", "gpu release"); err != nil {
		t.Fatal(err)
	}
	if field(r.cat(t, "/agents/3/gpu"), "state") != "granted" || r.cat(t, "/gpu/3/queue") != "" {
		t.Fatalf("after release: %s", r.cat(t, "/agents/3/gpu"))
	}
	var grant bus.Event
	for _, ev := range r.bus.Recent(func(e bus.Event) bool { return e.Kind == "grant" && e.Agent == 3 }) {
		grant = ev
	}
	if grant.Get("waited") != "5" || grant.Get("dev") != "3" {
		t.Fatalf("grant event: %s", grant.Line())
	}

	// The same numbers as Prometheus metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.e.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			key := mf.GetName()
			for _, l := range m.Label {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	for k, v := range map[string]float64{
		"aiosfs_gpu_devices,mock=1":                      8,
		"aiosfs_gpu_memory_reserved_bytes,dev=3,mock=1":  float64(20 * G),
		"aiosfs_gpu_memory_total_bytes,dev=7,mock=1":     float64(40 * G),
		"aiosfs_gpu_agent_reserved_bytes,agent=1,mock=1": float64(8 * G),
		"aiosfs_gpu_agent_compute_share,agent=1,mock=1":  0.5,
		"aiosfs_gpu_queued_requests,dev=3,mock=1":        0,
	} {
		if got[k] != v {
			t.Errorf("metric %s = %v, want %v", k, got[k], v)
		}
	}

	// Policy errors.
	if err := r.echo(t, "/gpu/ctl", "policy random"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("policy random: %v", err)
	}
	if err := r.echo(t, "/gpu/ctl", "mockproc 9 1 1G"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("mockproc on gpu 9: %v", err)
	}
}

// An agent over its reservation is acted on once per excursion, by policy;
// processes are charged to agents by pid through NVML's process list.
func TestOveruse(t *testing.T) {
	for _, policy := range []Overuse{OverEvent, OverFreeze, OverKill} {
		t.Run(string(policy), func(t *testing.T) {
			r := newRig(t)
			r.echo(t, "/gpu/ctl", "overuse "+string(policy))
			r.echo(t, "/agents/1/ctl", "gpu 2G dev=0")
			mc := r.host.(hal.MockControl)
			// Two processes of agent 1 at 1.5G total, one stranger.
			mc.SetProcs(0, []hal.Proc{{Pid: 1000, Bytes: G}, {Pid: 1001, Bytes: G / 2}, {Pid: 77, Bytes: G}})
			r.e.Watch()
			if a := r.cat(t, "/agents/1/gpu"); field(a, "used") != itoa(int(G*3/2)) || field(a, "over") != "0" {
				t.Fatalf("under: %s", a)
			}
			if r.usage[1] != G*3/2 || len(r.usage) != 1 {
				t.Fatalf("usage hook told %v, want agent 1 at %d only", r.usage, G*3/2)
			}
			procs := r.cat(t, "/gpu/0/procs")
			checkMock(t, "procs", procs)
			if !strings.Contains(procs, "pid=77 agent=0 ") || !strings.Contains(procs, "pid=1000 agent=1 ") {
				t.Fatalf("procs: %s", procs)
			}
			// Agent 1 grows to 3G, and agent 2 uses 1G with no reservation.
			mc.SetProcs(0, []hal.Proc{{Pid: 1000, Bytes: 2 * G}, {Pid: 1001, Bytes: G}})
			mc.SetProcs(4, []hal.Proc{{Pid: 2000, Bytes: G}})
			r.e.Watch()
			r.e.Watch() // still over: no second action
			if field(r.cat(t, "/agents/1/gpu"), "over") != "1" {
				t.Fatalf("over not shown: %s", r.cat(t, "/agents/1/gpu"))
			}
			want := map[Overuse][]string{OverEvent: nil, OverFreeze: {"freeze 1", "freeze 2"}, OverKill: {"kill 1", "kill 2"}}[policy]
			if got := r.agents.actions(); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("actions %v, want %v", got, want)
			}
			evs := r.bus.Recent(func(e bus.Event) bool { return e.Kind == "overuse" })
			if len(evs) != 2 || evs[0].Agent != 1 || evs[0].Get("used") != itoa(3*int(G)) || evs[0].Get("reserved") != itoa(2*int(G)) || evs[1].Get("reserved") != "0" {
				t.Fatalf("overuse events %v", evs)
			}
			// Back under: the excursion ends.
			mc.SetProcs(0, []hal.Proc{{Pid: 1000, Bytes: G}})
			r.e.Watch()
			if len(r.bus.Recent(func(e bus.Event) bool { return e.Kind == "overuse-end" && e.Agent == 1 })) != 1 {
				t.Fatal("no overuse-end")
			}
		})
	}
}

// Throttling freezes and thaws the agent until it is back under, and
// leaves it thawed.
func TestThrottle(t *testing.T) {
	r := newRig(t)
	if err := r.echo(t, "/gpu/ctl", "overuse throttle 0.5"); err != nil {
		t.Fatal(err)
	}
	r.echo(t, "/agents/1/ctl", "gpu 1G dev=0")
	mc := r.host.(hal.MockControl)
	mc.SetProcs(0, []hal.Proc{{Pid: 1000, Bytes: 2 * G}})
	r.e.Watch()
	<-r.agents.thawed // at least one full freeze/thaw cycle
	mc.SetProcs(0, nil)
	r.e.Watch() // back under: Watch returns after the final thaw
	got := r.agents.actions()
	if got[0] != "pause 1" || got[len(got)-1] != "resume 1" {
		t.Fatalf("actions %v", got)
	}
	if n := len(r.agents.actions()); n != len(got) {
		t.Fatalf("throttle went on after it ended")
	}
}

// Reservations of agents that ended are released, and their waiters run.
func TestEndedAgentReleased(t *testing.T) {
	r := newRig(t)
	r.echo(t, "/agents/1/ctl", "gpu 40G dev=2")
	r.echo(t, "/agents/2/ctl", "gpu 40G dev=2")
	r.agents.mu.Lock()
	r.agents.ended[1] = true
	r.agents.mu.Unlock()
	r.e.Watch()
	if field(r.cat(t, "/agents/1/gpu"), "state") != "none" || field(r.cat(t, "/agents/2/gpu"), "state") != "granted" {
		t.Fatalf("after agent 1 ended: %s %s", r.cat(t, "/agents/1/gpu"), r.cat(t, "/agents/2/gpu"))
	}
}

// Without devices the tree still serves, says why, and refuses requests.
func TestNoDevices(t *testing.T) {
	ns := &fs.NS{}
	e, err := New(Config{NS: ns, HostErr: "no NVIDIA driver: nvml init: ERROR_LIBRARY_NOT_FOUND"})
	if err != nil {
		t.Fatal(err)
	}
	root := ns.StaticDir("/", 0555, fs.Owner{}, e.Nodes()...)
	b, err := fs.ReadFile(context.Background(), root, "/gpu/status", fs.RootCaller)
	if err != nil {
		t.Fatal(err)
	}
	st := string(b)
	if field(st, "mock") != "0" || field(st, "devices") != "0" || !strings.Contains(st, "ERROR_LIBRARY_NOT_FOUND") {
		t.Fatalf("status: %s", st)
	}
	if err := e.AgentVerbs(1).Exec(context.Background(), fs.RootCaller, "gpu 1G"); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("request without devices: %v", err)
	}
	if e.EnvFor(1) != nil {
		t.Fatal("env without devices")
	}
	if kids, _ := root.List(); len(kids) != 1+1 || kids[1].Attr().Name != fs.ReadmeName {
		t.Fatal("tree: want gpu/ and the README")
	}
}

// Reservations, queues and policy survive a restart of the engine.
func TestRestart(t *testing.T) {
	h, err := hal.Open("mock:dgxa100")
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir() + "/gpu.json"
	r := newRigOn(t, h, state)
	r.echo(t, "/gpu/ctl", "policy pack")
	r.echo(t, "/agents/1/ctl", "gpu 30G share=0.4")
	r.echo(t, "/agents/2/ctl", "gpu 20G dev=0 prio=3")
	want := r.cat(t, "/gpu/allocations")
	r2 := newRigOn(t, h, state)
	if got := r2.cat(t, "/gpu/allocations"); got != want {
		t.Fatalf("after restart:\n%s\nwant\n%s", got, want)
	}
	if field(r2.cat(t, "/gpu/status"), "policy") != "pack" {
		t.Fatalf("policy lost: %s", r2.cat(t, "/gpu/status"))
	}
	// The waiter is granted by the new engine when the holder goes.
	if err := r2.echo(t, "/agents/1/ctl", "gpu release"); err != nil {
		t.Fatal(err)
	}
	if field(r2.cat(t, "/agents/2/gpu"), "state") != "granted" {
		t.Fatalf("agent 2 after release: %s", r2.cat(t, "/agents/2/gpu"))
	}
}
