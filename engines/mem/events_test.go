package mem

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"aiosfs/engines/bus"
	"aiosfs/fs"
)

// TestEventsAreTheAgents: the memory manager's per-agent events (reclaim
// here; advise is published the same way) carry the agent in the event's
// agent slot, so they reach agents/N/events, and name it once.
func TestEventsAreTheAgents(t *testing.T) {
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
	b := bus.New(64)
	ns := &fs.NS{Boot: time.Unix(0, 0)}
	e, err := New(Config{StateDir: t.TempDir(), NS: ns, Bus: b, Seed: 1, Interval: time.Hour, Proc: "/proc",
		Agents: fakeAgents{3: {Alive: true, Pids: []int{sleep.Process.Pid}, MemDir: v2}}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.sampleAgents(time.Now())
	evs := b.Recent(func(ev bus.Event) bool { return ev.Source == "mem" && ev.Kind == "reclaim" })
	if len(evs) != 1 {
		t.Fatalf("reclaim events: %v", evs)
	}
	ev := evs[0]
	if ev.Agent != 3 {
		t.Errorf("reclaim event's agent slot is %d, want 3: %s", ev.Agent, ev.Line())
	}
	for _, f := range ev.Fields {
		if f.Key == "agent" {
			t.Errorf("reclaim event names the agent in a field too: %s", ev.Line())
		}
	}
}
