package vm

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const fixtures = "../../testdata/vm"

func TestSmapsFixture(t *testing.T) {
	ms, err := FS(filepath.Join(fixtures, "proc")).Smaps(4242)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 4 {
		t.Fatalf("got %d mappings, want 4: %+v", len(ms), ms)
	}
	db := ms[2]
	if db.Path != "/var/lib/data/my file.db" || db.Start != 0x7f3a10000000 || db.Len() != 64<<20 ||
		db.Rss != 16<<20 || db.Referenced != 4<<20 || db.Inode != 918273 || !db.FileBacked() || db.Perms != "r--s" {
		t.Errorf("file mapping: %+v", db)
	}
	if h := ms[1]; h.Path != "[heap]" || h.FileBacked() || h.Anonymous != 8<<10 {
		t.Errorf("heap: %+v", h)
	}
	if ms[0].Referenced != 120<<10 || ms[0].Path != "/usr/bin/cat" {
		t.Errorf("text: %+v", ms[0])
	}
}

func TestSmapsBad(t *testing.T) {
	for _, s := range []string{
		"Rss: 4 kB\n",
		"zzzz-55d0c0a28000 r--p 00000000 08:01 1311 /x\n",
		"1000-2000 r--p 00000000 08:01 1311 /x\nRss: many kB\n",
	} {
		if _, err := ParseSmaps([]byte(s)); err == nil {
			t.Errorf("ParseSmaps(%q) accepted", s)
		}
	}
}

func TestPressureFixture(t *testing.T) {
	p, err := FS(filepath.Join(fixtures, "proc")).MemPressure()
	if err != nil {
		t.Fatal(err)
	}
	if p.Avg10 != 0.125 || p.Avg60 != 0.03 || p.Avg300 != 0.0075 {
		t.Errorf("%+v", p)
	}
	if _, err := FS(t.TempDir()).MemPressure(); !os.IsNotExist(err) {
		t.Errorf("missing PSI: %v", err)
	}
}

func TestCgroupMemoryFixture(t *testing.T) {
	u, l, err := CgroupMemory(filepath.Join(fixtures, "cgroup/v1"))
	if err != nil || u != 100<<20 || l != Unlimited {
		t.Errorf("v1: %d %d %v", u, l, err)
	}
	u, l, err = CgroupMemory(filepath.Join(fixtures, "cgroup/v2"))
	if err != nil || u != 50<<20 || l != 64<<20 {
		t.Errorf("v2: %d %d %v", u, l, err)
	}
}

// TestLiveReferencedAndPageout runs a real process that maps a file and
// keeps touching it, and checks the kernel's own smaps: after clear_refs
// the touched bytes show as Referenced, and MADV_PAGEOUT through
// process_madvise takes the file's pages out of the process (Rss drops).
func TestLiveReferencedAndPageout(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("needs python3 for the mapping process")
	}
	f := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(f, make([]byte, 8<<20), 0644); err != nil {
		t.Fatal(err)
	}
	// It reads one byte per page, sleeps 20 ms, and again, until a line
	// on stdin; then it idles until stdin closes. "ready" after the first
	// round.
	cmd := exec.Command("python3", "-c", `
import mmap, sys, time, select
f = open(sys.argv[1], 'rb')
m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
first = True
while True:
    s = 0
    for i in range(0, len(m), 4096):
        s += m[i]
    if first:
        print("ready", flush=True)
        first = False
    r, _, _ = select.select([sys.stdin], [], [], 0.02)
    if r:
        break
sys.stdin.readline()
sys.stdin.readline()
`, f)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); cmd.Process.Kill(); cmd.Wait() }()
	buf := make([]byte, 16)
	if _, err := out.Read(buf); err != nil {
		t.Fatal(err)
	}
	proc := FS("/proc")
	pid := cmd.Process.Pid
	find := func() Mapping {
		ms, err := proc.Smaps(pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Path == f {
				return m
			}
		}
		t.Fatalf("no mapping of %s", f)
		return Mapping{}
	}
	if err := proc.ClearRefs(pid); err != nil {
		t.Fatal(err)
	}
	var m Mapping
	for i := 0; i < 20; i++ {
		time.Sleep(100 * time.Millisecond)
		if m = find(); m.Referenced >= 7<<20 {
			break
		}
	}
	t.Logf("mapping %#x+%d rss=%d referenced=%d", m.Start, m.Len(), m.Rss, m.Referenced)
	if m.Referenced < 7<<20 || m.Rss < 7<<20 {
		t.Errorf("while touching 8 MiB: rss=%d referenced=%d", m.Rss, m.Referenced)
	}
	in.Write([]byte("stop\n")) // stop touching, then page it out
	time.Sleep(100 * time.Millisecond)
	n, err := Advise(pid, PageOut, []Range{{m.Start, m.Len()}})
	if err != nil {
		t.Fatal(err)
	}
	after := find()
	t.Logf("pageout advised %d bytes: rss %d -> %d", n, m.Rss, after.Rss)
	if after.Rss > m.Rss/4 {
		t.Errorf("Rss after MADV_PAGEOUT %d, before %d", after.Rss, m.Rss)
	}
	if _, err := Advise(pid, 12345, []Range{{m.Start, m.Len()}}); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("bad advice: %v", err)
	}
}

// FuzzParseSmaps: any text parses or is refused; a parsed mapping never
// ends before it starts when its header said so, and nothing panics.
func FuzzParseSmaps(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join(fixtures, "proc/4242/smaps"))
	f.Add(string(b))
	f.Add("1000-2000 r--p 00000000 08:01 1311 /x y\nRss: 4 kB\nReferenced: 4 kB\n")
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseSmaps([]byte(s))
		if err != nil {
			return
		}
		for _, m := range ms {
			if strings.ContainsAny(m.Path, "\n") {
				t.Fatalf("path with a newline: %q", m.Path)
			}
		}
	})
}

func FuzzParsePressure(f *testing.F) {
	f.Add("some avg10=12.50 avg60=3.00 avg300=0.75 total=123456\n")
	f.Fuzz(func(t *testing.T, s string) {
		ParsePressure([]byte(s))
	})
}
