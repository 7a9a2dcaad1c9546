package proc

import (
	"errors"
	"os"
	"reflect"
	"syscall"
	"testing"
	"time"
)

// fixture is the hand-made root described in testdata/proc/README.md.
const fixture = "../../testdata/proc"

func openFixture(t *testing.T) FS {
	t.Helper()
	fs, err := NewFS(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// btime of the fixture's stat.
var fixtureBoot = time.Unix(1700000000, 0)

func TestSampleFixture(t *testing.T) {
	fs := openFixture(t)
	for _, want := range []Sample{{
		Pid: 1, PPid: 0, Comm: "init", State: "S", Uid: 0, Euid: 0, Threads: 1,
		StartTicks: 2, Start: fixtureBoot.Add(20 * time.Millisecond),
		CPUSeconds: 4, RSS: 12000 * 1024, VSize: 170000000,
		MajFaults: 40, MinFaults: 5000,
		ReadBytes: -1, WriteBytes: -1, FDs: -1, Sockets: -1, // no io, no fd dir
	}, {
		Pid: 100, PPid: 1, Comm: "py (worker) 1", State: "S", Uid: 1000, Euid: 1001, Threads: 2,
		StartTicks: 123456, Start: fixtureBoot.Add(1234560 * time.Millisecond),
		CPUSeconds: 3.75, RSS: 10240 * 1024, VSize: 104857600,
		MajFaults: 67, MinFaults: 12345,
		ReadBytes: 1048576, WriteBytes: 524288, FDs: 7, Sockets: 2, SocketInodes: []uint64{123, 124},
	}, {
		Pid: 200, PPid: 100, Comm: "sleep", State: "S", Uid: 1000, Euid: 1000, Threads: 1,
		StartTicks: 130000, Start: fixtureBoot.Add(1300 * time.Second),
		CPUSeconds: 0.03, RSS: 1024 * 1024, VSize: 5767168,
		MajFaults: 0, MinFaults: 80,
		ReadBytes: 0, WriteBytes: 4096, FDs: 3, Sockets: 1, SocketInodes: []uint64{200},
	}, {
		Pid: 201, PPid: 100, Comm: "sh", State: "Z", Uid: 1000, Euid: 1000, Threads: 1,
		StartTicks: 131000, Start: fixtureBoot.Add(1310 * time.Second),
		CPUSeconds: 0.07, RSS: 0, VSize: 0,
		MajFaults: 1, MinFaults: 150,
		ReadBytes: -1, WriteBytes: -1, FDs: -1, Sockets: -1,
	}} {
		got, err := fs.Sample(want.Pid)
		if err != nil {
			t.Fatalf("Sample(%d): %v", want.Pid, err)
		}
		if !got.Start.Equal(want.Start) {
			t.Errorf("Sample(%d).Start = %v, want %v", want.Pid, got.Start, want.Start)
		}
		got.Start, want.Start = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Sample(%d)\n got %+v\nwant %+v", want.Pid, got, want)
		}
	}
}

func TestGone(t *testing.T) {
	fs := openFixture(t)
	const pid = 999
	if _, err := fs.Sample(pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Sample: %v, want ErrNotExist", err)
	}
	if _, err := fs.StartTicks(pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("StartTicks: %v, want ErrNotExist", err)
	}
	if _, err := fs.Cmdline(pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Cmdline: %v, want ErrNotExist", err)
	}
	if _, err := fs.Children(pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Children: %v, want ErrNotExist", err)
	}
	if _, err := fs.Descendants(pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Descendants: %v, want ErrNotExist", err)
	}
	if fs.Alive(pid, 0) {
		t.Error("Alive of a missing pid")
	}
}

// A process reaped between open and read makes the read fail with ESRCH;
// callers must see it as gone all the same.
func TestWrapESRCH(t *testing.T) {
	err := wrap(7, &os.PathError{Op: "read", Path: "/proc/7/stat", Err: syscall.ESRCH})
	if !errors.Is(err, os.ErrNotExist) || !errors.Is(err, syscall.ESRCH) {
		t.Errorf("wrap(ESRCH) = %v: want both ErrNotExist and ESRCH", err)
	}
	err = wrap(7, &os.PathError{Op: "open", Path: "/proc/7/io", Err: syscall.EACCES})
	if errors.Is(err, os.ErrNotExist) || !errors.Is(err, os.ErrPermission) {
		t.Errorf("wrap(EACCES) = %v: want ErrPermission only", err)
	}
}

func TestCmdline(t *testing.T) {
	fs := openFixture(t)
	for pid, want := range map[int][]string{
		1:   {"/sbin/init"},
		100: {"python3", "-m", "agent", "--name", ""}, // trailing empty argument kept
		200: {"sleep", "30"},
		201: {}, // zombie: no mm, empty file
	} {
		got, err := fs.Cmdline(pid)
		if err != nil {
			t.Fatalf("Cmdline(%d): %v", pid, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Cmdline(%d) = %q, want %q", pid, got, want)
		}
	}
}

func TestChildren(t *testing.T) {
	fs := openFixture(t)
	for pid, want := range map[int][]int{
		1:   {100},      // no children files: found by scanning ppid
		100: {200, 201}, // merged from task/100 and task/101
		200: nil,
		201: nil,
	} {
		got, err := fs.Children(pid)
		if err != nil {
			t.Fatalf("Children(%d): %v", pid, err)
		}
		if len(got) != 0 || len(want) != 0 {
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Children(%d) = %v, want %v", pid, got, want)
			}
		}
	}
}

func TestDescendants(t *testing.T) {
	fs := openFixture(t)
	for pid, want := range map[int][]int{
		1:   {100, 200, 201}, // scan at the top, children files below
		100: {200, 201},
		200: nil,
	} {
		got, err := fs.Descendants(pid)
		if err != nil {
			t.Fatalf("Descendants(%d): %v", pid, err)
		}
		if len(got) != 0 || len(want) != 0 {
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Descendants(%d) = %v, want %v", pid, got, want)
			}
		}
	}
}

