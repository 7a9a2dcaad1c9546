package mem

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"aiosfs/ctl"
)

func TestParseAlloc(t *testing.T) {
	good := []struct {
		line string
		want AllocSpec
	}{
		{"a 4096", AllocSpec{Name: "a", Size: 4096, Kind: Ephemeral}},
		{"db.v2 1G persistent tag=db tag=hot cache=64M", AllocSpec{Name: "db.v2", Size: 1 << 30, Kind: Persistent, Tags: []string{"db", "hot"}, Cache: 64 << 20}},
		{"s 2M shared lease=90s owner=3", AllocSpec{Name: "s", Size: 2 << 20, Kind: Shared, Lease: 90 * time.Second, Owner: 3}},
		{"x 1 tag=a", AllocSpec{Name: "x", Size: 1, Kind: Ephemeral, Tags: []string{"a"}}},
	}
	for _, g := range good {
		got, err := ParseAlloc(strings.Fields(g.line))
		if err != nil || !reflect.DeepEqual(got, g.want) {
			t.Errorf("ParseAlloc(%q) = %+v, %v; want %+v", g.line, got, err, g.want)
		}
	}
	for _, bad := range []string{
		"", "a", "a 0", "a -1", "a 1.5", "a 65G", "a max", "a 1M kind", "a 1M persistent shared",
		"a 1M tag=", "a 1M tag=a,b", "a 1M owner=0", "a 1M owner=x", "a 1M lease=0", "a 1M lease=-1s",
		"a 1M cache=100", "a 1M x=y", "a 1M lease=1s lease=2s", "a/b 1M", ". 1M", ".. 1M",
		strings.Repeat("n", 65) + " 1M", "a 1M persistent lease=5s", "a 1M tag=x extra",
	} {
		if s, err := ParseAlloc(strings.Fields(bad)); err == nil {
			t.Errorf("ParseAlloc(%q) accepted: %+v", bad, s)
		}
	}
}

// FuzzParseAlloc: any line either parses into a spec that is valid by
// every rule the engine relies on, or is refused with an EINVAL error;
// it never panics.
func FuzzParseAlloc(f *testing.F) {
	for _, s := range []string{"a 4096", "db 1G persistent tag=db cache=64M", "s 2M shared lease=90s owner=3",
		"../x 1M", "a 0", "a 1M tag=", "a 1e3", "a 1M lease=1h30m", `"a b" 1M`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		fields, err := ctl.Tokenize(line)
		if err != nil {
			return
		}
		s, err := ParseAlloc(fields)
		if err != nil {
			if e, ok := err.(interface{ Error() string }); !ok || e.Error() == "" {
				t.Fatalf("empty error for %q", line)
			}
			return
		}
		if ValidName(s.Name) != nil || strings.ContainsAny(s.Name, "/\x00") || s.Name == "." || s.Name == ".." {
			t.Fatalf("bad name accepted: %q", s.Name)
		}
		if s.Size <= 0 || s.Size > MaxRegionSize {
			t.Fatalf("bad size accepted: %d", s.Size)
		}
		if s.Kind != Ephemeral && s.Kind != Persistent && s.Kind != Shared {
			t.Fatalf("bad kind: %q", s.Kind)
		}
		if s.Lease < 0 || s.Owner < 0 || (s.Cache != 0 && s.Cache < PageSize) {
			t.Fatalf("bad spec: %+v", s)
		}
		for _, tg := range s.Tags {
			if validTag(tg) != nil {
				t.Fatalf("bad tag accepted: %q", tg)
			}
		}
	})
}
