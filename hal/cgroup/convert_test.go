package cgroup

import (
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
)

func TestWeightToShares(t *testing.T) {
	for _, c := range []struct{ w, shares uint64 }{
		{1, 2}, {100, 1024}, {10000, 262144},
		{0, 2}, {20000, 262144}, // clamped
	} {
		if got := WeightToShares(c.w); got != c.shares {
			t.Errorf("WeightToShares(%d) = %d, want %d", c.w, got, c.shares)
		}
	}
	// The inverse of the standard conversion: every weight maps to the
	// largest shares that convert back to it.
	prev := uint64(0)
	for w := uint64(MinWeight); w <= MaxWeight; w++ {
		s := WeightToShares(w)
		if s < minShares || s > maxShares {
			t.Fatalf("WeightToShares(%d) = %d out of range", w, s)
		}
		if s <= prev {
			t.Fatalf("WeightToShares not increasing at %d: %d <= %d", w, s, prev)
		}
		prev = s
		if back := SharesToWeight(s); back != w {
			t.Fatalf("SharesToWeight(WeightToShares(%d)=%d) = %d", w, s, back)
		}
		if s < maxShares && SharesToWeight(s+1) == w {
			t.Fatalf("WeightToShares(%d) = %d is not the largest", w, s)
		}
	}
	// shares -> weight -> shares keeps the weight.
	for _, s := range []uint64{2, 3, 512, 1000, 1024, 2048, 100000, 262144} {
		w := SharesToWeight(s)
		if SharesToWeight(WeightToShares(w)) != w {
			t.Errorf("round trip of shares %d (weight %d) changes the weight", s, w)
		}
	}
}

