package sched

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"aiosfs/engines/agent"
	"aiosfs/engines/agent/view"
	"aiosfs/engines/bus"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
	"aiosfs/internal/statefile/statefiletest"
)

// countingAgents is benchAgents counting the limits handed to Apply: the
// kernel writes enforcement would make.
type countingAgents struct {
	benchAgents
	applied atomic.Int64
}

func (c *countingAgents) Apply(id int, l view.Limit, why string) error {
	c.applied.Add(1)
	return c.benchAgents.Apply(id, l, why)
}

// A verb whose change cannot be saved is refused with the kernel's errno
// (ENOSPC on a full state filesystem, EROFS on a read-only one) and
// changes nothing: sched/status and agents' modes read as before,
// enforcement refused never writes a limit, the predictors keep what they
// learned, and a restart loads the old values.
func TestVerbNotSavedChangesNothing(t *testing.T) {
	dir := statefiletest.Tmpfs(t, 256<<10)
	file := filepath.Join(dir, "sched.json")
	ag := &countingAgents{benchAgents: benchAgents{recs: map[int]*agent.Record{
		1: {ID: 1, Uid: 1000, Gid: 1000, State: agent.StateRunning, Limits: agent.NoLimits}}}}
	cfg := Config{NCPU: 2, Agents: ag, Bus: bus.New(64), StateFile: file}
	e := New(cfg)
	ctx := context.Background()
	owner := fs.Caller{Uid: 1000, Gid: 1000}
	exec := func(tab interface {
		Exec(context.Context, fs.Caller, string) error
	}, c fs.Caller, line string) error {
		return tab.Exec(ctx, c, line)
	}
	root, agentCtl := e.Verbs(), e.AgentVerbs(1)
	for _, l := range []string{"buffer 0.2", "interval 1s"} {
		if err := exec(root, fs.RootCaller, l); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
	}
	now := time.Unix(1764000000, 0)
	tick := func(n int) {
		for i := 0; i < n; i++ {
			now = now.Add(time.Second)
			e.Tick(now, map[int]telemetry.Sample{1: {Time: now, CPU: 0.5, Mem: 100 << 20}})
		}
	}
	tick(20)
	saved, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	status := func() string { return strings.SplitN(string(e.renderStatus()), " agents=", 2)[0] }
	agentLine := func() string {
		s := string(e.renderStatus())
		return s[strings.Index(s, "agent=1 "):][:len("agent=1 mode=auto")]
	}
	before, beforeN := status(), e.agents[1].pred[resCPU].N()

	unfill := statefiletest.Fill(t, dir)
	for _, c := range []struct {
		tab  ctlExec
		who  fs.Caller
		line string
	}{
		{root, fs.RootCaller, "enforce on"},
		{root, fs.RootCaller, "buffer 0.5"},
		{root, fs.RootCaller, "horizons 1s,10s"},
		{root, fs.RootCaller, "slice 50ms"},
		{root, fs.RootCaller, "pin 1 ewma"},
		{agentCtl, owner, "sched manual"},
		{agentCtl, owner, "forecaster ewma"},
	} {
		err := exec(c.tab, c.who, c.line)
		if fs.Errno(err) != syscall.ENOSPC {
			t.Errorf("%q on a full state filesystem: errno %v (%v), want ENOSPC", c.line, fs.Errno(err), err)
		}
	}
	tick(20)
	if got := status(); got != before {
		t.Errorf("sched/status after refused changes:\n%s\nwant\n%s", got, before)
	}
	if got := agentLine(); got != "agent=1 mode=auto" {
		t.Errorf("agent 1 after a refused mode change: %s", got)
	}
	if p := e.agents[1].pred[resCPU].get().Pinned(); p != "auto" {
		t.Errorf("agent 1 pinned to %q after refused pins", p)
	}
	if n := e.agents[1].pred[resCPU].N(); n != beforeN+20 {
		t.Errorf("predictor has %d samples, want %d: a refused horizons restarted it", n, beforeN+20)
	}
	if n := ag.applied.Load(); n != 0 {
		t.Errorf("a refused enforce on wrote %d limits", n)
	}
	if got, _ := os.ReadFile(file); string(got) != string(saved) {
		t.Errorf("sched.json changed: %s", got)
	}
	unfill()

	writable := statefiletest.ReadOnly(t, dir)
	if err := exec(root, fs.RootCaller, "enforce on"); fs.Errno(err) != syscall.EROFS {
		t.Errorf("enforce on, read-only state: errno %v (%v), want EROFS", fs.Errno(err), err)
	}
	// The restart loads what was saved last.
	e2 := New(cfg)
	if err := e2.Restore(); err != nil {
		t.Fatal(err)
	}
	if s := e2.Settings(); s.Enforce || s.Buffer != 0.2 || len(s.Horizons) != 4 {
		t.Errorf("restarted with %+v, want enforce off, buffer 0.2, the default horizons", s)
	}
	writable()

	// Once the state can be saved, the same line works and acts.
	if err := exec(root, fs.RootCaller, "enforce on"); err != nil {
		t.Fatal(err)
	}
	tick(3)
	if ag.applied.Load() == 0 {
		t.Error("enforce on saved, but no limit written")
	}
}

