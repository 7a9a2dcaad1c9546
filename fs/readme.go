package fs

import (
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"text/tabwriter"
)

// ReadmeName is the file every directory has (ListDir adds it): a plain
// text page naming each entry of the directory, its permission, its kind
// and its format, rendered at open from the directory's current listing.
// A directory's formats come from its Dirtab rows (TabDir) or from the
// lines engines gave the namespace (NS.Document); every entry is named
// even when neither has a line for it, by its kind.
const ReadmeName = "README"

// docs is the namespace's format lines by full path (NS.Document).
type docs struct {
	mu sync.Mutex
	m  map[string]string
}

// Document records doc as the one-line format of the node at path p, for
// its directory's README. Engines call it for the files they build
// outside a Dirtab; the lines of a Dirtab need no call.
func (ns *NS) Document(p, doc string) {
	if ns == nil {
		return
	}
	ns.docs.mu.Lock()
	defer ns.docs.mu.Unlock()
	if ns.docs.m == nil {
		ns.docs.m = map[string]string{}
	}
	ns.docs.m[path.Clean("/"+p)] = doc
}

func (ns *NS) docOf(p string) string {
	if ns == nil {
		return ""
	}
	ns.docs.mu.Lock()
	defer ns.docs.mu.Unlock()
	return ns.docs.m[p]
}

// kindOf says what a node is, for a README line.
func kindOf(n Node) string {
	switch f := n.(type) {
	case Dir:
		return "directory, with its own README"
	case *CtlFile:
		return "ctl: read lists its verbs; write one command a line"
	case *StreamFile:
		if f.follow {
			return "event stream, blocking: new lines from the open on, until the reader goes away"
		}
		return "event stream: the recent lines, then end of file; " + f.attr.Name + FollowSuffix + " (not listed) blocks for new ones"
	case *TextFile:
		return "text, rendered at open"
	}
	return "file"
}

// readme renders d's README for its current children.
func (d *ListDir) readme() ([]byte, error) {
	kids, err := d.list()
	if err != nil {
		return nil, err
	}
	p := d.path()
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d entries (and this README), one a line: name, permission, kind, format\n\n", p, len(kids))
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	for _, k := range kids {
		a := k.Attr()
		name := a.Name
		if a.IsDir() {
			name += "/"
		}
		doc := ""
		if d.doc != nil {
			doc = d.doc(a.Name)
		}
		if doc == "" {
			doc = d.ns.docOf(path.Join(p, a.Name))
		}
		line := kindOf(k)
		if doc != "" {
			line += ". " + doc
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, a.Mode.Perm(), line)
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\n", ReadmeName, os.FileMode(0444), "this file")
	tw.Flush()
	return []byte(b.String()), nil
}

func (d *ListDir) path() string {
	if d.p != "" {
		return d.p
	}
	return "/"
}

// readmeNode is d's README file.
func (d *ListDir) readmeNode() *TextFile {
	p := path.Join(d.path(), ReadmeName)
	return &TextFile{ns: d.ns, path: p, attr: d.ns.attr(p, 0444, Owner{d.attr.Uid, d.attr.Gid}), render: func(Caller) ([]byte, error) { return d.readme() }}
}
