// Package netcut cuts the network of one cgroup2 directory with cgroup BPF
// programs, the network half of a threat-engine quarantine (issue #12).
//
// # Programs
//
// The programs are written with cilium/ebpf's asm package, two instructions
// each ("r0 = 0; exit"), so no clang, no BTF and no object file is needed:
//
//   - BPF_PROG_TYPE_CGROUP_SKB on BPF_CGROUP_INET_INGRESS and
//     BPF_CGROUP_INET_EGRESS: every IPv4/IPv6 packet to or from a socket of
//     the cgroup is dropped (return 0 = drop).
//   - BPF_PROG_TYPE_CGROUP_SOCK_ADDR on BPF_CGROUP_INET4_CONNECT,
//     BPF_CGROUP_INET6_CONNECT, BPF_CGROUP_UDP4_SENDMSG and
//     BPF_CGROUP_UDP6_SENDMSG: return 0 rejects the call with EPERM.
//
// The skb programs alone would be enough to stop traffic, but then a new TCP
// connect() does not fail: the dropped SYN is retransmitted until
// tcp_syn_retries runs out (default 6: about 127 s) and only then fails with
// ETIMEDOUT (measured in TestSKBOnlyConnectHangs: still pending after 2 s;
// with TCP_SYNCNT 1, ETIMEDOUT after 3 s). The sock_addr programs make a
// quarantined connect() fail at once with EPERM, which is what a quarantined
// program, and whoever reads its log, should see.
//
// # What a quarantined process sees
//
// Measured on this host (Linux 6.18, loopback peers outside the cut), see
// TestCutLive:
//
//   - connect() of a TCP or UDP socket, IPv4 or IPv6: EPERM ("Operation not
//     permitted") at once.
//   - sendto()/sendmsg() with an address on a UDP socket: EPERM.
//   - send() on a UDP socket connected before the cut: EPERM (the egress
//     program's verdict comes back from the IP output path).
//   - send()/write() on a TCP connection established before the cut:
//     succeeds, the bytes are only queued; nothing reaches the peer and
//     nothing from the peer is received (reads block). The kernel
//     retransmits until the retransmission timeout ends the connection with
//     ETIMEDOUT (tcp_retries2, about 15 minutes by default; measured with
//     TCP_USER_TIMEOUT 500 ms: the next send fails with ETIMEDOUT).
//   - bind()/listen()/accept() still work, but no packet reaches the socket.
//
// Not covered: AF_UNIX sockets (a cgroup program for unix connect/sendmsg
// exists from Linux 6.7 and could be added), raw packet sockets (AF_PACKET
// needs CAP_NET_RAW, which an agent should not have), and sockets created
// outside the cgroup and passed in: cgroup BPF judges a socket by the cgroup
// its creator was in when it was created (sk_cgrp_data), not by the cgroup of
// the process using it. Agents are spawned into their cgroups, so their own
// sockets are covered; a socket the daemon hands an agent is not.
//
// # Attaching without disturbing others
//
// Every program is attached with BPF_LINK_CREATE (a bpf_link, Linux 5.7+).
// A cgroup bpf_link is always attached in BPF_F_ALLOW_MULTI mode: it runs
// next to every other program on the cgroup and its ancestors (for skb and
// sock_addr programs the effective verdict is the AND of all of them, so a
// drop here cannot be overridden by an allow elsewhere), it never replaces or
// detaches another program, and closing it detaches exactly this program.
// If another program was attached to the same cgroup without
// BPF_F_ALLOW_MULTI (exclusive), the kernel refuses the link and New fails,
// leaving that program alone. link.AttachCgroup is deliberately not used: on
// kernels without cgroup bpf_link it falls back to BPF_PROG_ATTACH, and
// finally with BPF_F_ALLOW_OVERRIDE, which can replace a program someone else
// attached; such an attachment also cannot be pinned. Supported reports
// kernels without cgroup bpf_link instead.
//
// # Pinning and daemon restarts
//
// A bpf_link lives as long as a file descriptor or a bpffs pin refers to it.
// (*Cut).Pin pins the six links under a directory of a bpffs (by convention
// PinRoot/<name>, e.g. /sys/fs/bpf/aiosfs/agent-7), so the cut survives
// the daemon's exit or crash; Load opens them again. Close lifts the cut
// (unpins and detaches); Drop only lets go of this process's handles, leaving
// a pinned cut in place (what a daemon does at shutdown). Pins are files
// owned by root with mode 0600 in a root-only directory; a process running as
// an agent's uid can neither open nor remove them, nor detach programs from a
// cgroup (that needs CAP_NET_ADMIN or CAP_SYS_ADMIN in the initial user
// namespace). A pin does not survive a reboot; neither does the cgroup.
//
// MountBPFFS mounts bpffs at /sys/fs/bpf when nothing is mounted there (as
// systemd does on most hosts; this host has the empty directory but no
// mount). That is reversible with umount(2), but unmounting a bpffs drops its
// pins, and with them every cut that no process holds open: unmount only a
// bpffs you mounted, and only after Close of every cut pinned there.
//
// # How the threat engine should quarantine an agent
//
// Quarantine = freeze + cut + state saved before the quarantine is reported:
//
//	quarantine(agent):
//	  1. g.Freeze()                                  // hal/cgroup (v1 freezer here)
//	  2. c, err := netcut.New(g.Paths()["unified"])  // the agent's cgroup2 directory
//	     c.Pin(filepath.Join(netcut.PinRoot, name))  // name unique per agent, e.g. "agent-7"
//	     (netcut.MountBPFFS first if nothing is mounted; if Supported or New
//	     fails, say so in threat/status and the event, and stay frozen)
//	  3. save {agent, pin name, unified dir, c.CgroupID()} in the engine's
//	     state (bbolt) before reporting the quarantine done; keep c open.
//
//	daemon start, for each saved quarantine:
//	  c, err := netcut.Load(pinDir)
//	  if err == nil && c.CgroupID() == netcut.CgroupID(unifiedDir): keep c.
//	  otherwise (os.ErrNotExist: the pins went with a reboot or an unmounted
//	  bpffs; or a cgroup id that differs or is 0: the cgroup was removed and
//	  made again): c.Close() if loaded, then New + Pin again, and Freeze
//	  again. Never trust the pins alone, nor the saved state alone.
//
//	release(agent), only when the ctl writer is root (uid 0 checked on the
//	  write, not only the file mode): c.Close() (unpins and detaches), then
//	  g.Thaw(), then delete the saved state; a crash in between leaves a
//	  state the start-up pass above re-applies, the safe direction.
//	agent removed while quarantined: c.Close() before removing its cgroup
//	  (a link on a removed cgroup is detached by the kernel anyway).
//	daemon shutdown: c.Drop(), never Close: the pins keep the cut.
//
// The agent cannot lift the cut itself: detaching or unpinning needs
// CAP_NET_ADMIN/CAP_SYS_ADMIN/CAP_BPF and root's bpffs directory. An agent
// running as root could; the freeze keeps it from running at all.
package netcut

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// BPFFS is where a bpffs is expected, and PinRoot the directory under it for
// this daemon's pins.
const (
	BPFFS   = "/sys/fs/bpf"
	PinRoot = BPFFS + "/aiosfs"
)

