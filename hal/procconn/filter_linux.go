//go:build linux

package procconn

import (
	"encoding/binary"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The filter is a classic BPF socket filter that the kernel runs on each
// datagram before it queues it on the socket: what it drops costs no
// wakeup, no recvmsg and no parsing. It drops what no reader in this
// repository uses and what a threaded host sends most of:
//
//   - Fork events of a new thread (child pid ≠ child tgid);
//   - Exit events of a thread other than the leader (pid ≠ tgid);
//   - Comm events (a task renaming itself: threaded programs name every
//     thread).
//
// Everything else passes: process forks and exits, exec, uid, gid, sid,
// ptrace, coredump, the acks (PROC_EVENT_NONE), and any message too short
// to hold a fork event's fields (the parser judges those). The kernel's
// proc connector sends one event per datagram, so the offsets below are
// those of the first and only message.
//
// Offsets: nlmsghdr (16 bytes) + cn_msg (20) = 36, proc_event.what; the
// event's data at 36+16 = 52: fork {parent_pid, parent_tgid, child_pid
// (60), child_tgid (64)}, exit {process_pid (52), process_tgid (56), ...}.
// A BPF_ABS word load reads big-endian and the fields are in host order,
// so constants are compared as their host-order bytes read big-endian,
// and pid and tgid, loaded the same way, are compared with each other.
const (
	offWhat      = sizeofNlmsghdr + sizeofCnMsg
	offData      = offWhat + sizeofEventHead
	offChildPid  = offData + 8
	offChildTgid = offData + 12
	offExitPid   = offData
	offExitTgid  = offData + 4
	minFiltered  = offChildTgid + 4
)

// beHost is v's host-order bytes read big-endian: what a BPF_ABS load of
// a host-order field holding v gives.
func beHost(v uint32) uint32 {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return binary.BigEndian.Uint32(b[:])
}

// threadFilter is the program (see above). Jump offsets count the
// instructions skipped after the jump.
func threadFilter() []unix.SockFilter {
	const (
		accept = 14
		drop   = 15
	)
	j := func(at, to int) uint8 { return uint8(to - at - 1) }
	return []unix.SockFilter{
		0:      {Code: unix.BPF_LD | unix.BPF_W | unix.BPF_LEN},
		1:      {Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, K: minFiltered, Jt: 0, Jf: j(1, accept)},
		2:      {Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offWhat},
		3:      {Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: beHost(procEventFork), Jt: j(3, 6), Jf: 0},
		4:      {Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: beHost(procEventExit), Jt: j(4, 10), Jf: 0},
		5:      {Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: beHost(procEventComm), Jt: j(5, drop), Jf: j(5, accept)},
		6:      {Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offChildTgid},
		7:      {Code: unix.BPF_MISC | unix.BPF_TAX},
		8:      {Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offChildPid},
		9:      {Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_X, Jt: j(9, accept), Jf: j(9, drop)},
		10:     {Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offExitTgid},
		11:     {Code: unix.BPF_MISC | unix.BPF_TAX},
		12:     {Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offExitPid},
		13:     {Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_X, Jt: j(13, accept), Jf: j(13, drop)},
		accept: {Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
		drop:   {Code: unix.BPF_RET | unix.BPF_K, K: 0},
	}
}

// SetFilter attaches (on) or detaches (off) the socket filter that drops
// thread forks, thread exits and comm events in the kernel (see
// threadFilter). Listen attaches it; a reader that wants those events
// detaches it. Events already queued are not filtered again.
func (c *Conn) SetFilter(on bool) error {
	var err error
	cerr := c.rc.Control(func(fd uintptr) {
		if !on {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
			if err == unix.ENOENT { // none attached
				err = nil
			}
			return
		}
		prog := threadFilter()
		err = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: unsafe.SliceData(prog)})
	})
	if cerr != nil {
		return fmt.Errorf("procconn: filter: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("procconn: filter: %w", err)
	}
	return nil
}

// open is every Conn that is not closed, for SetFilterAll.
var open sync.Map // *Conn -> struct{}

// SetFilterAll sets the filter of every open Conn of this process: for a
// bench that measures the filter off and on inside a daemon whose Conn it
// cannot reach. The first error is returned; the other Conns are still
// set.
func SetFilterAll(on bool) error {
	var first error
	open.Range(func(k, _ any) bool {
		if err := k.(*Conn).SetFilter(on); err != nil && first == nil {
			first = err
		}
		return true
	})
	return first
}
