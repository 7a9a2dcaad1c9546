// Package gpu is the host's GPUs as the daemon sees them: devices, their
// memory, utilisation, compute capability, MIG mode and the processes
// running on them with their GPU memory.
//
// The real implementation is NVIDIA's NVML through github.com/NVIDIA/go-nvml,
// which needs cgo and loads libnvidia-ml.so.1 at run time; it lives in
// nvml.go behind the cgo build tag, so `CGO_ENABLED=0 go build ./...`
// still builds a daemon (one that says it has no GPU support). Without a
// driver Open fails with ErrNoDriver and the daemon serves no devices.
//
// "mock:MODEL" serves go-nvml's own mock servers (pkg/nvml/mock/dgxa100,
// dgxh100, dgxh200, dgxb200: eight GPUs each) through the same NVML code
// path. Those mocks model identity, memory size, compute capability and MIG
// but leave utilisation and process lists unimplemented (calling them
// panics) and report free memory as 0; Open fills exactly those in with a
// small process table that MockControl sets, and Host.Mock reports true so
// every file the daemon renders can say mock=1.
package gpu

import (
	"errors"
	"fmt"
	"strings"
)

// Info is one device's state at one moment. Sizes are bytes, utilisation
// a fraction 0..1 (-1 when the device cannot say).
type Info struct {
	Index    int
	UUID     string
	Name     string
	Total    int64
	Free     int64
	Used     int64
	Util     float64 // SM busy fraction over the driver's last sample period
	MemUtil  float64 // memory controller busy fraction
	CCMajor  int     // CUDA compute capability
	CCMinor  int
	MIG      bool // MIG mode currently enabled
	MIGKnown bool // false where the device has no MIG support
}

// Proc is one process using a device, with the GPU memory NVML charges it.
type Proc struct {
	Pid   int
	Bytes int64
}

// Host is the GPUs of one machine.
type Host interface {
	// Source says where devices come from: "nvml" or "mock:MODEL".
	Source() string
	// Mock is true for go-nvml's mock devices.
	Mock() bool
	// Driver is the driver version ("" when unknown).
	Driver() string
	// Count is the number of devices.
	Count() int
	// Device returns device i's current state.
	Device(i int) (Info, error)
	// Procs lists the compute processes on device i.
	Procs(i int) ([]Proc, error)
	Close() error
}

// MockControl is implemented by mock hosts: it sets what the mock's
// unimplemented calls report, so tests and demos can put a process of
// a given size on a device.
type MockControl interface {
	SetProcs(dev int, procs []Proc) error
	SetUtil(dev int, util float64) error
}

var (
	// ErrNoDriver: libnvidia-ml could not be loaded or initialised.
	ErrNoDriver = errors.New("no NVIDIA driver")
	// ErrNoCgo: this binary was built without cgo, which go-nvml needs.
	ErrNoCgo = errors.New("built without cgo: no NVML support")
	// ErrBadSpec: the -gpu flag names no known source.
	ErrBadSpec = errors.New("bad gpu source")
)

// MockModels are the go-nvml mock servers Open knows, by name.
var MockModels = []string{"dgxa100", "dgxh100", "dgxh200", "dgxb200"}

// Open returns the GPUs named by spec: "" for NVML, "mock:MODEL" for a
// go-nvml mock server ("mock:a100" and "mock:dgxa100" both work). "none"
// is the caller's business (no host at all), not Open's.
func Open(spec string) (Host, error) {
	if spec == "" || spec == "nvml" {
		return openNVML()
	}
	model, ok := strings.CutPrefix(spec, "mock:")
	if !ok {
		return nil, fmt.Errorf("%w %q (want empty, none or mock:MODEL)", ErrBadSpec, spec)
	}
	model = strings.ToLower(model)
	if !strings.HasPrefix(model, "dgx") {
		model = "dgx" + model
	}
	for _, m := range MockModels {
		if m == model {
			return openMock(model)
		}
	}
	return nil, fmt.Errorf("%w %q: mock models are %s", ErrBadSpec, spec, strings.Join(MockModels, ", "))
}