// hook is one attachment of a cut: its pin name, program type and attach type.
type hook struct {
	name   string
	typ    ebpf.ProgramType
	attach ebpf.AttachType
}

// hooks are the attachments of a cut, in attach order: the connect/sendmsg
// rejections first, so no new connection starts while the drops go in.
var hooks = []hook{
	{"connect4", ebpf.CGroupSockAddr, ebpf.AttachCGroupInet4Connect},
	{"connect6", ebpf.CGroupSockAddr, ebpf.AttachCGroupInet6Connect},
	{"sendmsg4", ebpf.CGroupSockAddr, ebpf.AttachCGroupUDP4Sendmsg},
	{"sendmsg6", ebpf.CGroupSockAddr, ebpf.AttachCGroupUDP6Sendmsg},
	{"egress", ebpf.CGroupSKB, ebpf.AttachCGroupInetEgress},
	{"ingress", ebpf.CGroupSKB, ebpf.AttachCGroupInetIngress},
}

// Instructions is every program's body: return 0, which is "drop" for
// CGROUP_SKB and "reject with EPERM" for CGROUP_SOCK_ADDR.
func Instructions() asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}
}

// spec is the program spec of one hook.
func spec(h hook) *ebpf.ProgramSpec {
	s := &ebpf.ProgramSpec{
		Name:         "aiosfs_" + h.name, // the kernel keeps 15 characters
		Type:         h.typ,
		Instructions: Instructions(),
		License:      "GPL",
	}
	if h.typ == ebpf.CGroupSockAddr {
		// sock_addr programs must name their hook at load time.
		s.AttachType = h.attach
	}
	return s
}

