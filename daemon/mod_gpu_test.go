package daemon

// End-to-end checks of the GPU engine through the real daemon: the tree is
// served over 9P on the daemon's socket and read with the 9P client, the
// agents are real processes in real cgroups, the devices are go-nvml's
// DGX A100 mock (-gpu=mock:dgxa100), and enforcement is checked in the
// kernel's own cgroup files.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"aiosfs/fs/p9fs"
	halgpu "aiosfs/hal/gpu"
	"aiosfs/hal/spawn"
)

// TestMain lets the test binary serve as the spawn shim for agents the
// daemon starts (see hal/spawn). If another test file of this package
// needs a TestMain, this one moves into a shared main_test.go.
func TestMain(m *testing.M) {
	spawn.MaybeShim()
	os.Exit(m.Run())
}

// startGPU runs a daemon serving 9P only, with its agents' cgroups under a
// prefix of its own, and returns it with a client.
func startGPU(t *testing.T, gpuSpec string) (*Daemon, *p9fs.Client) {
	t.Helper()
	d, c, _ := startGPUIn(t, gpuSpec, t.TempDir(), newPrefix())
	return d, c
}

// newPrefix gives every daemon of a test run its own cgroup subtree, so
// one test's leftovers can never be another's agents.
func newPrefix() string { return fmt.Sprintf("aiosfs-gputest-%d-%d", os.Getpid(), prefixSeq.Add(1)) }

var prefixSeq atomic.Int64

