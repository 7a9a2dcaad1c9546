package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"aiosfs/fs"
	"aiosfs/internal/testutil"
)

// BenchmarkAgentPids is what the memory engine (memAgents.Agent) and the
// GPU watch (agentsForGPU.Pids) spend per agent per pass to learn its
// pids, with the registry alone (tel nil: cgroup.procs read, and for the
// memory engine its memory files at the pressure check, not counted here)
// and with the sampler's last pass (Sampler.Procs), over 20 running
// agents. cpu-ns/agent is the thread's CPU time per agent.
//
//	go test -run '^$' -bench AgentPids ./daemon/
func BenchmarkAgentPids(b *testing.B) {
	testutil.RequireFUSE(b, "makes cgroups")
	base, err := os.MkdirTemp("", "aiosfs-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(base)
	cfg := Config{StateDir: filepath.Join(base, "state"), Interval: 100 * time.Millisecond, ProcRoot: "/proc",
		CgroupRoot: "/sys/fs/cgroup", Prefix: newPrefix(), Grace: time.Second, GPU: "none"}
	d, err := Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	const n = 20
	for i := 0; i < n; i++ {
		if err := fs.WriteFile(ctx, d.Root, "ctl", fs.RootCaller, []byte(fmt.Sprintf("spawn p%d -- /usr/bin/sleep 600\n", i))); err != nil {
			b.Fatal(err)
		}
	}
	ids := d.Agents.IDs()
	deadline := time.Now().Add(10 * time.Second)
	for _, id := range ids {
		for {
			if _, _, ok := d.Tel.Procs(id); ok {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("agent %d never sampled", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, tc := range []struct {
		name string
		f    func(id int)
	}{
		{"mem/registry", func(id int) { memAgents{d.Agents, nil}.Agent(id) }},
		{"mem/sampler", func(id int) { memAgents{d.Agents, d.Tel}.Agent(id) }},
		{"gpu/registry", func(id int) { agentsForGPU{d.Agents, nil}.Pids(id) }},
		{"gpu/sampler", func(id int) { agentsForGPU{d.Agents, d.Tel}.Pids(id) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			t0 := threadCPU()
			for b.Loop() {
				for _, id := range ids {
					tc.f(id)
				}
			}
			b.ReportMetric(float64(threadCPU()-t0)/float64(b.N)/float64(len(ids)), "cpu-ns/agent")
		})
	}
	for _, id := range ids {
		fs.WriteFile(ctx, d.Root, fmt.Sprintf("agents/%d/ctl", id), fs.RootCaller, []byte("kill KILL\n"))
	}
}

func threadCPU() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return ts.Nano()
}