// Cut is a network cut on one cgroup2 directory: the six links.
type Cut struct {
	mu     sync.Mutex
	links  []link.Link // in hooks order; nil once closed or dropped
	pinDir string      // where pinned, "" if not
	id     uint64      // cgroup id (inode of the cgroup2 directory)
	hooks  []hook      // what links[i] is
}

var memlock sync.Once

// New attaches the cut (it is New, not Cut, since Cut is the type) to the cgroup2 directory dir (a directory in a cgroup2
// mount, e.g. /sys/fs/cgroup/unified/<own>/<prefix>/agent-3). Every program
// is attached as a bpf_link (multi-attach; see the package doc). On error
// nothing stays attached.
func New(dir string) (*Cut, error) { return attach(dir, hooks) }

func attach(dir string, hs []hook) (*Cut, error) {
	if err := isCgroup2(dir); err != nil {
		return nil, err
	}
	id, err := CgroupID(dir)
	if err != nil {
		return nil, err
	}
	memlock.Do(func() { _ = rlimit.RemoveMemlock() }) // no-op on 5.11+
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("netcut: %w", err)
	}
	defer f.Close()

	c := &Cut{id: id, hooks: hs}
	progs := map[ebpf.AttachType]*ebpf.Program{}
	defer func() {
		for _, p := range progs {
			p.Close() // the links hold their own references
		}
	}()
	var skb *ebpf.Program
	for _, h := range hs {
		p := skb
		if h.typ != ebpf.CGroupSKB || skb == nil {
			p, err = ebpf.NewProgram(spec(h))
			if err != nil {
				c.closeLinks()
				return nil, fmt.Errorf("netcut: load %s program: %w", h.name, err)
			}
			progs[h.attach] = p
			if h.typ == ebpf.CGroupSKB {
				skb = p
			}
		}
		l, err := link.AttachRawLink(link.RawLinkOptions{
			Target:  int(f.Fd()),
			Program: p,
			Attach:  h.attach,
		})
		if err != nil {
			c.closeLinks()
			if errors.Is(err, unix.EPERM) {
				err = fmt.Errorf("%w (an exclusive program already attached, or no CAP_BPF/CAP_NET_ADMIN)", err)
			}
			return nil, fmt.Errorf("netcut: attach %s to %s: %w", h.name, dir, err)
		}
		c.links = append(c.links, l)
	}
	return c, nil
}

// closeLinks detaches every link (used on a failed attach).
func (c *Cut) closeLinks() {
	for _, l := range c.links {
		l.Close()
	}
	c.links = nil
}

// CgroupID is the id of the cut's cgroup (the inode number of its cgroup2
// directory), as the kernel reported for the links.
func (c *Cut) CgroupID() uint64 { return c.id }

// PinDir is the directory the cut is pinned in, "" if it is not pinned.
func (c *Cut) PinDir() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pinDir
}

