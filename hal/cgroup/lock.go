package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ErrPrefixInUse matches (errors.Is) LockPrefix's error when another
// Manager (another daemon) holds the prefix.
var ErrPrefixInUse = errors.New("cgroup prefix in use")

type prefixInUse struct{ msg string }

func (e *prefixInUse) Error() string        { return e.msg }
func (e *prefixInUse) Is(target error) bool { return target == ErrPrefixInUse }

// LockPrefix claims the Prefix for this Manager: it creates the Prefix
// directory in every hierarchy (as Create would) and takes an exclusive,
// non-blocking flock(2) on each. A second daemon with the same prefix
// under the same own cgroup would otherwise start, fail its spawns with
// EEXIST on the first daemon's agent-N groups, and take those groups for
// orphans of its own; with the lock it is refused at start, with the
// holder's pid when /proc/locks shows it.
//
// flock works on cgroupfs directories, is dropped by the kernel when the
// holder dies, and the descriptors are close-on-exec, so spawned agents
// never hold it. The lock does not stop Close from removing the empty
// Prefix directories; release may be called before or after Close, and
// more than once. A daemon whose LockPrefix failed must not call Close:
// Close would remove the other daemon's Prefix directory when it is empty.
func (m *Manager) LockPrefix() (release func() error, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.ensurePrefix(); err != nil {
		return nil, fmt.Errorf("cgroup: lock prefix %s: %w", m.prefix, err)
	}
	var fds []int
	closeAll := func() error {
		var errs []error
		for _, fd := range fds {
			// Closing the only descriptor releases the flock.
			if err := unix.Close(fd); err != nil {
				errs = append(errs, err)
			}
		}
		fds = nil
		return errors.Join(errs...)
	}
	for _, h := range m.hierarchies() {
		d := m.prefixDir(h)
		fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("cgroup: lock prefix %s: open %s: %w", m.prefix, d, err)
		}
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			holder := lockHolder(fd)
			unix.Close(fd)
			closeAll()
			if errors.Is(err, unix.EWOULDBLOCK) {
				who := "another aiosfs"
				if holder > 0 {
					who = fmt.Sprintf("another aiosfs (pid %d)", holder)
				}
				return nil, &prefixInUse{fmt.Sprintf("cgroup prefix %s is in use by %s, which holds a lock on %s; stop it or choose another prefix",
					m.prefix, who, d)}
			}
			return nil, fmt.Errorf("cgroup: lock prefix %s: flock %s: %w", m.prefix, d, err)
		}
		fds = append(fds, fd)
	}
	var once sync.Once
	var rerr error
	return func() error {
		once.Do(func() { rerr = closeAll() })
		return rerr
	}, nil
}

// ensurePrefix creates the Prefix directories the way Create does: on v2
// ensurePrefixV2 (which also enables the controllers there); on v1
// cgroup1.New on the Prefix path, which makes it in every hierarchy and
// fills cpuset.cpus and cpuset.mems of a new cpuset level from its parent
// (without them a v1 cpuset takes no task); on a hybrid host a plain
// mkdir in the unified hierarchy, as openV1 does for a group.
func (m *Manager) ensurePrefix() error {
	if m.version == "v2" {
		return m.ensureLevelsV2(*m.unified, m.prefix)
	}
	own := map[cgroup1.Name]string{}
	for _, c := range m.v1 {
		own[c.name] = c.own
	}
	path := func(s cgroup1.Name) (string, error) {
		o, ok := own[s]
		if !ok {
			return "", cgroup1.ErrControllerNotActive
		}
		return filepath.Join(o, m.prefix), nil
	}
	if _, err := cgroup1.New(path, &specs.LinuxResources{}, cgroup1.WithHierarchy(m.v1Hierarchy)); err != nil {
		return err
	}
	if m.unified != nil {
		return os.MkdirAll(m.prefixDir(*m.unified), 0o755)
	}
	return nil
}

// lockHolder finds in /proc/locks the pid holding a FLOCK on fd's inode;
// 0 when it cannot tell. Lines read "1: FLOCK  ADVISORY  WRITE 1234
// 00:1d:5678 0 EOF" (device as hex major:minor, then the inode); waiters
// are marked "->" and skipped.
func lockHolder(fd int) int {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return 0
	}
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 6 || fl[1] == "->" || fl[1] != "FLOCK" || fl[5] != id {
			continue
		}
		if pid, err := strconv.Atoi(fl[4]); err == nil {
			return pid
		}
	}
	return 0
}
