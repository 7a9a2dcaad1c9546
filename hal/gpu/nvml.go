//go:build cgo

package gpu

import (
	"errors"
	"fmt"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxb200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// nvmlHost serves any nvml.Interface: the real library or a mock server.
// NVML handles are safe for concurrent use; mu only guards the device
// handle cache.
type nvmlHost struct {
	lib    nvml.Interface
	source string
	mock   bool
	driver string

	mu   sync.Mutex
	devs []nvml.Device
}

func openNVML() (Host, error) {
	lib := nvml.New()
	// Init loads libnvidia-ml.so.1 with dlopen; on a machine without the
	// driver that fails with ERROR_LIBRARY_NOT_FOUND and nothing is left
	// loaded, so returning the error is the whole clean-up.
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("%w: nvml init: %v", ErrNoDriver, ret)
	}
	h, err := newHost(lib, "nvml", false)
	if err != nil {
		lib.Shutdown()
		return nil, err
	}
	return h, nil
}

func openMock(model string) (Host, error) {
	var s *server.Server
	switch model {
	case "dgxa100":
		s = dgxa100.New()
	case "dgxh100":
		s = dgxh100.New()
	case "dgxh200":
		s = dgxh200.New()
	case "dgxb200":
		s = dgxb200.New()
	default:
		return nil, fmt.Errorf("%w: mock model %q", ErrBadSpec, model)
	}
	m := &mockState{procs: map[int][]Proc{}, util: map[int]float64{}}
	for i, d := range s.Devices {
		md, ok := d.(*server.Device)
		if !ok {
			return nil, fmt.Errorf("mock %s: device %d is %T", model, i, d)
		}
		m.fill(i, md)
	}
	if ret := s.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("mock init: %v", ret)
	}
	h, err := newHost(s, "mock:"+model, true)
	if err != nil {
		return nil, err
	}
	return &mockHost{nvmlHost: h, state: m}, nil
}

func newHost(lib nvml.Interface, source string, mock bool) (*nvmlHost, error) {
	h := &nvmlHost{lib: lib, source: source, mock: mock}
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		h.driver = v
	}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvml device count: %v", ret)
	}
	for i := 0; i < n; i++ {
		d, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("nvml device %d: %v", i, ret)
		}
		h.devs = append(h.devs, d)
	}
	return h, nil
}

func (h *nvmlHost) Source() string { return h.source }
func (h *nvmlHost) Mock() bool     { return h.mock }
func (h *nvmlHost) Driver() string { return h.driver }
func (h *nvmlHost) Count() int     { return len(h.devs) }

func (h *nvmlHost) dev(i int) (nvml.Device, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i < 0 || i >= len(h.devs) {
		return nil, fmt.Errorf("no gpu %d", i)
	}
	return h.devs[i], nil
}

// Device reads one device. Identity and memory must succeed; the rest is
// optional because NVML answers NOT_SUPPORTED for them on some boards
// (utilisation on some vGPUs, MIG mode before Ampere).
func (h *nvmlHost) Device(i int) (Info, error) {
	d, err := h.dev(i)
	if err != nil {
		return Info{}, err
	}
	inf := Info{Index: i, Util: -1, MemUtil: -1}
	var ret nvml.Return
	if inf.UUID, ret = d.GetUUID(); ret != nvml.SUCCESS {
		return Info{}, fmt.Errorf("gpu %d uuid: %v", i, ret)
	}
	inf.Name, _ = d.GetName()
	mem, ret := d.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return Info{}, fmt.Errorf("gpu %d memory: %v", i, ret)
	}
	inf.Total, inf.Free, inf.Used = int64(mem.Total), int64(mem.Free), int64(mem.Used)
	if u, ret := d.GetUtilizationRates(); ret == nvml.SUCCESS {
		inf.Util, inf.MemUtil = float64(u.Gpu)/100, float64(u.Memory)/100
	}
	if maj, min, ret := d.GetCudaComputeCapability(); ret == nvml.SUCCESS {
		inf.CCMajor, inf.CCMinor = maj, min
	}
	if cur, _, ret := d.GetMigMode(); ret == nvml.SUCCESS {
		inf.MIGKnown, inf.MIG = true, cur == nvml.DEVICE_MIG_ENABLE
	}
	return inf, nil
}

// Procs lists compute processes. NVML reports UsedGpuMemory as
// NVML_VALUE_NOT_AVAILABLE (all ones) where it cannot attribute memory
// (Windows WDDM, some MIG setups); that reads as -1 here.
func (h *nvmlHost) Procs(i int) ([]Proc, error) {
	d, err := h.dev(i)
	if err != nil {
		return nil, err
	}
	ps, ret := d.GetComputeRunningProcesses()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpu %d processes: %v", i, ret)
	}
	out := make([]Proc, 0, len(ps))
	for _, p := range ps {
		b := int64(p.UsedGpuMemory)
		if p.UsedGpuMemory == ^uint64(0) {
			b = -1
		}
		out = append(out, Proc{Pid: int(p.Pid), Bytes: b})
	}
	return out, nil
}

func (h *nvmlHost) Close() error {
	if ret := h.lib.Shutdown(); ret != nvml.SUCCESS {
		return errors.New("nvml shutdown: " + ret.Error())
	}
	return nil
}

// mockState is what go-nvml's mocks leave out: per-device processes and
// utilisation. Free and used memory follow from the processes, as on a
// real board.
type mockState struct {
	mu    sync.Mutex
	procs map[int][]Proc
	util  map[int]float64
}

func (m *mockState) fill(i int, d *server.Device) {
	d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		m.mu.Lock()
		defer m.mu.Unlock()
		var out []nvml.ProcessInfo
		for _, p := range m.procs[i] {
			out = append(out, nvml.ProcessInfo{Pid: uint32(p.Pid), UsedGpuMemory: uint64(p.Bytes)})
		}
		return out, nvml.SUCCESS
	}
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return nvml.Utilization{Gpu: uint32(m.util[i]*100 + 0.5)}, nvml.SUCCESS
	}
	d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		m.mu.Lock()
		defer m.mu.Unlock()
		total := d.MemoryInfo.Total
		var used uint64
		for _, p := range m.procs[i] {
			used += uint64(p.Bytes)
		}
		used = min(used, total)
		return nvml.Memory{Total: total, Used: used, Free: total - used}, nvml.SUCCESS
	}
}

// mockHost is an nvmlHost over a mock server plus the control of what the
// mock leaves out.
type mockHost struct {
	*nvmlHost
	state *mockState
}

func (m *mockHost) SetProcs(dev int, procs []Proc) error {
	if dev < 0 || dev >= m.Count() {
		return fmt.Errorf("no gpu %d", dev)
	}
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	m.state.procs[dev] = append([]Proc(nil), procs...)
	return nil
}

func (m *mockHost) SetUtil(dev int, util float64) error {
	if dev < 0 || dev >= m.Count() {
		return fmt.Errorf("no gpu %d", dev)
	}
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	m.state.util[dev] = util
	return nil
}

var _ MockControl = (*mockHost)(nil)
