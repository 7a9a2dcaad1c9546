// Package sockdiag reads per-socket TCP state and byte counters from the
// kernel through NETLINK_SOCK_DIAG (inet_diag), so that telemetry can
// attribute network bytes, socket states and peers to an agent by the
// socket inodes its processes hold (/proc/PID/fd/N -> "socket:[INODE]").
//
// It is a thin layer over github.com/vishvananda/netlink, which builds the
// SOCK_DIAG_BY_FAMILY dump request and parses the replies; this package
// only decides which counters are "sent" and "received" and keeps, per
// socket, the few identity fields its callers use.
//
// No privilege is needed: the kernel dumps every TCP socket of the
// caller's network namespace with its tcp_info. Sockets of other network
// namespaces (containers with their own netns) are not seen.
package sockdiag

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Bytes is one socket's cumulative payload bytes since it was created.
type Bytes struct {
	Sent, Received uint64
}

// TCP states as the kernel numbers them (include/net/tcp_states.h), as
// Socket.State holds them.
const (
	StateEstablished = netlink.TCP_ESTABLISHED // 1
	StateSynSent     = netlink.TCP_SYN_SENT    // 2
	StateListen      = netlink.TCP_LISTEN      // 10
)

// Socket is one TCP socket of a dump: its byte counters, its state and
// its endpoints.
type Socket struct {
	Bytes
	// State is the kernel's TCP state (StateEstablished, StateListen, ...).
	State uint8
	// LocalPort is the socket's own port (a listener's port, or the
	// ephemeral port of a connect()ed socket).
	LocalPort uint16
	// Remote is the peer's address and port; the zero AddrPort for a
	// listener (and an unconnected socket). An IPv4 peer of an IPv6
	// socket (::ffff:a.b.c.d) reads as the IPv4 address.
	Remote netip.AddrPort
}

// Connected reports whether s counts as a connection: ESTABLISHED, or
// SYN_SENT (a connect() in progress: the peer is chosen, only the reply
// is missing).
func (s Socket) Connected() bool { return s.State == StateEstablished || s.State == StateSynSent }

// Dump dumps every TCP socket (IPv4 and IPv6) of the current network
// namespace and returns each one's state, ports, peer and byte counters
// by socket inode: one dump serves bytes, states and peers alike.
//
// Sent is tcpi_bytes_sent (Linux 4.19+, data octets out including
// retransmissions) or, where that reads 0 (older kernels, where the field
// is absent), tcpi_bytes_acked (Linux 4.1+; one more for a connect()ed
// socket's SYN); Received is tcpi_bytes_received. Sockets without an
// inode (timewait, request sockets: no file holds them) are left out.
//
// A dump the kernel marks interrupted (NLM_F_DUMP_INTR: the socket table
// changed while it was being walked) still returns what was read, with
// no error: a missed socket costs one tick's figures at most, and
// sampling must not fail for it.
func Dump() (map[uint64]Socket, error) {
	out := map[uint64]Socket{}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		socks, err := netlink.SocketDiagTCPInfo(fam)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, fmt.Errorf("sockdiag: tcp dump (family %d): %w", fam, err)
		}
		for _, s := range socks {
			if s == nil || s.InetDiagMsg == nil || s.InetDiagMsg.INode == 0 {
				continue
			}
			m := s.InetDiagMsg
			k := Socket{State: m.State, LocalPort: m.ID.SourcePort}
			if ti := s.TCPInfo; ti != nil {
				// bytes_sent is payload only; bytes_acked also counts
				// the SYN (and FIN) sequence numbers of the
				// connection's own handshake, so it is used only where
				// bytes_sent is absent (reads 0: kernel < 4.19, or
				// nothing sent yet).
				k.Sent = ti.Bytes_sent
				if k.Sent == 0 {
					k.Sent = ti.Bytes_acked
				}
				k.Received = ti.Bytes_received
			}
			if m.State != StateListen {
				if a, ok := netip.AddrFromSlice(m.ID.Destination); ok && !a.Unmap().IsUnspecified() {
					k.Remote = netip.AddrPortFrom(a.Unmap(), m.ID.DestinationPort)
				}
			}
			out[uint64(m.INode)] = k
		}
	}
	return out, nil
}

// TCPBytes is Dump's byte counters alone, by socket inode (0 for a
// socket the kernel gave no tcp_info).
func TCPBytes() (map[uint64]Bytes, error) {
	socks, err := Dump()
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]Bytes, len(socks))
	for ino, s := range socks {
		out[ino] = s.Bytes
	}
	return out, nil
}
