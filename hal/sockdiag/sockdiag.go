// Package sockdiag reads per-socket TCP byte counters from the kernel
// through NETLINK_SOCK_DIAG (inet_diag), so that telemetry can attribute
// network bytes to an agent by the socket inodes its processes hold
// (/proc/PID/fd/N -> "socket:[INODE]").
//
// It is a thin layer over github.com/vishvananda/netlink, which builds the
// SOCK_DIAG_BY_FAMILY dump request and parses the replies; this package
// only decides which counters are "sent" and "received".
//
// No privilege is needed: the kernel dumps every TCP socket of the
// caller's network namespace with its tcp_info. Sockets of other network
// namespaces (containers with their own netns) are not seen.
package sockdiag

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Bytes is one socket's cumulative payload bytes since it was created.
type Bytes struct {
	Sent, Received uint64
}

// TCPBytes dumps every TCP socket (IPv4 and IPv6) of the current network
// namespace and returns its byte counters by socket inode.
//
// Sent is tcpi_bytes_sent (Linux 4.19+, data octets out including
// retransmissions) or, where that reads 0 (older kernels, where the field
// is absent), tcpi_bytes_acked (Linux 4.1+; one more for a connect()ed
// socket's SYN); Received is tcpi_bytes_received. Sockets without an inode (timewait, request
// sockets: no file holds them) are left out.
//
// A dump the kernel marks interrupted (NLM_F_DUMP_INTR: the socket table
// changed while it was being walked) still returns what was read, with
// no error: a missed socket costs one tick's bytes at most, and sampling
// must not fail for it.
func TCPBytes() (map[uint64]Bytes, error) {
	out := map[uint64]Bytes{}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		socks, err := netlink.SocketDiagTCPInfo(fam)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, fmt.Errorf("sockdiag: tcp dump (family %d): %w", fam, err)
		}
		for _, s := range socks {
			if s == nil || s.InetDiagMsg == nil || s.TCPInfo == nil || s.InetDiagMsg.INode == 0 {
				continue
			}
			ti := s.TCPInfo
			// bytes_sent is payload only; bytes_acked also counts the
			// SYN (and FIN) sequence numbers of the connection's own
			// handshake, so it is used only where bytes_sent is absent
			// (reads 0: kernel < 4.19, or nothing sent yet).
			sent := ti.Bytes_sent
			if sent == 0 {
				sent = ti.Bytes_acked
			}
			out[uint64(s.InetDiagMsg.INode)] = Bytes{Sent: sent, Received: ti.Bytes_received}
		}
	}
	return out, nil
}
