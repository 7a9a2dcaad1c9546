//go:build cgo

package gpu

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// realHost opens the machine's NVML or skips, saying why.
func realHost(t *testing.T) Host {
	t.Helper()
	h, err := Open("")
	if errors.Is(err, ErrNoDriver) {
		t.Skipf("no NVIDIA GPU here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if h.Count() == 0 {
		t.Skip("NVML loaded but reports no devices")
	}
	return h
}

// Without libnvidia-ml, Open must fail with ErrNoDriver and nothing else:
// the daemon logs it and serves no devices.
func TestNoDriverFailsCleanly(t *testing.T) {
	h, err := Open("")
	if err == nil {
		h.Close()
		t.Skip("an NVIDIA driver is present; TestReal* cover it")
	}
	if !errors.Is(err, ErrNoDriver) {
		t.Fatalf("Open without a driver: %v, want ErrNoDriver", err)
	}
	// A second attempt behaves the same: the failed dlopen left nothing.
	if _, err2 := Open(""); !errors.Is(err2, ErrNoDriver) {
		t.Fatalf("second Open: %v", err2)
	}
	t.Logf("as expected: %v", err)
}

// Detection on real hardware, checked against nvidia-smi where it exists.
func TestRealDetection(t *testing.T) {
	h := realHost(t)
	if h.Mock() || h.Source() != "nvml" {
		t.Fatalf("real host says mock=%v source=%s", h.Mock(), h.Source())
	}
	for i := 0; i < h.Count(); i++ {
		inf, err := h.Device(i)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("gpu %d: %+v", i, inf)
		if inf.Total <= 0 || inf.Free < 0 || inf.Free > inf.Total || inf.UUID == "" || inf.CCMajor == 0 {
			t.Errorf("gpu %d implausible: %+v", i, inf)
		}
	}
	smi, err := exec.LookPath("nvidia-smi")
	if err != nil {
		t.Log("no nvidia-smi to cross-check against")
		return
	}
	out, err := exec.Command(smi, "--query-gpu=index,uuid,memory.total", "--format=csv,noheader,nounits").Output()
	if err != nil {
		t.Fatalf("nvidia-smi: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ", ")
		i, _ := strconv.Atoi(f[0])
		inf, err := h.Device(i)
		if err != nil {
			t.Fatal(err)
		}
		mib, _ := strconv.ParseInt(f[2], 10, 64)
		if inf.UUID != f[1] || inf.Total>>20 != mib {
			t.Errorf("gpu %d: nvml uuid=%s total=%d, nvidia-smi %q", i, inf.UUID, inf.Total>>20, line)
		}
	}
}

// Per-process memory on real hardware: a CUDA process started here must
// show up on a device with its memory. It needs a way to make a CUDA
// context; AIOSFS_GPU_TEST_CMD names one (any command that allocates at
// least 1 GiB of GPU memory, prints a line, then sleeps), else python3 with
// torch is tried.
func TestRealProcMemory(t *testing.T) {
	h := realHost(t)
	cmd := cudaHolder(t)
	pid := cmd.Process.Pid
	for i := 0; i < h.Count(); i++ {
		ps, err := h.Procs(i)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Pid == pid {
				t.Logf("pid %d on gpu %d with %d bytes", pid, i, p.Bytes)
				if p.Bytes >= 0 && p.Bytes < 1<<30 {
					t.Errorf("pid %d charged %d bytes, holds at least 1 GiB", pid, p.Bytes)
				}
				return
			}
		}
	}
	t.Fatalf("pid %d not among any device's compute processes", pid)
}

// cudaHolder starts a process holding at least 1 GiB of GPU memory and
// returns once it says its allocation exists; it is killed at cleanup.
func cudaHolder(t *testing.T) *exec.Cmd {
	t.Helper()
	script := os.Getenv("AIOSFS_GPU_TEST_CMD")
	if script == "" {
		if exec.Command("python3", "-c", "import torch; assert torch.cuda.is_available()").Run() != nil {
			t.Skip("no way to make a CUDA context: set AIOSFS_GPU_TEST_CMD or install python3 with torch")
		}
		script = `python3 -c "import torch,time; x=torch.empty(1<<30,dtype=torch.uint8,device='cuda'); print('ok',flush=True); time.sleep(600)"`
	}
	cmd := exec.Command("bash", "-c", "exec "+script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("CUDA holder ended before allocating: %v", err)
	}
	return cmd
}
