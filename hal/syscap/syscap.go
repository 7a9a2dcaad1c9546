// Package syscap captures the system calls of tracked cgroups with one
// eBPF program (issue 13): the syscall-sequence signal of the threat
// engine reads what it captures.
//
// # The program
//
// One BPF_PROG_TYPE_RAW_TRACEPOINT program on raw_syscalls:sys_enter
// ("sys_enter"), attached with BPF_RAW_TRACEPOINT_OPEN: no tracefs mount,
// no kprobes, no BTF, no clang. It is written with cilium/ebpf's asm
// package (Instructions), so nothing is generated or compiled at build
// time. For every system call entered on the host it:
//
//  1. takes bpf_get_current_cgroup_id() (the task's cgroup2 id: the inode
//     number of its cgroup2 directory; on a hybrid host the unified
//     hierarchy's) and looks it up in the hash map "tracked"; a task of a
//     cgroup not tracked costs that lookup and nothing else;
//  2. applies a per-CPU rate limit: at most RatePerCPU events a CPU in
//     each one-second window (a per-CPU array holds the window's start and
//     count); past it the event is dropped and counted (drop_rate);
//  3. writes a 16-byte record {cgroup id u64, thread id u32, syscall nr
//     u32} into the BPF ring buffer "ring" with bpf_ringbuf_output. A
//     full ring drops the record and counts it (drop_full). Wakeups are
//     batched: the record is written with BPF_RB_NO_WAKEUP while less than
//     a quarter of the ring is filled and BPF_RB_FORCE_WAKEUP past it
//     (or, with Config.WakeEvery, on every WakeEvery-th record a CPU
//     writes, which spares the bpf_ringbuf_query call a record); the
//     reader also drains the ring every Flush interval on its own, so
//     a quiet agent's records never wait longer than that;
//  4. counts the records written (events) per CPU.
//
// Only the id of the task's own cgroup is matched: a cgroup's children are
// not tracked unless tracked themselves (agents run in one leaf cgroup).
//
// The program is attached only while at least one cgroup is tracked
// (New attaches it once to prove it can, then detaches it): with no agent
// tracked no task on the host pays for it. The counters are per-CPU and
// read by summing the CPUs (Stats). Close detaches the program (the link)
// and frees the maps.
package syscap

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Event is one captured system-call entry.
type Event struct {
	Cgroup uint64 // cgroup2 id (inode of the cgroup2 directory)
	Tid    uint32 // the thread (kernel pid)
	Nr     uint32 // x86_64 system-call number (the host's native table)
}

// Stats are the capture's counters since New.
type Stats struct {
	Events    uint64 // records written into the ring by the program
	DropRate  uint64 // dropped by the per-CPU rate limit
	DropFull  uint64 // dropped because the ring was full
	Delivered uint64 // records read from the ring and handed to Handler
	Tracked   int    // cgroups tracked now
}

// Dropped is every event dropped in the kernel.
func (s Stats) Dropped() uint64 { return s.DropRate + s.DropFull }

// Config sets up a capture.
type Config struct {
	// RatePerCPU is the most events a CPU passes on in one second
	// (default 200000); the rest are dropped and counted.
	RatePerCPU int
	// RingBytes is the ring buffer's size, a power of two and a multiple
	// of the page size (default DefaultRingBytes for the host's CPUs).
	// It is memory the daemon holds for its life: the kernel maps the
	// ring's pages twice in a row (so a record may wrap), and both
	// mappings count in the reader's VmRSS once the ring has wrapped, so
	// a 4 MiB ring is 8 MiB of the daemon's RSS.
	RingBytes int
	// Flush is how often the reader drains the ring when no wakeup came
	// (default 100 ms).
	Flush time.Duration
	// WakeEvery, a power of two, wakes the reader on every WakeEvery-th
	// record a CPU writes instead of when the ring is a quarter full
	// (0, the default): the program then skips bpf_ringbuf_query, one
	// helper call a record (scripts/bench/syscap measures both).
	WakeEvery int
	// Handler gets the events in batches, in ring order, from one
	// goroutine; it must not keep the slice. nil: events are counted
	// (Delivered) and discarded.
	Handler func([]Event)
}

