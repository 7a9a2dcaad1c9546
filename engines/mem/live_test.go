package mem

// Live tests: the engine's tree mounted through the real FUSE adapter and
// driven by real processes (this test binary re-executed as a helper),
// the kernel's own smaps and process_madvise, and a SIGKILL of a process
// serving the tree. They need root and /dev/fuse (FUSE mounts, clear_refs
// of other users' processes) and skip, saying why, without them.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"aiosfs/ctl"
	"aiosfs/fs"
	"aiosfs/fs/fusefs"
	"aiosfs/hal/vm"
	"aiosfs/internal/testutil"
)

const helperEnv = "AIOSFS_MEM_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "serve":
		serveMain()
	case "read":
		readMain()
	case "touch":
		touchMain()
	case "touchpart":
		touchPartMain()
	case "serveagents":
		serveAgentsMain()
	case "":
		os.Exit(m.Run())
	}
	os.Exit(2)
}

func requireRoot(t *testing.T) {
	t.Helper()
	testutil.RequireFUSE(t, "mounts FUSE, reads and clears other processes' page bits")
}

func helper(mode string, args ...string) *exec.Cmd {
	self, _ := os.Executable()
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

// serveMain serves the engine over FUSE at argv[1] with state argv[2]
// until killed: the daemon's mem engine without the rest of the daemon.
func serveMain() {
	mount, state := os.Args[1], os.Args[2]
	ns := &fs.NS{Boot: time.Now()}
	e, err := New(Config{StateDir: state, NS: ns, Proc: "/proc", Seed: 1, Interval: 200 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err := fusefs.Mount(mount, ns.StaticDir("/", 0555, fs.Owner{}, e.Nodes()...), fusefs.Options{Name: "aiosfs-memtest"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv.Wait()
	os.Exit(0)
}

// readMain reads file argv[1] with a known pattern and prints its own
// latency: passes of a sequential scan over the first argv[2] bytes in
// 64 KiB reads, each followed by 32 reads of a 256 KiB hot set.
func readMain() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scan, _ := strconv.ParseInt(os.Args[2], 10, 64)
	passes, _ := strconv.Atoi(os.Args[3])
	buf := make([]byte, 64<<10)
	var lats []time.Duration
	read := func(off int64) {
		t0 := time.Now()
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		lats = append(lats, time.Since(t0))
	}
	hot := scan // the hot set sits just after the scanned part
	for p := 0; p < passes; p++ {
		for off := int64(0); off < scan; off += int64(len(buf)) {
			read(off)
			if (off/int64(len(buf)))%8 == 7 {
				for i := int64(0); i < 4; i++ {
					read(hot + i*int64(len(buf)))
				}
			}
		}
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	var sum time.Duration
	for _, l := range lats {
		sum += l
	}
	fmt.Printf("reads=%d mean=%.6f p50=%.6f p99=%.6f\n", len(lats), (sum / time.Duration(len(lats))).Seconds(),
		lats[len(lats)/2].Seconds(), lats[len(lats)*99/100].Seconds())
	os.Exit(0)
}

// touchMain maps two files: argv[1] is touched every 20 ms (the working
// set), argv[2] once (cold after that). It prints "ready" after the first
// round and runs until killed.
func touchMain() {
	if len(os.Args) > 3 && os.Args[3] == "wait" {
		// Wait to be moved into a cgroup before touching, so the page
		// cache it faults in is charged there.
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	hot, cold := mapFile(os.Args[1]), mapFile(os.Args[2])
	touch(cold)
	touch(hot)
	fmt.Println("ready", touchSink)
	for {
		touch(hot)
		time.Sleep(20 * time.Millisecond)
	}
}

// mapFile maps the file p read-only and shared, or ends the helper.
func mapFile(p string) []byte {
	f, err := os.Open(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	st, _ := f.Stat()
	b, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return b
}

// touch reads one byte of every page of b. The sum goes to a package
// variable: loads whose results are never used may be dropped by the
// compiler, and then nothing is touched.
func touch(b []byte) {
	var s byte
	for i := 0; i < len(b); i += 4096 {
		s += b[i]
	}
	touchSink += s
}

var touchSink byte

// touchPartMain maps the file argv[1], touches all of it once, prints
// "ready", then touches only its first argv[2] bytes every 20 ms; on
// SIGUSR1 it touches the whole file once more and prints "again".
func touchPartMain() {
	b := mapFile(os.Args[1])
	hot, _ := strconv.Atoi(os.Args[2])
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	touch(b)
	fmt.Println("ready", touchSink)
	for {
		select {
		case <-usr1:
			touch(b)
			fmt.Println("again", touchSink)
		default:
		}
		touch(b[:hot])
		time.Sleep(20 * time.Millisecond)
	}
}

func unixFadviseDontneed(f *os.File) { unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) }

// field is the value of key in text's records (ctl.Field).
func field(text, key string) string {
	v, _ := ctl.Field(text, key)
	return v
}

func startServe(t *testing.T, mount, state string) *exec.Cmd {
	t.Helper()
	cmd := helper("serve", mount, state)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(mount, "mem", "ctl")); err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the tree was not served")
		}
	}
}

func kill9(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
}

func writeCtl(t *testing.T, p, line string) error {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(line + "\n"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// TestLiveKill9Persistent: bytes written through FUSE to a persistent
// region are there after the process serving it is killed with SIGKILL
// and started again; an ephemeral region is not.
func TestLiveKill9Persistent(t *testing.T) {
	requireRoot(t)
	top := t.TempDir()
	mount, state := filepath.Join(top, "m"), filepath.Join(top, "state")
	srv := startServe(t, mount, state)
	defer func() { kill9(srv); fusefs.ClearStale(mount) }()
	if err := writeCtl(t, filepath.Join(mount, "mem/ctl"), "alloc keep 4M persistent tag=db"); err != nil {
		t.Fatal(err)
	}
	if err := writeCtl(t, filepath.Join(mount, "mem/ctl"), "alloc scratch 1M"); err != nil {
		t.Fatal(err)
	}
	want := map[int64][]byte{}
	f, err := os.OpenFile(filepath.Join(mount, "mem/regions/keep/data"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, off := range []int64{0, 4095, 1 << 20, 4<<20 - 7} {
		b := []byte(fmt.Sprintf("rec%03d", i))
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
		want[off] = b
	}
	// A write past the end fails with EFBIG and changes nothing.
	if _, err := f.WriteAt([]byte("x"), 4<<20); !errorsIs(err, syscall.EFBIG) {
		t.Errorf("write past the end: %v", err)
	}
	f.Close()
	kill9(srv)
	srv = startServe(t, mount, state)
	b, err := os.ReadFile(filepath.Join(mount, "mem/regions/keep/data"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4<<20 {
		t.Fatalf("region is %d bytes after restart", len(b))
	}
	for off, w := range want {
		if string(b[off:off+int64(len(w))]) != string(w) {
			t.Errorf("at %d: %q, want %q", off, b[off:off+int64(len(w))], w)
		}
	}
	if _, err := os.Stat(filepath.Join(mount, "mem/regions/scratch")); !os.IsNotExist(err) {
		t.Errorf("ephemeral region after restart: %v", err)
	}
	info, _ := os.ReadFile(filepath.Join(mount, "mem/find/db"))
	t.Logf("after kill -9 and restart: %s", info)
}

func errorsIs(err error, e syscall.Errno) bool {
	for err != nil {
		if x, ok := err.(syscall.Errno); ok {
			return x == e
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// TestLiveFabricPolicies: a real process reads a region through the FUSE
// mount with a known pattern (a looping scan larger than the cache plus a
// small hot set); for each policy, with prefetch off and on, the region's
// hit ratio and the reader's own read latency are measured and reported.
func TestLiveFabricPolicies(t *testing.T) {
	requireRoot(t)
	top := t.TempDir()
	mount, state := filepath.Join(top, "m"), filepath.Join(top, "state")
	srv := startServe(t, mount, state)
	defer func() { kill9(srv); fusefs.ClearStale(mount) }()
	ctlp := filepath.Join(mount, "mem/ctl")
	const scan = 6 << 20
	if err := writeCtl(t, ctlp, "alloc fab 8M cache=4M tag=live"); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(mount, "mem/regions/fab/data")
	f, err := os.OpenFile(data, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	for off := int64(0); off < 8<<20; off += 1 << 20 {
		if _, err := f.WriteAt(chunk, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	var rows []string
	for _, pol := range CtlPolicies {
		for _, pf := range []string{"off", "on"} {
			if err := writeCtl(t, ctlp, "prefetch fab "+pf); err != nil {
				t.Fatal(err)
			}
			if err := writeCtl(t, ctlp, "policy fab "+pol); err != nil { // restarts the counters
				t.Fatal(err)
			}
			out, err := helper("read", data, strconv.Itoa(scan), "3").Output()
			if err != nil {
				t.Fatalf("reader: %v", err)
			}
			cache, _ := os.ReadFile(filepath.Join(mount, "mem/cache"))
			pfl, _ := os.ReadFile(filepath.Join(mount, "mem/prefetch"))
			c, p := string(cache), string(pfl)
			hits, _ := strconv.Atoi(field(c, "hits"))
			misses, _ := strconv.Atoi(field(c, "misses"))
			if hits+misses == 0 {
				t.Errorf("%s prefetch %s: no accesses counted: %s", pol, pf, c)
			}
			issued, _ := strconv.Atoi(field(p, "issued"))
			if pf == "on" && issued == 0 {
				t.Errorf("%s: prefetch on issued nothing on a sequential scan: %s", pol, p)
			}
			if pf == "off" && issued != 0 {
				t.Errorf("%s: prefetch off issued %d", pol, issued)
			}
			row := fmt.Sprintf("policy=%s prefetch=%s hit_ratio=%s hits=%d misses=%d leader=%s prefetch_issued=%s prefetch_used=%s server_read_latency=%s client_%s",
				pol, pf, field(c, "hit_ratio"), hits, misses, field(c, "leader"), field(p, "issued"), field(p, "used"), field(c, "read_latency"), strings.TrimSpace(string(out)))
			rows = append(rows, row)
			t.Log(row)
		}
	}
	pat, _ := os.ReadFile(filepath.Join(mount, "mem/regions/fab/pattern"))
	first := strings.SplitN(string(pat), "\n", 2)[0]
	t.Logf("pattern: %s", first)
	if loc := field(first, "locality"); loc != Spatial {
		t.Errorf("a sequential scan's locality: %q", loc)
	}
}

// TestLiveWorkingSetAndPageout: a real process touches a 32 MiB file
// mapping every 20 ms and another 32 MiB one once. The analyzer reports a
// working set within 10 % of 32 MiB, finds the 32 MiB mapping cold, and
// MADV_PAGEOUT through process_madvise takes it out of memory, as the
// kernel's smaps shows.
func TestLiveWorkingSetAndPageout(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	hotF, coldF := filepath.Join(dir, "hot"), filepath.Join(dir, "cold")
	for p, n := range map[string]int{hotF: 32 << 20, coldF: 32 << 20} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		if err := os.WriteFile(p, b, 0644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := helper("touch", hotF, coldF)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	ag := fakeAgents{1: {Alive: true, Pids: []int{pid}}}
	f := newFixture(t, t.TempDir(), ag)
	defer f.e.Close()
	dirNode := f.e.AgentFiles(1, "/agents/1", fs.Owner{})
	root := f.e.cfg.NS.StaticDir("/", 0555, fs.Owner{}, append(f.e.Nodes(), f.e.cfg.NS.StaticDir("/agents", 0555, fs.Owner{},
		f.e.cfg.NS.StaticDir("/agents/1", 0555, fs.Owner{}, dirNode...)))...)
	f.root = root
	var hotRef, wss int64
	for i := 0; i < 4; i++ {
		if err := f.ctl("/agents/1/mem/ctl", "sample"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	if err := f.ctl("/agents/1/mem/ctl", "sample"); err != nil {
		t.Fatal(err)
	}
	pattern := f.read("/agents/1/mem/pattern")
	for _, l := range strings.Split(pattern, "\n") {
		if strings.HasSuffix(l, "path="+hotF) {
			hotRef, _ = strconv.ParseInt(field(l, "referenced"), 10, 64)
		}
	}
	wss, _ = strconv.ParseInt(field(f.read("/agents/1/mem/wss"), "wss"), 10, 64)
	// Truth: the 32 MiB the helper touches. The process's own working set
	// also holds what the Go runtime and libc touch (about 2 MiB here),
	// real references the kernel counts too; both are checked.
	const truth = 32 << 20
	t.Logf("truth=%d hot_mapping_referenced=%d (%.1f%% off) process_wss=%d (%.1f%% off)", truth, hotRef,
		100*float64(hotRef-truth)/truth, wss, 100*float64(wss-truth)/truth)
	for what, got := range map[string]int64{"hot mapping": hotRef, "process": wss} {
		if d := float64(got-truth) / truth; d < -0.10 || d > 0.10 {
			t.Errorf("%s working set %d, truth %d: %.1f%% off", what, got, truth, 100*d)
		}
	}
	t.Logf("hot:\n%s", f.read("/agents/1/mem/hot"))
	coldRss := func() uint64 {
		ms, err := vm.FS("/proc").Smaps(pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Path == coldF {
				return m.Rss
			}
		}
		t.Fatal("cold mapping gone")
		return 0
	}
	before := coldRss()
	if !strings.Contains(pattern, "idle=") || !strings.Contains(pattern, "path="+coldF) {
		t.Fatalf("pattern: %s", pattern)
	}
	if err := f.ctl("/agents/1/mem/ctl", "pageout"); err != nil {
		t.Fatal(err)
	}
	after := coldRss()
	dec := f.read("/agents/1/mem/decisions")
	t.Logf("cold mapping rss %d -> %d; decisions:\n%s", before, after, dec)
	if !strings.Contains(dec, "advice=pageout reason=manual") || !strings.Contains(dec, "path="+coldF) {
		t.Errorf("no pageout decision for the cold mapping")
	}
	if before < 30<<20 || after > before/4 {
		t.Errorf("cold mapping Rss %d -> %d after MADV_PAGEOUT", before, after)
	}
	// The next periods record whether it came back (it should not).
	for i := 0; i < 3; i++ {
		time.Sleep(300 * time.Millisecond)
		f.ctl("/agents/1/mem/ctl", "sample")
	}
	dec = f.read("/agents/1/mem/decisions")
	for _, l := range strings.Split(dec, "\n") {
		if strings.HasSuffix(l, "path="+coldF) && field(l, "outcome") != "stayed_out" {
			t.Errorf("cold mapping outcome: %s", l)
		}
	}
	t.Logf("policy: %s", f.read("/agents/1/mem/policy"))
}

// TestLivePressurePaging: the helper runs in a memory cgroup this test
// makes (cgroup v1), its usage at 95 % of the limit. The engine's periodic
// work sees the pressure, advises MADV_PAGEOUT on the cold 32 MiB mapping
// by itself, and the kernel's memory.usage_in_bytes of that cgroup drops.
func TestLivePressurePaging(t *testing.T) {
	requireRoot(t)
	base := "/sys/fs/cgroup/memory"
	if _, err := os.Stat(filepath.Join(base, "memory.limit_in_bytes")); err != nil {
		t.Skip("needs a cgroup v1 memory hierarchy at /sys/fs/cgroup/memory (this path is v1's; v2 would use memory.max)")
	}
	cg := filepath.Join(base, fmt.Sprintf("aiosfs-memtest-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hotF, coldF := filepath.Join(dir, "hot"), filepath.Join(dir, "cold")
	for _, p := range []string{hotF, coldF} {
		b := make([]byte, 32<<20)
		for i := range b {
			b[i] = byte(i >> 3)
		}
		if err := os.WriteFile(p, b, 0644); err != nil {
			t.Fatal(err)
		}
		// Drop the pages this test wrote (charged to its own cgroup) so
		// the helper's faults charge them to the new one.
		f, _ := os.Open(p)
		f.Sync()
		unixFadviseDontneed(f)
		f.Close()
	}
	cmd := helper("touch", hotF, coldF, "wait")
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		// The cgroup is empty once the helper is reaped; its charged
		// page cache moves to the parent when it is removed.
		for i := 0; i < 50; i++ {
			if err := os.Remove(cg); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("could not remove %s", cg)
	})
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatal(err)
	}
	in.Write([]byte("go\n"))
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	usage, _, err := vm.CgroupMemory(cg)
	if err != nil {
		t.Fatal(err)
	}
	limit := (usage*100/95 + 4095) / 4096 * 4096
	if err := os.WriteFile(filepath.Join(cg, "memory.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0); err != nil {
		t.Fatal(err)
	}
	ag := fakeAgents{1: {Alive: true, Pids: []int{pid}, MemDir: cg}}
	f := newFixture(t, t.TempDir(), ag)
	defer f.e.Close()
	for i := 0; i < 5; i++ {
		f.e.Tick(time.Now())
		time.Sleep(700 * time.Millisecond)
	}
	after, _, _ := vm.CgroupMemory(cg)
	pm := f.e.procMem(1)
	f.e.mu.Lock()
	dec := decisionsText(pm)
	f.e.mu.Unlock()
	t.Logf("cgroup usage %d of limit %d (%.0f%%) -> %d after paging; decisions:\n%s", usage, limit, 100*float64(usage)/float64(limit), after, dec)
	if !strings.Contains(dec, "advice=pageout reason=limit") || !strings.Contains(dec, "path="+coldF) {
		t.Errorf("no pageout of the cold mapping under pressure")
	}
	if strings.Contains(dec, "advice=pageout reason=limit ranking=lru rss_before=33554432 rss_after=- outcome=pending path="+hotF) {
		t.Errorf("the hot mapping was paged out")
	}
	if usage-after < 24<<20 {
		t.Errorf("cgroup usage %d -> %d: the cold 32 MiB did not leave", usage, after)
	}
}

// TestLivePartlyColdPageout: a real process maps a 32 MiB file and keeps
// touching only its first 8 MiB. The mapping is hot (smaps can say no
// more), but it holds 24 MiB it does not use: the first pageout probes
// the whole mapping, pagemap then shows which part came back (the first
// 8 MiB, within the page cache's 2 MiB folio grain), and `hot` lists that
// range. After the process touches the whole file again, the next
// pageout advises only the rest: the kernel's smaps shows the mapping
// keep its hot 8 MiB and lose the 24 MiB.
func TestLivePartlyColdPageout(t *testing.T) {
	requireRoot(t)
	const size, hotLen = 32 << 20, 8 << 20
	p := filepath.Join(t.TempDir(), "part")
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i)
	}
	if err := os.WriteFile(p, b, 0644); err != nil {
		t.Fatal(err)
	}
	cmd := helper("touchpart", p, strconv.Itoa(hotLen))
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := bufio.NewReader(out)
	if _, err := lines.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	state := t.TempDir()
	start := func() *fixture {
		f := newFixture(t, state, fakeAgents{1: {Alive: true, Pids: []int{pid}}})
		f.root = f.e.cfg.NS.StaticDir("/", 0555, fs.Owner{}, append(f.e.Nodes(), f.e.cfg.NS.StaticDir("/agents", 0555, fs.Owner{},
			f.e.cfg.NS.StaticDir("/agents/1", 0555, fs.Owner{}, f.e.AgentFiles(1, "/agents/1", fs.Owner{})...)))...)
		return f
	}
	f := start()
	defer func() { f.e.Close() }()
	mapping := func() vm.Mapping {
		ms, err := vm.FS("/proc").Smaps(pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Path == p {
				return m
			}
		}
		t.Fatal("mapping gone")
		return vm.Mapping{}
	}
	sample := func(n int) {
		for i := 0; i < n; i++ {
			if err := f.ctl("/agents/1/mem/ctl", "sample"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	decision := func(i int) string {
		var ds []string
		for _, l := range strings.Split(f.read("/agents/1/mem/decisions"), "\n") {
			if strings.HasSuffix(l, "path="+p) {
				ds = append(ds, l)
			}
		}
		if i >= len(ds) {
			t.Fatalf("decision %d for the mapping missing:\n%s", i, f.read("/agents/1/mem/decisions"))
		}
		return ds[i]
	}
	sample(4)
	m := mapping()
	t.Logf("before: rss=%d referenced (last period)=%s", m.Rss, field(f.read("/agents/1/mem/pattern"), "referenced"))

	// 1. The probe: the whole mapping, then what came back.
	if err := f.ctl("/agents/1/mem/ctl", "pageout"); err != nil {
		t.Fatal(err)
	}
	afterProbe := mapping().Rss
	sample(3)
	d := decision(0)
	back, _ := strconv.ParseUint(field(d, "back"), 10, 64)
	t.Logf("probe: rss %d -> %d; %s", m.Rss, afterProbe, d)
	if field(d, "advised") != strconv.Itoa(size) || field(d, "outcome") != "came_back" {
		t.Errorf("probe decision: %s", d)
	}
	// The helper touches its hot part every 20 ms, so by the time smaps is
	// read (later on a loaded machine) that part may be back already: what
	// must be out is everything else. advised= above says the probe asked
	// for the whole mapping.
	if m.Rss < size*9/10 || afterProbe > hotLen+2<<20 {
		t.Errorf("probe took the mapping's Rss %d -> %d, want all of it out but the hot %d the helper touches again", m.Rss, afterProbe, hotLen)
	}
	if back < hotLen || back > hotLen+2<<20 {
		t.Errorf("back=%d bytes came back, want the %d touched (+ at most a 2 MiB folio)", back, hotLen)
	}
	hot := f.read("/agents/1/mem/hot")
	t.Logf("hot:\n%s", hot)
	var learned uint64
	for _, l := range strings.Split(hot, "\n") {
		if strings.HasPrefix(l, "range ") && strings.HasSuffix(l, "path="+p) {
			start, _ := strconv.ParseUint(strings.TrimPrefix(field(l, "start"), "0x"), 16, 64)
			n, _ := strconv.ParseUint(field(l, "length"), 10, 64)
			if start != m.Start {
				t.Errorf("learned range starts at %#x, the hot part at %#x", start, m.Start)
			}
			learned += n
		}
	}
	if learned < hotLen || learned > hotLen+2<<20 {
		t.Errorf("learned hot ranges cover %d bytes, want the first %d", learned, hotLen)
	}

	// 2. Paging again now leaves the mapping as it is: nothing resident
	// beyond its hot part, which may get MADV_WILLNEED (only that part,
	// never the whole file the probe emptied).
	if err := f.ctl("/agents/1/mem/ctl", "pageout"); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(f.read("/agents/1/mem/decisions"), "\n") {
		if strings.HasSuffix(l, "path="+p) && field(l, "advice") == "willneed" && field(l, "advised") != strconv.FormatUint(learned, 10) {
			t.Errorf("willneed beyond the learned hot ranges: %s", l)
		}
	}
	if rss := mapping().Rss; rss > learned+1<<20 {
		t.Errorf("after paging a learned mapping again, Rss %d: more than its hot %d", rss, learned)
	}
	probeDecisions := 0
	for _, l := range strings.Split(f.read("/agents/1/mem/decisions"), "\n") {
		if strings.HasSuffix(l, "path="+p) && field(l, "advice") == "pageout" {
			probeDecisions++
		}
	}
	if probeDecisions != 1 {
		t.Errorf("%d pageouts of the mapping, want only the probe", probeDecisions)
	}

	// The daemon is killed (no Close) and started again: the agent still
	// runs, and what was learned of it comes back.
	hot, decisions := f.read("/agents/1/mem/hot"), f.read("/agents/1/mem/decisions")
	f = start()
	if got := f.read("/agents/1/mem/decisions"); got != decisions {
		t.Errorf("decisions after a restart:\n%s\nwant\n%s", got, decisions)
	}
	var again uint64
	for _, l := range strings.Split(f.read("/agents/1/mem/hot"), "\n") {
		if strings.HasPrefix(l, "range ") && strings.HasSuffix(l, "path="+p) {
			n, _ := strconv.ParseUint(field(l, "length"), 10, 64)
			again += n
		}
	}
	if again != learned {
		t.Errorf("learned hot ranges after a restart cover %d bytes, want %d; before:\n%s", again, learned, hot)
	}

	// 3. The whole file resident again; the next pageout (by the restarted
	// manager) keeps the hot part.
	cmd.Process.Signal(syscall.SIGUSR1)
	if l, err := lines.ReadString('\n'); err != nil || !strings.HasPrefix(l, "again") {
		t.Fatalf("helper: %q %v", l, err)
	}
	sample(1)
	full := mapping().Rss
	if err := f.ctl("/agents/1/mem/ctl", "pageout"); err != nil {
		t.Fatal(err)
	}
	kept := mapping().Rss
	d = ""
	for _, l := range strings.Split(f.read("/agents/1/mem/decisions"), "\n") {
		if strings.HasSuffix(l, "path="+p) && field(l, "advice") == "pageout" {
			d = l // the latest
		}
	}
	t.Logf("second pageout: rss %d -> %d; %s", full, kept, d)
	advised, _ := strconv.ParseUint(field(d, "advised"), 10, 64)
	if advised != size-learned {
		t.Errorf("advised %d bytes, want the %d outside the learned hot ranges", advised, size-learned)
	}
	if full < size*9/10 || kept < hotLen || kept > learned+1<<20 {
		t.Errorf("mapping Rss %d -> %d: want the hot %d kept and the rest out", full, kept, hotLen)
	}
}
