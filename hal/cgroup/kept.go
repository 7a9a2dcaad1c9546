package cgroup

import (
	"errors"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"

	"aiosfs/hal/kfile"

	"golang.org/x/sys/unix"
)

// KeptCounters reads a group's counter files (the ones Counters and
// CPUUsage read) through descriptors it keeps open, re-reading each with
// one pread at offset 0, instead of an open, two reads and a close per
// file. On the VM of docs/cost.md that is about 2 µs of CPU per file
// against 10 µs: cgroup files are seq_files, which the kernel renders
// afresh when a read starts at offset 0 (seq_read_iter resets its
// iterator there), so a kept descriptor reads the same figures a new one
// would (TestKeptCountersFresh, v1 and v2).
//
// It does not keep cgroup.procs: on v1 a kept cgroup.procs serves the pid
// list the kernel cached at an earlier read of that descriptor
// (cgroup_pidlist_start reuses it until CGROUP_PIDLIST_DESTROY_DELAY, 1 s,
// after the last read), so a process that joined or left meanwhile is
// missed; on this VM's 6.18 kernel a pid added read as absent through the
// kept descriptor and as present through a new one (v2's cgroup.procs
// restarts its task iterator at offset 0 and was right).
//
// Files are opened on first use, so a caller that only ever asks for
// CPUUsage (the sampler's test of an idle agent) holds one descriptor
// (v1 cpuacct.usage, v2 cpu.stat) and one that reads Counters holds 4 on
// v1 and 3 on v2. Each kept descriptor also holds the kernel's seq_file
// buffer (one page, 4 KiB, charged to the caller's memory cgroup) until it
// is closed, so the whole process keeps at most KeptMax descriptors; past
// that, or when open fails with EMFILE or ENFILE, a file is read the old
// way (open, read, close) and nothing is kept.
//
// A descriptor of a group that was removed reads ENODEV; the file is then
// closed and read again by its path, so a group removed reads as gone
// (fs.ErrNotExist, as Counters and CPUUsage say) and a group made again
// under the same name reads as the new one. Close gives the descriptors
// back; the caller must call it when it stops reading the group (the
// sampler: when the agent is no longer among its targets). The methods
// are safe for concurrent use.
type KeptCounters struct {
	mu    sync.Mutex
	name  string
	v2    bool
	dirs  []string    // v1: the group's directories, for anyExists
	files []*keptFile // by keptSlot
}

// The files of a KeptCounters, by slot. v1 uses every slot; v2 reads cpu
// usage and throttling from one cpu.stat (slotCPU) and has no slotStat.
const (
	slotCPU  = iota // v1 cpuacct.usage, v2 cpu.stat
	slotStat        // v1 cpu.stat
	slotMem         // v1 memory.usage_in_bytes, v2 memory.current
	slotOOM         // v1 memory.oom_control, v2 memory.events
)

// keptFile is one counter file: its path ("" when the group lacks the
// controller) and the kept descriptor, -1 when none.
type keptFile struct {
	path string
	fd   int
}

// KeepCounters returns a KeptCounters for g, or nil when g is not a group
// of this package (a fake: read it through its own CounterReader).
func KeepCounters(g Group) *KeptCounters {
	file := func(dir, name string) *keptFile {
		if dir == "" {
			return &keptFile{fd: -1}
		}
		return &keptFile{path: filepath.Join(dir, name), fd: -1}
	}
	switch g := g.(type) {
	case *v1Group:
		k := &KeptCounters{name: g.name}
		for _, d := range g.paths {
			k.dirs = append(k.dirs, d)
		}
		k.files = []*keptFile{
			slotCPU:  file(g.paths["cpuacct"], "cpuacct.usage"),
			slotStat: file(g.paths["cpu"], "cpu.stat"),
			slotMem:  file(g.paths["memory"], "memory.usage_in_bytes"),
			slotOOM:  file(g.paths["memory"], "memory.oom_control"),
		}
		return k
	case *v2Group:
		return &KeptCounters{name: g.name, v2: true, dirs: []string{g.dir}, files: []*keptFile{
			slotCPU:  file(g.dir, "cpu.stat"),
			slotStat: file("", ""),
			slotMem:  file(g.dir, "memory.current"),
			slotOOM:  file(g.dir, "memory.events"),
		}}
	}
	return nil
}

// Open is how many descriptors k keeps now.
func (k *KeptCounters) Open() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, f := range k.files {
		if f.fd >= 0 {
			n++
		}
	}
	return n
}

// Close closes k's descriptors. k stays usable: a later read opens them
// again.
func (k *KeptCounters) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, f := range k.files {
		f.close()
	}
	return nil
}

// CPUUsage is CounterReader.CPUUsage through the kept descriptor.
func (k *KeptCounters) CPUUsage() (uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := k.files[slotCPU]
	if f.path == "" {
		return 0, unsupported(k.name, "cpu usage", "no cpuacct hierarchy")
	}
	var v uint64
	found, err := f.read(func(b []byte) error {
		if k.v2 {
			usec, _ := kfile.Keyed(b, "usage_usec") // absent: 0, as CPUUsage
			v = usec * 1000
			return nil
		}
		var ok bool
		if v, ok = kfile.Uint(b); !ok {
			return errors.New("cgroup: " + f.path + ": not a number")
		}
		return nil
	})
	if err == nil && !found {
		err = fs.ErrNotExist
	}
	return v, groupErr(k.name, "cpu usage", err)
}