// Defaults.
const (
	DefaultRatePerCPU = 200000
	// RingBytesPerCPU sizes the default ring: a record is 24 bytes in
	// the ring (16 and the ring's 8-byte header), so a CPU at the
	// default rate limit writes 4.8 MB/s, and 512 KiB a CPU leaves the
	// reader, woken at a quarter full, about 80 ms to start draining
	// before a CPU at the limit fills the rest. The ring is between
	// MinRingBytes and MaxRingBytes (the old fixed default).
	RingBytesPerCPU = 512 << 10
	MinRingBytes    = 1 << 20
	MaxRingBytes    = 4 << 20
	DefaultFlush    = 100 * time.Millisecond
	maxTracked      = 4096
	batchMax        = 512
)

// DefaultRingBytes is the ring's size for this host: RingBytesPerCPU for
// each possible CPU (the program runs on any), rounded up to a power of
// two, within MinRingBytes and MaxRingBytes.
func DefaultRingBytes() int {
	n, err := ebpf.PossibleCPU()
	if err != nil || n < 1 {
		return MaxRingBytes
	}
	return ringBytesFor(n)
}

func ringBytesFor(cpus int) int {
	b := MinRingBytes
	for b < cpus*RingBytesPerCPU && b < MaxRingBytes {
		b <<= 1
	}
	return b
}

// Per-CPU state value layout (u64 words).
const (
	stWinStart = 0
	stCount    = 8
	stEvents   = 16
	stDropRate = 24
	stDropFull = 32
	stSize     = 40
)

const (
	rbNoWakeup    = 1 // BPF_RB_NO_WAKEUP
	rbForceWakeup = 2 // BPF_RB_FORCE_WAKEUP
	rbAvailData   = 0 // BPF_RB_AVAIL_DATA
	recordSize    = 16
)

// Instructions is the program (see the package doc). ratePerCPU is the
// per-CPU limit per second; wakeAt the ring fill (bytes) past which a
// record wakes the reader. A wakeEvery above 0 (a power of two) wakes it
// instead on every wakeEvery-th record a CPU writes, without asking the
// ring its fill (one helper call fewer a record; Config.WakeEvery).
func Instructions(ratePerCPU, wakeAt, wakeEvery int32) asm.Instructions {
	wake := asm.Instructions{
		// wake the reader only past wakeAt bytes waiting
		asm.LoadMapPtr(asm.R1, 0).WithReference("ring"),
		asm.Mov.Imm(asm.R2, rbAvailData),
		asm.FnRingbufQuery.Call(),
		asm.Mov.Imm(asm.R9, rbNoWakeup),
		asm.JLT.Imm(asm.R0, wakeAt, "write"),
		asm.Mov.Imm(asm.R9, rbForceWakeup),
	}
	if wakeEvery > 0 {
		wake = asm.Instructions{
			// wake the reader on every wakeEvery-th record of this CPU
			asm.LoadMem(asm.R1, asm.R8, stEvents, asm.DWord),
			asm.Mov.Imm(asm.R9, rbNoWakeup),
			asm.And.Imm(asm.R1, wakeEvery-1),
			asm.JNE.Imm(asm.R1, 0, "write"),
			asm.Mov.Imm(asm.R9, rbForceWakeup),
		}
	}
	ins := asm.Instructions{
		// r6 = ctx; r7 = syscall id (struct bpf_raw_tracepoint_args: args[1] of sys_enter(regs, id))
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R7, asm.R6, 8, asm.DWord),
		// fp-24 = cgroup id; is it tracked?
		asm.FnGetCurrentCgroupId.Call(),
		asm.StoreMem(asm.RFP, -24, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, 0).WithReference("tracked"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -24),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		// r8 = this CPU's state
		asm.StoreImm(asm.RFP, -28, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("state"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -28),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Reg(asm.R8, asm.R0),
		// rate limit: a new one-second window resets the count
		asm.FnKtimeGetNs.Call(),
		asm.LoadMem(asm.R1, asm.R8, stWinStart, asm.DWord),
		asm.Mov.Reg(asm.R2, asm.R0),
		asm.Sub.Reg(asm.R2, asm.R1),
		asm.JLT.Imm(asm.R2, 1000000000, "inwin"),
		asm.StoreMem(asm.R8, stWinStart, asm.R0, asm.DWord),
		asm.StoreImm(asm.R8, stCount, 0, asm.DWord),
		asm.LoadMem(asm.R1, asm.R8, stCount, asm.DWord).WithSymbol("inwin"),
		asm.JGE.Imm(asm.R1, ratePerCPU, "droprate"),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R8, stCount, asm.R1, asm.DWord),
		// the record: fp-24 cgroup id, fp-16 tid, fp-12 nr
		asm.FnGetCurrentPidTgid.Call(),
		asm.StoreMem(asm.RFP, -16, asm.R0, asm.Word),
		asm.StoreMem(asm.RFP, -12, asm.R7, asm.Word),
	}
	ins = append(ins, wake...)
	return append(ins, asm.Instructions{
		asm.LoadMapPtr(asm.R1, 0).WithReference("ring").WithSymbol("write"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -24),
		asm.Mov.Imm(asm.R3, recordSize),
		asm.Mov.Reg(asm.R4, asm.R9),
		asm.FnRingbufOutput.Call(),
		asm.JNE.Imm(asm.R0, 0, "dropfull"),
		asm.LoadMem(asm.R1, asm.R8, stEvents, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R8, stEvents, asm.R1, asm.DWord),
		asm.Ja.Label("out"),
		asm.LoadMem(asm.R1, asm.R8, stDropFull, asm.DWord).WithSymbol("dropfull"),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R8, stDropFull, asm.R1, asm.DWord),
		asm.Ja.Label("out"),
		asm.LoadMem(asm.R1, asm.R8, stDropRate, asm.DWord).WithSymbol("droprate"),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R8, stDropRate, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	}...)
}

