package threat

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"aiosfs/engines/agent/view"
)

// endingAgent is a registry whose one agent is frozen when first asked
// and ends before its thaw: a killed fork bomb whose last process ends
// between the two calls, its cgroup removed with it. thawErr is what the
// thaw returns (the agent engine's answer for an agent that ended or is
// ending matches view.ErrEnded: engines/agent TestActOnEndingAgent);
// ends says whether the agent has exited once the thaw failed.
type endingAgent struct {
	view.Registry
	thawErr error
	ends    bool
	asked   int
	thawed  int
}

func (r *endingAgent) Info(id int) (view.Info, error) {
	r.asked++
	if r.asked > 1 && r.ends {
		return view.Info{ID: id, State: view.StateExited}, nil
	}
	return view.Info{ID: id, State: view.StateFrozen}, nil
}

func (r *endingAgent) Freeze(id int, on bool, reason string) error {
	r.thawed++
	return r.thawErr
}

func (r *endingAgent) Hold(int, string, bool) error { return nil }

// TestReleaseOfAgentEndingMeanwhile: root's release of a quarantined agent
// that ends between the registry's answer and the thaw lifts the
// quarantine without an error (the thaw had nothing left to thaw), while
// a thaw that fails on an agent still there is reported.
func TestReleaseOfAgentEndingMeanwhile(t *testing.T) {
	// What the registry returns when the freezer directory went with
	// the agent's end (the agent engine's endedError), and when it had
	// already recorded the exit.
	gone := fmt.Errorf("agent 2 is ending: %w", view.ErrEnded)
	exited := fmt.Errorf("agent 2 is exited: %w", view.ErrEnded)
	for _, c := range []struct {
		name    string
		thawErr error
		ends    bool
		wantErr bool
	}{
		{"freezer directory gone", gone, true, false},
		{"exited, another error", exited, true, false},
		{"still there, thaw fails", syscall.EIO, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := &endingAgent{thawErr: c.thawErr, ends: c.ends}
			d, err := NewDevice(DeviceConfig{Dir: t.TempDir(), Agents: reg})
			if err != nil {
				t.Fatal(err)
			}
			d.mu.Lock()
			d.st.Quarantine[2] = qrec{Since: time.Now(), Score: 0.9, Type: "ResourceExhaustion", Why: "policy"}
			d.mu.Unlock()
			err = d.Release(2)
			if reg.thawed != 1 {
				t.Fatalf("thaw tried %d times, want 1", reg.thawed)
			}
			if (err != nil) != c.wantErr {
				t.Fatalf("Release: %v, want an error: %v", err, c.wantErr)
			}
			if c.wantErr && !errors.Is(err, syscall.EIO) {
				t.Errorf("Release: %v, want the thaw's EIO", err)
			}
			d.mu.Lock()
			_, still := d.st.Quarantine[2]
			d.mu.Unlock()
			if still {
				t.Error("the quarantine record is kept after the release")
			}
		})
	}
}