type ctlExec interface {
	Exec(context.Context, fs.Caller, string) error
}

// Who may run what: every sched/ctl verb is root's (EPERM otherwise);
// an agent's sched and forecaster verbs are its owner's and root's.
func TestVerbsRefuseOtherUsers(t *testing.T) {
	ag := &benchAgents{recs: map[int]*agent.Record{
		1: {ID: 1, Uid: 1000, Gid: 1000, State: agent.StateRunning, Limits: agent.NoLimits}}}
	e := New(Config{NCPU: 2, Agents: ag, StateFile: filepath.Join(t.TempDir(), "sched.json")})
	ctx := context.Background()
	user, other := fs.Caller{Uid: 1000, Gid: 1000}, fs.Caller{Uid: 2000, Gid: 1000}
	for _, l := range []string{"enforce on", "buffer 0.5", "fall 0.1", "horizons 1s", "interval 1s", "slice 50ms", "warmup 0", "capacity 1", "pin 1 ewma"} {
		if err := e.Verbs().Exec(ctx, user, l); fs.Errno(err) != syscall.EPERM {
			t.Errorf("%q by uid 1000: %v, want EPERM", l, err)
		}
	}
	for _, l := range []string{"sched manual", "forecaster ewma"} {
		if err := e.AgentVerbs(1).Exec(ctx, other, l); fs.Errno(err) != syscall.EPERM {
			t.Errorf("%q on uid 1000's agent by uid 2000: %v, want EPERM", l, err)
		}
		if err := e.AgentVerbs(1).Exec(ctx, user, l); err != nil {
			t.Errorf("%q by the agent's owner: %v", l, err)
		}
	}
	if s := e.Settings(); s.Enforce || s.Buffer != 0.15 {
		t.Errorf("refused lines changed the settings: %+v", s)
	}
}

// The minute's history save, which nobody waits on, fails with the
// errno, publishes an error event, and leaves the last good file.
func TestHistorySaveFailureIsReported(t *testing.T) {
	dir := statefiletest.Tmpfs(t, 256<<10)
	b := bus.New(16)
	e := New(Config{NCPU: 2, Bus: b, StateFile: filepath.Join(dir, "sched.json")})
	now := time.Unix(1764000000, 0)
	for i := 0; i < 50; i++ {
		now = now.Add(time.Second)
		e.Tick(now, map[int]telemetry.Sample{1: {Time: now, CPU: 0.5}})
	}
	if err := e.SaveHistory(); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(e.historyFile())
	e.Tick(now.Add(time.Second), map[int]telemetry.Sample{1: {Time: now.Add(time.Second), CPU: 0.7}})
	defer statefiletest.Fill(t, dir)()
	if err := e.SaveHistory(); fs.Errno(err) != syscall.ENOSPC {
		t.Fatalf("history save on a full state filesystem: %v, want ENOSPC", err)
	}
	if evs := b.Recent(func(ev bus.Event) bool { return ev.Source == "sched" && ev.Kind == "error" }); len(evs) != 1 || evs[0].Get("op") != "save-history" {
		t.Errorf("error events: %v", evs)
	}
	if got, _ := os.ReadFile(e.historyFile()); string(got) != string(good) {
		t.Error("the last good history was damaged")
	}
}

// BenchmarkVerbCommit is the cost of one sched/ctl verb now that it is
// saved (written, fsynced, renamed, directory fsynced) before it applies:
// the time a writer of `echo buffer 0.2 > sched/ctl` waits.
func BenchmarkVerbCommit(b *testing.B) {
	e := New(Config{NCPU: 2, StateFile: filepath.Join(b.TempDir(), "sched.json")})
	tab := e.Verbs()
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if err := tab.Exec(ctx, fs.RootCaller, []string{"buffer 0.2", "buffer 0.3"}[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}
