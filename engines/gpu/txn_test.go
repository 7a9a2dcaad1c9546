package gpu

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"aiosfs/engines/bus"
	"aiosfs/fs"
	hal "aiosfs/hal/gpu"
	"aiosfs/internal/statefile/statefiletest"
)

// A verb whose change cannot be saved is refused with the kernel's errno
// and changes nothing: allocations, status and the agents' environment
// read as before, and a restart loads the old state. An ended agent's
// reservation goes even then (the device is free in fact), and the
// failed save is published.
func TestVerbNotSavedChangesNothing(t *testing.T) {
	h, err := hal.Open("mock:dgxa100")
	if err != nil {
		t.Fatal(err)
	}
	dir := statefiletest.Tmpfs(t, 256<<10)
	state := filepath.Join(dir, "gpu.json")
	r := newRigOn(t, h, state)
	for _, c := range [][2]string{{"/gpu/ctl", "policy pack"}, {"/agents/1/ctl", "gpu 30G share=0.4"}, {"/agents/3/ctl", "gpu 10G"}} {
		if err := r.echo(t, c[0], c[1]); err != nil {
			t.Fatalf("%s: %v", c[1], err)
		}
	}
	allocs, status, env := r.cat(t, "/gpu/allocations"), r.cat(t, "/gpu/status"), r.e.EnvFor(2)
	saved, _ := os.ReadFile(state)
	seq := r.bus.Seq()

	unfill := statefiletest.Fill(t, dir)
	for _, c := range [][2]string{
		{"/gpu/ctl", "policy spread"},
		{"/gpu/ctl", "overuse throttle 0.25"},
		{"/gpu/ctl", "horizon 1m"},
		{"/gpu/0/ctl", "offline"},
		{"/agents/2/ctl", "gpu 10G prio=-1"},
		{"/agents/1/ctl", "gpu release"},
	} {
		if err := r.echo(t, c[0], c[1]); fs.Errno(err) != syscall.ENOSPC {
			t.Errorf("%s on a full state filesystem: errno %v (%v), want ENOSPC", c[1], fs.Errno(err), err)
		}
	}
	if got := r.cat(t, "/gpu/allocations"); got != allocs {
		t.Errorf("allocations after refused changes:\n%s\nwant\n%s", got, allocs)
	}
	if got := r.cat(t, "/gpu/status"); got != status {
		t.Errorf("status after refused changes:\n%s\nwant\n%s", got, status)
	}
	if got := r.e.EnvFor(2); len(got) != len(env) || got[0] != env[0] {
		t.Errorf("agent 2's environment %q, want %q", got, env)
	}
	if got, _ := os.ReadFile(state); string(got) != string(saved) {
		t.Errorf("gpu.json changed")
	}
	if n := len(r.bus.Recent(func(e bus.Event) bool { return e.Seq > seq })); n != 0 {
		t.Errorf("%d events published for refused changes", n)
	}
	// Agent 3 ends: the watch releases it though the save fails, and says so.
	r.agents.mu.Lock()
	r.agents.ended[3] = true
	r.agents.mu.Unlock()
	r.e.Watch()
	if got := field(r.cat(t, "/agents/3/gpu"), "state"); got != "none" {
		t.Errorf("ended agent 3 still %s", got)
	}
	if evs := r.bus.Recent(func(e bus.Event) bool { return e.Kind == "error" && e.Agent == 3 }); len(evs) != 1 {
		t.Errorf("failed save of agent 3's release: %d error events, want 1", len(evs))
	}
	unfill()

	writable := statefiletest.ReadOnly(t, dir)
	if err := r.echo(t, "/agents/2/ctl", "gpu 10G"); fs.Errno(err) != syscall.EROFS {
		t.Errorf("gpu 10G on a read-only state filesystem: %v, want EROFS", err)
	}
	r2 := newRigOn(t, h, state)
	if got := field(r2.cat(t, "/gpu/status"), "policy"); got != "pack" {
		t.Errorf("restarted with policy %s, want pack", got)
	}
	if got := field(r2.cat(t, "/agents/1/gpu"), "state"); got != "granted" {
		t.Errorf("restarted: agent 1 %s, want granted (its release was refused)", got)
	}
	writable()

	// Saved, the settings that used to be lost at a restart come back.
	for _, c := range [][2]string{{"/gpu/ctl", "horizon 1m"}, {"/gpu/ctl", "overuse throttle 0.25"}, {"/gpu/1/ctl", "offline"}} {
		if err := r.echo(t, c[0], c[1]); err != nil {
			t.Fatalf("%s: %v", c[1], err)
		}
	}
	r3 := newRigOn(t, h, state)
	st := r3.cat(t, "/gpu/status")
	if field(st, "horizon") != "60" || field(st, "overuse") != "throttle" || r3.e.duty != 0.25 || field(r3.cat(t, "/gpu/1/info"), "offline") != "1" {
		t.Errorf("restarted: %s duty=%v gpu/1 %s", st, r3.e.duty, r3.cat(t, "/gpu/1/info"))
	}
}

// Who may run what: gpu/ctl and gpu/N/ctl are root's; an agent's gpu
// verb is its owner's and root's, and prio above 0 root's alone.
func TestVerbsRefuseOtherUsers(t *testing.T) {
	r := newRig(t)
	r.agents.uids[1] = 1000
	user, other := fs.Caller{Uid: 1000, Gid: 1000}, fs.Caller{Uid: 2000, Gid: 1000}
	ctx := context.Background()
	for _, l := range []string{"policy spread", "overuse kill", "horizon 1m"} {
		if err := r.e.rootVerbs().Exec(ctx, user, l); fs.Errno(err) != syscall.EPERM {
			t.Errorf("gpu/ctl %q by uid 1000: %v, want EPERM", l, err)
		}
	}
	for _, l := range []string{"offline", "online"} {
		if err := r.e.devVerbs(0).Exec(ctx, user, l); fs.Errno(err) != syscall.EPERM {
			t.Errorf("gpu/0/ctl %q by uid 1000: %v, want EPERM", l, err)
		}
	}
	tab := r.e.AgentVerbs(1)
	for _, c := range []struct {
		who  fs.Caller
		line string
		want syscall.Errno
	}{
		{other, "gpu 1G", syscall.EPERM},
		{user, "gpu 1G prio=5", syscall.EPERM},
		{user, "gpu 1G prio=-5", 0},
		{other, "gpu release", syscall.EPERM},
		{user, "gpu release", 0},
		{fs.RootCaller, "gpu 1G prio=5", 0},
	} {
		if err := tab.Exec(ctx, c.who, c.line); fs.Errno(err) != c.want {
			t.Errorf("%q by uid %d: %v, want errno %v", c.line, c.who.Uid, err, c.want)
		}
	}
}
