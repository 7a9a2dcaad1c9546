package agent

import (
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
