// Package bus is the in-process event bus every engine publishes to and
// the `events` files read from.
//
// An event renders as one line of key=value fields in a fixed order:
//
//	time=1764092400.123 seq=42 source=agent kind=spawn agent=3 name=web pid=1234
//
// time is Unix seconds with milliseconds, seq a per-daemon counter (a gap
// tells a reader it lost events), source the engine, kind what happened,
// agent the agent number (0: not about one agent), then the event's own
// fields in the order the publisher gave them. Values with blanks, quotes,
// '=', backslashes, control characters or bytes that are not UTF-8 are
// double-quoted with Go escapes, so a line is always one line of text.
//
// Most events are public: every reader of an events file sees them. An
// event about one user's own action that may carry what they typed (a
// refused command) is Private: it reaches only subscribers made for root
// or for that Uid (SubscribeFor), never another user's `cat events`.
package bus

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"aiosfs/ctl"
)

// Event is one thing that happened.
type Event struct {
	Time   time.Time
	Seq    uint64
	Source string // engine: agent, telemetry, proc, sched, mem, gpu, threat, heal, fs
	Kind   string
	Agent  int
	Fields []Field
	// Private events go only to in-process subscribers (Subscribe) and
	// to readers who are root or Uid (SubscribeFor). Neither is shown in
	// the line; a publisher that wants the uid seen adds a uid field.
	Private bool
	Uid     uint32
}

// VisibleTo reports whether a reader with uid may see e: a public event
// anyone, a private one root and its own Uid.
func (e Event) VisibleTo(uid uint32) bool {
	return !e.Private || uid == 0 || uid == e.Uid
}

// Field is one key=value of an event.
type Field struct{ Key, Value string }

// F makes a Field, formatting v with %v (floats with %g).
func F(key string, v any) Field {
	switch x := v.(type) {
	case string:
		return Field{key, x}
	case float64:
		return Field{key, strconv.FormatFloat(x, 'g', 6, 64)}
	}
	return Field{key, fmt.Sprint(v)}
}

// Get returns the value of field key, or "".
func (e Event) Get(key string) string {
	for _, f := range e.Fields {
		if f.Key == key {
			return f.Value
		}
	}
	return ""
}

// Quote renders a value for a key=value line: bare when it has no blanks,
// quotes or '=', else double-quoted with Go escapes.
func Quote(v string) string { return ctl.Quote(v) }

// Line renders the event as one line with its newline.
func (e Event) Line() string {
	l := new(ctl.Line).Time("time", e.Time).Uint("seq", e.Seq).Str("source", e.Source).Str("kind", e.Kind).Int("agent", int64(e.Agent))
	for _, f := range e.Fields {
		l.Str(f.Key, f.Value)
	}
	return l.String()
}

func agentInSlot(e Event) Event {
	for i, f := range e.Fields {
		if f.Key != "agent" {
			continue
		}
		if id, err := strconv.Atoi(f.Value); err == nil && e.Agent == 0 {
			e.Agent = id
		}
		fields := append(append([]Field(nil), e.Fields[:i]...), e.Fields[i+1:]...)
		e.Fields = fields
		return agentInSlot(e)
	}
	return e
}

// Bus fans events out to subscribers and keeps the most recent ones.
type Bus struct {
	mu     sync.Mutex
	seq    uint64
	subs   map[*Sub]struct{}
	recent []Event // ring of the last cap(recent) events
	next   int
	now    func() time.Time
}

// New returns a bus that keeps the last keep events.
func New(keep int) *Bus {
	return &Bus{subs: map[*Sub]struct{}{}, recent: make([]Event, 0, keep), now: time.Now}
}

// Publish stamps e with time and sequence and delivers it. It never
// blocks: a subscriber that falls behind by more than its buffer loses
// events and is told how many on its next read.
//
// The agent an event is about is its Agent slot, which is what
// agents/N/events filters on; a field named agent would never get there
// and would name the key twice in the line, so Publish moves it into the
// slot (when the slot is empty) and drops it.
func (b *Bus) Publish(e Event) Event {
	e = agentInSlot(e)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e.Seq = b.seq
	if e.Time.IsZero() {
		e.Time = b.now()
	}
	if cap(b.recent) > 0 {
		if len(b.recent) < cap(b.recent) {
			b.recent = append(b.recent, e)
		} else {
			b.recent[b.next] = e
			b.next = (b.next + 1) % cap(b.recent)
		}
	}
	for s := range b.subs {
		if s.filter != nil && !s.filter(e) {
			continue
		}
		select {
		case s.ch <- e:
		default:
			s.lost++
		}
	}
	return e
}

// Recent returns the kept events that pass filter, oldest first.
func (b *Bus) Recent(filter func(Event) bool) []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Event, 0, len(b.recent))
	n := len(b.recent)
	for i := 0; i < n; i++ {
		e := b.recent[(b.next+i)%n]
		if filter == nil || filter(e) {
			out = append(out, e)
		}
	}
	return out
}

// Sub is one subscriber. It implements fs.Stream, so an events file is a
// Subscribe call.
type Sub struct {
	b      *Bus
	filter func(Event) bool
	ch     chan Event
	lost   int // guarded by b.mu
	once   sync.Once
	done   chan struct{}
}

// Subscribe registers a subscriber for events passing filter (nil: all),
// buffering up to buf events.
func (b *Bus) Subscribe(filter func(Event) bool, buf int) *Sub {
	s := &Sub{b: b, filter: filter, ch: make(chan Event, buf), done: make(chan struct{})}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// SubscribeFor is Subscribe for a file read by the user uid: it also
// leaves out private events that are not theirs (see Event.VisibleTo).
// Every events file a user can open is made with it.
func (b *Bus) SubscribeFor(uid uint32, filter func(Event) bool, buf int) *Sub {
	return b.Subscribe(func(e Event) bool {
		return e.VisibleTo(uid) && (filter == nil || filter(e))
	}, buf)
}

// C is the subscriber's channel, for engines that select on it.
func (s *Sub) C() <-chan Event { return s.ch }

// Next blocks for at least one event and returns every event queued, as
// lines. A loss since the last read comes first as a kind=lost line.
func (s *Sub) Next(ctx context.Context) ([]byte, error) {
	var e Event
	select {
	case e = <-s.ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.done:
		return nil, context.Canceled
	}
	var b strings.Builder
	s.b.mu.Lock()
	lost := s.lost
	s.lost = 0
	s.b.mu.Unlock()
	if lost > 0 {
		b.WriteString(Event{Time: e.Time, Seq: e.Seq, Source: "bus", Kind: "lost", Fields: []Field{F("count", lost)}}.Line())
	}
	b.WriteString(e.Line())
	for {
		select {
		case e = <-s.ch:
			b.WriteString(e.Line())
		default:
			return []byte(b.String()), nil
		}
	}
}

// Backlog is the kept events (Bus.Recent) that pass the subscriber's
// filter, as lines, oldest first: what the snapshot form of an events
// file shows (fs.Backlogger).
func (s *Sub) Backlog() []byte {
	var b strings.Builder
	for _, e := range s.b.Recent(s.filter) {
		b.WriteString(e.Line())
	}
	return []byte(b.String())
}

// Close unsubscribes and wakes a blocked Next.
func (s *Sub) Close() error {
	s.once.Do(func() {
		s.b.mu.Lock()
		delete(s.b.subs, s)
		s.b.mu.Unlock()
		close(s.done)
	})
	return nil
}

// Seq is the number of events published so far.
func (b *Bus) Seq() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq
}
