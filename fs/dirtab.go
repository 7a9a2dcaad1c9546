package fs

import (
	"os"
	"path"
)

// Entry is one row of a directory table, as a row of Plan 9's Dirtab
// (devproc.c's procdir[]): the file's name, its permission, the engine
// that owns it, the line that documents its format, and its constructor.
// Make builds the node at path p (the directory's path plus Name) for the
// object the directory stands for (an agent's number), owned by o; it is
// called only when the file is looked up or its directory listed.
type Entry struct {
	Name  string
	Perm  os.FileMode // os.ModeDir set for a directory
	Owner string      // the engine that renders the file: agent, sched, mem, gpu, ...
	Doc   string      // its format, one line (help and the docs come from here)
	Make  func(id int, p string, o Owner) Node
}

// Writable reports whether anyone may open the entry for writing.
func (e Entry) Writable() bool { return !e.Perm.IsDir() && e.Perm.Perm()&0222 != 0 }

// Dirtab is a directory's table of entries.
type Dirtab []Entry

// Lookup returns the row named name.
func (t Dirtab) Lookup(name string) (Entry, bool) {
	for _, e := range t {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// TabDir returns the directory at p whose children are the rows of tab()
// for object id: a walk builds only the row looked up (procgen's way),
// a listing builds them all. tab is called on each walk and list, so a
// table that grows (an engine registered later) is seen at once.
func (ns *NS) TabDir(p string, perm os.FileMode, o Owner, id int, tab func() Dirtab) *ListDir {
	p = path.Clean("/" + p)
	list := func() ([]Node, error) {
		t := tab()
		out := make([]Node, 0, len(t))
		for _, e := range t {
			out = append(out, e.Make(id, path.Join(p, e.Name), o))
		}
		return out, nil
	}
	walk := func(name string) (Node, error) {
		e, ok := tab().Lookup(name)
		if !ok {
			return nil, ErrNotExist
		}
		return e.Make(id, path.Join(p, name), o), nil
	}
	d := ns.Dir(p, perm, o, list, walk)
	d.doc = func(name string) string {
		e, _ := tab().Lookup(name)
		return e.Doc
	}
	return d
}
