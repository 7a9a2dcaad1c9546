package mem

// What the trust boundary promises, as a user sees it: a change the state
// directory cannot take is refused with the kernel's errno and changes
// nothing (now or after a restart); regions are all or nothing and within
// their uid's quota; an agent's memory layout is its owner's; every verb
// checks who runs it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"aiosfs/engines/bus"
	"aiosfs/fs"
	"aiosfs/fs/fusefs"
	"aiosfs/internal/statefile/statefiletest"
)

// withAgents serves agents/N/mem for the agents of ag beside mem/, each
// directory owned by its agent's uid, as the agent engine does.
func withAgents(f *fixture, ag fakeAgents) {
	ns := f.e.cfg.NS
	var dirs []fs.Node
	for _, id := range ag.IDs() {
		dir := "/agents/" + strconv.Itoa(id)
		own := fs.Owner{Uid: ag[id].Uid, Gid: ag[id].Gid}
		dirs = append(dirs, ns.StaticDir(dir, 0555, own, f.e.AgentFiles(id, dir, own)...))
	}
	f.root = ns.StaticDir("/", 0555, fs.Owner{}, append(f.e.Nodes(), ns.StaticDir("/agents", 0555, fs.Owner{}, dirs...))...)
}

// mem/ctl's settings and an agent's policy: refused with ENOSPC on a full
// state filesystem and EROFS on a read-only one, and neither mem/status,
// the agent's policy file nor the next start shows the refused value.
func TestSettingsNotSavedChangeNothing(t *testing.T) {
	state := statefiletest.Tmpfs(t, 512<<10)
	ag := fakeAgents{1: {Alive: true, Uid: 1000, Gid: 1000}}
	f := newFixture(t, state, ag)
	withAgents(f, ag)
	for _, l := range []string{"paging off", "pressure 0.3"} {
		if err := f.ctl("/mem/ctl", l); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
	}
	policy := f.read("/agents/1/mem/policy") // (reading it makes agent 1 known)
	status := f.read("/mem/status")
	owner := fs.Caller{Uid: 1000, Gid: 1000}
	unfill := statefiletest.Fill(t, state)
	for _, c := range []struct {
		who        fs.Caller
		file, line string
	}{
		{fs.RootCaller, "/mem/ctl", "paging on"},
		{fs.RootCaller, "/mem/ctl", "pressure 0.5"},
		{fs.RootCaller, "/mem/ctl", "interval 1s"},
		{owner, "/agents/1/mem/ctl", "policy lfu"},
	} {
		if err := f.ctlAs(c.who, c.file, c.line); fs.Errno(err) != syscall.ENOSPC {
			t.Errorf("%s on a full state filesystem: errno %v (%v), want ENOSPC", c.line, fs.Errno(err), err)
		}
	}
	if got := f.read("/mem/status"); got != status {
		t.Errorf("mem/status after refused changes:\n%s\nwant\n%s", got, status)
	}
	if got := f.read("/agents/1/mem/policy"); got != policy {
		t.Errorf("agents/1/mem/policy after a refused change: %s", got)
	}
	unfill()
	writable := statefiletest.ReadOnly(t, state)
	if err := f.ctl("/mem/ctl", "paging on"); fs.Errno(err) != syscall.EROFS {
		t.Errorf("paging on, read-only state: %v, want EROFS", err)
	}
	if got := f.read("/mem/status"); got != status {
		t.Errorf("mem/status after a refused change:\n%s\nwant\n%s", got, status)
	}
	writable() // a start clears mem/tmp: it needs a writable state
	f.e.Close()
	f2 := newFixture(t, state, ag)
	defer f2.e.Close()
	if got := f2.read("/mem/status"); !strings.Contains(got, "paging=off") || !strings.Contains(got, "pressure_threshold=0.3") || !strings.Contains(got, "interval=3600") {
		t.Errorf("restarted: %s", got)
	}
}

