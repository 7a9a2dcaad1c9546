package mem

import (
	"encoding/json"
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

// FuzzAgentState: whatever agents/N.json holds, loading it either fails
// with an error (and the agent starts afresh) or gives a state whose files
// render and whose cold-range rankings run, and which saves back to a file
// that loads again.
func FuzzAgentState(f *testing.F) {
	f.Add([]byte(`{"periods":9,"wss":4096,"rss":8192,"locality":"Temporal","regret":{"lfu":1.5},"seen":[103],` +
		`"mappings":[{"pid":103,"mapping":{"Start":65536,"End":131072,"Inode":5,"Path":"/lib/x","Rss":8192,"Referenced":4096},` +
		`"samples":9,"freq":0.5,"last_ref":8,"gap":2,"idle":3,"hot":[{"Start":65536,"Len":4096}]}],` +
		`"decisions":[{"Time":"2023-11-14T22:13:21Z","Pid":103,"Start":65536,"Len":65536,"Path":"/lib/x","Advice":21,` +
		`"Reason":"psi","Ranking":"lru","RssBefore":8192,"RssAfter":4096,"Outcome":"came_back","Ranges":[{"Start":65536,"Len":65536}],"Back":4096,"at":7}]}`))
	f.Add([]byte(`{"periods":-1}`))
	f.Add([]byte(`{"locality":"Random","mappings":[{"mapping":{"Start":2,"End":1}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s savedProc
		if json.Unmarshal(b, &s) != nil {
			return
		}
		pm, err := restoreProc(3, s)
		if err != nil {
			return
		}
		_ = hotText(pm) + decisionsText(pm) + patternLine(pm) + pm.ranking()
		for _, r := range rankings {
			pm.cold(r)
		}
		for _, st := range pm.maps {
			st.partlyCold()
		}
		again, err := json.Marshal(pm.snapshot())
		if err != nil {
			t.Fatal(err)
		}
		var s2 savedProc
		if err := json.Unmarshal(again, &s2); err != nil {
			t.Fatalf("saved state does not parse: %v", err)
		}
		if _, err := restoreProc(3, s2); err != nil {
			t.Fatalf("saved state does not load: %v\n%s", err, again)
		}
	})
}