// collectionSpec is the maps and the program.
func collectionSpec(cfg Config) *ebpf.CollectionSpec {
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			"tracked": {Name: "aiosfs_sctrack", Type: ebpf.Hash, KeySize: 8, ValueSize: 4, MaxEntries: maxTracked},
			"state":   {Name: "aiosfs_scstate", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: stSize, MaxEntries: 1},
			"ring":    {Name: "aiosfs_scring", Type: ebpf.RingBuf, MaxEntries: uint32(cfg.RingBytes)},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			"syscap": {
				Name:         "aiosfs_syscap",
				Type:         ebpf.RawTracepoint,
				Instructions: Instructions(int32(cfg.RatePerCPU), int32(cfg.RingBytes/4), int32(cfg.WakeEvery)),
				License:      "GPL",
			},
		},
	}
}

// Capture is the attached program, its maps and the reader.
type Capture struct {
	cfg     Config
	coll    *ebpf.Collection
	lnk     link.Link // nil while nothing is tracked
	rd      *ringbuf.Reader
	done    chan struct{}
	closeMu sync.Once

	mu        sync.Mutex
	tracked   map[string]uint64 // cgroup2 dir -> id
	delivered uint64
	closed    bool
}

var memlock sync.Once

// Supported says why a capture cannot run here, or nil: no CAP_BPF and
// CAP_PERFMON (nor CAP_SYS_ADMIN), or a kernel without raw tracepoint
// programs, ring buffers (5.8) or bpf_get_current_cgroup_id.
// Every such answer wraps errors.ErrUnsupported, so a caller (a test)
// can tell "this machine cannot" from a failure to find out.
func Supported() error {
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("syscap: capget: %w", err)
	}
	has := func(c int) bool { return data[c/32].Effective&(1<<(uint(c)%32)) != 0 }
	if !has(unix.CAP_SYS_ADMIN) && !(has(unix.CAP_BPF) && has(unix.CAP_PERFMON)) {
		return fmt.Errorf("syscap: not supported: neither CAP_SYS_ADMIN nor CAP_BPF+CAP_PERFMON (run the daemon as root): %w", errors.ErrUnsupported)
	}
	if err := features.HaveProgramType(ebpf.RawTracepoint); err != nil {
		return fmt.Errorf("syscap: not supported: no raw tracepoint programs: %w: %w", errors.ErrUnsupported, err)
	}
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		return fmt.Errorf("syscap: not supported: no BPF ring buffer (Linux 5.8): %w: %w", errors.ErrUnsupported, err)
	}
	if err := features.HaveProgramHelper(ebpf.RawTracepoint, asm.FnGetCurrentCgroupId); err != nil {
		return fmt.Errorf("syscap: not supported: no bpf_get_current_cgroup_id: %w: %w", errors.ErrUnsupported, err)
	}
	return nil
}

