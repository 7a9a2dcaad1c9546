package syscap

import (
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"aiosfs/internal/testutil"
)

// needCapture skips unless a capture can run here, saying why.
func needCapture(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t, "loads a BPF raw tracepoint and a ring buffer")
	testutil.RequireSupport(t, "a BPF syscall capture", Supported())
}

// runIn runs a command in the cgroup dir from its first instruction
// (clone3 with CLONE_INTO_CGROUP) and waits for it.
func runIn(t testing.TB, dir string, name string, args ...string) time.Duration {
	t.Helper()
	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return time.Since(start)
}

// collector gathers events per cgroup.
type collector struct {
	mu  sync.Mutex
	by  map[uint64][]uint32
	all int
}

func (c *collector) handle(b []Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range b {
		c.by[e.Cgroup] = append(c.by[e.Cgroup], e.Nr)
		c.all++
	}
}

func (c *collector) get(id uint64) []uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint32(nil), c.by[id]...)
}

func count(s []uint32, nr uint32) int {
	n := 0
	for _, x := range s {
		if x == nr {
			n++
		}
	}
	return n
}

// TestCaptureLive: a process in a tracked cgroup is captured (its
// openat/read/getppid calls are there), one in an untracked cgroup is
// not, Untrack stops the capture, and the counters add up.
func TestCaptureLive(t *testing.T) {
	needCapture(t)
	tracked := testutil.Cgroup2Dir(t, "syscap-test-on")
	other := testutil.Cgroup2Dir(t, "syscap-test-off")
	col := &collector{by: map[uint64][]uint32{}}
	c, err := New(Config{Handler: col.handle, Flush: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Attached() {
		t.Fatal("attached with nothing tracked")
	}
	id, err := c.Track(tracked)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Attached() {
		t.Fatal("not attached with a cgroup tracked")
	}
	oid, _ := CgroupID(other)
	if id == oid || id == 0 {
		t.Fatalf("ids %d %d", id, oid)
	}
	// 50 opens and reads of /proc/self/stat by bash's builtin read.
	script := `for i in $(seq 50); do read -r x < /proc/self/stat; done; exec 3</etc/hostname`
	runIn(t, tracked, "/bin/bash", "-c", script)
	runIn(t, other, "/bin/bash", "-c", script)
	deadline := time.Now().Add(3 * time.Second)
	for len(col.get(id)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	got := col.get(id)
	const nrRead, nrOpenat, nrExecve = 0, 257, 59
	if len(got) < 100 || count(got, nrOpenat) < 50 || count(got, nrRead) < 50 {
		t.Fatalf("tracked cgroup: %d events, openat %d, read %d", len(got), count(got, nrOpenat), count(got, nrRead))
	}
	if n := len(col.get(oid)); n != 0 {
		t.Fatalf("untracked cgroup: %d events captured", n)
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tracked: %d events (openat %d, read %d, execve %d); stats %+v", len(got), count(got, nrOpenat), count(got, nrRead), count(got, nrExecve), st)
	if st.Events < uint64(len(got)) || st.Delivered < uint64(len(got)) || st.Dropped() != 0 || st.Tracked != 1 {
		t.Fatalf("stats %+v, collected %d", st, len(got))
	}
	if err := c.Untrack(tracked); err != nil {
		t.Fatal(err)
	}
	if c.Attached() {
		t.Fatal("still attached with nothing tracked")
	}
	before := st.Events
	runIn(t, tracked, "/bin/bash", "-c", script)
	st, _ = c.Stats()
	if st.Events != before || st.Tracked != 0 {
		t.Fatalf("after untrack: events %d -> %d, tracked %d", before, st.Events, st.Tracked)
	}
}

// TestRateLimit: past RatePerCPU a second the events are dropped and
// counted, and what passes stays within the limit.
func TestRateLimit(t *testing.T) {
	needCapture(t)
	dir := testutil.Cgroup2Dir(t, "syscap-test-rate")
	c, err := New(Config{RatePerCPU: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Track(dir); err != nil {
		t.Fatal(err)
	}
	// 20,000 one-byte reads and writes: far past 1000/s on any CPU.
	runIn(t, dir, "dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=20000", "status=none")
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats %+v", st)
	if st.DropRate < 10000 {
		t.Fatalf("rate drops %d, want most of 40,000 calls", st.DropRate)
	}
	ncpu := uint64(runtime.NumCPU())
	if st.Events > 1000*ncpu*3 { // at most a few windows on each CPU
		t.Fatalf("events %d past the limit (%d CPUs)", st.Events, ncpu)
	}
}

// TestCloseDetaches: after Close nothing of the program is left attached
// (the tracked cgroup's calls reach no program: the prog id is gone).
func TestCloseDetaches(t *testing.T) {
	needCapture(t)
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Track(testutil.Cgroup2Dir(t, "syscap-test-close")); err != nil {
		t.Fatal(err)
	}
	info, err := c.coll.Programs["syscap"].Info()
	if err != nil {
		t.Fatal(err)
	}
	pid, ok := info.ID()
	if !ok {
		t.Skip("no program id on this kernel")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	// the kernel frees the program once the link and fds are gone
	deadline := time.Now().Add(3 * time.Second)
	for {
		p, err := ebpf.NewProgramFromID(pid)
		if err != nil {
			return
		}
		p.Close()
		if time.Now().After(deadline) {
			t.Fatalf("program %d still loaded after Close", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWakeEvery: with WakeEvery the reader is woken by the records
// themselves: with a flush interval far longer than the test, a tracked
// bash's calls still arrive. A WakeEvery that is not a power of two is
// refused before anything is loaded.
func TestWakeEvery(t *testing.T) {
	for _, bad := range []int{-1, 3, 100} {
		if _, err := New(Config{WakeEvery: bad}); err == nil {
			t.Errorf("WakeEvery %d accepted", bad)
		}
	}
	needCapture(t)
	dir := testutil.Cgroup2Dir(t, "syscap-test-wake")
	col := &collector{by: map[uint64][]uint32{}}
	c, err := New(Config{Handler: col.handle, Flush: time.Hour, WakeEvery: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id, err := c.Track(dir)
	if err != nil {
		t.Fatal(err)
	}
	runIn(t, dir, "/bin/bash", "-c", `for i in $(seq 200); do read -r x < /proc/self/stat; done`)
	deadline := time.Now().Add(3 * time.Second)
	for len(col.get(id)) < 256 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st, _ := c.Stats()
	if n := len(col.get(id)); n < 256 {
		t.Fatalf("WakeEvery 64, no flush: %d events delivered of %d written", n, st.Events)
	}
	t.Logf("delivered %d of %d written without a flush", len(col.get(id)), st.Events)
}

// The default ring follows the host's CPUs: 512 KiB a CPU, a power of two,
// at least 1 MiB and at most the old fixed 4 MiB (a 2-CPU host's daemon
// held 8 MiB of VmRSS in the ring's two mappings; now 2).
func TestDefaultRingBytes(t *testing.T) {
	for _, c := range []struct{ cpus, want int }{
		{1, 1 << 20}, {2, 1 << 20}, {3, 2 << 20}, {4, 2 << 20}, {5, 4 << 20}, {8, 4 << 20}, {64, 4 << 20},
	} {
		if got := ringBytesFor(c.cpus); got != c.want {
			t.Errorf("%d CPUs: ring %d bytes, want %d", c.cpus, got, c.want)
		}
	}
	b := DefaultRingBytes()
	if b&(b-1) != 0 || b%os.Getpagesize() != 0 || b < MinRingBytes || b > MaxRingBytes {
		t.Errorf("DefaultRingBytes() = %d: not a power of two page multiple within [%d, %d]", b, MinRingBytes, MaxRingBytes)
	}
}
