//go:build linux

package procconn

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ackTimeout bounds the wait for the kernel's answer to a subscription.
// The kernel answers at once or never (see Listen).
const ackTimeout = 2 * time.Second

// rcvBuf is the socket receive buffer asked for. A fork storm produces
// events faster than a busy reader drains them; at 76 bytes of payload
// (about 1 KiB of skb truesize each) 4 MiB holds a few thousand.
const rcvBuf = 4 << 20

// Conn is a subscription to the proc connector.
type Conn struct {
	f      *os.File // non-blocking socket registered with the runtime poller
	rc     syscall.RawConn
	closed atomic.Bool
	once   sync.Once
	buf    []byte
	// pending holds events that arrived while Listen waited for its ack.
	pending []Event
}

func now() (time.Time, time.Duration) {
	var ts unix.Timespec
	wall := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return wall, 0
	}
	return wall, time.Duration(ts.Nano())
}

// Listen opens a NETLINK_CONNECTOR socket, joins the CN_IDX_PROC group
// and subscribes with PROC_CN_MCAST_LISTEN, then waits for the kernel's
// acknowledgement so that a refused subscription is an error here rather
// than silence later. The socket drops thread forks, thread exits and
// comm events in the kernel (SetFilter: a threaded host sends mostly
// those, and no reader here uses them); SetFilter(false) gets them back.
//
// Errors: kernels before 6.6 require CAP_NET_ADMIN (in the initial user
// namespace) to join the group or to subscribe; that failure matches
// os.ErrPermission. A kernel without CONFIG_CONNECTOR fails the socket
// call. No answer at all means CONFIG_PROC_EVENTS is off or the caller is
// in a non-initial user or pid namespace, whose subscriptions the kernel
// drops without a word.
func Listen() (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("procconn: socket(AF_NETLINK, NETLINK_CONNECTOR): %w (kernel without CONFIG_CONNECTOR?)", err)
	}
	// SO_RCVBUFFORCE may exceed net.core.rmem_max but needs
	// CAP_NET_ADMIN; without it fall back to what rmem_max allows.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	// nl_groups is a bitmask: group N is bit N-1.
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (cnIdxProc - 1)}); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("procconn: joining the proc connector group needs CAP_NET_ADMIN on this kernel (before 6.6): %w", os.ErrPermission)
		}
		return nil, fmt.Errorf("procconn: bind: %w", err)
	}
	// os.NewFile sees the non-blocking flag and registers the socket with
	// the runtime poller: reads park the goroutine, deadlines work, and
	// Close wakes a blocked Read.
	f := os.NewFile(uintptr(fd), "proc-connector")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("procconn: %w", err)
	}
	c := &Conn{f: f, rc: rc, buf: make([]byte, 64<<10)}
	// Before subscribing, so that no thread event is queued.
	if err := c.SetFilter(true); err != nil {
		c.f.Close()
		return nil, err
	}
	if err := c.subscribe(); err != nil {
		c.f.Close()
		return nil, err
	}
	open.Store(c, struct{}{})
	return c, nil
}

// subscribe sends LISTEN and waits for the ack carrying our ack+1.
//
// The ack is multicast to the whole group, so other listeners' acks
// arrive too and ours must be told apart. cn_proc_ack() copies the
// request's seq and ack+1 into the reply, but current kernels then send
// it through the same send_msg() as events, which overwrites seq with
// the per-cpu event counter: only ack identifies the reply, so it is a
// random 32-bit value. Events that arrive meanwhile are kept for Read.
func (c *Conn) subscribe() error {
	var r [8]byte
	rand.Read(r[:])
	seq, ackn := binary.NativeEndian.Uint32(r[0:]), binary.NativeEndian.Uint32(r[4:])
	if err := c.send(mcastListen, seq, ackn); err != nil {
		return fmt.Errorf("procconn: subscribe: %w", err)
	}
	deadline := time.Now().Add(ackTimeout)
	if err := c.f.SetReadDeadline(deadline); err != nil {
		return fmt.Errorf("procconn: %w", err)
	}
	defer c.f.SetReadDeadline(time.Time{})
	for {
		n, err := c.recv()
		if errors.Is(err, unix.ENOBUFS) {
			c.pending = append(c.pending, Event{Kind: Lost, Time: time.Now()})
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("procconn: no answer to PROC_CN_MCAST_LISTEN in %v: kernel without CONFIG_PROC_EVENTS, or not in the initial user and pid namespaces (the kernel ignores subscriptions from others)", ackTimeout)
		}
		if err != nil {
			return fmt.Errorf("procconn: %w", err)
		}
		if n < 0 {
			continue // not from the kernel
		}
		evs, acks, _ := parse(c.buf[:n], now)
		c.pending = append(c.pending, evs...)
		for _, a := range acks {
			if a.ack != ackn+1 {
				continue
			}
			switch a.err {
			case 0:
				return nil
			case uint32(unix.EPERM):
				return fmt.Errorf("procconn: PROC_CN_MCAST_LISTEN refused: needs CAP_NET_ADMIN on this kernel (before 6.6): %w", os.ErrPermission)
			default:
				return fmt.Errorf("procconn: PROC_CN_MCAST_LISTEN refused: %w", syscall.Errno(a.err))
			}
		}
	}
}