func TestIdentity(t *testing.T) {
	fs := openFixture(t)
	ticks, err := fs.StartTicks(100)
	if err != nil || ticks != 123456 {
		t.Fatalf("StartTicks(100) = %d, %v; want 123456", ticks, err)
	}
	for _, c := range []struct {
		pid   int
		ticks uint64
		want  bool
	}{
		{100, 123456, true},
		{100, 123457, false}, // same pid, another process: reused
		{200, 130000, true},
		{201, 131000, false}, // zombie
		{999, 0, false},
	} {
		if got := fs.Alive(c.pid, c.ticks); got != c.want {
			t.Errorf("Alive(%d, %d) = %v, want %v", c.pid, c.ticks, got, c.want)
		}
	}
}

func TestPids(t *testing.T) {
	fs := openFixture(t)
	got, err := fs.Pids()
	if err != nil {
		t.Fatal(err)
	}
	// Thread 101 and README.md are not processes.
	if want := []int{1, 100, 200, 201}; !reflect.DeepEqual(got, want) {
		t.Errorf("Pids = %v, want %v", got, want)
	}
}

func TestSystem(t *testing.T) {
	fs := openFixture(t)
	bt, err := fs.BootTime()
	if err != nil || !bt.Equal(fixtureBoot) {
		t.Errorf("BootTime = %v, %v; want %v", bt, err, fixtureBoot)
	}
	if n := fs.NumCPU(); n != 2 {
		t.Errorf("NumCPU = %d, want 2", n)
	}
	// user+nice+system+idle+iowait+irq+softirq+steal of the cpu line;
	// guest (100) is inside user already.
	tot, err := fs.CPUTotal()
	if err != nil || tot != 420.67 {
		t.Errorf("CPUTotal = %v, %v; want 420.67", tot, err)
	}
}

func TestNewFSMissingRoot(t *testing.T) {
	if _, err := NewFS(t.TempDir() + "/nope"); err == nil {
		t.Error("NewFS of a missing root succeeded")
	}
	fs, err := NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if n := fs.NumCPU(); n != 0 {
		t.Errorf("NumCPU without stat = %d, want 0", n)
	}
	if _, err := fs.CPUTotal(); err == nil {
		t.Error("CPUTotal without stat succeeded")
	}
}

func TestCgroupsFixture(t *testing.T) {
	fs, err := NewFS("../../testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	got, err := fs.Cgroups(100)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"pids": "/user.slice", "memory": "/process_api/abc", "cpu,cpuacct": "/",
		"name=systemd": "/user.slice/session-1.scope", "unified": "/user.slice/session-1.scope"}
	if len(got) != len(want) {
		t.Fatalf("Cgroups(100) = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Cgroups(100)[%q] = %q, want %q", k, got[k], v)
		}
	}
	if _, err := fs.Cgroups(4242); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Cgroups of a missing pid: %v", err)
	}
}