// Counters is CounterReader.Counters through the kept descriptors: the
// same figures, the same zeros for what the group lacks and the same
// errors.
func (k *KeptCounters) Counters() (Counters, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var c Counters
	var usec uint64
	var any bool
	var errs []error
	uintFile := func(f *keptFile, out *uint64) {
		if f.path == "" {
			return
		}
		found, err := f.read(func(b []byte) error {
			v, ok := kfile.Uint(b)
			if !ok {
				return errors.New("cgroup: " + f.path + ": not a number")
			}
			*out = v
			return nil
		})
		any = any || found
		if err != nil {
			errs = append(errs, err)
		}
	}
	keyedFile := func(f *keptFile, keys []string, out []*uint64) {
		if f.path == "" {
			return
		}
		found, err := f.read(func(b []byte) error {
			for i, key := range keys {
				if v, ok := kfile.Keyed(b, key); ok {
					*out[i] = v
				}
			}
			return nil
		})
		any = any || found
		if err != nil {
			errs = append(errs, err)
		}
	}
	if k.v2 {
		keyedFile(k.files[slotCPU], []string{"usage_usec", "nr_throttled"}, []*uint64{&usec, &c.NrThrottled})
		if len(errs) > 0 {
			return c, groupErr(k.name, "counters", errs[0])
		}
		if !any && !exists(k.dirs[0]) {
			return c, groupErr(k.name, "counters", fs.ErrNotExist)
		}
		c.CPUUsageNs = usec * 1000
	} else {
		uintFile(k.files[slotCPU], &c.CPUUsageNs)
		keyedFile(k.files[slotStat], []string{"nr_throttled"}, []*uint64{&c.NrThrottled})
	}
	uintFile(k.files[slotMem], &c.MemCurrent)
	keyedFile(k.files[slotOOM], []string{"oom_kill"}, []*uint64{&c.OOMKills})
	if err := errors.Join(errs...); err != nil {
		return c, groupErr(k.name, "counters", err)
	}
	if !k.v2 && !any && !k.anyExists() {
		return c, groupErr(k.name, "counters", fs.ErrNotExist)
	}
	return c, nil
}

func (k *KeptCounters) anyExists() bool {
	for _, d := range k.dirs {
		if exists(d) {
			return true
		}
	}
	return false
}

// KeptMax bounds the descriptors every KeptCounters of the process keep
// together: a quarter of the soft RLIMIT_NOFILE at the first open (Go
// raises the soft limit to the hard one at start, often 2^20 under
// systemd, 20,000 on the profiled VM), and at most 8,192, which is 2,000
// agents' four v1 files, about 36 MiB of the kernel's seq_file pages. A
// file past the bound is read the old way. Tests may lower it.
var KeptMax = func() int64 {
	var r unix.Rlimit
	n := int64(8192)
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &r) == nil && int64(r.Cur/4) < n {
		n = int64(r.Cur / 4)
	}
	return n
}()

// keptOpen counts the descriptors kept by every KeptCounters.
var keptOpen atomic.Int64

// KeptOpen is how many descriptors every KeptCounters of the process
// keep now.
func KeptOpen() int64 { return keptOpen.Load() }

// keptBuf is the buffer a kept file is read into: every counter file fits
// (v2 cpu.stat, the longest, is about 200 bytes); a longer one is read
// whole by its path.
var keptBuf = sync.Pool{New: func() any { b := make([]byte, 1024); return &b }}

// read hands f's contents to use; found is false when the file (or the
// group) is not there.
func (f *keptFile) read(use func([]byte) error) (found bool, err error) {
	if f.fd < 0 {
		f.open()
	}
	if f.fd >= 0 {
		bp := keptBuf.Get().(*[]byte)
		defer keptBuf.Put(bp)
		b := *bp
		n, err := preadRetry(f.fd, b)
		if err == nil && n < len(b) {
			return true, use(b[:n])
		}
		// ENODEV: the group was removed (kernfs deactivated the file);
		// a full buffer: the file is longer than expected. Either way
		// read it by its path.
		f.close()
		if err != nil && !errors.Is(err, unix.ENODEV) {
			return false, &fs.PathError{Op: "pread", Path: f.path, Err: err}
		}
	}
	err = kfile.Read(f.path, use)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// open keeps a descriptor of f when the bound allows; on failure f stays
// closed and read takes the path.
func (f *keptFile) open() {
	if keptOpen.Add(1) > KeptMax {
		keptOpen.Add(-1)
		return
	}
	for {
		fd, err := unix.Open(f.path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			keptOpen.Add(-1)
			return
		}
		f.fd = fd
		return
	}
}

func (f *keptFile) close() {
	if f.fd >= 0 {
		unix.Close(f.fd)
		f.fd = -1
		keptOpen.Add(-1)
	}
}

func preadRetry(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Pread(fd, b, 0)
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}