// Pin pins the links in dir, which must be in a bpffs (see MountBPFFS) and
// is created with mode 0700 if missing; the cut then outlives this process
// until Close (of this Cut or of one Loaded from dir). On error nothing stays
// pinned.
func (c *Cut) Pin(dir string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.links == nil {
		return errors.New("netcut: pin: cut is closed")
	}
	if c.pinDir != "" {
		return fmt.Errorf("netcut: pin: already pinned in %s", c.pinDir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("netcut: pin: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("netcut: pin: %w", err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		os.Remove(dir) // only if empty, i.e. made just now
		return fmt.Errorf("netcut: pin: %s is not in a bpffs (mount one at %s)", dir, BPFFS)
	}
	for i, l := range c.links {
		if err := l.Pin(filepath.Join(dir, c.hooks[i].name)); err != nil {
			for _, l := range c.links[:i] {
				l.Unpin()
			}
			os.Remove(dir) // only if empty
			return fmt.Errorf("netcut: pin %s: %w", c.hooks[i].name, err)
		}
	}
	c.pinDir = dir
	return nil
}

// Load opens the cut pinned in dir by Pin, e.g. after a daemon restart. It
// checks that all links are there, are cgroup links of the expected attach
// types, and are on one cgroup; compare CgroupID with CgroupID(unifiedDir)
// before trusting it.
func Load(dir string) (*Cut, error) {
	c := &Cut{pinDir: dir, hooks: hooks}
	for _, h := range hooks {
		l, err := link.LoadPinnedLink(filepath.Join(dir, h.name), nil)
		if err != nil {
			c.dropLinks()
			return nil, fmt.Errorf("netcut: load %s: %w", h.name, err)
		}
		c.links = append(c.links, l)
		info, err := l.Info()
		if err != nil {
			c.dropLinks()
			return nil, fmt.Errorf("netcut: load %s: %w", h.name, err)
		}
		cg := info.Cgroup()
		if info.Type != link.CgroupType || cg == nil || ebpf.AttachType(cg.AttachType) != h.attach {
			c.dropLinks()
			return nil, fmt.Errorf("netcut: load %s: pinned link is not a cgroup %v link", h.name, h.attach)
		}
		if c.id == 0 {
			c.id = cg.CgroupId
		} else if c.id != cg.CgroupId {
			c.dropLinks()
			return nil, fmt.Errorf("netcut: load %s: links on different cgroups (%d, %d)", dir, c.id, cg.CgroupId)
		}
	}
	return c, nil
}

// dropLinks closes this process's handles without unpinning.
func (c *Cut) dropLinks() {
	for _, l := range c.links {
		l.Close()
	}
	c.links = nil
}

// Drop lets go of this process's handles. An unpinned cut is lifted by it
// (as by Close); a pinned one stays in force, to be found by Load.
func (c *Cut) Drop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLinks()
	return nil
}

// Close lifts the cut: it removes the pins, if any, and detaches the links.
// Only programs this package attached are detached. Closing twice is a no-op.
func (c *Cut) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for i, l := range c.links {
		if c.pinDir != "" {
			if err := l.Unpin(); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("unpin %s: %w", c.hooks[i].name, err))
			}
		}
		// A link that is still pinned somewhere would stay attached after
		// Close; detach it explicitly (BPF_LINK_DETACH, 5.9+) so Close
		// always restores the network.
		if err := detach(l); err != nil {
			errs = append(errs, fmt.Errorf("detach %s: %w", c.hooks[i].name, err))
		}
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", c.hooks[i].name, err))
		}
	}
	c.links = nil
	if c.pinDir != "" {
		if err := os.Remove(c.pinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		c.pinDir = ""
	}
	if len(errs) > 0 {
		return fmt.Errorf("netcut: close: %w", errors.Join(errs...))
	}
	return nil
}

