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

// TestSubscribeForHidesOthersPrivateEvents: `cat events` as uid 1000 sees
// public events and its own private ones, never uid 1001's; root and
// in-process subscribers see everything; SubscribeFor keeps the filter.
func TestSubscribeForHidesOthersPrivateEvents(t *testing.T) {
	b := New(16)
	user := b.SubscribeFor(1000, nil, 16)
	agent1 := b.SubscribeFor(1000, func(e Event) bool { return e.Agent == 1 }, 16)
	root := b.SubscribeFor(0, nil, 16)
	engine := b.Subscribe(nil, 16)
	for _, s := range []*Sub{user, agent1, root, engine} {
		defer s.Close()
	}
	b.Publish(Event{Source: "fs", Kind: "refused", Private: true, Uid: 1001, Fields: []Field{F("cmd", "other's")}})
	b.Publish(Event{Source: "fs", Kind: "refused", Private: true, Uid: 1000, Agent: 1, Fields: []Field{F("cmd", "own")}})
	b.Publish(Event{Source: "agent", Kind: "spawn", Agent: 2})
	read := func(s *Sub) string {
		out, err := s.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if got := read(user); strings.Contains(got, "other's") || !strings.Contains(got, "cmd=own") || !strings.Contains(got, "kind=spawn") {
		t.Errorf("uid 1000 reads:\n%s want its own refusal and the spawn, not uid 1001's refusal", got)
	}
	if got := read(agent1); strings.Count(got, "\n") != 1 || !strings.Contains(got, "cmd=own") {
		t.Errorf("uid 1000's agent-1 filter reads:\n%s", got)
	}
	for _, s := range []*Sub{root, engine} {
		if got := read(s); strings.Count(got, "\n") != 3 {
			t.Errorf("root / in-process reader reads:\n%s want all 3 events", got)
		}
	}
}

// TestQuoteKeepsLinesText: a value that is not valid UTF-8 or holds a
// control character is quoted with escapes, so an event is one line of
// text whatever a publisher passes.
func TestQuoteKeepsLinesText(t *testing.T) {
	for v, want := range map[string]string{
		"web":       "web",
		"caf\u00e9": "caf\u00e9",
		"\xc3\x28x": `"\xc3(x"`,
		"a\x1bb":    `"a\x1bb"`,
		"a\rb":      `"a\rb"`,
		"a b":       `"a b"`,
	} {
		if got := Quote(v); got != want {
			t.Errorf("Quote(%q) = %s, want %s", v, got, want)
		}
	}
}

// TestAgentSlotEnforced: an event that names its agent in a field gets it
// in the agent slot (what agents/N/events filters on), named once.
func TestAgentSlotEnforced(t *testing.T) {
	b := New(4)
	ev := b.Publish(Event{Source: "mem", Kind: "reclaim", Fields: []Field{F("agent", 3), F("bytes", 10)}})
	if ev.Agent != 3 || ev.Get("agent") != "" || len(ev.Fields) != 1 {
		t.Errorf("published %s", ev.Line())
	}
	ev = b.Publish(Event{Source: "x", Kind: "y", Agent: 2, Fields: []Field{F("agent", 3)}})
	if ev.Agent != 2 || len(ev.Fields) != 0 {
		t.Errorf("a filled slot is kept: %s", ev.Line())
	}
}
