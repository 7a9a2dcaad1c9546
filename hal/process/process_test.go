package process

import (
	"os"
	"os/user"
	"syscall"
	"testing"
)

var _ Ops = Host{}
var _ Ops = (*Fake)(nil)

func TestHost(t *testing.T) {
	var h Host
	if err := h.Kill(os.Getpid(), 0); err != nil {
		t.Errorf("signal 0 to self: %v", err)
	}
	if _, done, err := h.Reap(os.Getpid()); done || err == nil {
		t.Errorf("reaping self (not a child): done=%v err=%v, want ECHILD", done, err)
	}
	if u, err := h.UserID(0); err != nil || u.Username != "root" {
		t.Errorf("uid 0: %v %v", u, err)
	}
	if u, err := h.User("0"); err != nil || u.Username != "root" {
		t.Errorf("user by number: %v %v", u, err)
	}
}

func TestFakeRecords(t *testing.T) {
	f := &Fake{Users: []user.User{{Uid: "1000", Gid: "1000", Username: "ann"}}, Exited: map[int]syscall.WaitStatus{7: 0}}
	f.Kill(5, syscall.SIGTERM)
	f.Setpriority(5, 10)
	if _, done, _ := f.Reap(7); !done {
		t.Error("7 not reaped")
	}
	if u, err := f.User("ann"); err != nil || u.Uid != "1000" {
		t.Errorf("ann: %v %v", u, err)
	}
	if _, err := f.UserID(2000); err == nil {
		t.Error("unknown uid found")
	}
	want := []string{"kill 5 15", "setpriority 5 10", "reap 7", "user ann", "userid 2000"}
	if len(f.Calls) != len(want) {
		t.Fatalf("calls %q", f.Calls)
	}
	for i := range want {
		if f.Calls[i] != want[i] {
			t.Errorf("call %d: %q, want %q", i, f.Calls[i], want[i])
		}
	}
}