func TestCoresToQuota(t *testing.T) {
	for _, c := range []struct {
		cores  float64
		period time.Duration
		quota  int64
		line   string
	}{
		{0, 0, -1, "max 100000"},
		{0.5, 0, 50000, "50000 100000"},
		{1, 0, 100000, "100000 100000"},
		{2.25, 0, 225000, "225000 100000"},
		{0.01, 0, 1000, "1000 100000"},
		{0.5, 20 * time.Millisecond, 10000, "10000 20000"},
		{0, 10 * time.Millisecond, -1, "max 10000"},
		{0.1, 10 * time.Millisecond, 1000, "1000 10000"},
		{2, time.Second, 2000000, "2000000 1000000"},
	} {
		p, err := periodUs(c.period)
		if err != nil {
			t.Fatalf("periodUs(%v): %v", c.period, err)
		}
		q, err := coresToQuota(c.cores, p)
		if err != nil || q != c.quota {
			t.Errorf("coresToQuota(%v, %d) = %d, %v; want %d", c.cores, p, q, err, c.quota)
		}
		if l := cpuMaxString(q, p); l != c.line {
			t.Errorf("cpuMaxString(%d, %d) = %q, want %q", q, p, l, c.line)
		}
	}
	for _, bad := range []float64{-1, 0.001, math.NaN(), math.Inf(1), 1e12} {
		if _, err := coresToQuota(bad, CPUPeriodUs); !errors.Is(err, ErrInvalid) {
			t.Errorf("coresToQuota(%v) err = %v, want ErrInvalid", bad, err)
		}
	}
	// 0.05 cores is 500us of a 10ms period: under the kernel's 1ms.
	if _, err := coresToQuota(0.05, 10000); !errors.Is(err, ErrInvalid) {
		t.Errorf("coresToQuota(0.05, 10ms) err = %v, want ErrInvalid", err)
	}
	for _, bad := range []time.Duration{-time.Millisecond, 999 * time.Microsecond, time.Second + 1} {
		if _, err := periodUs(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("periodUs(%v) err = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestLimitFromKernel(t *testing.T) {
	for in, want := range map[uint64]int64{
		0:                   0,
		67108864:            67108864,
		9223372036854771712: -1, // v1 "no limit" with 4k pages
		math.MaxUint64:      -1, // v2 "max" as the library reads it
	} {
		if got := limitFromKernel(in); got != want {
			t.Errorf("limitFromKernel(%d) = %d, want %d", in, got, want)
		}
	}
	if err := checkBytes("x", -2); !errors.Is(err, ErrInvalid) {
		t.Errorf("checkBytes(-2) = %v", err)
	}
	if checkBytes("x", -1) != nil || checkBytes("x", 0) != nil {
		t.Error("checkBytes rejects -1 or 0")
	}
}

func TestParseKeyed(t *testing.T) {
	kv, err := parseKeyed("populated 1\nfrozen 0\n\n")
	if err != nil || !reflect.DeepEqual(kv, map[string]uint64{"populated": 1, "frozen": 0}) {
		t.Errorf("parseKeyed = %v, %v", kv, err)
	}
	for _, bad := range []string{"populated", "frozen x", "a 1 2"} {
		if _, err := parseKeyed(bad); err == nil {
			t.Errorf("parseKeyed(%q) accepted", bad)
		}
	}
	if _, err := readKeyed("testdata/v2/daemon.slice/aiosfs/web/cgroup.events", "nope"); err == nil {
		t.Error("readKeyed of a missing key succeeded")
	}
	if v, err := readKeyed("testdata/v2/daemon.slice/aiosfs/web/memory.events", "oom_kill"); err != nil || v != 1 {
		t.Errorf("readKeyed oom_kill = %d, %v", v, err)
	}
}

func TestParsePids(t *testing.T) {
	p, err := parsePids("12\n 7\n\n300\n")
	if err != nil || !reflect.DeepEqual(p, []int{12, 7, 300}) {
		t.Errorf("parsePids = %v, %v", p, err)
	}
	for _, bad := range []string{"x", "-3", "0"} {
		if _, err := parsePids(bad); err == nil {
			t.Errorf("parsePids(%q) accepted", bad)
		}
	}
	if got := sortedUnique([]int{5, 3, 5, 1, 3}); !reflect.DeepEqual(got, []int{1, 3, 5}) {
		t.Errorf("sortedUnique = %v", got)
	}
	if n, err := countLines("testdata/v2/daemon.slice/aiosfs/web/cgroup.threads"); err != nil || n != 3 {
		t.Errorf("countLines = %d, %v", n, err)
	}
}

func TestNames(t *testing.T) {
	for _, ok := range []string{"a", "agent-7", "web_1", "x@y", "A9"} {
		if err := validName(ok); err != nil {
			t.Errorf("validName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "cpu.max", "cgroup.procs", "a b", string(make([]byte, 129))} {
		if err := validName(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("validName(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if err := validPrefix("aiosfs/agents"); err != nil {
		t.Errorf("validPrefix nested: %v", err)
	}
	for _, bad := range []string{"/aiosfs", "a//b", "../x", "a/."} {
		if err := validPrefix(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("validPrefix(%q) = %v", bad, err)
		}
	}
	if !hasWord("cpuset cpu memory", "cpu") || hasWord("cpuset memory", "cpu") {
		t.Error("hasWord")
	}
}

// detectMode mirrors cgroups.Mode() for any root.
func TestDetectMode(t *testing.T) {
	if got := detectMode(filepath.Join(t.TempDir(), "nope")); got != cgroups.Unavailable {
		t.Errorf("missing root: %v, want Unavailable", got)
	}
	if got := detectMode(t.TempDir()); got != cgroups.Legacy {
		t.Errorf("plain directory: %v, want Legacy", got)
	}
	if got, want := detectMode(DefaultRoot), cgroups.Mode(); got != want {
		t.Errorf("detectMode(%s) = %v, cgroups.Mode() = %v", DefaultRoot, got, want)
	}
}

// New with no Version detects what this host has, as containerd does.
func TestNewDetectsHost(t *testing.T) {
	m, err := New(Config{})
	mode := cgroups.Mode()
	if mode == cgroups.Unavailable {
		if err == nil {
			t.Fatal("New succeeded without cgroups")
		}
		t.Skip("host has no cgroup file system")
	}
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	want := "v1"
	if mode == cgroups.Unified {
		want = "v2"
	}
	if m.Version() != want {
		t.Errorf("Version() = %s on mode %v, want %s", m.Version(), mode, want)
	}
	if mode == cgroups.Hybrid && m.unified == nil {
		t.Error("hybrid host: no unified hierarchy for process tracking")
	}
	t.Logf("mode %v -> %s, %d v1 hierarchies, unified %v", mode, m.Version(), len(m.v1), m.unified)
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{Version: "v3"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Version v3: %v", err)
	}
	if _, err := New(Config{Prefix: "/abs"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("absolute prefix: %v", err)
	}
	// No 0:: line: no v2.
	if _, err := New(Config{Root: "testdata/v2", ProcSelf: "testdata/proc_self_cgroup_v1_comount", Version: "v2"}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("v2 without a 0:: line: %v", err)
	}
	// No v1 hierarchies under a v2 root.
	if _, err := New(Config{Root: "testdata/v2", ProcSelf: "testdata/proc_self_cgroup_hybrid", Version: "v1"}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("v1 without hierarchies: %v", err)
	}
	if _, err := New(Config{ProcSelf: "testdata/nope"}); err == nil {
		t.Error("missing ProcSelf accepted")
	}
}
