//go:build cgo

package gpu

import (
	"errors"
	"testing"
)

// The mock server is go-nvml's DGX A100: eight A100-SXM4-40GB, compute
// capability 8.0, MIG capable and off.
func TestMockDetection(t *testing.T) {
	h, err := Open("mock:dgxa100")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if !h.Mock() || h.Source() != "mock:dgxa100" || h.Count() != 8 {
		t.Fatalf("mock=%v source=%s count=%d", h.Mock(), h.Source(), h.Count())
	}
	if h.Driver() == "" {
		t.Errorf("no driver version")
	}
	seen := map[string]bool{}
	for i := 0; i < h.Count(); i++ {
		inf, err := h.Device(i)
		if err != nil {
			t.Fatal(err)
		}
		if inf.Index != i || inf.Total != 40960<<20 || inf.Free != inf.Total || inf.Used != 0 {
			t.Errorf("device %d: %+v", i, inf)
		}
		if inf.CCMajor != 8 || inf.CCMinor != 0 || !inf.MIGKnown || inf.MIG {
			t.Errorf("device %d capability/MIG: %+v", i, inf)
		}
		if seen[inf.UUID] {
			t.Errorf("duplicate uuid %s", inf.UUID)
		}
		seen[inf.UUID] = true
	}
	if _, err := h.Device(8); err == nil {
		t.Errorf("device 8 of 8 did not fail")
	}
}

// Processes set through MockControl come back through NVML's process call
// and are charged to the device's used memory.
func TestMockProcs(t *testing.T) {
	h, err := Open("mock:h100")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	mc := h.(MockControl)
	if err := mc.SetProcs(3, []Proc{{Pid: 100, Bytes: 1 << 30}, {Pid: 101, Bytes: 2 << 30}}); err != nil {
		t.Fatal(err)
	}
	mc.SetUtil(3, 0.75)
	ps, err := h.Procs(3)
	if err != nil || len(ps) != 2 || ps[1] != (Proc{101, 2 << 30}) {
		t.Fatalf("procs %+v %v", ps, err)
	}
	inf, _ := h.Device(3)
	if inf.Used != 3<<30 || inf.Free != inf.Total-3<<30 || inf.Util != 0.75 || inf.CCMajor != 9 {
		t.Fatalf("info %+v", inf)
	}
	if ps, _ := h.Procs(2); len(ps) != 0 {
		t.Fatalf("device 2 procs %+v", ps)
	}
	if err := mc.SetProcs(8, nil); err == nil {
		t.Fatal("SetProcs on device 8 of 8 did not fail")
	}
}

func TestBadSpec(t *testing.T) {
	for _, s := range []string{"mock:", "mock:v100", "nvidia", "mock"} {
		if _, err := Open(s); !errors.Is(err, ErrBadSpec) {
			t.Errorf("Open(%q) = %v, want ErrBadSpec", s, err)
		}
	}
}