// New loads the program, attaches it to sys_enter and starts the reader.
// Nothing is captured until a cgroup is tracked.
func New(cfg Config) (*Capture, error) {
	if cfg.RatePerCPU <= 0 {
		cfg.RatePerCPU = DefaultRatePerCPU
	}
	if cfg.RatePerCPU > 1<<31-1 {
		cfg.RatePerCPU = 1<<31 - 1
	}
	if cfg.RingBytes <= 0 {
		cfg.RingBytes = DefaultRingBytes()
	}
	if cfg.RingBytes&(cfg.RingBytes-1) != 0 || cfg.RingBytes%os.Getpagesize() != 0 {
		return nil, fmt.Errorf("syscap: ring size %d is not a power of two multiple of the page size", cfg.RingBytes)
	}
	if cfg.Flush <= 0 {
		cfg.Flush = DefaultFlush
	}
	if cfg.WakeEvery < 0 || cfg.WakeEvery&(cfg.WakeEvery-1) != 0 || cfg.WakeEvery > 1<<30 {
		return nil, fmt.Errorf("syscap: WakeEvery %d is not 0 or a power of two", cfg.WakeEvery)
	}
	memlock.Do(func() { _ = rlimit.RemoveMemlock() })
	coll, err := ebpf.NewCollection(collectionSpec(cfg))
	if err != nil {
		return nil, fmt.Errorf("syscap: load: %w", err)
	}
	c := &Capture{cfg: cfg, coll: coll, tracked: map[string]uint64{}, done: make(chan struct{})}
	c.rd, err = ringbuf.NewReader(coll.Maps["ring"])
	if err != nil {
		coll.Close()
		return nil, fmt.Errorf("syscap: ring reader: %w", err)
	}
	// Attach once to prove it works, then detach until a cgroup is
	// tracked: with nothing tracked no task on the host pays anything.
	if err := c.attach(); err != nil {
		c.rd.Close()
		coll.Close()
		return nil, err
	}
	c.detach()
	go c.read()
	return c, nil
}

// attach attaches the program to sys_enter (c.mu held, or before use).
func (c *Capture) attach() error {
	if c.lnk != nil {
		return nil
	}
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: c.coll.Programs["syscap"]})
	if err != nil {
		return fmt.Errorf("syscap: attach to sys_enter: %w", err)
	}
	c.lnk = l
	return nil
}

// detach detaches the program (c.mu held).
func (c *Capture) detach() error {
	if c.lnk == nil {
		return nil
	}
	err := c.lnk.Close()
	c.lnk = nil
	return err
}

// Attached says whether the program is attached now (a cgroup is tracked).
func (c *Capture) Attached() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lnk != nil
}

// read drains the ring until Close, handing batches to the Handler.
func (c *Capture) read() {
	defer close(c.done)
	var rec ringbuf.Record
	batch := make([]Event, 0, batchMax)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if c.cfg.Handler != nil {
			c.cfg.Handler(batch)
		}
		c.mu.Lock()
		c.delivered += uint64(len(batch))
		c.mu.Unlock()
		batch = batch[:0]
	}
	c.rd.SetDeadline(time.Now().Add(c.cfg.Flush))
	for {
		err := c.rd.ReadInto(&rec)
		switch {
		case err == nil:
			if len(rec.RawSample) >= recordSize {
				b := rec.RawSample
				batch = append(batch, Event{
					Cgroup: *(*uint64)(unsafe.Pointer(&b[0])),
					Tid:    *(*uint32)(unsafe.Pointer(&b[8])),
					Nr:     *(*uint32)(unsafe.Pointer(&b[12])),
				})
			}
			if len(batch) == batchMax {
				flush()
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			flush()
			c.rd.SetDeadline(time.Now().Add(c.cfg.Flush))
		default: // closed
			flush()
			return
		}
	}
}