// startGPUIn is startGPU with its state in stateDir; stop ends the daemon
// before the test does (it is also a cleanup).
func startGPUIn(t *testing.T, gpuSpec, stateDir, prefix string) (d *Daemon, c *p9fs.Client, stop func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the daemon makes cgroups")
	}
	cfg := Config{StateDir: stateDir, Interval: 50 * time.Millisecond, ProcRoot: "/proc",
		CgroupRoot: "/sys/fs/cgroup", Prefix: prefix, Grace: time.Second, GPU: gpuSpec}
	d, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closeAll := func() {
		once.Do(func() {
			if err := d.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Cleanup(closeAll)
	c, err = p9fs.Dial("unix!" + cfg.Socket())
	if err != nil {
		closeAll()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return d, c, func() { c.Close(); closeAll() }
}

func gpuCat(t *testing.T, c *p9fs.Client, p string) string {
	t.Helper()
	b, err := c.ReadFile(p)
	if err != nil {
		t.Fatalf("cat %s: %v", p, err)
	}
	return string(b)
}

func gpuEcho(t *testing.T, c *p9fs.Client, p, line string) error {
	t.Helper()
	return c.WriteFile(p, []byte(line+"\n"))
}

func gpuField(text, key string) string {
	m := regexp.MustCompile(`(?m)(?:^| )` + regexp.QuoteMeta(key) + `=("(?:[^"\\]|\\.)*"|\S*)`).FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	return m[1]
}

func gpuWaitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestGPUMockEndToEnd(t *testing.T) {
	if _, err := halgpu.Open("mock:dgxa100"); errors.Is(err, halgpu.ErrNoCgo) {
		t.Skip("built without cgo: no go-nvml mock devices")
	}
	d, c := startGPU(t, "mock:dgxa100")

	st := gpuCat(t, c, "gpu/status")
	if gpuField(st, "mock") != "1" || gpuField(st, "devices") != "8" || gpuField(st, "source") != "mock:dgxa100" {
		t.Fatalf("gpu/status: %s", st)
	}
	if names, err := c.ReadDir("gpu"); err != nil || len(names) != 3+8+1 { // and the README
		t.Fatalf("ls gpu: %v %v", names, err)
	}

	// A real agent, its reservation, its file.
	if err := gpuEcho(t, c, "ctl", "spawn gpujob -- sleep 600"); err != nil {
		t.Fatal(err)
	}
	gpuWaitFor(t, "agent 1 to run", func() bool { return gpuField(gpuCat(t, c, "agents/1/status"), "state") == "running" })
	if err := gpuEcho(t, c, "agents/1/ctl", "gpu 8G share=0.5"); err != nil {
		t.Fatal(err)
	}
	ag := gpuCat(t, c, "agents/1/gpu")
	if gpuField(ag, "mock") != "1" || gpuField(ag, "state") != "granted" || gpuField(ag, "bytes") != "8589934592" || gpuField(ag, "dev") != "0" {
		t.Fatalf("agents/1/gpu: %s", ag)
	}
	if m := gpuCat(t, c, "metrics"); !strings.Contains(m, `aiosfs_gpu_agent_reserved_bytes{agent="1",mock="1"} 8.589934592e+09`) {
		t.Fatalf("metrics lack the reservation:\n%s", m)
	}
	if !strings.Contains(gpuCat(t, c, "agents/1/ctl"), "gpu SIZE") {
		t.Fatal("agents/1/ctl lists no gpu verb")
	}

	// A bad request fails with its errno, is logged, and changes nothing.
	before := gpuCat(t, c, "gpu/allocations")
	if err := gpuEcho(t, c, "agents/1/ctl", "gpu 1T"); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("second reservation: %v", err)
	}
	if err := gpuEcho(t, c, "ctl", "spawn other -- sleep 600"); err != nil {
		t.Fatal(err)
	}
	if err := gpuEcho(t, c, "agents/2/ctl", "gpu 1T"); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("1T request: %v, want ENOSPC", err)
	}
	if err := gpuEcho(t, c, "agents/2/ctl", "gpu 1G dev=12"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("dev=12: %v, want ENOENT", err)
	}
	if after := gpuCat(t, c, "gpu/allocations"); after != before {
		t.Fatalf("refused requests changed allocations:\n%s%s", before, after)
	}
	if !strings.Contains(gpuCat(t, c, "log"), "exceeds every device") {
		t.Fatalf("log lacks the refusal:\n%s", gpuCat(t, c, "log"))
	}

	// Over its reservation, with the freeze policy: the agent's process
	// shows 9G on gpu 0 and the kernel freezes its cgroup.
	pid := gpuField(gpuCat(t, c, "agents/1/status"), "pid")
	if err := gpuEcho(t, c, "gpu/ctl", "overuse freeze"); err != nil {
		t.Fatal(err)
	}
	if err := gpuEcho(t, c, "gpu/ctl", "mockproc 0 "+pid+" 9G"); err != nil {
		t.Fatal(err)
	}
	gpuWaitFor(t, "agent 1 to be frozen", func() bool { return gpuField(gpuCat(t, c, "agents/1/status"), "state") == "frozen" })
	if procs := gpuCat(t, c, "gpu/0/procs"); !strings.Contains(procs, "pid="+pid+" agent=1 bytes=9663676416") {
		t.Fatalf("gpu/0/procs: %s", procs)
	}
	if g := gpuCat(t, c, "agents/1/gpu"); gpuField(g, "over") != "1" || gpuField(g, "used") != "9663676416" {
		t.Fatalf("agents/1/gpu: %s", g)
	}
	if !kernelFrozen(t, d, 1) {
		t.Fatal("the kernel does not show agent 1's cgroup frozen")
	}

	// Release frees the memory for a waiter.
	if err := gpuEcho(t, c, "agents/2/ctl", "gpu 40G dev=0"); err != nil {
		t.Fatal(err)
	}
	if gpuField(gpuCat(t, c, "agents/2/gpu"), "state") != "queued" || gpuField(gpuCat(t, c, "gpu/0/queue"), "agent") != "2" {
		t.Fatalf("agent 2 not queued: %s", gpuCat(t, c, "agents/2/gpu"))
	}
	if err := gpuEcho(t, c, "agents/1/ctl", "gpu release"); err != nil {
		t.Fatal(err)
	}
	if gpuField(gpuCat(t, c, "agents/2/gpu"), "state") != "granted" {
		t.Fatalf("agent 2 not granted after release: %s", gpuCat(t, c, "agents/2/gpu"))
	}
	// Killing agent 2 releases its reservation within a tick or two.
	if err := gpuEcho(t, c, "agents/2/ctl", "kill"); err != nil {
		t.Fatal(err)
	}
	gpuWaitFor(t, "agent 2's reservation to go", func() bool { return gpuField(gpuCat(t, c, "agents/2/gpu"), "state") == "none" })
}

// kernelFrozen reads the agent's cgroup freezer state from the kernel:
// v1 freezer.state FROZEN, or cgroup v2 cgroup.events "frozen 1".
func kernelFrozen(t *testing.T, d *Daemon, id int) bool {
	t.Helper()
	g, err := d.Agents.Group(id)
	if err != nil {
		t.Fatal(err)
	}
	paths := g.Paths()
	// A hybrid host has both: the v1 freezer is the one that freezes.
	if p, ok := paths["freezer"]; ok {
		b, err := os.ReadFile(filepath.Join(p, "freezer.state"))
		return err == nil && strings.TrimSpace(string(b)) == "FROZEN"
	}
	b, err := os.ReadFile(filepath.Join(paths["unified"], "cgroup.events"))
	return err == nil && strings.Contains(string(b), "frozen 1")
}

// Throttling an agent over its reservation works the kernel's freezer on
// and off while the agent stays "running", and ends thawed.
func TestGPUThrottle(t *testing.T) {
	if _, err := halgpu.Open("mock:dgxa100"); errors.Is(err, halgpu.ErrNoCgo) {
		t.Skip("built without cgo: no go-nvml mock devices")
	}
	d, c := startGPU(t, "mock:dgxa100")
	if err := gpuEcho(t, c, "ctl", "spawn hog -- sleep 600"); err != nil {
		t.Fatal(err)
	}
	gpuWaitFor(t, "agent 1 to run", func() bool { return gpuField(gpuCat(t, c, "agents/1/status"), "state") == "running" })
	pid := gpuField(gpuCat(t, c, "agents/1/status"), "pid")
	for _, line := range []string{"overuse throttle 0.5", "mockproc 2 " + pid + " 2G"} {
		if err := gpuEcho(t, c, "gpu/ctl", line); err != nil {
			t.Fatal(err)
		}
	}
	if err := gpuEcho(t, c, "agents/1/ctl", "gpu 1G dev=2"); err != nil {
		t.Fatal(err)
	}
	gpuWaitFor(t, "the kernel to show agent 1 frozen", func() bool { return kernelFrozen(t, d, 1) })
	gpuWaitFor(t, "the kernel to show agent 1 thawed", func() bool { return !kernelFrozen(t, d, 1) })
	if st := gpuField(gpuCat(t, c, "agents/1/status"), "state"); st != "running" {
		t.Fatalf("throttled agent's state is %s", st)
	}
	// Back under its reservation: the throttle ends with the agent thawed.
	if err := gpuEcho(t, c, "gpu/ctl", "mockproc 2 "+pid+" 0"); err != nil {
		t.Fatal(err)
	}
	gpuWaitFor(t, "the overuse to end", func() bool { return gpuField(gpuCat(t, c, "agents/1/gpu"), "over") == "0" })
	if kernelFrozen(t, d, 1) {
		t.Fatal("agent 1 left frozen after its throttle ended")
	}
}

// On this machine NVML has no driver to load: the daemon still starts,
// logs why, and serves a gpu/ tree with no devices.
func TestGPUNoDriver(t *testing.T) {
	if h, err := halgpu.Open(""); err == nil {
		h.Close()
		t.Skip("an NVIDIA driver is present")
	}
	d, c := startGPU(t, "")
	st := gpuCat(t, c, "gpu/status")
	if gpuField(st, "mock") != "0" || gpuField(st, "devices") != "0" || gpuField(st, "err") == `""` {
		t.Fatalf("gpu/status: %s", st)
	}
	if names, _ := c.ReadDir("gpu"); len(names) != 3+1 { // and the README
		t.Fatalf("ls gpu: %v", names)
	}
	if !strings.Contains(string(d.Log.Bytes()), "gpu: no devices") {
		t.Fatalf("log does not say why:\n%s", d.Log.Bytes())
	}
	gpuEcho(t, c, "ctl", "spawn x -- sleep 600")
	if err := gpuEcho(t, c, "agents/1/ctl", "gpu 1G"); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("request without devices: %v, want ENODEV", err)
	}
}

