// Package procconn receives process events (fork, exec, uid/gid/sid
// changes, ptrace, comm, coredump, exit) from the kernel's proc connector:
// a NETLINK_CONNECTOR socket subscribed to CN_IDX_PROC with
// PROC_CN_MCAST_LISTEN (drivers/connector/cn_proc.c). The telemetry engine
// uses it to learn of an agent's new processes and of exits (with their
// wait status) as they happen instead of at the next /proc scan.
//
// It is written on golang.org/x/sys/unix. The one maintained Go library
// that speaks the proc connector, vishvananda/netlink (ProcEventMonitor),
// decodes only fork/exec/exit/comm, does not wait for the kernel's answer
// to the subscription (so a refused or ignored subscription looks like
// silence), ends its stream on the first receive error (an ENOBUFS
// overrun included) and drags in its netns package; none of that fits an
// engine that must notice lost events and report a clear error.
//
// # Wire format
//
// All integers are host-endian. One datagram holds one or more netlink
// messages:
//
//	struct nlmsghdr {           // include/uapi/linux/netlink.h, 16 bytes
//		__u32 nlmsg_len;        // header + payload
//		__u16 nlmsg_type;       // the connector always sends NLMSG_DONE (3)
//		__u16 nlmsg_flags;
//		__u32 nlmsg_seq;
//		__u32 nlmsg_pid;        // sender port id: 0 is the kernel
//	};                          // next message at NLMSG_ALIGN(nlmsg_len), 4-byte aligned
//
//	struct cn_msg {             // include/uapi/linux/connector.h, 20 bytes
//		struct cb_id { __u32 idx, val; } id;  // CN_IDX_PROC = 1, CN_VAL_PROC = 1
//		__u32 seq;              // a per-cpu event counter (acks too, on current kernels)
//		__u32 ack;              // events: 0; ack: the request's ack + 1
//		__u16 len;              // bytes of data[]
//		__u16 flags;
//		__u8  data[];           // struct proc_event, or the request's op
//	};
//
//	struct proc_event {         // include/uapi/linux/cn_proc.h, 40 bytes
//		__u32 what;             // PROC_EVENT_* (below)
//		__u32 cpu;
//		__u64 timestamp_ns;     // ktime_get_ns(): CLOCK_MONOTONIC, offset 8
//		union event_data {      // offset 16; pids are __kernel_pid_t (s32)
//			ack      { __u32 err; }
//			fork     { parent_pid, parent_tgid, child_pid, child_tgid; }
//			exec     { process_pid, process_tgid; }
//			id       { process_pid, process_tgid; ruid|rgid; euid|egid; }
//			sid      { process_pid, process_tgid; }
//			ptrace   { process_pid, process_tgid, tracer_pid, tracer_tgid; }
//			comm     { process_pid, process_tgid; char comm[16]; }
//			coredump { process_pid, process_tgid, parent_pid, parent_tgid; }
//			exit     { process_pid, process_tgid; __u32 exit_code, exit_signal;
//			           parent_pid, parent_tgid; }
//		} event_data;
//	};
//
// The cn_msg header is 20 bytes, so proc_event starts at byte 36 of the
// datagram and its u64 timestamp is not 8-byte aligned in the receive
// buffer: it is decoded field by field, never by casting.
//
// The subscription request is the same nlmsghdr + cn_msg carrying one
// __u32 op (PROC_CN_MCAST_LISTEN = 1, PROC_CN_MCAST_IGNORE = 2), sent to
// port 0 from the socket bound to group CN_IDX_PROC. The kernel answers
// with a PROC_EVENT_NONE "ack" event (event_data.ack.err: 0 or a positive
// errno) multicast to the whole group; only its cn_msg ack (request's
// ack + 1) tells whose it is.
//
// # Kernel behaviour worth knowing
//
//   - Events are per thread. Pid is the thread, Tgid the process; a
//     thread creation is a Fork with Pid != Tgid, and every thread's exit
//     is its own Exit event. Listen's socket filter drops both of
//     those, and comm events, before they are queued (Conn.SetFilter).
//   - Fork's parent is the child's real_parent, not the caller: for a new
//     thread (CLONE_THREAD) or CLONE_PARENT it is the caller's parent.
//   - Exit's ExitCode is task->exit_code, the raw wait status
//     (status<<8, or signal | 0x80 with core), while ExitSignal is the
//     signal the parent will be sent (SIGCHLD, usually; 0xffffffff, i.e.
//     -1, for a thread that is not the leader), not the killing signal.
//   - Pids are in the initial pid namespace, and the kernel silently
//     ignores a subscription from any other user or pid namespace: no
//     ack ever comes. Listen times out on that with an error.
//   - Until 6.6 subscribing needed CAP_NET_ADMIN (bind to the group or
//     the ack said EPERM); since 6.6 any user may listen.
//   - On overrun the socket reports ENOBUFS once and the events in
//     between are gone; Read turns that into one Lost event. Lost events
//     mean the caller must rescan /proc.
package procconn

