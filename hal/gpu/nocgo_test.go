//go:build !cgo

package gpu

import (
	"errors"
	"testing"
)

// Without cgo there is no go-nvml: every source says so, and a bad spec is
// still a bad spec.
func TestNoCgo(t *testing.T) {
	for _, s := range []string{"", "mock:dgxa100"} {
		if _, err := Open(s); !errors.Is(err, ErrNoCgo) {
			t.Errorf("Open(%q) = %v, want ErrNoCgo", s, err)
		}
	}
	if _, err := Open("mock:v100"); !errors.Is(err, ErrBadSpec) {
		t.Errorf("mock:v100: %v", err)
	}
}