// On a machine with an NVIDIA GPU: the daemon finds it through NVML, an
// agent that allocates GPU memory shows in gpu/N/procs with its memory,
// and going over its reservation freezes it in the kernel. The agent's
// command is AIOSFS_GPU_TEST_CMD (anything that allocates at least 1 GiB
// of GPU memory and then sleeps), else python3 with torch.
func TestGPURealEnforcement(t *testing.T) {
	h, err := halgpu.Open("")
	if err != nil {
		t.Skipf("no NVIDIA GPU here: %v", err)
	}
	h.Close()
	holder := os.Getenv("AIOSFS_GPU_TEST_CMD")
	if holder == "" {
		holder = `python3 -c "import torch,time; x=torch.empty(1<<30,dtype=torch.uint8,device='cuda'); time.sleep(600)"`
		if exec.Command("python3", "-c", "import torch; assert torch.cuda.is_available()").Run() != nil {
			t.Skip("no way to make a CUDA context: set AIOSFS_GPU_TEST_CMD or install python3 with torch")
		}
	}
	_, c := startGPU(t, "")
	st := gpuCat(t, c, "gpu/status")
	if gpuField(st, "mock") != "0" || gpuField(st, "source") != "nvml" || gpuField(st, "devices") == "0" {
		t.Fatalf("gpu/status: %s", st)
	}
	if err := gpuEcho(t, c, "gpu/ctl", "overuse freeze"); err != nil {
		t.Fatal(err)
	}
	// A script file keeps the holder's own quoting away from ctl's.
	script := filepath.Join(t.TempDir(), "holder.sh")
	if err := os.WriteFile(script, []byte("exec "+holder+"\n"), 0755); err != nil {
		t.Fatal(err)
	}
	if err := gpuEcho(t, c, "ctl", "spawn holder -- bash "+script); err != nil {
		t.Fatal(err)
	}
	if err := gpuEcho(t, c, "agents/1/ctl", "gpu 512M dev=0"); err != nil {
		t.Fatal(err)
	}
	// NVML charges the process once its context and allocation exist.
	gpuWaitFor(t, "the agent's GPU memory to show", func() bool {
		used := gpuField(gpuCat(t, c, "agents/1/gpu"), "used")
		return used != "" && used != "0"
	})
	if !strings.Contains(gpuCat(t, c, "gpu/0/procs"), "agent=1 ") {
		t.Fatalf("gpu/0/procs: %s", gpuCat(t, c, "gpu/0/procs"))
	}
	gpuWaitFor(t, "the agent to be frozen", func() bool { return gpuField(gpuCat(t, c, "agents/1/status"), "state") == "frozen" })
	if g := gpuCat(t, c, "agents/1/gpu"); gpuField(g, "over") != "1" {
		t.Fatalf("agents/1/gpu: %s", g)
	}
}