// send writes one connector request carrying op to the kernel (port 0).
func (c *Conn) send(op, seq, ackn uint32) error {
	const size = sizeofNlmsghdr + sizeofCnMsg + 4
	var b [size]byte
	ne.PutUint32(b[0:], size)
	ne.PutUint16(b[4:], nlmsgDone)
	ne.PutUint32(b[8:], seq)
	// nlmsg_pid 0: the kernel fills in the sender's port itself.
	cn := b[sizeofNlmsghdr:]
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint32(cn[8:], seq)
	ne.PutUint32(cn[12:], ackn)
	ne.PutUint16(cn[16:], 4)
	ne.PutUint32(cn[sizeofCnMsg:], op)
	var serr error
	err := c.rc.Control(func(fd uintptr) {
		serr = unix.Sendto(int(fd), b[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	})
	if err != nil {
		return err
	}
	return serr
}

// recv reads one datagram into c.buf, parking on the poller while there
// is none. n < 0 means a datagram not sent by the kernel: any local
// process may unicast to our port id, and the kernel, which alone uses
// port 0, cannot be impersonated, so such datagrams are dropped.
func (c *Conn) recv() (n int, err error) {
	var (
		rn    int
		flags int
		from  unix.Sockaddr
		rerr  error
	)
	err = c.rc.Read(func(fd uintptr) bool {
		rn, _, flags, from, rerr = unix.Recvmsg(int(fd), c.buf, nil, 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
		return -1, nil
	}
	if flags&unix.MSG_TRUNC != 0 {
		// Cannot happen with a 64 KiB buffer and 76-byte events; if it
		// does, the tail is gone like an overrun.
		return 0, unix.ENOBUFS
	}
	return rn, nil
}

// Read blocks until the next datagram with events and returns them. An
// overrun (ENOBUFS: the kernel dropped events because the socket buffer
// was full) is returned as a single Lost event, not an error. After
// Close, Read returns an error matching os.ErrClosed. A datagram that
// does not parse is an error matching ErrMalformed; the connection stays
// usable. Read is for one goroutine at a time; Close may come from any.
func (c *Conn) Read() ([]Event, error) {
	if len(c.pending) > 0 {
		evs := c.pending
		c.pending = nil
		return evs, nil
	}
	for {
		if c.closed.Load() {
			return nil, fmt.Errorf("procconn: read: %w", os.ErrClosed)
		}
		n, err := c.recv()
		if errors.Is(err, unix.ENOBUFS) {
			return []Event{{Kind: Lost, Time: time.Now()}}, nil
		}
		if err != nil {
			if c.closed.Load() || errors.Is(err, os.ErrClosed) {
				return nil, fmt.Errorf("procconn: read: %w", os.ErrClosed)
			}
			return nil, fmt.Errorf("procconn: read: %w", err)
		}
		if n < 0 {
			continue
		}
		evs, _, err := parse(c.buf[:n], now)
		if err != nil {
			return evs, err
		}
		if len(evs) > 0 {
			return evs, nil
		}
		// Only acks (ours or other listeners') or skipped messages.
	}
}

// Close unsubscribes (PROC_CN_MCAST_IGNORE, so kernels that count
// listeners stop building events nobody reads) and closes the socket,
// waking a Read blocked in another goroutine. Closing twice is a no-op.
func (c *Conn) Close() error {
	var err error
	c.once.Do(func() {
		c.closed.Store(true)
		open.Delete(c)
		c.send(mcastIgnore, 0, 0) // best effort; release also unsubscribes on 6.6+
		err = c.f.Close()
	})
	return err
}