// detach detaches a cgroup link even if another pin or descriptor refers to
// it: BPF_LINK_DETACH (Linux 5.9), which cilium/ebpf v0.16 does not wrap.
// The link then stays a valid, defunct object until its last reference goes.
func detach(l link.Link) error {
	f, ok := l.(interface{ FD() int })
	if !ok {
		return nil
	}
	attr := struct{ linkFD uint32 }{uint32(f.FD())}
	_, _, errno := unix.Syscall(unix.SYS_BPF, bpfLinkDetach, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	switch errno {
	case 0, unix.EINVAL, unix.ENOLINK: // detached, too old a kernel, or already detached (cgroup removed)
		return nil
	}
	return errno
}

const bpfLinkDetach = 34 // BPF_LINK_DETACH

// CgroupID is the kernel's id of the cgroup2 directory dir (its inode number).
func CgroupID(dir string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("netcut: %w", err)
	}
	return st.Ino, nil
}

func isCgroup2(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("netcut: %w", err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Errorf("netcut: %s is not a cgroup2 directory (cgroup BPF needs the unified hierarchy)", dir)
	}
	return nil
}

// Supported says why a cut cannot be made on this host, or nil: no
// CAP_BPF/CAP_SYS_ADMIN or no CAP_NET_ADMIN/CAP_SYS_ADMIN, no cgroup2 mount,
// a kernel without the program types or without cgroup bpf_link (Linux
// 5.7). The engine should show the error in its status and quarantine by
// freezing alone.
// Every such answer wraps errors.ErrUnsupported, so a caller (a test)
// can tell "this machine cannot" from a failure to find out.
func Supported() error {
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("netcut: capget: %w", err)
	}
	has := func(c int) bool { return data[c/32].Effective&(1<<(uint(c)%32)) != 0 }
	if !has(unix.CAP_SYS_ADMIN) && !has(unix.CAP_BPF) {
		return fmt.Errorf("netcut: not supported: neither CAP_BPF nor CAP_SYS_ADMIN (run the daemon as root): %w", errors.ErrUnsupported)
	}
	if !has(unix.CAP_SYS_ADMIN) && !has(unix.CAP_NET_ADMIN) {
		return fmt.Errorf("netcut: not supported: neither CAP_NET_ADMIN nor CAP_SYS_ADMIN to attach cgroup programs: %w", errors.ErrUnsupported)
	}
	if _, err := Cgroup2Mount(); err != nil {
		return err
	}
	for _, t := range []ebpf.ProgramType{ebpf.CGroupSKB, ebpf.CGroupSockAddr} {
		if err := features.HaveProgramType(t); err != nil {
			return fmt.Errorf("netcut: not supported: kernel has no %v programs: %w: %w", t, errors.ErrUnsupported, err)
		}
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		var maj, min int
		if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &maj, &min); err == nil && (maj < 5 || maj == 5 && min < 7) {
			return fmt.Errorf("netcut: not supported: kernel %d.%d has no cgroup bpf_link (5.7+): %w", maj, min, errors.ErrUnsupported)
		}
	}
	return nil
}

// Cgroup2Mount is the mount point of the cgroup2 hierarchy: /sys/fs/cgroup
// on a unified host, /sys/fs/cgroup/unified on a hybrid one.
func Cgroup2Mount() (string, error) {
	for _, m := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if isCgroup2(m) == nil {
			return m, nil
		}
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			for i, x := range f {
				if x == "-" && i+1 < len(f) && f[i+1] == "cgroup2" && len(f) > 4 {
					return f[4], nil
				}
			}
		}
	}
	return "", fmt.Errorf("netcut: not supported: no cgroup2 mount (cgroup BPF needs the unified hierarchy): %w", errors.ErrUnsupported)
}

// MountBPFFS mounts a bpffs at BPFFS if none is there, and says whether it
// did. A caller that mounted it may unmount it (unix.Unmount(BPFFS, 0)) only
// after Close of every cut pinned in it: unmounting drops the pins.
func MountBPFFS() (mounted bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(BPFFS, &st); err != nil {
		return false, fmt.Errorf("netcut: %w", err)
	}
	if st.Type == unix.BPF_FS_MAGIC {
		return false, nil
	}
	if err := unix.Mount("bpf", BPFFS, "bpf", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700"); err != nil {
		return false, fmt.Errorf("netcut: mount bpffs at %s: %w", BPFFS, err)
	}
	return true, nil
}
