package procconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Constants of include/uapi/linux/{netlink,connector,cn_proc}.h that
// golang.org/x/sys does not carry.
const (
	cnIdxProc = 1
	cnValProc = 1

	mcastListen = 1 // PROC_CN_MCAST_LISTEN
	mcastIgnore = 2 // PROC_CN_MCAST_IGNORE

	nlmsgNoop    = 0x1
	nlmsgError   = 0x2
	nlmsgDone    = 0x3
	nlmsgOverrun = 0x4

	sizeofNlmsghdr  = 16
	sizeofCnMsg     = 20
	sizeofEventHead = 16 // what, cpu, timestamp_ns
	sizeofProcEvent = 40 // head + largest union member (exit, comm)

	procEventNone        = 0x00000000
	procEventFork        = 0x00000001
	procEventExec        = 0x00000002
	procEventUID         = 0x00000004
	procEventGID         = 0x00000040
	procEventSid         = 0x00000080
	procEventPtrace      = 0x00000100
	procEventComm        = 0x00000200
	procEventNonzeroExit = 0x20000000 // 6.6+: a filter flag on subscribe, never sent as what
	procEventCoredump    = 0x40000000
	procEventExit        = 0x80000000
)

var ne = binary.NativeEndian

// ErrMalformed is wrapped by every error Parse returns for bytes that do
// not follow the layout.
var ErrMalformed = errors.New("procconn: malformed message")

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// ack is the kernel's answer to a subscription request.
type ack struct {
	seq, ack uint32
	err      uint32 // a positive errno, 0 for success
}

// clock returns the realtime and monotonic clocks read together, for
// converting kernel timestamps to wall time.
type clock func() (time.Time, time.Duration)

// Parse decodes one datagram received from the proc connector. It may
// hold several netlink messages. Acknowledgements, no-ops, other
// connector users' messages and event kinds this package does not know
// are skipped. An NLMSG_OVERRUN message becomes a Lost event. On error
// the events decoded before the bad message are returned with it.
func Parse(b []byte) ([]Event, error) {
	evs, _, err := parse(b, now)
	return evs, err
}

func parse(b []byte, clk clock) (evs []Event, acks []ack, err error) {
	var (
		wall   time.Time
		mono   time.Duration
		haveTS bool
	)
	toWall := func(ts time.Duration) time.Time {
		if !haveTS {
			wall, mono = clk()
			haveTS = true
		}
		return wall.Add(ts - mono)
	}
	for off := 0; off < len(b); {
		at, rest := off, b[off:]
		if len(rest) < sizeofNlmsghdr {
			return evs, acks, malformed("%d trailing bytes at offset %d, shorter than a netlink header", len(rest), off)
		}
		n := int(ne.Uint32(rest[0:4]))
		typ := ne.Uint16(rest[4:6])
		if n < sizeofNlmsghdr || n > len(rest) {
			return evs, acks, malformed("nlmsg_len %d at offset %d with %d bytes left", n, off, len(rest))
		}
		payload := rest[sizeofNlmsghdr:n]
		// NLMSG_ALIGN: messages start on 4-byte boundaries; the last one
		// may omit its padding.
		off += (n + 3) &^ 3

		switch typ {
		case nlmsgNoop:
			continue
		case nlmsgError:
			if len(payload) < 4 {
				return evs, acks, malformed("NLMSG_ERROR with %d bytes", len(payload))
			}
			if e := int32(ne.Uint32(payload)); e != 0 {
				return evs, acks, fmt.Errorf("procconn: netlink error: %w", syscall.Errno(-e))
			}
			continue
		case nlmsgOverrun:
			evs = append(evs, Event{Kind: Lost, Time: time.Now()})
			continue
		}
		// The connector sends its messages as NLMSG_DONE; anything else
		// is read the same way.
		ev, a, ok, err := parseCn(payload, toWall)
		if err != nil {
			return evs, acks, fmt.Errorf("%w (message at offset %d)", err, at)
		}
		if a != nil {
			acks = append(acks, *a)
		}
		if ok {
			evs = append(evs, ev)
		}
	}
	return evs, acks, nil
}

