package mem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"aiosfs/fs"
	"aiosfs/fs/p9fs"
	"aiosfs/hal/vm"
)

type fixture struct {
	t    *testing.T
	e    *Engine
	root fs.Dir
	dir  string
}

// newFixture serves the engine's tree from the model (no adapter), over a
// state directory that later fixtures may reuse (a restart).
func newFixture(t *testing.T, state string, agents Agents) *fixture {
	t.Helper()
	ns := &fs.NS{Boot: time.Unix(0, 0)}
	e, err := New(Config{StateDir: state, NS: ns, Agents: agents, Proc: "/proc", Seed: 1, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, e: e, root: ns.StaticDir("/", 0555, fs.Owner{}, e.Nodes()...), dir: state}
}

func (f *fixture) open(p string, c fs.Caller, m fs.OpenMode) (fs.Handle, error) {
	n, err := fs.Walk(f.root, p)
	if err != nil {
		return nil, err
	}
	file, ok := n.(fs.File)
	if !ok {
		return nil, fs.ErrIsDir
	}
	return file.Open(context.Background(), c, m)
}

func (f *fixture) ctl(p, line string) error { return f.ctlAs(fs.RootCaller, p, line) }

func (f *fixture) ctlAs(c fs.Caller, p, line string) error {
	h, err := f.open(p, c, fs.OWRITE)
	if err != nil {
		return err
	}
	defer h.Close()
	_, err = h.Write(context.Background(), []byte(line+"\n"), 0)
	return err
}

func (f *fixture) read(p string) string {
	f.t.Helper()
	h, err := f.open(p, fs.RootCaller, fs.OREAD)
	if err != nil {
		f.t.Fatalf("open %s: %v", p, err)
	}
	defer h.Close()
	var b bytes.Buffer
	buf := make([]byte, 8192)
	for off := int64(0); ; {
		n, err := h.Read(context.Background(), buf, off)
		if err != nil {
			f.t.Fatalf("read %s: %v", p, err)
		}
		if n == 0 {
			return b.String()
		}
		b.Write(buf[:n])
		off += int64(n)
	}
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if got := fs.Errno(err); got != want {
		t.Errorf("%s: errno %v (%v), want %v", what, got, err, want)
	}
}

func TestAllocErrorsChangeNothing(t *testing.T) {
	f := newFixture(t, t.TempDir(), nil)
	defer f.e.Close()
	if err := f.ctl("/mem/ctl", "alloc a 1M persistent tag=db"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		line string
		want syscall.Errno
	}{
		{"alloc a 1M", syscall.EEXIST},
		{"alloc ../x 1M", syscall.EINVAL},
		{"alloc .hidden 1M", syscall.EINVAL},
		{"alloc b 0", syscall.EINVAL},
		{"alloc b -5", syscall.EINVAL},
		{"alloc b 1P", syscall.EINVAL},
		{"alloc b 65G", syscall.EINVAL},
		{"alloc b 1M bogus", syscall.EINVAL},
		{"alloc b 1M lease=never", syscall.EINVAL},
		{"alloc b 1M persistent lease=1s", syscall.EINVAL},
		{"alloc b 1M owner=7", syscall.ENOENT},
		{"alloc b 1M cache=1", syscall.EINVAL},
		{"alloc b 1M color=red", syscall.EINVAL},
		{"alloc b", syscall.EINVAL},
		{"free nope", syscall.ENOENT},
		{"policy a mru", syscall.EINVAL},
		{"policy nope lru", syscall.ENOENT},
		{"untag a nope", syscall.ENOENT},
		{"lease a 5s", syscall.EINVAL},
		{"grant a 3", syscall.ENOENT},
		{"frobnicate", syscall.EINVAL},
	} {
		wantErrno(t, c.line, f.ctl("/mem/ctl", c.line), c.want)
	}
	if got := f.read("/mem/status"); !strings.HasPrefix(got, "regions=1 bytes=1048576 ") {
		t.Errorf("status after refusals: %s", got)
	}
	ents, _ := filepath.Glob(filepath.Join(f.dir, "mem", "*"))
	if len(ents) != 3 { // a.data a.meta tmp
		t.Errorf("state files: %v", ents)
	}
	// A non-root caller may not free root's region.
	wantErrno(t, "free by uid 1000", f.ctlAs(fs.Caller{Uid: 1000, Gid: 1000}, "/mem/ctl", "free a"), syscall.EPERM)
	_, err := f.open("/mem/regions/a/data", fs.Caller{Uid: 1000, Gid: 1000}, fs.OREAD)
	wantErrno(t, "data by uid 1000", err, syscall.EACCES)
	_, err = f.open("/mem/regions/zz/data", fs.RootCaller, fs.OREAD)
	wantErrno(t, "missing region", err, syscall.ENOENT)
}

func TestDataOffsets(t *testing.T) {
	f := newFixture(t, t.TempDir(), nil)
	defer f.e.Close()
	if err := f.ctl("/mem/ctl", "alloc r 10000 cache=8K"); err != nil {
		t.Fatal(err)
	}
	h, err := f.open("/mem/regions/r/data", fs.RootCaller, fs.ORDWR)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	payload := bytes.Repeat([]byte("abcdefgh"), 1000) // 8000 bytes over 2 pages
	if n, err := h.Write(ctx, payload, 1000); err != nil || n != 8000 {
		t.Fatalf("write: %d %v", n, err)
	}
	_, err = h.Write(ctx, []byte("xx"), 9999)
	wantErrno(t, "write across the end", err, syscall.EFBIG)
	_, err = h.Write(ctx, []byte("x"), -1)
	wantErrno(t, "negative offset", err, syscall.EINVAL)
	// Nothing of the refused writes landed.
	got := make([]byte, 10000)
	n, err := h.Read(ctx, got, 0)
	if err != nil || n != 10000 {
		t.Fatalf("read: %d %v", n, err)
	}
	if !bytes.Equal(got[1000:9000], payload) || got[9999] != 0 || got[999] != 0 {
		t.Error("bytes differ after write and refused writes")
	}
	if n, _ := h.Read(ctx, got, 10000); n != 0 {
		t.Errorf("read at the end: %d bytes", n)
	}
	// More pages than the 2-page cache: evictions, misses from the file.
	for i := 0; i < 5; i++ {
		h.Read(ctx, got[:100], int64(i%3)*4096)
	}
	c := f.read("/mem/cache")
	if !strings.Contains(c, "region=r policy=adaptive") || !strings.Contains(c, "capacity=8192") {
		t.Errorf("cache: %s", c)
	}
	h.Close()
	// A handle kept after free fails with ENOENT.
	h2, _ := f.open("/mem/regions/r/data", fs.RootCaller, fs.OREAD)
	if err := f.ctl("/mem/regions/r/ctl", "free"); err != nil {
		t.Fatal(err)
	}
	_, err = h2.Read(ctx, got, 0)
	wantErrno(t, "read of a freed region", err, syscall.ENOENT)
}

func TestLeaseExpiry(t *testing.T) {
	f := newFixture(t, t.TempDir(), nil)
	defer f.e.Close()
	if err := f.ctl("/mem/ctl", "alloc tmp 64K lease=100ms tag=scratch"); err != nil {
		t.Fatal(err)
	}
	if got := f.read("/mem/find/scratch"); !strings.HasPrefix(got, "name=tmp size=65536 kind=ephemeral") {
		t.Errorf("find: %q", got)
	}
	f.e.Tick(time.Now())
	if _, err := f.e.region("tmp"); err != nil {
		t.Fatal("freed before its lease ended")
	}
	f.e.Tick(time.Now().Add(200 * time.Millisecond))
	if _, err := fs.Walk(f.root, "/mem/regions/tmp"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("after lease: %v", err)
	}
	if got := f.read("/mem/find/scratch"); got != "" {
		t.Errorf("find after expiry: %q", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(f.dir, "mem", "tmp")); len(ents) != 0 {
		t.Errorf("backing left: %v", ents)
	}
}

type fakeAgents map[int]AgentInfo

func (a fakeAgents) IDs() []int {
	var out []int
	for id := range a {
		out = append(out, id)
	}
	return out
}

func (a fakeAgents) Agent(id int) (AgentInfo, error) {
	i, ok := a[id]
	if !ok {
		return AgentInfo{}, fs.Errorf(syscall.ENOENT, "no such agent %d", id)
	}
	return i, nil
}

func TestOwnerAndGrants(t *testing.T) {
	ag := fakeAgents{1: {Alive: true, Uid: 1001, Gid: 1001}, 2: {Alive: true, Uid: 1002, Gid: 1002}}
	f := newFixture(t, t.TempDir(), ag)
	defer f.e.Close()
	if err := f.ctl("/mem/ctl", "alloc eph 4K owner=1"); err != nil {
		t.Fatal(err)
	}
	if err := f.ctl("/mem/ctl", "alloc sh 4K shared owner=1"); err != nil {
		t.Fatal(err)
	}
	u2 := fs.Caller{Uid: 1002, Gid: 1002}
	if _, err := f.open("/mem/regions/sh/data", u2, fs.OREAD); err == nil {
		t.Error("agent 2 reads before its grant")
	}
	wantErrno(t, "grant on ephemeral", f.ctl("/mem/ctl", "grant eph 2"), syscall.EPERM)
	if err := f.ctl("/mem/regions/sh/ctl", "grant 2"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.open("/mem/regions/sh/data", u2, fs.OREAD); err != nil {
		t.Errorf("agent 2 after grant: %v", err)
	}
	if got := f.read("/mem/regions/sh/info"); !strings.Contains(got, " owner=1 uid=1001 tags=- grants=2 ") {
		t.Errorf("info: %s", got)
	}
	// The owner ends: its ephemeral region goes, the shared one stays.
	ag[1] = AgentInfo{Alive: false, Uid: 1001}
	f.e.Tick(time.Now())
	if _, err := f.e.region("eph"); err == nil {
		t.Error("ephemeral region outlived its owner")
	}
	if _, err := f.e.region("sh"); err != nil {
		t.Error("shared region ended with its first owner")
	}
}

// TestPersistentRestart: a persistent region comes back in a new engine on
// the same state directory with its bytes and a cache warmed from the
// saved pattern; an ephemeral one does not.
func TestPersistentRestart(t *testing.T) {
	state := t.TempDir()
	f := newFixture(t, state, nil)
	if err := f.ctl("/mem/ctl", "alloc keep 1M persistent tag=db cache=64K"); err != nil {
		t.Fatal(err)
	}
	if err := f.ctl("/mem/ctl", "alloc gone 1M"); err != nil {
		t.Fatal(err)
	}
	h, _ := f.open("/mem/regions/keep/data", fs.RootCaller, fs.ORDWR)
	ctx := context.Background()
	h.Write(ctx, []byte("persistent bytes"), 300000)
	buf := make([]byte, 16)
	for i := 0; i < 20; i++ {
		h.Read(ctx, buf, 300000)
	}
	h.Close()
	if err := f.e.Close(); err != nil {
		t.Fatal(err)
	}
	g := newFixture(t, state, nil)
	defer g.e.Close()
	h, err := g.open("/mem/regions/keep/data", fs.RootCaller, fs.OREAD)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := h.Read(ctx, buf, 300000)
	if string(buf[:n]) != "persistent bytes" {
		t.Errorf("after restart: %q", buf[:n])
	}
	if _, err := g.e.region("gone"); err == nil {
		t.Error("ephemeral region survived a restart")
	}
	c := g.read("/mem/cache")
	if !strings.Contains(c, "hits=1 misses=0") {
		t.Errorf("warmed cache should hit the saved hot page: %s", c)
	}
}

// The data file through 9P: the same bytes and the same errors.
func TestData9P(t *testing.T) {
	f := newFixture(t, t.TempDir(), nil)
	defer f.e.Close()
	sock := filepath.Join(t.TempDir(), "9p.sock")
	ln, err := p9fs.ListenAndServe("unix!"+sock, f.root, p9fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := p9fs.Dial("unix!" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteFile("/mem/ctl", []byte("alloc nine 16K\n")); err != nil {
		t.Fatal(err)
	}
	w, err := c.Open("/mem/regions/nine/data", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("over 9P")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b, err := c.ReadFile("/mem/regions/nine/data")
	if err != nil || len(b) != 16384 || string(b[:7]) != "over 9P" {
		t.Errorf("read over 9P: %d bytes %q %v", len(b), b[:min(7, len(b))], err)
	}
	err = c.WriteFile("/mem/ctl", []byte("alloc nine 16K\n"))
	wantErrno(t, "9P alloc twice", err, syscall.EEXIST)
	st, err := c.Stat("/mem/regions/nine/data")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("9P stat: %+v", st)
}

func TestCtlHelp(t *testing.T) {
	f := newFixture(t, t.TempDir(), nil)
	defer f.e.Close()
	if err := f.ctl("/mem/ctl", "alloc h 4K"); err != nil {
		t.Fatal(err)
	}
	if got := f.read("/mem/ctl"); !strings.HasPrefix(got, "alloc NAME SIZE") || !strings.Contains(got, "\npaging on|off (root)") {
		t.Errorf("mem/ctl help: %s", got)
	}
	if got := f.read("/mem/regions/h/ctl"); !strings.HasPrefix(got, "policy lru|lfu|predictive|adaptive") {
		t.Errorf("region ctl help: %s", got)
	}
	wantErrno(t, "interval by non-root", f.ctlAs(fs.Caller{Uid: 5}, "/mem/ctl", "interval 1s"), syscall.EPERM)
}

// TestReclaimV2Fixture: an agent at 95 % of its cgroup v2 limit has the
// kernel asked (memory.reclaim) for what takes it to 80 %, recorded as a
// decision. This host's cgroup2 mount has no memory controller, so the
// group is a fixture directory with the v2 files; on v1, where
// memory.reclaim does not exist, nothing is written or recorded.
func TestReclaimV2Fixture(t *testing.T) {
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	v2 := t.TempDir()
	for name, v := range map[string]string{"memory.current": "950000000\n", "memory.max": "1000000000\n", "memory.reclaim": ""} {
		if err := os.WriteFile(filepath.Join(v2, name), []byte(v), 0644); err != nil {
			t.Fatal(err)
		}
	}
	v1 := t.TempDir()
	for name, v := range map[string]string{"memory.usage_in_bytes": "950000000\n", "memory.limit_in_bytes": "1000000000\n"} {
		if err := os.WriteFile(filepath.Join(v1, name), []byte(v), 0644); err != nil {
			t.Fatal(err)
		}
	}
	pid := sleep.Process.Pid
	f := newFixture(t, t.TempDir(), fakeAgents{
		1: {Alive: true, Pids: []int{pid}, MemDir: v2},
		2: {Alive: true, Pids: []int{pid}, MemDir: v1},
	})
	defer f.e.Close()
	f.e.sampleAgents(time.Now())
	if b, _ := os.ReadFile(filepath.Join(v2, "memory.reclaim")); string(b) != "150000000" {
		t.Errorf("memory.reclaim got %q, want 150000000 (95%% -> 80%% of the limit)", b)
	}
	f.e.mu.Lock()
	var got []string
	for _, id := range []int{1, 2} {
		for _, l := range strings.Split(decisionsText(f.e.procs[id]), "\n") {
			if strings.Contains(l, "advice=reclaim") {
				got = append(got, fmt.Sprint(id)+": "+l)
			}
		}
	}
	f.e.mu.Unlock()
	if len(got) != 1 || !strings.HasPrefix(got[0], "1: ") || !strings.Contains(got[0], "reason=limit") ||
		!strings.Contains(got[0], "advised=150000000") || !strings.Contains(got[0], "rss_before=950000000") ||
		!strings.Contains(got[0], "outcome=reclaimed") || !strings.HasSuffix(got[0], "path="+v2) {
		t.Errorf("reclaim decisions: %q", got)
	}
	if err := vm.ReclaimCgroup(v1, 1); !errors.Is(err, vm.ErrNoReclaim) {
		t.Errorf("v1 group: %v, want ErrNoReclaim", err)
	}
	if _, err := os.Stat(filepath.Join(v1, "memory.reclaim")); err == nil {
		t.Error("memory.reclaim created in a v1 group")
	}
}

// TestSettingsSurviveRestart: mem/ctl's paging settings and an agent's
// paging policy come back after a restart (the engine is dropped without
// Close, as a kill -9 would); a refused line writes nothing; a damaged
// file starts the manager on the defaults rather than not at all.
func TestSettingsSurviveRestart(t *testing.T) {
	state := t.TempDir()
	f := newFixture(t, state, fakeAgents{})
	for _, line := range []string{"paging off", "pressure 0.3", "interval 3s"} {
		if err := f.ctl("/mem/ctl", line); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	if err := f.e.agentVerbs(7).Exec(context.Background(), fs.RootCaller, "policy lfu"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(state, "mem", "settings.json")
	before, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ctl("/mem/ctl", "pressure 3"); err == nil {
		t.Fatal("pressure 3 accepted")
	}
	if err := f.e.agentVerbs(7).Exec(context.Background(), fs.RootCaller, "policy fifo"); err == nil {
		t.Fatal("policy fifo accepted")
	}
	if after, _ := os.ReadFile(file); string(after) != string(before) {
		t.Fatalf("refused lines rewrote the settings: %s -> %s", before, after)
	}

	f2 := newFixture(t, state, fakeAgents{})
	defer f2.e.Close()
	f2.e.mu.Lock()
	paging, th, iv := f2.e.paging, f2.e.threshold, f2.e.interval
	pol := ""
	if pm := f2.e.procs[7]; pm != nil {
		pol = pm.policy
	}
	f2.e.mu.Unlock()
	if paging || th != 0.3 || iv != 3*time.Second || pol != LFU {
		t.Fatalf("restored paging=%v pressure=%v interval=%v agent 7 policy=%q", paging, th, iv, pol)
	}
	if st := f2.read("/mem/status"); !strings.Contains(st, "paging=off") || !strings.Contains(st, "pressure_threshold=0.3") {
		t.Errorf("status after restart: %s", st)
	}
	f.e.Close()

	os.WriteFile(file, []byte(`{"paging":`), 0600)
	f3 := newFixture(t, state, fakeAgents{})
	defer f3.e.Close()
	f3.e.mu.Lock()
	defer f3.e.mu.Unlock()
	if !f3.e.paging || f3.e.threshold != 0.10 {
		t.Errorf("damaged settings: paging=%v pressure=%v, want the defaults", f3.e.paging, f3.e.threshold)
	}
}

// TestAgentStateFile: what the analyzer learned of an agent is written to
// mem/agents/N.json and read back whole by the next start; a damaged or
// inconsistent file is logged and set aside, and that agent alone starts afresh; the
// file goes when the agent ends.
func TestAgentStateFile(t *testing.T) {
	state := t.TempDir()
	f := newFixture(t, state, fakeAgents{})
	mk := func(id int) {
		pm := newProcMem(id)
		pm.n, pm.wss, pm.rss, pm.locality = 9, 4096, 8192, Temporal
		pm.regret[LFU] = 1.5
		pm.seen[100+id] = true
		pm.hist = []WSSPoint{{time.Unix(1700000000, 0).UTC(), 4096}}
		m := vm.Mapping{Start: 0x10000, End: 0x20000, Inode: 5, Path: "/lib/x", Rss: 8192, Referenced: 4096}
		pm.maps[mapKey{100 + id, m.Start, m.End}] = &mapState{m: m, pid: 100 + id, samples: 9, freq: 0.5, lastRef: 8, gap: 2,
			hot: []vm.Range{{Start: 0x10000, Len: 4096}}}
		pm.decisions = []Decision{{Time: time.Unix(1700000001, 0).UTC(), Pid: 100 + id, Start: m.Start, Len: m.End - m.Start,
			Path: m.Path, Advice: vm.PageOut, Reason: "psi", Ranking: LRU, RssBefore: 8192, RssAfter: 4096, Outcome: "came_back",
			Ranges: []vm.Range{{Start: m.Start, Len: 0x10000}}, Back: 4096, at: 7}}
		f.e.mu.Lock()
		f.e.procs[id] = pm
		f.e.mu.Unlock()
		f.e.saveProc(id, true)
	}
	mk(3)
	mk(4)
	want := map[int]string{}
	for _, id := range []int{3, 4} {
		f.e.mu.Lock()
		pm := f.e.procs[id]
		want[id] = hotText(pm) + decisionsText(pm) + patternLine(pm)
		f.e.mu.Unlock()
	}
	// Agent 4's file is inconsistent: a hot range outside its mapping.
	p4 := filepath.Join(state, "mem", "agents", "4.json")
	b, err := os.ReadFile(p4)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), `"hot":[{"Start":65536`, `"hot":[{"Start":4096`, 1)
	if bad == string(b) {
		t.Fatalf("test's edit missed: %s", b)
	}
	os.WriteFile(p4, []byte(bad), 0600)

	var logged []string
	ns := &fs.NS{Boot: time.Unix(0, 0)}
	e, err := New(Config{StateDir: state, NS: ns, Agents: fakeAgents{}, Proc: "/proc", Seed: 1, Interval: time.Hour,
		Logf: func(format string, a ...any) { logged = append(logged, fmt.Sprintf(format, a...)) }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.mu.Lock()
	pm3, pm4 := e.procs[3], e.procs[4]
	got := ""
	if pm3 != nil {
		got = hotText(pm3) + decisionsText(pm3) + patternLine(pm3)
	}
	e.mu.Unlock()
	if got != want[3] {
		t.Errorf("agent 3 after a restart:\n%s\nwant\n%s", got, want[3])
	}
	if pm4 != nil || len(logged) != 1 || !strings.Contains(logged[0], "outside its mapping") {
		t.Errorf("agent 4's bad file: restored=%v log=%q", pm4 != nil, logged)
	}
	if _, err := os.Stat(p4 + ".bad"); err != nil {
		t.Errorf("agent 4's bad file not set aside: %v", err)
	}
	// Neither agent runs (fakeAgents{} lists none): a period forgets them.
	e.sampleAgents(time.Now())
	if _, err := os.Stat(filepath.Join(state, "mem", "agents", "3.json")); !os.IsNotExist(err) {
		t.Errorf("ended agent's file: %v", err)
	}
}
