package fs

import (
	"context"
	"strings"
	"testing"
)

// TestReadme: every ListDir has a README that names each entry, with the
// Dirtab row's format or the namespace's Document line, and the kind of
// each entry; it is listed last and walkable, and a child of that name of
// the directory's own wins.
func TestReadme(t *testing.T) {
	ns := &NS{}
	text := func(p string) Node {
		return ns.Text(p, 0444, Owner{}, func(Caller) ([]byte, error) { return nil, nil })
	}
	tab := Dirtab{
		{Name: "status", Perm: 0444, Owner: "x", Doc: "id= state=: Status", Make: func(_ int, p string, o Owner) Node { return text(p) }},
		{Name: "events", Perm: 0444, Owner: "x", Doc: "time= kind=", Make: func(_ int, p string, o Owner) Node {
			return ns.StreamOf(p, 0444, o, func(Caller) (Stream, error) { return nil, nil })
		}},
	}
	ns.Document("/top/notes", "free text, one line")
	root := ns.StaticDir("/", 0555, Owner{},
		ns.StaticDir("/top", 0555, Owner{},
			text("/top/notes"),
			ns.Ctl("/top/ctl", 0644, Owner{}, nil, nil),
			ns.TabDir("/top/1", 0755, Owner{Uid: 7, Gid: 7}, 1, func() Dirtab { return tab }),
		),
		ns.StaticDir("/own", 0555, Owner{}, ns.Text("/own/README", 0444, Owner{}, func(Caller) ([]byte, error) { return []byte("mine\n"), nil })),
	)
	read := func(p string) string {
		t.Helper()
		b, err := ReadFile(context.Background(), root, p, Caller{Uid: 1000, Gid: 1000})
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		return string(b)
	}
	for p, want := range map[string][]string{
		"README":       {"top/ ", "own/ ", "directory, with its own README", "README "},
		"top/README":   {"notes ", "free text, one line", "ctl ", "ctl: read lists its verbs", "1/ "},
		"top/1/README": {"status ", "id= state=: Status", "events ", "events.follow (not listed) blocks", "time= kind="},
	} {
		got := read(p)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s lacks %q:\n%s", p, w, got)
			}
		}
	}
	if got := read("own/README"); got != "mine\n" {
		t.Errorf("a directory's own README was replaced: %q", got)
	}
	n, _ := Walk(root, "top/1")
	kids, err := n.(Dir).List()
	if err != nil || len(kids) != 3 || kids[2].Attr().Name != ReadmeName || kids[2].Attr().Uid != 7 {
		t.Errorf("top/1 lists %d (%v); want its 2 rows and then its README, owned as the directory", len(kids), err)
	}
	n, _ = Walk(root, "own")
	if kids, _ := n.(Dir).List(); len(kids) != 1 {
		t.Errorf("own lists %d entries, want its own README alone", len(kids))
	}
}