// Reservations survive a daemon restart: the agent is resumed by the agent
// engine and keeps its GPU memory, and the waiter behind it still waits.
func TestGPURestart(t *testing.T) {
	if _, err := halgpu.Open("mock:dgxa100"); errors.Is(err, halgpu.ErrNoCgo) {
		t.Skip("built without cgo: no go-nvml mock devices")
	}
	state, prefix := t.TempDir(), newPrefix()
	_, c, stop := startGPUIn(t, "mock:dgxa100", state, prefix)
	for _, line := range []string{"spawn a -- sleep 600", "spawn b -- sleep 600"} {
		if err := gpuEcho(t, c, "ctl", line); err != nil {
			t.Fatal(err)
		}
	}
	if err := gpuEcho(t, c, "agents/1/ctl", "gpu 30G dev=4"); err != nil {
		t.Fatal(err)
	}
	if err := gpuEcho(t, c, "agents/2/ctl", "gpu 20G dev=4"); err != nil {
		t.Fatal(err)
	}
	want := gpuCat(t, c, "gpu/allocations")
	stop()

	_, c, _ = startGPUIn(t, "mock:dgxa100", state, prefix)
	gpuWaitFor(t, "agent 1 to be resumed", func() bool { return gpuField(gpuCat(t, c, "agents/1/status"), "state") == "running" })
	if got := gpuCat(t, c, "gpu/allocations"); got != want {
		t.Fatalf("after restart:\n%swant\n%s", got, want)
	}
	if err := gpuEcho(t, c, "agents/1/ctl", "gpu release"); err != nil {
		t.Fatal(err)
	}
	if g := gpuCat(t, c, "agents/2/gpu"); gpuField(g, "state") != "granted" || gpuField(g, "dev") != "4" {
		t.Fatalf("agent 2: %s", g)
	}
}
