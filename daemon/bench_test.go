package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aiosfs/fs"
	"aiosfs/fs/p9fs"
	"aiosfs/internal/testutil"
)

// BenchmarkAgentStat reads agents/N/stat of one running agent through the
// model (walk and read in process), FUSE and 9P, one whole walk, open,
// read and close per op: the path `make bench` measures, here as a Go
// benchmark so two commits can be compared in one run:
//
//	go test -run '^$' -bench AgentStat -benchtime 3000x ./daemon/
func BenchmarkAgentStat(b *testing.B) {
	testutil.RequireFUSE(b, "mounts FUSE and makes cgroups")
	base, err := os.MkdirTemp("", "aiosfs-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(base)
	mnt := filepath.Join(base, "mnt")
	cfg := Config{Mount: mnt, StateDir: filepath.Join(base, "state"), Interval: 100 * time.Millisecond, ProcRoot: "/proc",
		CgroupRoot: "/sys/fs/cgroup", Prefix: newPrefix(), Grace: time.Second, GPU: "none"}
	d, err := Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := d.Close(); err != nil {
			b.Errorf("close: %v", err)
		}
	}()
	// Control writes go through the model: a write to its own mount that
	// forks (spawn) would hand the child a FUSE fd whose flush at exit
	// waits on this very process.
	ctx := context.Background()
	if err := fs.WriteFile(ctx, d.Root, "ctl", fs.RootCaller, []byte("spawn bench -- /usr/bin/sleep 600\n")); err != nil {
		b.Fatal(err)
	}
	const p = "agents/1/stat"
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, _ := fs.ReadFile(ctx, d.Root, p, fs.RootCaller)
		if len(s) > 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s stays empty", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer fs.WriteFile(ctx, d.Root, "agents/1/ctl", fs.RootCaller, []byte("kill KILL\n"))
	c, err := p9fs.Dial("unix!" + cfg.Socket())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	read := map[string]func() ([]byte, error){
		"model": func() ([]byte, error) { return fs.ReadFile(ctx, d.Root, p, fs.RootCaller) },
		"fuse":  func() ([]byte, error) { return os.ReadFile(filepath.Join(mnt, p)) },
		"9p":    func() ([]byte, error) { return c.ReadFile(p) },
	}
	for _, name := range []string{"model", "fuse", "9p"} {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				s, err := read[name]()
				if err != nil || !strings.Contains(string(s), "cpu") {
					b.Fatalf("%s: %q %v", name, s, err)
				}
			}
		})
	}
}
