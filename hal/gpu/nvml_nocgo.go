//go:build !cgo

package gpu

// go-nvml is cgo code; a binary built without cgo has neither NVML nor its
// mocks, and says so rather than pretending to have no GPUs.

func openNVML() (Host, error)             { return nil, ErrNoCgo }
func openMock(model string) (Host, error) { return nil, ErrNoCgo }