// A persistent region's verbs: a change whose metadata cannot be saved is
// refused with the errno (ENOSPC, EPERM) and the region, its cache and
// the next start are as before; a free that cannot remove the metadata is
// refused and the region stays, whole, now and after a restart.
func TestRegionVerbsNotSavedChangeNothing(t *testing.T) {
	state := statefiletest.Tmpfs(t, 1<<20)
	f := newFixture(t, state, nil)
	if err := f.ctl("/mem/ctl", "alloc p 64K persistent tag=db"); err != nil {
		t.Fatal(err)
	}
	info, cache := f.read("/mem/regions/p/info"), f.read("/mem/cache")
	unfill := statefiletest.Fill(t, state)
	for _, l := range []string{"policy p lru", "prefetch p off", "cache p 8K", "tag p x", "untag p db"} {
		if err := f.ctl("/mem/ctl", l); fs.Errno(err) != syscall.ENOSPC {
			t.Errorf("%s on a full state filesystem: errno %v (%v), want ENOSPC", l, fs.Errno(err), err)
		}
	}
	if got := f.read("/mem/regions/p/info"); got != info {
		t.Errorf("info after refused changes:\n%s\nwant\n%s", got, info)
	}
	if got := f.read("/mem/cache"); got != cache {
		t.Errorf("cache after refused changes:\n%s\nwant\n%s", got, cache)
	}
	unfill()
	// A metadata file that cannot be replaced or removed (immutable: the
	// region's data file is open for writing, so the tmpfs cannot be made
	// read-only under it): EPERM, and the region as it was.
	meta := filepath.Join(state, "mem", "p.meta")
	if out, err := exec.Command("chattr", "+i", meta).CombinedOutput(); err != nil {
		t.Skipf("chattr +i: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", meta).Run() })
	if err := f.ctl("/mem/ctl", "tag p y"); fs.Errno(err) != syscall.EPERM {
		t.Errorf("tag, immutable metadata: %v, want EPERM", err)
	}
	if err := f.ctl("/mem/ctl", "free p"); fs.Errno(err) != syscall.EPERM {
		t.Errorf("free, immutable metadata: %v, want EPERM", err)
	}
	if got := f.read("/mem/regions/p/info"); got != info {
		t.Errorf("info after a refused free: %q", got)
	}
	exec.Command("chattr", "-i", meta).Run()
	f.e.Close()
	f2 := newFixture(t, state, nil)
	defer f2.e.Close()
	if got := f2.read("/mem/regions/p/info"); got[:strings.Index(got, " lease=")] != info[:strings.Index(info, " lease=")] {
		t.Errorf("restarted: %s\nwant %s", got, info)
	}
}

// Alloc is all or nothing: a region that does not fit the state
// filesystem, or whose metadata cannot be saved, is refused with ENOSPC
// and leaves no region and no file; a read-only state gives EROFS.
func TestAllocAllOrNothing(t *testing.T) {
	state := statefiletest.TmpfsOpts(t, "size=4m,nr_inodes=64")
	f := newFixture(t, state, nil)
	defer f.e.Close()
	files := func() []string {
		var out []string
		filepath.Walk(filepath.Join(state, "mem"), func(p string, i os.FileInfo, err error) error {
			if err == nil && !i.IsDir() && !strings.HasPrefix(i.Name(), "filler") {
				out = append(out, strings.TrimPrefix(p, state))
			}
			return nil
		})
		return out
	}
	before := files()
	for _, l := range []string{"alloc big 8M persistent", "alloc big 8M", "alloc big 8M shared"} {
		if err := f.ctl("/mem/ctl", l); fs.Errno(err) != syscall.ENOSPC || !strings.Contains(err.Error(), "reserving 8M") {
			t.Errorf("%s on a 4 MiB state filesystem: errno %v (%v), want ENOSPC", l, fs.Errno(err), err)
		}
	}
	// The data file fits, its metadata does not: no inode is left for it.
	var made []string
	for i := 0; ; i++ {
		p := filepath.Join(state, "inode"+strconv.Itoa(i))
		if err := os.WriteFile(p, nil, 0600); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Skipf("tmpfs without an inode limit? %v", err)
			}
			break
		}
		made = append(made, p)
		if i > 64 {
			t.Skip("tmpfs inodes do not run out")
		}
	}
	os.Remove(made[len(made)-1])
	if err := f.ctl("/mem/ctl", "alloc small 4K persistent"); fs.Errno(err) != syscall.ENOSPC || !strings.Contains(err.Error(), "metadata") {
		t.Errorf("alloc whose metadata cannot be saved: errno %v (%v), want ENOSPC", fs.Errno(err), err)
	}
	for _, p := range made {
		os.Remove(p)
	}
	if got := f.read("/mem/status"); !strings.HasPrefix(got, "regions=0 bytes=0 ") {
		t.Errorf("status after refused allocs: %s", got)
	}
	if got := files(); strings.Join(got, " ") != strings.Join(before, " ") {
		t.Errorf("files after refused allocs: %v, before %v", got, before)
	}
	statefiletest.ReadOnly(t, state) // no region open: it can be
	if err := f.ctl("/mem/ctl", "alloc ro 4K persistent"); fs.Errno(err) != syscall.EROFS {
		t.Errorf("alloc on a read-only state: %v, want EROFS", err)
	}
}

