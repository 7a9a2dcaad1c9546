package procconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"syscall"
	"testing"
	"time"
)

// The builders below lay bytes out as the kernel does (see the package
// comment): nlmsghdr, cn_msg, proc_event, host-endian, each netlink
// message padded to 4 bytes, each proc_event padded to sizeof (40)
// because cn_proc.c always sends msg->len = sizeof(struct proc_event).

// nlmsg wraps payload in a netlink header of type typ, padded to 4.
func nlmsg(typ uint16, payload []byte) []byte {
	b := make([]byte, sizeofNlmsghdr, sizeofNlmsghdr+len(payload)+3)
	binary.NativeEndian.PutUint32(b[0:], uint32(sizeofNlmsghdr+len(payload)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint32(b[8:], 7) // nlmsg_seq: ignored
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// cnmsg is struct cn_msg followed by data.
func cnmsg(idx, val, seq, ack uint32, data []byte) []byte {
	b := make([]byte, sizeofCnMsg, sizeofCnMsg+len(data))
	binary.NativeEndian.PutUint32(b[0:], idx)
	binary.NativeEndian.PutUint32(b[4:], val)
	binary.NativeEndian.PutUint32(b[8:], seq)
	binary.NativeEndian.PutUint32(b[12:], ack)
	binary.NativeEndian.PutUint16(b[16:], uint16(len(data)))
	return append(b, data...)
}

// procEvent is struct proc_event: what, cpu, timestamp_ns and the union
// members in order (uint32 or int32 each, or a [16]byte comm), padded to
// 40 bytes.
func procEvent(what, cpu uint32, ts time.Duration, fields ...any) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.NativeEndian, what)
	binary.Write(&b, binary.NativeEndian, cpu)
	binary.Write(&b, binary.NativeEndian, uint64(ts))
	for _, f := range fields {
		if err := binary.Write(&b, binary.NativeEndian, f); err != nil {
			panic(err)
		}
	}
	for b.Len() < sizeofProcEvent {
		b.WriteByte(0)
	}
	return b.Bytes()
}

// event is one kernel event datagram: NLMSG_DONE, proc connector id.
func event(what uint32, fields ...any) []byte {
	return nlmsg(nlmsgDone, cnmsg(cnIdxProc, cnValProc, 1, 0, procEvent(what, 1, testTS, fields...)))
}

func comm(s string) (c [16]byte) {
	copy(c[:], s)
	return c
}

// The fixed clock: realtime 10000s when monotonic is 500s, so a kernel
// timestamp of 400s is wall time 9900s.
var (
	testTS   = 400 * time.Second
	testWall = time.Unix(9900, 0)
)

func fixedClock() (time.Time, time.Duration) { return time.Unix(10000, 0), 500 * time.Second }

func parseFixed(t *testing.T, b []byte) ([]Event, []ack, error) {
	t.Helper()
	return parse(b, fixedClock)
}

func TestParseKinds(t *testing.T) {
	base := Event{Time: testWall, Timestamp: testTS, CPU: 1}
	with := func(f func(*Event)) Event { e := base; f(&e); return e }
	for _, c := range []struct {
		name string
		in   []byte
		want Event
	}{
		{"fork", event(procEventFork, int32(100), int32(100), int32(200), int32(200)),
			with(func(e *Event) { e.Kind, e.ParentPid, e.ParentTgid, e.Pid, e.Tgid = Fork, 100, 100, 200, 200 })},
		{"thread", event(procEventFork, int32(1), int32(1), int32(201), int32(200)),
			with(func(e *Event) { e.Kind, e.ParentPid, e.ParentTgid, e.Pid, e.Tgid = Fork, 1, 1, 201, 200 })},
		{"exec", event(procEventExec, int32(200), int32(200)),
			with(func(e *Event) { e.Kind, e.Pid, e.Tgid = Exec, 200, 200 })},
		{"uid", event(procEventUID, int32(200), int32(200), uint32(1000), uint32(0)),
			with(func(e *Event) { e.Kind, e.Pid, e.Tgid, e.Ruid, e.Euid = UID, 200, 200, 1000, 0 })},
		{"gid", event(procEventGID, int32(200), int32(200), uint32(100), uint32(65534)),
			with(func(e *Event) { e.Kind, e.Pid, e.Tgid, e.Rgid, e.Egid = GID, 200, 200, 100, 65534 })},
		{"sid", event(procEventSid, int32(200), int32(200)),
			with(func(e *Event) { e.Kind, e.Pid, e.Tgid = Sid, 200, 200 })},
		{"ptrace", event(procEventPtrace, int32(200), int32(200), int32(300), int32(300)),
			with(func(e *Event) { e.Kind, e.Pid, e.Tgid, e.ParentPid, e.ParentTgid = Ptrace, 200, 200, 300, 300 })},
		{"comm", event(procEventComm, int32(201), int32(200), comm("worker-1")),
			with(func(e *Event) { e.Kind, e.Pid, e.Tgid, e.Comm = Comm, 201, 200, "worker-1" })},
		{"comm 15 bytes", event(procEventComm, int32(201), int32(200), comm("abcdefghijklmno")),
			with(func(e *Event) { e.Kind, e.Pid, e.Tgid, e.Comm = Comm, 201, 200, "abcdefghijklmno" })},
		{"coredump", event(procEventCoredump, int32(200), int32(200), int32(100), int32(100)),
			with(func(e *Event) { e.Kind, e.Pid, e.Tgid, e.ParentPid, e.ParentTgid = Coredump, 200, 200, 100, 100 })},
		{"exit 3", event(procEventExit, int32(200), int32(200), uint32(3<<8), uint32(17), int32(100), int32(100)),
			with(func(e *Event) {
				e.Kind, e.Pid, e.Tgid, e.ExitCode, e.ExitSignal, e.ParentPid, e.ParentTgid = Exit, 200, 200, 0x300, 17, 100, 100
			})},
		{"exit thread", event(procEventExit, int32(201), int32(200), uint32(0), uint32(0xffffffff), int32(100), int32(100)),
			with(func(e *Event) {
				e.Kind, e.Pid, e.Tgid, e.ExitSignal, e.ParentPid, e.ParentTgid = Exit, 201, 200, 0xffffffff, 100, 100
			})},
	} {
		t.Run(c.name, func(t *testing.T) {
			evs, acks, err := parseFixed(t, c.in)
			if err != nil || len(acks) != 0 {
				t.Fatalf("parse: %v, acks %v", err, acks)
			}
			if len(evs) != 1 || !evs[0].Time.Equal(c.want.Time) {
				t.Fatalf("got %+v, want [%+v]", evs, c.want)
			}
			evs[0].Time = c.want.Time
			if !reflect.DeepEqual(evs[0], c.want) {
				t.Errorf("got  %+v\nwant %+v", evs[0], c.want)
			}
		})
	}
}

// Old kernels (before parent fields were added to exit and coredump)
// send a shorter union; the cn_msg len says so.
func TestParseOldLayouts(t *testing.T) {
	short := func(what uint32, fields ...any) []byte {
		pe := procEvent(what, 0, testTS, fields...)
		return nlmsg(nlmsgDone, cnmsg(cnIdxProc, cnValProc, 1, 0, pe[:sizeofEventHead+4*len(fields)]))
	}
	evs, _, err := parseFixed(t, append(
		short(procEventExit, int32(5), int32(5), uint32(9), uint32(17)),
		short(procEventCoredump, int32(6), int32(6))...))
	if err != nil || len(evs) != 2 {
		t.Fatalf("got %v, %v", evs, err)
	}
	if e := evs[0]; e.Kind != Exit || e.Pid != 5 || e.ExitCode != 9 || e.ExitSignal != 17 || e.ParentPid != 0 {
		t.Errorf("exit: %+v", e)
	}
	if e := evs[1]; e.Kind != Coredump || e.Pid != 6 || e.ParentPid != 0 {
		t.Errorf("coredump: %+v", e)
	}
}

func TestParseDatagram(t *testing.T) {
	// A no-op of odd length (17: padded to 20), two events, a success
	// NLMSG_ERROR, an ack, another connector's message, an event kind
	// from the future and an overrun marker, all in one datagram.
	noop := nlmsg(nlmsgNoop, []byte{0xff})
	if len(noop) != 20 || binary.NativeEndian.Uint32(noop) != 17 {
		t.Fatalf("noop builder: len %d", len(noop))
	}
	var b []byte
	b = append(b, noop...)
	b = append(b, event(procEventFork, int32(1), int32(1), int32(2), int32(2))...)
	b = append(b, nlmsg(nlmsgError, make([]byte, 20))...) // error 0: an ack
	b = append(b, nlmsg(nlmsgDone, cnmsg(cnIdxProc, cnValProc, 42, 43, procEvent(procEventNone, 0xffffffff, testTS, uint32(0))))...)
	b = append(b, nlmsg(nlmsgDone, cnmsg(2, 1, 0, 0, []byte("cifs")))...)
	b = append(b, event(0x00000800, int32(9), int32(9))...)
	b = append(b, event(procEventExec, int32(2), int32(2))...)
	b = append(b, nlmsg(nlmsgOverrun, nil)...)
	evs, acks, err := parseFixed(t, b)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []Kind
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	if want := []Kind{Fork, Exec, Lost}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
	if want := []ack{{seq: 42, ack: 43, err: 0}}; !reflect.DeepEqual(acks, want) {
		t.Errorf("acks %+v, want %+v", acks, want)
	}
	// Parse drops acks; the exported path sees only events.
	if evs, err := Parse(b); err != nil || len(evs) != 3 {
		t.Errorf("Parse: %v, %v", evs, err)
	}
}

func TestParseAckError(t *testing.T) {
	b := nlmsg(nlmsgDone, cnmsg(cnIdxProc, cnValProc, 5, 6, procEvent(procEventNone, 0xffffffff, testTS, uint32(syscall.EPERM))))
	evs, acks, err := parseFixed(t, b)
	if err != nil || len(evs) != 0 || len(acks) != 1 || acks[0].err != uint32(syscall.EPERM) {
		t.Errorf("got %v %+v %v", evs, acks, err)
	}
}

func TestParseNetlinkError(t *testing.T) {
	p := make([]byte, 20)
	errno := -int32(syscall.ENODEV) // NLMSG_ERROR carries a negative errno
	binary.NativeEndian.PutUint32(p, uint32(errno))
	b := append(event(procEventExec, int32(2), int32(2)), nlmsg(nlmsgError, p)...)
	evs, _, err := parseFixed(t, b)
	if !errors.Is(err, syscall.ENODEV) || len(evs) != 1 {
		t.Errorf("got %v, %v; want the exec event and ENODEV", evs, err)
	}
}

func TestParseMalformed(t *testing.T) {
	good := event(procEventExit, int32(200), int32(200), uint32(0), uint32(17), int32(1), int32(1))
	setLen := func(b []byte, n uint32) []byte {
		b = bytes.Clone(b)
		binary.NativeEndian.PutUint32(b, n)
		return b
	}
	setCnLen := func(b []byte, n uint16) []byte {
		b = bytes.Clone(b)
		binary.NativeEndian.PutUint16(b[sizeofNlmsghdr+16:], n)
		return b
	}
	for name, b := range map[string][]byte{
		"short header":      good[:10],
		"nlmsg_len too big": setLen(good, uint32(len(good)+4)),
		"nlmsg_len < hdr":   setLen(good, 8),
		"short cn_msg":      nlmsg(nlmsgDone, make([]byte, 12)),
		"cn len too big":    setCnLen(good, sizeofProcEvent+1),
		"short proc_event":  nlmsg(nlmsgDone, cnmsg(cnIdxProc, cnValProc, 0, 0, make([]byte, 8))),
		"short exit":        setLen(setCnLen(good, sizeofEventHead+12), uint32(len(good))),
		"short fork":        nlmsg(nlmsgDone, cnmsg(cnIdxProc, cnValProc, 0, 0, procEvent(procEventFork, 0, 0)[:sizeofEventHead+8])),
		"short ack":         nlmsg(nlmsgDone, cnmsg(cnIdxProc, cnValProc, 0, 0, procEvent(procEventNone, 0, 0)[:sizeofEventHead])),
		"short nlmsg error": nlmsg(nlmsgError, []byte{1}),
		"trailing garbage":  append(bytes.Clone(good), 1, 2, 3),
	} {
		if _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	// The events before a bad message are still returned.
	evs, err := Parse(append(bytes.Clone(good), good[:20]...))
	if len(evs) != 1 || err == nil {
		t.Errorf("partial: %v, %v", evs, err)
	}
}

func TestExitStatus(t *testing.T) {
	for _, c := range []struct {
		code   uint32
		status int
		sig    syscall.Signal
		core   bool
	}{
		{0, 0, 0, false},
		{3 << 8, 3, 0, false},
		{255 << 8, 255, 0, false},
		{uint32(syscall.SIGTERM), -1, syscall.SIGTERM, false},
		{uint32(syscall.SIGKILL), -1, syscall.SIGKILL, false},
		{uint32(syscall.SIGSEGV) | 0x80, -1, syscall.SIGSEGV, true},
	} {
		e := Event{Kind: Exit, ExitCode: c.code}
		sig, ok := e.Signaled()
		if e.ExitStatus() != c.status || sig != c.sig || ok != (c.sig != 0) || e.CoreDumped() != c.core {
			t.Errorf("code %#x: status %d signaled %v,%v core %v", c.code, e.ExitStatus(), sig, ok, e.CoreDumped())
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		Unknown: "unknown", Fork: "fork", Exec: "exec", UID: "uid", GID: "gid", Sid: "sid",
		Ptrace: "ptrace", Comm: "comm", Coredump: "coredump", Exit: "exit", Lost: "lost", 99: "kind(99)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d) = %q, want %q", int(k), got, want)
		}
	}
	e := Event{Kind: Exit, Pid: 5, Tgid: 5, ExitCode: 15, ExitSignal: 17, ParentPid: 1, ParentTgid: 1}
	if got, want := e.String(), "exit pid=5 tgid=5 code=0xf status=-1 ppid=1 ptgid=1 signal=15"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(event(procEventFork, int32(1), int32(1), int32(2), int32(2)))
	f.Add(event(procEventExit, int32(2), int32(2), uint32(3<<8), uint32(17), int32(1), int32(1)))
	f.Add(event(procEventComm, int32(2), int32(2), comm("x")))
	f.Add(append(nlmsg(nlmsgNoop, []byte{1}), event(procEventUID, int32(2), int32(2), uint32(1), uint32(1))...))
	f.Add(nlmsg(nlmsgError, make([]byte, 20)))
	f.Add(nlmsg(nlmsgDone, cnmsg(cnIdxProc, cnValProc, 1, 2, procEvent(procEventNone, 0, 0, uint32(1)))))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, acks, err := parse(b, fixedClock)
		for _, e := range evs {
			if e.Kind == Unknown || e.Kind > Lost {
				t.Fatalf("event of kind %v", e.Kind)
			}
			_ = e.String()
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			var errno syscall.Errno
			if !errors.As(err, &errno) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
		}
		_ = acks
	})
}
