//go:build linux

package proc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"syscall"
	"testing"
	"time"
)

// These tests run against the real /proc with processes of their own,
// which they kill by pid in cleanup.

func openLive(t *testing.T) FS {
	t.Helper()
	fs, err := NewFS("/proc")
	if err != nil {
		t.Fatalf("procfs at /proc: %v", err)
	}
	return fs
}

// start runs cmd and registers a cleanup that kills and reaps it.
func start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
}

// eventually polls f every 10ms for up to 5s.
func eventually(f func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if f() {
			return true
		}
	}
	return f()
}

func TestLiveSample(t *testing.T) {
	fs := openLive(t)

	// fd 3 of the child is one end of a socketpair, so the sample must
	// count exactly one socket among 0,1,2 (/dev/null) and 3.
	sp, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(sp[0]), "sp0"), os.NewFile(uintptr(sp[1]), "sp1")
	defer a.Close()
	defer b.Close()

	cmd := exec.Command("sleep", "30")
	cmd.ExtraFiles = []*os.File{b}
	before := time.Now()
	start(t, cmd)
	pid := cmd.Process.Pid

	// Between fork and exec the child is still a copy of this test
	// binary, and comm turns to "sleep" at exec, before the dynamic
	// loader has run (it holds libraries open meanwhile): wait until
	// sleep is asleep in nanosleep.
	var s Sample
	if !eventually(func() bool {
		s, err = fs.Sample(pid)
		return err == nil && s.Comm == "sleep" && s.State == "S"
	}) {
		t.Fatalf("Sample(%d) = %+v, %v; want comm sleep, state S", pid, s, err)
	}
	// 0-2 are /dev/null and 3 the socket; more may be inherited from
	// whatever started `go test` without close-on-exec, so count them.
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err != nil || s.FDs != len(ents) || s.FDs < 4 {
		t.Errorf("FDs = %d, fd dir has %d (%v)", s.FDs, len(ents), err)
	}
	if s.Pid != pid || s.PPid != os.Getpid() {
		t.Errorf("Pid, PPid = %d, %d; want %d, %d", s.Pid, s.PPid, pid, os.Getpid())
	}
	if s.Uid != uint32(os.Getuid()) || s.Euid != uint32(os.Geteuid()) {
		t.Errorf("Uid, Euid = %d, %d; want %d, %d", s.Uid, s.Euid, os.Getuid(), os.Geteuid())
	}
	if s.Threads != 1 || s.Sockets != 1 || len(s.SocketInodes) != 1 || s.SocketInodes[0] == 0 {
		t.Errorf("Threads, Sockets, SocketInodes = %d, %d, %v; want 1, 1, one inode", s.Threads, s.Sockets, s.SocketInodes)
	}
	if s.RSS <= 0 || s.VSize <= 0 || s.ReadBytes < 0 || s.WriteBytes < 0 || s.CPUSeconds < 0 {
		t.Errorf("implausible sample %+v", s)
	}
	// btime is whole seconds, so Start is good to about a second.
	if s.Start.Before(before.Add(-2*time.Second)) || s.Start.After(time.Now().Add(2*time.Second)) {
		t.Errorf("Start = %v, process started at about %v", s.Start, before)
	}
	ticks, err := fs.StartTicks(pid)
	if err != nil || ticks != s.StartTicks || ticks == 0 {
		t.Errorf("StartTicks = %d, %v; sample said %d", ticks, err, s.StartTicks)
	}
	if args, err := fs.Cmdline(pid); err != nil || !reflect.DeepEqual(args, []string{"sleep", "30"}) {
		t.Errorf("Cmdline = %q, %v", args, err)
	}
	// This test binary is multi-threaded: the child is listed under
	// whichever thread forked it, not necessarily the leader.
	if kids, err := fs.Children(os.Getpid()); err != nil || !slices.Contains(kids, pid) {
		t.Errorf("Children(self) = %v, %v; want it to contain %d", kids, err, pid)
	}
	if pids, err := fs.Pids(); err != nil || !slices.Contains(pids, pid) {
		t.Errorf("Pids: %v; %d missing", err, pid)
	}
	if !fs.Alive(pid, ticks) {
		t.Fatal("Alive = false for a running sleep")
	}
	if fs.Alive(pid, ticks+1) {
		t.Error("Alive with the wrong start ticks")
	}

	// Killed but not reaped: a zombie, which is not alive.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !eventually(func() bool { return !fs.Alive(pid, ticks) }) {
		t.Fatal("Alive still true after SIGKILL")
	}
	if z, err := fs.Sample(pid); err != nil || z.State != "Z" {
		t.Errorf("unreaped child: Sample = %+v, %v; want state Z", z, err)
	}
	cmd.Wait()
	if fs.Alive(pid, ticks) {
		t.Error("Alive after wait")
	}
	if _, err := fs.Sample(pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Sample after wait: %v, want ErrNotExist", err)
	}
}