// A region's data is reserved on disk at alloc and never grows past its
// declared size: a write across the end is refused (EFBIG) and the file
// keeps its size.
func TestRegionDataBounded(t *testing.T) {
	f := newFixture(t, t.TempDir(), nil)
	defer f.e.Close()
	if err := f.ctl("/mem/ctl", "alloc p 10000 persistent"); err != nil {
		t.Fatal(err)
	}
	h, err := f.open("/mem/regions/p/data", fs.RootCaller, fs.ORDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	for _, off := range []int64{9999, 10000, 1 << 40} {
		if _, err := h.Write(ctx, []byte("xy"), off); fs.Errno(err) != syscall.EFBIG {
			t.Errorf("write at %d: %v, want EFBIG", off, err)
		}
	}
	if n, err := h.Write(ctx, bytes.Repeat([]byte("z"), 10000), 0); n != 10000 || err != nil {
		t.Fatalf("write of the whole region: %d %v", n, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(f.dir, "mem", "p.data"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 10000 || st.Blocks*512 < 10000 {
		t.Errorf("p.data: size %d, %d bytes allocated; want 10000 and all of it reserved", st.Size, st.Blocks*512)
	}
	// A region left sparse (an older daemon's) is reserved when restored.
	if err := f.ctl("/mem/ctl", "alloc s 1M persistent"); err != nil {
		t.Fatal(err)
	}
	f.e.Close()
	sp := filepath.Join(f.dir, "mem", "s.data")
	if err := os.Truncate(sp, 0); err != nil {
		t.Fatal(err)
	}
	os.Truncate(sp, 1<<20)
	syscall.Stat(sp, &st)
	if st.Blocks != 0 {
		t.Fatalf("s.data not sparse: %d blocks", st.Blocks)
	}
	f2 := newFixture(t, f.dir, nil)
	defer f2.e.Close()
	syscall.Stat(sp, &st)
	if st.Size != 1<<20 || st.Blocks*512 < 1<<20 {
		t.Errorf("restored s.data: size %d, %d bytes allocated; want 1M reserved", st.Size, st.Blocks*512)
	}
}

// Every uid but root is held to its quota: bytes and count, all kinds
// together, refused with EDQUOT naming the usage and the quota; freeing
// makes room again. Without Config.Quota the default holds.
func TestRegionQuota(t *testing.T) {
	ns := &fs.NS{Boot: time.Unix(0, 0)}
	state := t.TempDir()
	e, err := New(Config{StateDir: state, NS: ns, Seed: 1, Interval: time.Hour,
		Quota: func(uid uint32) (int64, int) { return 3 << 20, 2 }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	f := &fixture{t: t, e: e, root: ns.StaticDir("/", 0555, fs.Owner{}, e.Nodes()...), dir: state}
	user, other := fs.Caller{Uid: 1000, Gid: 1000}, fs.Caller{Uid: 1001, Gid: 1001}
	for _, c := range []struct {
		who  fs.Caller
		line string
		want syscall.Errno
		msg  string
	}{
		{user, "alloc a 2M persistent", 0, ""},
		{user, "alloc b 2M", syscall.EDQUOT, "uid 1000 has 2M in 1 regions; 2M more would pass its quota of 3M (2 regions)"},
		{other, "alloc o 2M", 0, ""}, // another uid's quota is its own
		{user, "alloc b 1M shared", 0, ""},
		{user, "alloc c 4K", syscall.EDQUOT, "uid 1000 has 2 regions (3M); its quota is 2 regions of 3M"},
		{fs.RootCaller, "alloc r 16M", 0, ""}, // root has none
		{user, "free b", 0, ""},
		{user, "alloc c 4K", 0, ""},
	} {
		err := f.ctlAs(c.who, "/mem/ctl", c.line)
		if fs.Errno(err) != c.want || (c.msg != "" && !strings.Contains(err.Error(), c.msg)) {
			t.Errorf("%q by uid %d: %v, want errno %v saying %q", c.line, c.who.Uid, err, c.want, c.msg)
		}
	}
	if got := f.read("/mem/status"); !strings.HasPrefix(got, "regions=4 ") {
		t.Errorf("status: %s", got)
	}

	d := newFixture(t, t.TempDir(), nil)
	defer d.e.Close()
	err = d.ctlAs(user, "/mem/ctl", "alloc fill 64G persistent")
	if fs.Errno(err) != syscall.EDQUOT || !strings.Contains(err.Error(), "quota of 1G (16 regions)") {
		t.Errorf("alloc fill 64G by uid 1000 with the default quota: %v, want EDQUOT", err)
	}
	for i := 0; i < DefaultQuotaRegions; i++ {
		if err := d.ctlAs(user, "/mem/ctl", "alloc r"+strconv.Itoa(i)+" 4K"); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.ctlAs(user, "/mem/ctl", "alloc one-more 4K"); fs.Errno(err) != syscall.EDQUOT {
		t.Errorf("region %d by uid 1000: %v, want EDQUOT", DefaultQuotaRegions+1, err)
	}
}

// Who may run what, as another user: mem/ctl's settings and save are
// root's; a region's verbs its owner's and root's; an agent's mem ctl its
// owner's and root's; its layout files readable by its owner and root
// only.
func TestVerbsRefuseOtherUsers(t *testing.T) {
	ag := fakeAgents{1: {Alive: true, Uid: 1000, Gid: 1000}}
	f := newFixture(t, t.TempDir(), ag)
	defer f.e.Close()
	withAgents(f, ag)
	owner, other := fs.Caller{Uid: 1000, Gid: 1000}, fs.Caller{Uid: 1001, Gid: 1000}
	if err := f.ctlAs(owner, "/mem/ctl", "alloc mine 64K shared"); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"interval 1s", "paging off", "pressure 0.5", "save",
		"policy mine lru", "prefetch mine off", "cache mine 8K", "grant mine 1", "revoke mine 1", "tag mine x", "untag mine x", "lease mine 1h", "free mine"} {
		if err := f.ctlAs(other, "/mem/ctl", l); fs.Errno(err) != syscall.EPERM {
			t.Errorf("mem/ctl %q by uid 1001: %v, want EPERM", l, err)
		}
	}
	// The region's own ctl is its owner's: not even its group opens it.
	if _, err := f.open("/mem/regions/mine/ctl", other, fs.OWRITE); fs.Errno(err) != syscall.EACCES {
		t.Errorf("open regions/mine/ctl by uid 1001 of its group: %v, want EACCES", err)
	}
	for _, l := range []string{"policy lfu", "sample", "pageout"} {
		if err := f.e.agentVerbs(1).Exec(context.Background(), other, l); fs.Errno(err) != syscall.EPERM {
			t.Errorf("agents/1/mem/ctl %q by uid 1001: %v, want EPERM", l, err)
		}
	}
	if err := f.ctlAs(owner, "/agents/1/mem/ctl", "policy lfu"); err != nil {
		t.Errorf("the owner's policy lfu: %v", err)
	}
	for _, name := range []string{"hot", "wss", "decisions", "pattern", "ctl"} {
		p := "/agents/1/mem/" + name
		if _, err := f.open(p, other, fs.OREAD); fs.Errno(err) != syscall.EACCES {
			t.Errorf("open %s by uid 1001: %v, want EACCES", p, err)
		}
		for _, c := range []fs.Caller{owner, fs.RootCaller} {
			h, err := f.open(p, c, fs.OREAD)
			if err != nil {
				t.Errorf("open %s by uid %d: %v", p, c.Uid, err)
				continue
			}
			h.Close()
		}
	}
	if got := f.read("/mem/regions/mine/info"); !strings.Contains(got, "tags=- grants=-") || !strings.Contains(got, "policy=adaptive") {
		t.Errorf("refused verbs changed the region: %s", got)
	}
}

// serveAgentsMain serves mem/ and agents/1/mem/ over FUSE at argv[1],
// state argv[2], agent 1 being this process owned by uid 1000, sampled
// twice, until the mount goes. A process of its own: a FUSE server and
// its clients in one Go process can deadlock (a client blocked in the
// kernel on the server stops the garbage collector's world).
func serveAgentsMain() {
	mount, state := os.Args[1], os.Args[2]
	ag := fakeAgents{1: {Alive: true, Uid: 1000, Gid: 1000, Pids: []int{os.Getpid()}}}
	ns := &fs.NS{Boot: time.Now()}
	e, err := New(Config{StateDir: state, NS: ns, Agents: ag, Proc: "/proc", Seed: 1, Interval: time.Hour})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	f := &fixture{e: e}
	withAgents(f, ag)
	e.SampleAgent(1, []int{os.Getpid()}, time.Now())
	e.SampleAgent(1, []int{os.Getpid()}, time.Now())
	srv, err := fusefs.Mount(mount, f.root.(fs.Dir), fusefs.Options{AllowOther: true, Name: "aiosfs-memtest"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv.Wait()
	os.Exit(0)
}

// Through a real FUSE mount, as the kernel's callers: nobody cannot read
// an agent's memory layout (Permission denied, as /proc/PID/maps), the
// agent's owner and root can; nobody's mem/ctl save is refused, and so is
// nobody's 64G persistent region (the default quota).
func TestLiveLayoutIsTheOwners(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"setpriv", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s to act as another user", tool)
		}
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0755)
	cmd := helper("serveagents", mnt, t.TempDir())
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			cmd.Process.Kill()
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(mnt, "agents", "1", "mem", "hot")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the tree was not served")
		}
	}
	run := func(uid int, script string) (string, error) {
		// bash: dash's echo reports every failed write as "I/O error".
		args := []string{"bash", "-c", script}
		if uid != 0 {
			args = append([]string{"setpriv", "--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(uid), "--clear-groups"}, args...)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = mnt // nobody cannot walk the test's 0700 temporary directories
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, name := range []string{"hot", "wss", "decisions", "pattern"} {
		p := "agents/1/mem/" + name
		if out, err := run(65534, "cat "+p); err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("nobody: cat %s: %v %q, want Permission denied", p, err, out)
		}
		for _, uid := range []int{1000, 0} {
			if out, err := run(uid, "cat "+p); err != nil {
				t.Errorf("uid %d: cat %s: %v %q", uid, p, err, out)
			}
		}
	}
	if out, _ := run(0, "cat agents/1/mem/wss"); !strings.HasPrefix(out, "wss=") {
		t.Errorf("root: cat agents/1/mem/wss: %q", out)
	}
	if out, _ := run(1000, "cat agents/1/mem/hot"); !strings.Contains(out, "start=0x") {
		t.Errorf("owner: cat agents/1/mem/hot shows no mapping: %q", out)
	}
	if out, _ := run(0, "stat -c '%a %u' agents/1/mem/hot agents/1/mem/ctl"); out != "400 1000\n600 1000\n" {
		t.Errorf("modes and owners: %q, want 400 1000, 600 1000", out)
	}
	if out, err := run(65534, "echo save > mem/ctl"); err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("nobody: echo save > mem/ctl: %v %q, want Operation not permitted", err, out)
	}
	if out, err := run(65534, "echo 'alloc fill 64G persistent' > mem/ctl"); err == nil || !strings.Contains(out, "Disk quota exceeded") {
		t.Errorf("nobody: alloc fill 64G persistent: %v %q, want Disk quota exceeded", err, out)
	}
}

// Allocs racing for the last of a quota: exactly as many pass as fit.
func TestRegionQuotaConcurrent(t *testing.T) {
	ns := &fs.NS{Boot: time.Unix(0, 0)}
	e, err := New(Config{StateDir: t.TempDir(), NS: ns, Seed: 1, Interval: time.Hour,
		Quota: func(uint32) (int64, int) { return 3 << 20, -1 }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	user := fs.Caller{Uid: 1000, Gid: 1000}
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			errs <- e.Alloc(user, AllocSpec{Name: "r" + strconv.Itoa(i), Size: 1 << 20, Kind: Persistent})
		}()
	}
	ok, quota := 0, 0
	for i := 0; i < 8; i++ {
		switch err := <-errs; fs.Errno(err) {
		case 0:
			ok++
		case syscall.EDQUOT:
			quota++
		default:
			t.Errorf("alloc: %v", err)
		}
	}
	if ok != 3 || quota != 5 {
		t.Errorf("%d allocs passed and %d met the quota; want 3 and 5", ok, quota)
	}
}

// The saves nobody waits on (an agent's learned state, the regions'
// patterns each period) say so when they fail: a line in the log and an
// error event, and the last good file stays.
func TestBackgroundSaveFailuresAreReported(t *testing.T) {
	state := statefiletest.Tmpfs(t, 1<<20)
	b := bus.New(64)
	var logged []string
	ns := &fs.NS{Boot: time.Unix(0, 0)}
	e, err := New(Config{StateDir: state, NS: ns, Bus: b, Seed: 1, Interval: time.Hour,
		Logf: func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Alloc(fs.RootCaller, AllocSpec{Name: "p", Size: 64 << 10, Kind: Persistent}); err != nil {
		t.Fatal(err)
	}
	r, _ := e.region("p")
	buf := make([]byte, 4096)
	for i := 0; i < 8; i++ {
		r.cache.ReadAt(buf, int64(i%4)*4096) // hot pages: a pattern to save
	}
	e.procMem(1)
	e.saveProc(1, true)
	good, err := os.ReadFile(e.procFile(1))
	if err != nil {
		t.Fatal(err)
	}
	e.procMem(1).n = 42 // something new to save
	unfill := statefiletest.Fill(t, state)
	defer unfill()
	e.saveProc(1, true)
	e.Tick(time.Now()) // saves the patterns
	for _, op := range []string{"save-agent", "save-patterns"} {
		evs := b.Recent(func(ev bus.Event) bool {
			if ev.Source != "mem" || ev.Kind != "error" {
				return false
			}
			for _, f := range ev.Fields {
				if f.Key == "op" && fmt.Sprint(f.Value) == op {
					return true
				}
			}
			return false
		})
		if len(evs) == 0 {
			t.Errorf("no error event for the failed %s", op)
		}
	}
	if !strings.Contains(strings.Join(logged, "\n"), "no space left on device") {
		t.Errorf("log does not say why: %q", logged)
	}
	if got, _ := os.ReadFile(e.procFile(1)); string(got) != string(good) {
		t.Error("the last good agent state file was damaged")
	}
	unfill()
	e.Close()
}
