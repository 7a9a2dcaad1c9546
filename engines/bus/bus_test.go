package bus

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestLineFormat(t *testing.T) {
	e := Event{Time: time.UnixMilli(1764092400123), Seq: 7, Source: "agent", Kind: "spawn", Agent: 3,
		Fields: []Field{F("name", "web"), F("cmd", "nginx -g daemon off;"), F("cores", 0.5)}}
	want := `time=1764092400.123 seq=7 source=agent kind=spawn agent=3 name=web cmd="nginx -g daemon off;" cores=0.5` + "\n"
	if got := e.Line(); got != want {
		t.Fatalf("Line() = %q\nwant      %q", got, want)
	}
	if e.Get("name") != "web" || e.Get("nope") != "" {
		t.Fatal("Get")
	}
}

func TestSubscribeFilterAndLoss(t *testing.T) {
	b := New(4)
	s := b.Subscribe(func(e Event) bool { return e.Agent == 1 }, 2)
	defer s.Close()
	for i := 0; i < 5; i++ {
		b.Publish(Event{Source: "t", Kind: "k", Agent: 1})
		b.Publish(Event{Source: "t", Kind: "other", Agent: 2})
	}
	out, err := s.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	// Buffer 2: two delivered, three lost, and the reader is told so first.
	if len(lines) != 3 || !strings.Contains(lines[0], "kind=lost") || !strings.Contains(lines[0], "count=3") {
		t.Fatalf("got %q", lines)
	}
	for _, l := range lines[1:] {
		if !strings.Contains(l, "agent=1") {
			t.Fatalf("filter let through %q", l)
		}
	}
	rec := b.Recent(nil)
	if len(rec) != 4 || rec[0].Seq != 7 || rec[3].Seq != 10 {
		t.Fatalf("recent ring holds seqs %v..%v (%d), want the last 4: 7..10", rec[0].Seq, rec[len(rec)-1].Seq, len(rec))
	}
}

func TestNextEndsOnCancelAndClose(t *testing.T) {
	b := New(0)
	s := b.Subscribe(nil, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := s.Next(ctx); err == nil {
		t.Fatal("Next returned without error after cancel")
	}
	go func() { time.Sleep(20 * time.Millisecond); s.Close() }()
	if _, err := s.Next(context.Background()); err == nil {
		t.Fatal("Next returned without error after Close")
	}
	b.Publish(Event{Kind: "after-close"}) // must not block or panic
}
