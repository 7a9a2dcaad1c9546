package syscalls

import (
	"strings"
	"testing"
	"time"

	"aiosfs/hal/syscap"
)

// benign is a steady loop's calls: open, read, close, a sleep.
var benign = []int{257, 5, 0, 0, 3, 35, 257, 5, 0, 3, 230}

// attack is a different mix: socket, connect, a shell's exec, shadow.
var attack = []int{41, 42, 59, 257, 0, 44, 45, 41, 42, 57, 61, 257, 0}

func feed(s *Signal, cg uint64, tid uint32, calls []int, times int) {
	var b []syscap.Event
	for i := 0; i < times; i++ {
		for _, c := range calls {
			b = append(b, syscap.Event{Cgroup: cg, Tid: tid, Nr: uint32(c)})
		}
	}
	s.Handle(b)
}

// TestSignalOffline: the profile is learned, calibrated, then a steady
// window scores 0 and a changed one scores high with the new calls as
// evidence; Learn starts over; Forget drops the agent.
func TestSignalOffline(t *testing.T) {
	s := NewOffline(Config{LearnCalls: 2000, CalibCalls: 1000})
	s.Map(7, 1007)
	now := time.Now()
	if _, ok := s.Score(7, now); ok {
		t.Fatal("verdict before any call")
	}
	feed(s, 1007, 100, benign, 200) // 2200 calls: learned
	if ph, _ := s.Phase(7); ph != "calibrating" {
		t.Fatalf("phase %q", ph)
	}
	feed(s, 1007, 101, benign, 100) // a second thread, same loop: calibrated
	if ph, _ := s.Phase(7); ph != "scoring" {
		t.Fatalf("phase %q", ph)
	}
	s.Score(7, now)
	feed(s, 1007, 102, benign, 20)
	v, ok := s.Score(7, now)
	if !ok || v.Score != 0 {
		t.Fatalf("steady window: %+v %v", v, ok)
	}
	feed(s, 1007, 103, attack, 10)
	v, ok = s.Score(7, now)
	t.Logf("changed window: %+v", v)
	if !ok || v.Score < 0.5 || len(v.Evidence) == 0 || !strings.Contains(strings.Join(v.Evidence, ","), "connect") {
		t.Fatalf("changed window: %+v %v", v, ok)
	}
	if st := s.Status(); !strings.Contains(st, "capture=off") || !strings.Contains(st, "scoring=1") {
		t.Fatalf("status %q", st)
	}
	s.Learn(7)
	if _, ok := s.Score(7, now); ok {
		t.Fatal("verdict right after learn")
	}
	s.Forget(7)
	feed(s, 1007, 100, benign, 10)
	if ph, _ := s.Phase(7); ph != "" {
		t.Fatalf("after forget: %q", ph)
	}
}
