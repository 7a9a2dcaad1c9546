package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"aiosfs/daemon"
)

// Bad flags and arguments are refused before anything is mounted or made.
func TestBadFlagsAndArguments(t *testing.T) {
	for _, args := range [][]string{
		{"-interval", "1ms"},
		{"-interval", "soon"},
		{"-cgroup", "v3"},
		{"-threat-pubkey", "abcd"},                   // 2 bytes, not 32
		{"-threat-pubkey", "not a key at all"},       // neither hex nor base64
		{"-threat-pubkey", strings.Repeat("ab", 33)}, // 33 bytes
		{"-nosuchflag"},
		{"extra", "args"},
		{"-memory-limit", "1M"},   // below the 16 MiB minimum
		{"-memory-limit", "lots"}, // not a size
		{"-memory-limit", "-5M"},  // not a size
		{"-memory-limit", "1.5"},  // fractional bytes
		{"-gc-percent", "-1"},     // off without a limit: unbounded heap
		{"-gc-percent", "half"},
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

// The memory flags read what deploy/aiosfs.default documents: a size with
// a binary suffix, none (or 0) for the runtime's own; -gc-percent off
// with a limit.
func TestMemoryFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want daemon.Memory
	}{
		{nil, daemon.DefaultMemory},
		{[]string{"-memory-limit", "48M"}, daemon.Memory{GCPercent: daemon.DefaultMemory.GCPercent, MemoryLimit: 48 << 20}},
		{[]string{"-memory-limit", "1GiB", "-gc-percent", "50"}, daemon.Memory{GCPercent: 50, MemoryLimit: 1 << 30}},
		{[]string{"-memory-limit", "none", "-gc-percent", "0"}, daemon.Memory{}},
		{[]string{"-memory-limit", "0"}, daemon.Memory{GCPercent: daemon.DefaultMemory.GCPercent}},
		{[]string{"-memory-limit", "64M", "-gc-percent", "-1"}, daemon.Memory{GCPercent: -1, MemoryLimit: 64 << 20}},
	} {
		fl, cfg := serveFlags()
		fl.SetOutput(io.Discard)
		if err := fl.Parse(c.args); err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if cfg.Memory != c.want {
			t.Errorf("%q: %+v, want %+v", c.args, cfg.Memory, c.want)
		}
		if err := cfg.Memory.Check(); err != nil {
			t.Errorf("%q: %v", c.args, err)
		}
	}
	if err := serve([]string{"-memory-limit", "1M"}); err == nil || !strings.Contains(err.Error(), "below the minimum of 16 MiB") {
		t.Errorf("-memory-limit 1M: %v, want the minimum named", err)
	}
}

// TestNoUnreadFlags: -sys was a root nothing read (no engine reads sysfs;
// cgroups have -cgroup-root); a flag that changes nothing is not offered.
// (Parsed only: before the fix serve would have started a daemon.)
func TestNoUnreadFlags(t *testing.T) {
	fl, _ := serveFlags()
	fl.SetOutput(io.Discard)
	if err := fl.Parse([]string{"-sys", "/sys"}); err == nil {
		t.Error("serve accepts -sys, which nothing reads")
	}
}

// TestUsage: `aiosfs` with no arguments prints the usage, naming every
// subcommand and every serve flag, to stderr and exits 2 without
// starting anything; help, -h, -help, --help and serve -h print the same
// and exit 0; a usage error prints what is wrong, then the same.
func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, &out, &errOut); code != 2 {
		t.Fatalf("aiosfs with no arguments exits %d, want 2", code)
	}
	usageText := errOut.String()
	if out.Len() != 0 {
		t.Errorf("usage went to stdout: %q", out.String())
	}
	for _, want := range []string{"aiosfs serve [flags]", "aiosfs ls ADDR PATH", "aiosfs cat ADDR PATH", "aiosfs write ADDR PATH TEXT...", "aiosfs help"} {
		if !strings.Contains(usageText, want) {
			t.Errorf("usage lacks %q:\n%s", want, usageText)
		}
	}
	fl, _ := serveFlags()
	fl.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(usageText, "  -"+f.Name+" ") && !strings.Contains(usageText, "  -"+f.Name+"\n") {
			t.Errorf("usage lacks serve flag -%s:\n%s", f.Name, usageText)
		}
	})
	for _, args := range [][]string{{"help"}, {"-h"}, {"-help"}, {"--help"}, {"serve", "-h"}} {
		out.Reset()
		errOut.Reset()
		if code := run(args, &out, &errOut); code != 0 || errOut.String() != usageText {
			t.Errorf("aiosfs %q: exit %d, stderr %q; want 0 and the usage", args, code, errOut.String())
		}
	}
	for _, args := range [][]string{{"frob"}, {"serve", "-nosuchflag"}, {"cat", "addr"}} {
		errOut.Reset()
		if code := run(args, &out, &errOut); code != 2 || !strings.HasSuffix(errOut.String(), usageText) || errOut.String() == usageText {
			t.Errorf("aiosfs %q: exit %d, stderr %q; want 2, what is wrong, then the usage", args, code, errOut.String())
		}
	}
}

// TestNoArgumentsBinary runs this test binary as aiosfs (see TestMain) with
// no arguments: it must print the usage and exit 2 at once, where it used
// to start a daemon on /aios and stay in the foreground.
func TestNoArgumentsBinary(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), beDaemon+"=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("aiosfs with no arguments: %v (stderr %q), want exit status 2", err, errOut.String())
	}
	var want bytes.Buffer
	usage(&want)
	if errOut.String() != want.String() || out.Len() != 0 {
		t.Errorf("stdout %q, stderr %q; want the usage on stderr only", out.String(), errOut.String())
	}
}
