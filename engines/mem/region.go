package mem

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"aiosfs/fs"
	"aiosfs/internal/statefile"
)

// regionMeta is what a persistent region keeps beside its data file
// (NAME.meta, JSON) and what every region shows in info.
type regionMeta struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Kind     string    `json:"kind"`
	Tags     []string  `json:"tags,omitempty"`
	Owner    int       `json:"owner,omitempty"`
	Grants   []int     `json:"grants,omitempty"`
	Uid      uint32    `json:"uid"` // who made it (or its owner agent's uid)
	Gid      uint32    `json:"gid"`
	Expires  time.Time `json:"expires,omitzero"`
	Policy   string    `json:"policy"`
	Prefetch bool      `json:"prefetch"`
	Cache    int64     `json:"cache"`
	Created  time.Time `json:"created"`
}

// Region is one named memory region of the fabric.
type Region struct {
	meta  regionMeta
	path  string // backing data file
	file  *os.File
	cache *PageCache
	stop  chan struct{}
	gone  bool
}

func (r *Region) hasTag(t string) bool {
	for _, x := range r.meta.Tags {
		if x == t {
			return true
		}
	}
	return false
}

// writeMeta saves a persistent region's metadata atomically (write a
// temporary file, fsync, rename), so a crash leaves the old or the new.
func writeMeta(path string, m regionMeta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return statefile.Write(path, b)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// savePattern writes the hot pages, hottest first, one number a line, for
// warming the cache after a restart.
func savePattern(path string, pages []int64) error {
	var b strings.Builder
	for _, p := range pages {
		b.WriteString(strconv.FormatInt(p, 10))
		b.WriteByte('\n')
	}
	return statefile.Write(path, []byte(b.String()))
}

func loadPattern(path string) []int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []int64
	for _, l := range strings.Split(string(b), "\n") {
		if n, err := strconv.ParseInt(strings.TrimSpace(l), 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// ---- the data file: bytes at offsets, through the page cache ----

// dataFile is regions/NAME/data. Unlike the rendered files it is a byte
// store: stat shows the region's size, reads and writes go to offsets.
type dataFile struct {
	e    *Engine
	name string
	attr fs.Attr
}

func (f *dataFile) Attr() fs.Attr { return f.attr }

func (f *dataFile) Open(_ context.Context, c fs.Caller, m fs.OpenMode) (fs.Handle, error) {
	r, err := f.e.region(f.name)
	if err != nil {
		return nil, err
	}
	if !f.e.mayUse(r, c) {
		err := fs.Errorf(syscall.EACCES, "region %s: permission denied", f.name)
		f.e.cfg.NS.Report(filepath.Join("/mem/regions", f.name, "data"), err)
		return nil, err
	}
	return &dataHandle{e: f.e, r: r}, nil
}

type dataHandle struct {
	e *Engine
	r *Region
}

func (h *dataHandle) live() error {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	if h.r.gone {
		return fs.Errorf(syscall.ENOENT, "region %s was freed", h.r.meta.Name)
	}
	return nil
}

func (h *dataHandle) Read(_ context.Context, p []byte, off int64) (int, error) {
	if err := h.live(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fs.Errorf(syscall.EINVAL, "negative offset %d", off)
	}
	return h.r.cache.ReadAt(p, off)
}

// Write refuses what does not fit whole: a region has a fixed size, and a
// write that crosses its end changes nothing (EFBIG), so a client never
// sees half its bytes stored.
func (h *dataHandle) Write(_ context.Context, p []byte, off int64) (int, error) {
	if err := h.live(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fs.Errorf(syscall.EINVAL, "negative offset %d", off)
	}
	if off > h.r.meta.Size || int64(len(p)) > h.r.meta.Size-off {
		return 0, fs.Errorf(syscall.EFBIG, "write of %d bytes at %d past the end of region %s (%d bytes)", len(p), off, h.r.meta.Name, h.r.meta.Size)
	}
	return h.r.cache.WriteAt(p, off)
}

func (h *dataHandle) Close() error { return nil }

var (
	_ fs.File   = (*dataFile)(nil)
	_ fs.Handle = (*dataHandle)(nil)
)