import (
	"fmt"
	"syscall"
	"time"
)

// Kind is what happened.
type Kind int

const (
	Unknown  Kind = iota
	Fork          // a task was created: Pid/Tgid the child, ParentPid/ParentTgid its real parent
	Exec          // Pid/Tgid called execve
	UID           // Ruid/Euid changed
	GID           // Rgid/Egid changed
	Sid           // setsid
	Ptrace        // attach or detach: ParentPid/ParentTgid the tracer, 0 on detach
	Comm          // the task renamed itself (prctl PR_SET_NAME, /proc/self/comm)
	Coredump      // a core is being dumped: ParentPid/ParentTgid the parent
	Exit          // a task exited: ExitCode, ExitSignal, ParentPid/ParentTgid
	Lost          // the socket overran: events were dropped, rescan
)

var kindNames = [...]string{
	Unknown: "unknown", Fork: "fork", Exec: "exec", UID: "uid", GID: "gid",
	Sid: "sid", Ptrace: "ptrace", Comm: "comm", Coredump: "coredump",
	Exit: "exit", Lost: "lost",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Event is one process event. Fields not meaningful for Kind are zero.
type Event struct {
	Kind Kind
	// Time is the event's wall-clock time, converted from Timestamp
	// with the offset between the realtime and monotonic clocks at the
	// moment the datagram was parsed.
	Time time.Time
	// Timestamp is the kernel's ktime_get_ns() at the event
	// (CLOCK_MONOTONIC: since boot, not counting suspend).
	Timestamp time.Duration
	CPU       int

	Pid, Tgid             int // the thread and process the event is about
	ParentPid, ParentTgid int // Fork, Exit, Coredump: the parent; Ptrace: the tracer

	ExitCode   uint32 // Exit: the raw wait status; see ExitStatus and Signaled
	ExitSignal uint32 // Exit: the signal the parent is sent (SIGCHLD), not the cause

	Ruid, Euid uint32 // UID
	Rgid, Egid uint32 // GID
	Comm       string // Comm: the new name
}

// ExitStatus is the exit status of an Exit event (WEXITSTATUS), or -1
// when the task was killed by a signal.
func (e Event) ExitStatus() int {
	if e.ExitCode&0x7f != 0 {
		return -1
	}
	return int(e.ExitCode>>8) & 0xff
}

// Signaled reports the signal that killed the task of an Exit event
// (WIFSIGNALED, WTERMSIG).
func (e Event) Signaled() (syscall.Signal, bool) {
	sig := e.ExitCode & 0x7f
	if sig == 0 || sig == 0x7f { // 0x7f is a stop status, never an exit
		return 0, false
	}
	return syscall.Signal(sig), true
}

// CoreDumped reports whether the task of an Exit event dumped core
// (WCOREDUMP).
func (e Event) CoreDumped() bool {
	_, sig := e.Signaled()
	return sig && e.ExitCode&0x80 != 0
}

func (e Event) String() string {
	s := fmt.Sprintf("%s pid=%d tgid=%d", e.Kind, e.Pid, e.Tgid)
	switch e.Kind {
	case Fork, Coredump:
		s += fmt.Sprintf(" ppid=%d ptgid=%d", e.ParentPid, e.ParentTgid)
	case Ptrace:
		s += fmt.Sprintf(" tracer=%d tracertgid=%d", e.ParentPid, e.ParentTgid)
	case Exit:
		s += fmt.Sprintf(" code=%#x status=%d ppid=%d ptgid=%d", e.ExitCode, e.ExitStatus(), e.ParentPid, e.ParentTgid)
		if sig, ok := e.Signaled(); ok {
			s += fmt.Sprintf(" signal=%d", int(sig))
		}
	case UID:
		s += fmt.Sprintf(" ruid=%d euid=%d", e.Ruid, e.Euid)
	case GID:
		s += fmt.Sprintf(" rgid=%d egid=%d", e.Rgid, e.Egid)
	case Comm:
		s += fmt.Sprintf(" comm=%q", e.Comm)
	case Lost:
		s = "lost"
	}
	return s
}
