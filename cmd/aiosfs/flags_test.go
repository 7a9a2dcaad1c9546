package main

import (
	"bytes"
	"errors"
	"testing"
)

// Bad flags and arguments are refused before anything is mounted or made.
func TestBadFlagsAndArguments(t *testing.T) {
	for _, args := range [][]string{
		{"-interval", "1ms"},
		{"-interval", "soon"},
		{"-cgroup", "v3"},
		{"-nosuchflag"},
		{"extra", "args"},
	} {
		if err := serve(args); !errors.Is(err, errUsage) {
			t.Errorf("serve %q: %v, want a usage error", args, err)
		}
	}
	var out bytes.Buffer
	for _, args := range [][]string{{}, {"addr"}, {"addr", "/a", "/b"}} {
		if err := client("cat", args, &out); !errors.Is(err, errUsage) {
			t.Errorf("cat %q: %v, want a usage error", args, err)
		}
	}
	if err := client("write", []string{"addr", "/ctl"}, &out); !errors.Is(err, errUsage) {
		t.Errorf("write without text: %v", err)
	}
	if err := client("cat", []string{"unix!/nonexistent/sock", "/version"}, &out); err == nil {
		t.Error("cat from a socket that is not there succeeded")
	}
}
