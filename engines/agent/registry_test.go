package agent

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"aiosfs/engines/agent/view"
	"aiosfs/engines/bus"
	"aiosfs/fs"
)

// What an engine does through the registry is what the verbs do: the
// kernel's freezer and the record change together, and the event names
// the engine (by=) so agents/N/events says who froze the agent.
func TestRegistryActsAsTheVerbs(t *testing.T) {
	r := newRig(t, "")
	sub := r.bus.Subscribe(nil, 64)
	defer sub.Close()
	a := r.spawn("reg -- sleep 60")
	var reg view.Registry = r.e
	if err := reg.Freeze(a.ID, true, "threat"); err != nil {
		t.Fatal(err)
	}
	if got := kfile(t, a, "freezer", "freezer.state"); got != "FROZEN" {
		t.Errorf("freezer.state after Freeze: %s", got)
	}
	if in, _ := reg.Info(a.ID); in.State != view.StateFrozen || !in.Alive {
		t.Errorf("Info after Freeze: state %s alive %v", in.State, in.Alive)
	}
	if !sawEvent(sub, a.ID, "freeze", "by", "threat") {
		t.Error("no freeze event with by=threat")
	}
	if err := reg.Freeze(a.ID, false, "threat"); err != nil {
		t.Fatal(err)
	}
	if in, _ := reg.Info(a.ID); in.State != view.StateRunning {
		t.Errorf("Info after thaw: %s", in.State)
	}
	pids, err := reg.Procs(a.ID)
	if err != nil || len(pids) != 1 {
		t.Fatalf("Procs: %v %v", pids, err)
	}
	if err := reg.Apply(a.ID, view.PidsMax(7), "heal"); err != nil {
		t.Fatal(err)
	}
	if got := kfile(t, a, "pids", "pids.max"); got != "7" {
		t.Errorf("pids.max after Apply: %s", got)
	}
	if err := reg.Signal(a.ID, syscall.SIGKILL, "threat"); err != nil {
		t.Fatal(err)
	}
	if !sawEvent(sub, a.ID, "kill", "by", "threat") {
		t.Error("no kill event with by=threat")
	}
	if _, err := reg.Info(999); !errors.Is(err, syscall.ENOENT) && fs.Errno(err) != syscall.ENOENT {
		t.Errorf("Info of an unknown agent: %v, want ENOENT", err)
	}
}

// sawEvent waits up to 2 s for agent id's event kind carrying key=value.
func sawEvent(sub *bus.Sub, id int, kind, key, value string) bool {
	deadline := time.After(2 * time.Second)
	for {
		select {
		case ev := <-sub.C():
			if ev.Agent != id || ev.Kind != kind {
				continue
			}
			for _, f := range ev.Fields {
				if f.Key == key && f.Value == value {
					return true
				}
			}
		case <-deadline:
			return false
		}
	}
}

// A held agent (a quarantine) is changed by root and the holder only:
// its owner's thaw is EPERM, another engine's limit is EBUSY.
func TestHoldKeepsOthersOut(t *testing.T) {
	r := newRig(t, "")
	a := r.spawn("held user=nobody -- sleep 60")
	var reg view.Registry = r.e
	if err := reg.Freeze(a.ID, true, "threat"); err != nil {
		t.Fatal(err)
	}
	if err := reg.Hold(a.ID, "threat", true); err != nil {
		t.Fatal(err)
	}
	owner := fs.Caller{Uid: 65534, Gid: 65534}
	for _, line := range []string{"thaw", "kill", "restart", "memmax 1G"} {
		if err := r.e.Table(a.ID).Exec(context.Background(), owner, line); fs.Errno(err) != syscall.EPERM {
			t.Errorf("owner's %q on a held agent: %v, want EPERM", line, err)
		}
	}
	if got := kfile(t, a, "freezer", "freezer.state"); got != "FROZEN" {
		t.Errorf("freezer.state after the owner's thaw: %s", got)
	}
	if err := reg.Apply(a.ID, view.CPUMax(0.5), "sched: grow"); fs.Errno(err) != syscall.EBUSY {
		t.Errorf("sched's Apply on a held agent: %v, want EBUSY", err)
	}
	if err := reg.Pause(a.ID, false); fs.Errno(err) != syscall.EBUSY {
		t.Errorf("Pause on a held agent: %v, want EBUSY", err)
	}
	if err := reg.Apply(a.ID, view.CPUMax(0.25), "threat: throttle"); err != nil {
		t.Errorf("the holder's Apply: %v", err)
	}
	if err := r.ctl(a.ID, "memmax 512M"); err != nil {
		t.Errorf("root's memmax on a held agent: %v", err)
	}
	if err := reg.Hold(a.ID, "threat", false); err != nil {
		t.Fatal(err)
	}
	if err := r.e.Table(a.ID).Exec(context.Background(), owner, "thaw"); err != nil {
		t.Errorf("owner's thaw after the hold is lifted: %v", err)
	}
}

// TestActOnEndingAgent: an agent being finished (its cgroup going, its
// record still frozen) and one that has exited answer a thaw through the
// registry with EBUSY that matches view.ErrEnded, so an engine can tell
// "nothing left to thaw" from a failure (the threat engine's release
// after root's kill); a live agent's thaw is not that error.
func TestActOnEndingAgent(t *testing.T) {
	r := newRig(t, "")
	a := r.spawn("ending -- sleep 60")
	var reg view.Registry = r.e
	if err := reg.Freeze(a.ID, true, "threat"); err != nil {
		t.Fatal(err)
	}
	r.e.mu.Lock()
	a.finishing = true
	r.e.mu.Unlock()
	err := reg.Freeze(a.ID, false, "threat: release")
	if !errors.Is(err, view.ErrEnded) || fs.Errno(err) != syscall.EBUSY {
		t.Errorf("thaw of an ending agent: %v (errno %v), want EBUSY matching ErrEnded", err, fs.Errno(err))
	}
	if in, _ := reg.Info(a.ID); in.State != view.StateFrozen {
		t.Errorf("the refused thaw changed the record: %s", in.State)
	}
	r.e.mu.Lock()
	a.finishing = false
	r.e.mu.Unlock()
	if err := reg.Freeze(a.ID, false, "threat"); err != nil {
		t.Fatalf("thaw of the live agent: %v", err)
	}
	if err := reg.Signal(a.ID, syscall.SIGKILL, "test"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.e.Reap(nil)
		if in, _ := reg.Info(a.ID); in.State == view.StateExited {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed agent was not reaped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	err = reg.Freeze(a.ID, false, "threat: release")
	if !errors.Is(err, view.ErrEnded) || fs.Errno(err) != syscall.EBUSY {
		t.Errorf("thaw of an exited agent: %v, want EBUSY matching ErrEnded", err)
	}
}
