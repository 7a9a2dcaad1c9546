package daemon

import (
	"context"
	"syscall"
	"testing"

	"aiosfs/fs"
)

// TestAgentDirtab: agents/N is its table. Every row documents its format
// and names its engine; the listing is the table, in its order, with the
// table's permissions; and every writable file refuses a caller who is
// neither the agent's owner nor root.
func TestAgentDirtab(t *testing.T) {
	d, _ := fuseDaemon(t)
	ctx := context.Background()
	if err := fs.WriteFile(ctx, d.Root, "ctl", fs.RootCaller, []byte("spawn tab -- /usr/bin/sleep 600\n")); err != nil {
		t.Fatal(err)
	}
	defer fs.WriteFile(ctx, d.Root, "agents/1/ctl", fs.RootCaller, []byte("kill KILL\n"))
	tab := d.Agents.AgentTab(d.NS)
	seen := map[string]bool{}
	for _, e := range tab {
		if e.Doc == "" || e.Owner == "" || e.Make == nil {
			t.Errorf("agents/N/%s: row without a format, an owner or a constructor: %+v", e.Name, e)
		}
		if seen[e.Name] {
			t.Errorf("agents/N/%s: two rows", e.Name)
		}
		seen[e.Name] = true
	}
	n, err := fs.Walk(d.Root, "agents/1")
	if err != nil {
		t.Fatal(err)
	}
	kids, err := n.(fs.Dir).List()
	if err != nil || len(kids) != len(tab)+1 || kids[len(tab)].Attr().Name != fs.ReadmeName {
		t.Fatalf("agents/1 lists %d nodes (%v), its table has %d rows and then the README", len(kids), err, len(tab))
	}
	kids = kids[:len(tab)]
	other := fs.Caller{Uid: 2000, Gid: 2000}
	for i, k := range kids {
		e := tab[i]
		a := k.Attr()
		if a.Name != e.Name || a.Mode.Perm() != e.Perm.Perm() || a.Mode.IsDir() != e.Perm.IsDir() {
			t.Errorf("agents/1/%s: listed as %s %v, the table says %s %v", e.Name, a.Name, a.Mode, e.Name, e.Perm)
		}
		if !e.Writable() {
			continue
		}
		err := fs.WriteFile(ctx, d.Root, "agents/1/"+e.Name, other, []byte("help\n"))
		if errno := fs.Errno(err); errno != syscall.EACCES && errno != syscall.EPERM {
			t.Errorf("agents/1/%s written by uid 2000 (not the owner): %v, want EACCES or EPERM", e.Name, err)
		}
	}
	// The engines' subdirectories of agents/N (mem/, ...) too: each
	// writable file in them refuses a stranger.
	var walk func(p string, n fs.Node)
	walk = func(p string, n fs.Node) {
		dir, ok := n.(fs.Dir)
		if !ok {
			if n.Attr().Mode.Perm()&0222 == 0 {
				return
			}
			err := fs.WriteFile(ctx, d.Root, p, other, []byte("help\n"))
			if errno := fs.Errno(err); errno != syscall.EACCES && errno != syscall.EPERM {
				t.Errorf("%s written by uid 2000 (not the owner): %v, want EACCES or EPERM", p, err)
			}
			return
		}
		kids, err := dir.List()
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return
		}
		for _, k := range kids {
			walk(p+"/"+k.Attr().Name, k)
		}
	}
	for _, k := range kids {
		if k.Attr().Mode.IsDir() {
			walk("agents/1/"+k.Attr().Name, k)
		}
	}
}