// parseCn decodes one cn_msg carrying a proc_event.
func parseCn(p []byte, toWall func(time.Duration) time.Time) (ev Event, a *ack, ok bool, err error) {
	if len(p) < sizeofCnMsg {
		return ev, nil, false, malformed("cn_msg of %d bytes", len(p))
	}
	idx, val := ne.Uint32(p[0:4]), ne.Uint32(p[4:8])
	seq, ackn := ne.Uint32(p[8:12]), ne.Uint32(p[12:16])
	dlen := int(ne.Uint16(p[16:18]))
	data := p[sizeofCnMsg:]
	if dlen > len(data) {
		return ev, nil, false, malformed("cn_msg len %d with %d bytes of data", dlen, len(data))
	}
	data = data[:dlen]
	if idx != cnIdxProc || val != cnValProc {
		return ev, nil, false, nil // another connector user
	}
	if len(data) < sizeofEventHead {
		return ev, nil, false, malformed("proc_event of %d bytes", len(data))
	}
	what := ne.Uint32(data[0:4])
	ev.CPU = int(int32(ne.Uint32(data[4:8]))) // the ack says cpu -1
	ev.Timestamp = time.Duration(ne.Uint64(data[8:16]))
	ev.Time = toWall(ev.Timestamp)
	d := data[sizeofEventHead:]

	// need checks that the union holds at least n bytes for this kind.
	need := func(n int) error {
		if len(d) < n {
			return malformed("event %#x with %d bytes of data, need %d", what, len(d), n)
		}
		return nil
	}
	u32 := func(i int) uint32 { return ne.Uint32(d[4*i:]) }
	pid := func(i int) int { return int(int32(u32(i))) }

	switch what {
	case procEventNone:
		if err := need(4); err != nil {
			return ev, nil, false, err
		}
		return ev, &ack{seq: seq, ack: ackn, err: u32(0)}, false, nil
	case procEventFork:
		if err := need(16); err != nil {
			return ev, nil, false, err
		}
		ev.Kind = Fork
		ev.ParentPid, ev.ParentTgid = pid(0), pid(1)
		ev.Pid, ev.Tgid = pid(2), pid(3)
	case procEventExec, procEventSid:
		if err := need(8); err != nil {
			return ev, nil, false, err
		}
		ev.Kind = Exec
		if what == procEventSid {
			ev.Kind = Sid
		}
		ev.Pid, ev.Tgid = pid(0), pid(1)
	case procEventUID, procEventGID:
		if err := need(16); err != nil {
			return ev, nil, false, err
		}
		ev.Pid, ev.Tgid = pid(0), pid(1)
		if what == procEventUID {
			ev.Kind, ev.Ruid, ev.Euid = UID, u32(2), u32(3)
		} else {
			ev.Kind, ev.Rgid, ev.Egid = GID, u32(2), u32(3)
		}
	case procEventPtrace:
		if err := need(16); err != nil {
			return ev, nil, false, err
		}
		ev.Kind = Ptrace
		ev.Pid, ev.Tgid = pid(0), pid(1)
		ev.ParentPid, ev.ParentTgid = pid(2), pid(3)
	case procEventComm:
		if err := need(8); err != nil {
			return ev, nil, false, err
		}
		ev.Kind = Comm
		ev.Pid, ev.Tgid = pid(0), pid(1)
		name := d[8:min(len(d), 8+16)]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		ev.Comm = string(name)
	case procEventCoredump:
		// parent_pid/parent_tgid were added in 4.x; older kernels send
		// only the first two fields.
		if err := need(8); err != nil {
			return ev, nil, false, err
		}
		ev.Kind = Coredump
		ev.Pid, ev.Tgid = pid(0), pid(1)
		if len(d) >= 16 {
			ev.ParentPid, ev.ParentTgid = pid(2), pid(3)
		}
	case procEventExit, procEventNonzeroExit:
		// Likewise parent_pid/parent_tgid (4.x).
		if err := need(16); err != nil {
			return ev, nil, false, err
		}
		ev.Kind = Exit
		ev.Pid, ev.Tgid = pid(0), pid(1)
		ev.ExitCode, ev.ExitSignal = u32(2), u32(3)
		if len(d) >= 24 {
			ev.ParentPid, ev.ParentTgid = pid(4), pid(5)
		}
	default:
		return ev, nil, false, nil // a kind added after this was written
	}
	return ev, nil, true, nil
}
