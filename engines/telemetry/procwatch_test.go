package telemetry

import (
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"aiosfs/engines/bus"
	"aiosfs/hal/procconn"
)

// fakeConn hands out queued batches, then blocks until closed.
type fakeConn struct {
	batches chan []procconn.Event
	once    sync.Once
	closed  chan struct{}
}

func newFakeConn(batches ...[]procconn.Event) *fakeConn {
	c := &fakeConn{batches: make(chan []procconn.Event, len(batches)), closed: make(chan struct{})}
	for _, b := range batches {
		c.batches <- b
	}
	return c
}

func (c *fakeConn) Read() ([]procconn.Event, error) {
	select {
	case b := <-c.batches:
		return b, nil
	case <-c.closed:
		return nil, io.EOF
	}
}

func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func TestWatchProc(t *testing.T) {
	b := bus.New(100)
	g := &fakeGroup{pids: []int{100}}
	fp := newFakeProc()
	fp.set(process(100, 0, 0, 0))
	s := New(Config{Proc: fp, Bus: b}, func() []Target { return []Target{{ID: 7, Group: g}} })
	s.Tick(at(0))

	ev := func(k procconn.Kind, pid, tgid int) procconn.Event {
		return procconn.Event{Kind: k, Time: at(1), Pid: pid, Tgid: tgid}
	}
	fork := func(parent, child, childTgid int) procconn.Event {
		e := ev(procconn.Fork, child, childTgid)
		e.ParentPid, e.ParentTgid = parent, parent
		return e
	}
	uid := ev(procconn.UID, 200, 200)
	uid.Ruid, uid.Euid = 1000, 0
	gid := ev(procconn.GID, 200, 200)
	gid.Rgid, gid.Egid = 1000, 0
	exit3 := ev(procconn.Exit, 200, 200)
	exit3.ExitCode = 3 << 8
	killed := ev(procconn.Exit, 999, 999)
	killed.ExitCode = 9
	segv := ev(procconn.Exit, 201, 201)
	segv.ExitCode = 11 | 0x80 // core dumped
	threadExit := ev(procconn.Exit, 202, 200)

	conn := newFakeConn(
		[]procconn.Event{
			fork(100, 200, 200), // agent 7's process forks: published, 200 joins
			fork(200, 202, 200), // a thread of 200: not published
			fork(500, 501, 501), // unrelated: not published
			ev(procconn.Exec, 200, 200),
			ev(procconn.Exec, 501, 501), // unrelated
			uid,
			gid,
		},
		[]procconn.Event{
			fork(200, 201, 201), // grandchild joins too
			threadExit,
			exit3,
			segv,
			killed, // unrelated: not published, but remembered
			ev(procconn.Exit, 501, 501),
			{Kind: procconn.Lost, Time: at(1)},
		},
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.WatchProc(ctx, conn); close(done) }()

	want := []string{
		"source=proc kind=fork agent=7 pid=200 ppid=100",
		"source=proc kind=exec agent=7 pid=200",
		"source=proc kind=uid agent=7 pid=200 ruid=1000 euid=0",
		"source=proc kind=gid agent=7 pid=200 rgid=1000 egid=0",
		"source=proc kind=fork agent=7 pid=201 ppid=200",
		"source=proc kind=exit agent=7 pid=200 status=3",
		"source=proc kind=exit agent=7 pid=201 signal=SEGV core=1",
		"source=proc kind=lost agent=0",
	}
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		got = got[:0]
		for _, e := range b.Recent(nil) {
			line := strings.TrimSpace(e.Line())
			got = append(got, line[strings.Index(line, "source="):])
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WatchProc did not return when its context ended")
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("published:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range b.Recent(nil) {
		if e.Kind != "lost" && !e.Time.Equal(at(1)) {
			t.Errorf("event time %v, want the kernel's %v", e.Time, at(1))
		}
	}

	if a := s.AgentOf(201); a != 0 {
		t.Errorf("AgentOf(201) = %d after it exited", a)
	}
	if a := s.AgentOf(501); a != 0 {
		t.Errorf("AgentOf(501) = %d for an unrelated process", a)
	}
	for pid, want := range map[int]string{200: "exit 3", 201: "signal SEGV", 999: "signal KILL", 501: "exit 0"} {
		if got, ok := s.ExitOf(pid); !ok || got != want {
			t.Errorf("ExitOf(%d) = %q %v, want %q", pid, got, ok, want)
		}
	}
	if _, ok := s.ExitOf(100); ok {
		t.Error("ExitOf a live process")
	}
	if _, ok := s.ExitOf(202); ok {
		t.Error("a thread's exit was remembered as a process exit")
	}
}

func TestWatchProcForkJoinsAgent(t *testing.T) {
	g := &fakeGroup{pids: []int{100}}
	fp := newFakeProc()
	fp.set(process(100, 0, 0, 0))
	s := New(Config{Proc: fp}, func() []Target { return []Target{{ID: 3, Group: g}} }) // no bus
	s.Tick(at(0))
	e := procconn.Event{Kind: procconn.Fork, Pid: 300, Tgid: 300, ParentPid: 101, ParentTgid: 100}
	s.procEvent(&e)
	if a := s.AgentOf(300); a != 3 {
		t.Fatalf("forked child belongs to %d, want 3", a)
	}
	// The child survives the next pass even if the group listing was
	// read before it existed, and goes once passes stop finding it.
	s.Tick(at(1))
	if a := s.AgentOf(300); a != 3 {
		t.Fatalf("after one pass the child belongs to %d", a)
	}
	s.Tick(at(2))
	s.Tick(at(3))
	if a := s.AgentOf(300); a != 0 {
		t.Fatalf("a child never listed by its group still belongs to %d", a)
	}
}

func TestWatchProcReturnsOnReadError(t *testing.T) {
	s := New(Config{Proc: newFakeProc()}, nil)
	conn := newFakeConn()
	conn.Close()
	done := make(chan struct{})
	go func() { s.WatchProc(context.Background(), conn); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WatchProc kept reading a failed connection")
	}
}

func TestExitTableBounded(t *testing.T) {
	s := New(Config{Proc: newFakeProc()}, nil)
	for pid := 1; pid <= exitKeep+10; pid++ {
		e := procconn.Event{Kind: procconn.Exit, Pid: pid, Tgid: pid, ExitCode: uint32(pid%256) << 8}
		s.procEvent(&e)
	}
	if len(s.exits) != exitKeep {
		t.Fatalf("exit table holds %d", len(s.exits))
	}
	if _, ok := s.ExitOf(1); ok {
		t.Fatal("oldest exit kept")
	}
	if got, _ := s.ExitOf(exitKeep + 10); got != "exit "+strconv.Itoa((exitKeep+10)%256) {
		t.Fatalf("newest exit %q", got)
	}
}