// Track starts capturing the tasks of the cgroup2 directory dir and
// returns its id. Tracking a directory twice is harmless.
func (c *Capture) Track(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("syscap: %w", err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("syscap: %s is not a cgroup2 directory", dir)
	}
	id, err := CgroupID(dir)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.tracked[dir]; ok && old != id {
		_ = c.coll.Maps["tracked"].Delete(old) // the directory was made again
	}
	if c.closed {
		return 0, errors.New("syscap: capture closed")
	}
	if err := c.coll.Maps["tracked"].Put(id, uint32(1)); err != nil {
		return 0, fmt.Errorf("syscap: track %s: %w", dir, err)
	}
	c.tracked[dir] = id
	if err := c.attach(); err != nil {
		delete(c.tracked, dir)
		_ = c.coll.Maps["tracked"].Delete(id)
		return 0, err
	}
	return id, nil
}

// Untrack stops capturing dir (known by the id Track saw, so a directory
// already removed is untracked too). Untracking what is not tracked is
// not an error.
func (c *Capture) Untrack(dir string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.tracked[dir]
	if !ok {
		return nil
	}
	delete(c.tracked, dir)
	if err := c.coll.Maps["tracked"].Delete(id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("syscap: untrack %s: %w", dir, err)
	}
	if len(c.tracked) == 0 {
		return c.detach()
	}
	return nil
}

// Tracked is the tracked directories and their ids.
func (c *Capture) Tracked() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]uint64, len(c.tracked))
	for k, v := range c.tracked {
		m[k] = v
	}
	return m
}

// ProgramStats is the program's run count and total run time, as the
// kernel counts them while BPF run-time statistics are enabled
// (ebpf.EnableStats; ok false otherwise). Every system call on the host
// runs the program while it is attached, tracked or not.
func (c *Capture) ProgramStats() (runs uint64, runtime time.Duration, ok bool) {
	info, err := c.coll.Programs["syscap"].Info()
	if err != nil {
		return 0, 0, false
	}
	runs, ok1 := info.RunCount()
	runtime, ok2 := info.Runtime()
	return runs, runtime, ok1 && ok2
}

// Stats sums the per-CPU counters.
func (c *Capture) Stats() (Stats, error) {
	c.mu.Lock()
	s := Stats{Delivered: c.delivered, Tracked: len(c.tracked)}
	c.mu.Unlock()
	var per [][stSize]byte
	if err := c.coll.Maps["state"].Lookup(uint32(0), &per); err != nil {
		return s, fmt.Errorf("syscap: read counters: %w", err)
	}
	for _, v := range per {
		s.Events += *(*uint64)(unsafe.Pointer(&v[stEvents]))
		s.DropRate += *(*uint64)(unsafe.Pointer(&v[stDropRate]))
		s.DropFull += *(*uint64)(unsafe.Pointer(&v[stDropFull]))
	}
	return s, nil
}

// Close detaches the program, stops the reader (records still in the
// ring are not handed on) and frees the maps.
func (c *Capture) Close() error {
	var err error
	c.closeMu.Do(func() {
		c.mu.Lock()
		err = c.detach()
		c.closed = true
		c.mu.Unlock()
		c.rd.Close()
		<-c.done
		c.coll.Close()
	})
	return err
}

// CgroupID is the kernel's id of the cgroup2 directory dir (its inode
// number), what bpf_get_current_cgroup_id returns for its tasks.
func CgroupID(dir string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("syscap: %w", err)
	}
	return st.Ino, nil
}