func TestLiveDescendants(t *testing.T) {
	fs := openLive(t)
	sh := exec.Command("sh", "-c", "sleep 30 & sleep 30 & wait")
	start(t, sh)
	var desc []int
	ok := eventually(func() bool {
		d, err := fs.Descendants(sh.Process.Pid)
		if err != nil || len(d) != 2 {
			return false
		}
		for _, p := range d {
			if s, err := fs.Sample(p); err != nil || s.Comm != "sleep" || s.PPid != sh.Process.Pid {
				return false
			}
		}
		desc = d
		return true
	})
	// Kill the sleeps by pid before sh, or they outlive it (reparented).
	t.Cleanup(func() {
		for _, p := range desc {
			syscall.Kill(p, syscall.SIGKILL)
		}
	})
	if !ok {
		d, err := fs.Descendants(sh.Process.Pid)
		t.Fatalf("Descendants(sh) = %v, %v; want two sleeps", d, err)
	}
	kids, err := fs.Children(sh.Process.Pid)
	if err != nil || !reflect.DeepEqual(kids, desc) {
		t.Errorf("Children(sh) = %v, %v; want %v", kids, err, desc)
	}
	mine, err := fs.Descendants(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(desc, sh.Process.Pid) {
		if !slices.Contains(mine, p) {
			t.Errorf("Descendants(self) = %v, missing %d", mine, p)
		}
	}
}

func TestLiveSystem(t *testing.T) {
	fs := openLive(t)
	if n := fs.NumCPU(); n < 1 {
		t.Errorf("NumCPU = %d", n)
	}
	bt, err := fs.BootTime()
	if err != nil || !bt.Before(time.Now()) || bt.Year() < 2000 {
		t.Errorf("BootTime = %v, %v", bt, err)
	}
	t1, err := fs.CPUTotal()
	if err != nil || t1 <= 0 {
		t.Fatalf("CPUTotal = %v, %v", t1, err)
	}
	time.Sleep(50 * time.Millisecond)
	if t2, err := fs.CPUTotal(); err != nil || t2 < t1 {
		t.Errorf("CPUTotal went from %v to %v (%v)", t1, t2, err)
	}
	self, err := fs.Sample(os.Getpid())
	if err != nil || self.Threads < 2 || self.FDs < 3 {
		t.Errorf("Sample(self) = %+v, %v", self, err)
	}
}

// Sample (raw readers) and LibrarySample (procfs) agree on live
// processes: this one, with its sockets, and pid 1.
func TestSampleMatchesLibrary(t *testing.T) {
	fs, err := NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, pid := range []int{os.Getpid(), 1} {
		raw, err1 := fs.Sample(pid)
		lib, err2 := fs.LibrarySample(pid)
		if err1 != nil || err2 != nil {
			t.Fatalf("pid %d: %v / %v", pid, err1, err2)
		}
		// What moves between the two reads.
		for _, s := range []*Sample{&raw, &lib} {
			s.CPUSeconds, s.RSS, s.MinFaults, s.MajFaults, s.ReadBytes, s.WriteBytes, s.VSize = 0, 0, 0, 0, 0, 0, 0
			s.State, s.Threads = "", 0 // this process runs and starts threads
		}
		if !reflect.DeepEqual(raw, lib) {
			t.Errorf("pid %d:\n raw %+v\n lib %+v", pid, raw, lib)
		}
	}
}

// TestStdinSocket: a process whose fd 0 is a socket is marked, one whose
// only socket is another descriptor is not, in both readers.
func TestStdinSocket(t *testing.T) {
	fs := openLive(t)
	sp, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(sp[0]), "sp0"), os.NewFile(uintptr(sp[1]), "sp1")
	defer a.Close()
	defer b.Close()
	onStdin := exec.Command("sleep", "30")
	onStdin.Stdin = b // fd 0
	start(t, onStdin)
	beside := exec.Command("sleep", "30")
	beside.ExtraFiles = []*os.File{b} // fd 3; 0 is /dev/null
	start(t, beside)
	for _, c := range []struct {
		pid  int
		want bool
	}{{onStdin.Process.Pid, true}, {beside.Process.Pid, false}} {
		var s, l Sample
		if !eventually(func() bool {
			s, err = fs.Sample(c.pid)
			return err == nil && s.Comm == "sleep" && s.Sockets == 1
		}) {
			t.Fatalf("Sample(%d) = %+v, %v; want sleep with one socket", c.pid, s, err)
		}
		if l, err = fs.LibrarySample(c.pid); err != nil {
			t.Fatal(err)
		}
		if s.StdinSocket != c.want || l.StdinSocket != c.want {
			t.Errorf("pid %d: StdinSocket raw %v, library %v; want %v", c.pid, s.StdinSocket, l.StdinSocket, c.want)
		}
	}
}
