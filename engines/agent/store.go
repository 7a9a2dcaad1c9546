package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"
)

// Store keeps agent records in bbolt (state.db in the state directory):
// bucket "agents" maps the big-endian agent number to the JSON Record,
// bucket "meta" holds "next", the next agent number. Every change is one
// transaction, fsynced by bbolt, so a daemon killed at any point restarts
// with what it had acknowledged.
type Store struct {
	db *bolt.DB
	// Recovered is set when OpenStore found state.db damaged, moved it
	// aside and started an empty store: it says what was wrong and where
	// the old file is. The daemon must log it (the records are gone; the
	// agents still running are found again by Engine.RecoverOrphans).
	Recovered string
}

var (
	bucketAgents = []byte("agents")
	bucketMeta   = []byte("meta")
	keyNext      = []byte("next")
)

// storeFile is the database's name in the state directory.
const storeFile = "state.db"

// damagedError is a state.db whose content cannot be used: OpenStore
// moves such a file aside. Anything else that fails (permissions, a
// read-only or full file system, another process holding the file) is
// returned as is, because moving the file would not help and would lose
// a store that is fine.
type damagedError struct{ why string }

func (e *damagedError) Error() string { return e.why }

func damaged(format string, args ...any) error {
	return &damagedError{why: fmt.Sprintf(format, args...)}
}

// OpenStore opens (creating) the store in dir.
//
// A damaged state.db never crashes the daemon and never stops it from
// starting. bbolt trusts its file: it maps it into memory and follows the
// page numbers it finds there, so a file truncated in the middle of a
// page faults with SIGBUS (a fatal error in Go, not a panic), and random
// bytes in a page it follows panic inside bbolt (the freelist) or point
// it anywhere. So OpenStore
//
//   - checks the file before bbolt sees it (see precheck): a whole number
//     of pages, at least four, a valid meta page whose page numbers stay
//     inside the file, a freelist page that fits its page and lists only
//     data pages, and a b+tree whose every page and element lies inside
//     the file, no page reached twice (walkPages);
//   - opens it and reads every page reachable from the root (every key and
//     value of every bucket, every record decoded) and runs bbolt's
//     consistency check (tx.Check), all in one function that turns memory
//     faults into panics (debug.SetPanicOnFault) and recovers them;
//
// and if any of that fails, renames the file to
// state.db.damaged-<UTC time> and starts an empty store, saying so in
// Store.Recovered. An empty (0-byte) state.db is damage too: a store that
// bbolt has opened once is never empty, and starting silently on nothing
// would orphan the agents the lost file knew (see Engine.RecoverOrphans).
//
// Errors that are not about the file's content (a read-only or full file
// system, no permission, a lock held by another process) are returned and
// nothing is moved.
func OpenStore(dir string) (*Store, error) {
	path := filepath.Join(dir, storeFile)
	db, err := openChecked(path)
	if err == nil {
		return ready(db, "")
	}
	var dmg *damagedError
	if !errors.As(err, &dmg) {
		return nil, fmt.Errorf("open state store: %w", err)
	}
	aside, merr := moveAside(path)
	if merr != nil {
		return nil, fmt.Errorf("open state store: %s is damaged (%v), and moving it aside failed: %w", path, err, merr)
	}
	msg := fmt.Sprintf("state store %s was damaged (%v); moved it to %s and started an empty store: agent records are lost, agents still running are re-adopted from their cgroups", path, err, aside)
	db, err = openChecked(path)
	if err != nil {
		return nil, fmt.Errorf("open state store: %s; the new store failed too: %w", msg, err)
	}
	return ready(db, msg)
}

// ready creates the buckets and wraps db.
func ready(db *bolt.DB, recovered string) (*Store, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketAgents, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open state store: %w", err)
	}
	return &Store{db: db, Recovered: recovered}, nil
}

// openChecked opens path with bbolt after precheck and verify; a
// content problem is a *damagedError.
//
// The file is opened and flock'ed here, and bbolt is handed that same
// descriptor (Options.OpenFile): its own flock then re-takes the lock we
// hold, so no other process can change the file between the check and
// the open. A lock held by another process fails at once (not after
// bbolt's timeout) and is not damage.
func openChecked(path string) (*bolt.DB, error) {
	// A file that is not there is created (O_EXCL: we then know it is
	// new); one that is there and empty is damage, see OpenStore.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	isNew := false
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0600)
		isNew = err == nil
	}
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another process", path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Size() == 0 {
		if !isNew {
			f.Close()
			return nil, damaged("it is empty (0 bytes)")
		}
		// bbolt writes the first pages of a new file itself.
	} else if err := precheckFile(f, fi.Size()); err != nil {
		f.Close()
		return nil, err
	}
	handed := false
	opts := &bolt.Options{Timeout: 2 * time.Second, OpenFile: func(string, int, os.FileMode) (*os.File, error) {
		if handed {
			return nil, errors.New("state store: file opened twice")
		}
		handed = true
		return f, nil
	}}
	var db *bolt.DB
	err = faultSafe(func() error {
		var err error
		if db, err = bolt.Open(path, 0600, opts); err != nil {
			return err
		}
		// bbolt has just written a new file's first pages.
		now, err := f.Stat()
		if err != nil {
			return err
		}
		return verify(db, now.Size())
	})
	if err != nil {
		if db != nil {
			db.Close() // also closes f
		} else {
			f.Close() // bbolt failed (or faulted) before it owned f; its mapping, if any, leaks
		}
		if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
			return nil, damaged("%v", err)
		}
		return nil, err
	}
	return db, nil
}

// faultSafe runs f with memory faults turned into panics, and any panic
// into a *damagedError. bbolt reads the file through a memory mapping:
// a page past the end of a truncated file raises SIGBUS and a wild page
// number SIGSEGV, which without SetPanicOnFault kill the process. The
// setting is per goroutine, so everything that touches the mapping must
// run inside f, on this goroutine (see verify about tx.Check).
func faultSafe(f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			// A fault caught by SetPanicOnFault is a runtime.Error with
			// the faulting address.
			if a, ok := r.(interface{ Addr() uintptr }); ok {
				err = damaged("memory fault at %#x reading the mapped file (truncated, or a page number past its end)", a.Addr())
			} else {
				err = damaged("bbolt panicked reading it: %v", r)
			}
		}
	}()
	return f()
}

// verify reads everything the store holds and runs bbolt's consistency
// check. tx.Check runs in a goroutine of its own, where a fault would
// not be caught, so every page it will look at is read first here: the
// cursors below visit every branch and leaf page of every bucket, and
// the bytes of every key and value (overflow pages included) are read.
func verify(db *bolt.DB, size int64) error {
	return db.View(func(tx *bolt.Tx) error {
		if tx.Size() > size {
			return damaged("it claims %d bytes but has %d", tx.Size(), size)
		}
		if err := walk(tx.Cursor(), 0); err != nil {
			return err
		}
		if b := tx.Bucket(bucketAgents); b != nil {
			err := b.ForEach(func(k, v []byte) error {
				if len(k) != 8 || v == nil {
					return damaged("agents bucket has a bad key %x", k)
				}
				var r Record
				if err := json.Unmarshal(v, &r); err != nil {
					return damaged("agent record %d: %v", binary.BigEndian.Uint64(k), err)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return damaged("consistency check: %v", errors.Join(errs...))
		}
		return nil
	})
}

// walk reads every key and value under c, descending into buckets.
func walk(c *bolt.Cursor, depth int) error {
	if depth > 16 {
		return damaged("buckets nested deeper than 16")
	}
	var sum byte
	for k, v := c.First(); k != nil; k, v = c.Next() {
		for _, x := range k {
			sum ^= x
		}
		if v == nil {
			b := c.Bucket().Bucket(k)
			if b == nil {
				return damaged("key %x is neither a value nor a bucket", k)
			}
			if err := walk(b.Cursor(), depth+1); err != nil {
				return err
			}
			continue
		}
		for _, x := range v {
			sum ^= x
		}
	}
	_ = sum
	return nil
}

// precheckFile is precheck; tests replace it to reach the second line of
// defence (faultSafe) with files precheck would have refused.
var precheckFile = precheck

// bbolt's on-disk layout, as far as precheck reads it
// (go.etcd.io/bbolt/internal/common: page.go, meta.go).
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	metaSize         = 64 // magic, version, pageSize, flags u32; root, sequence, freelist, pgid, txid, checksum u64
	metaChecksumAt   = 56 // the checksum covers the bytes before it
	freelistPageFlag = 0x10
	noFreelist       = ^uint64(0)
)

type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high water mark: pages in use
	txid     uint64
}

// readMeta reads and validates the meta page at off.
func readMeta(f *os.File, off int64) (boltMeta, error) {
	b := make([]byte, pageHeaderSize+metaSize)
	if _, err := f.ReadAt(b, off); err != nil {
		return boltMeta{}, fmt.Errorf("meta page at %d: %w", off, err)
	}
	m := b[pageHeaderSize:]
	le := binary.LittleEndian // bbolt writes native order; every host aiosfs runs on is little-endian
	if le.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, fmt.Errorf("meta page at %d: not a bbolt file", off)
	}
	if le.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, fmt.Errorf("meta page at %d: version %d", off, le.Uint32(m[4:]))
	}
	h := fnv.New64a()
	h.Write(m[:metaChecksumAt])
	if h.Sum64() != le.Uint64(m[metaChecksumAt:]) {
		return boltMeta{}, fmt.Errorf("meta page at %d: checksum error", off)
	}
	return boltMeta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]),
		pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, nil
}

// precheck rejects, before bbolt maps the file, what would make bbolt
// fault or allocate without bound: a size that is not a whole number of
// pages (truncation; the mapping past the end raises SIGBUS), fewer than
// the four pages every bbolt file has (two metas, freelist, root), no
// valid meta page, a meta whose pages lie past the end of the file, and a
// freelist page whose count does not fit the page (bbolt allocates that
// many ids before it looks at them).
func precheck(f *os.File, size int64) error {
	if size < pageHeaderSize+metaSize {
		return damaged("it is only %d bytes", size)
	}
	m0, err0 := readMeta(f, 0)
	ps := int64(os.Getpagesize())
	if err0 == nil {
		ps = int64(m0.pageSize)
		if ps < 512 || ps > 1<<20 || ps&(ps-1) != 0 {
			return damaged("meta page 0 gives a page size of %d", ps)
		}
	}
	if size%ps != 0 || size < 4*ps {
		return damaged("its size, %d bytes, is not a whole number of at least 4 pages of %d bytes (truncated?)", size, ps)
	}
	m1, err1 := readMeta(f, ps)
	if err1 == nil && int64(m1.pageSize) != ps {
		err1 = fmt.Errorf("meta page 1: page size %d, meta 0 says %d", m1.pageSize, ps)
	}
	// The meta bbolt will use: the valid one with the higher txid.
	var m boltMeta
	switch {
	case err0 == nil && (err1 != nil || m0.txid >= m1.txid):
		m = m0
	case err1 == nil:
		m = m1
	default:
		return damaged("both meta pages are invalid (%v; %v)", err0, err1)
	}
	pages := uint64(size / ps)
	if m.pgid < 4 || m.pgid > pages {
		return damaged("its meta page counts %d pages, the file has %d", m.pgid, pages)
	}
	if m.root < 2 || m.root >= m.pgid {
		return damaged("its root page %d is outside pages 2..%d", m.root, m.pgid-1)
	}
	if m.freelist == noFreelist {
		return nil
	}
	if m.freelist < 2 || m.freelist >= m.pgid {
		return damaged("its freelist page %d is outside pages 2..%d", m.freelist, m.pgid-1)
	}
	h := make([]byte, pageHeaderSize+8)
	if _, err := f.ReadAt(h, int64(m.freelist)*ps); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read freelist page: %w", err)
	}
	le := binary.LittleEndian
	id, flags, count, overflow := le.Uint64(h), le.Uint16(h[8:]), uint64(le.Uint16(h[10:])), uint64(le.Uint32(h[12:]))
	if id != m.freelist || flags != freelistPageFlag {
		return damaged("page %d is not a freelist page (id %d, flags %#x)", m.freelist, id, flags)
	}
	if m.freelist+overflow >= m.pgid {
		return damaged("freelist page %d runs past the last page", m.freelist)
	}
	room := ((overflow+1)*uint64(ps) - pageHeaderSize) / 8
	if count == 0xFFFF { // the real count is the first element
		count = le.Uint64(h[pageHeaderSize:])
		room--
	}
	if count > room {
		return damaged("freelist page %d lists %d pages, it has room for %d", m.freelist, count, room)
	}
	// Every free page must be one of the file's data pages: bbolt hands
	// them out for writing as they are.
	ids := make([]byte, count*8)
	start := int64(m.freelist)*ps + pageHeaderSize
	if le.Uint16(h[10:]) == 0xFFFF { // the count took the first slot
		start += 8
	}
	if _, err := f.ReadAt(ids, start); err != nil {
		return fmt.Errorf("read freelist page: %w", err)
	}
	for i := uint64(0); i < count; i++ {
		if id := le.Uint64(ids[i*8:]); id < 2 || id >= m.pgid {
			return damaged("freelist page %d lists page %d, outside pages 2..%d", m.freelist, id, m.pgid-1)
		}
	}
	return walkPages(f, m, ps)
}

// Page and element flags and sizes of bbolt's b+tree pages.
const (
	branchPageFlag = 0x01
	leafPageFlag   = 0x02
	bucketLeafFlag = 0x01 // a leaf element that is a bucket
	elemSize       = 16   // branch: pos, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	bucketHdrSize  = 16   // a bucket value: root pgid u64, sequence u64 (then an inline page if root is 0)
	maxBucketDepth = 16
)

// walkPages follows the b+tree from the root bucket through every branch,
// leaf and nested bucket, reading the file (not bbolt's mapping), and
// rejects any page or element bbolt would follow out of bounds: a page
// number past the high water mark, a header that does not name its own
// page, an element or key or value past its page, a page reached twice
// (a cycle would send bbolt's cursor down for ever, growing its stack
// until memory runs out: no recover catches that). With this, bbolt reads
// only bytes inside the file, and what it then finds wrong it reports
// (tx.Check) or panics on, both of which OpenStore recovers from.
//
// The pages are read whole into memory: the store holds small records,
// so state.db is kilobytes to a few megabytes.
func walkPages(f *os.File, m boltMeta, ps int64) error {
	data := make([]byte, int64(m.pgid)*ps)
	if _, err := f.ReadAt(data, 0); err != nil {
		return fmt.Errorf("read state store: %w", err)
	}
	le := binary.LittleEndian
	seen := map[uint64]bool{}
	// page returns page id's bytes (with its overflow pages).
	page := func(id uint64) ([]byte, error) {
		if id < 2 || id >= m.pgid {
			return nil, damaged("page number %d is outside pages 2..%d", id, m.pgid-1)
		}
		if seen[id] {
			return nil, damaged("page %d is reached twice", id)
		}
		seen[id] = true
		p := data[int64(id)*ps:]
		if got := le.Uint64(p); got != id {
			return nil, damaged("page %d calls itself page %d", id, got)
		}
		overflow := uint64(le.Uint32(p[12:]))
		if id+overflow >= m.pgid {
			return nil, damaged("page %d runs past the last page", id)
		}
		return p[:int64(overflow+1)*ps], nil
	}
	var node func(p []byte, where string, depth int) error
	// bucket checks a bucket value (its header and, if inline, its page).
	bucket := func(v []byte, where string, depth int) error {
		if depth > maxBucketDepth {
			return damaged("buckets nested deeper than %d at %s", maxBucketDepth, where)
		}
		if len(v) < bucketHdrSize {
			return damaged("bucket %s: value of %d bytes", where, len(v))
		}
		if root := le.Uint64(v); root != 0 {
			p, err := page(root)
			if err != nil {
				return err
			}
			return node(p, where, depth)
		}
		inline := v[bucketHdrSize:]
		if len(inline) < pageHeaderSize || le.Uint16(inline[8:]) != leafPageFlag {
			return damaged("bucket %s: inline page is not a leaf", where)
		}
		return node(inline, where, depth)
	}
	node = func(p []byte, where string, depth int) error {
		flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
		if flags != branchPageFlag && flags != leafPageFlag {
			return damaged("page %d in bucket %s: flags %#x, not a branch or leaf page", le.Uint64(p), where, flags)
		}
		if pageHeaderSize+count*elemSize > len(p) {
			return damaged("page %d in bucket %s: %d elements do not fit", le.Uint64(p), where, count)
		}
		for i := 0; i < count; i++ {
			at := pageHeaderSize + i*elemSize
			e := p[at:]
			var pos, ksize, vsize uint64
			if flags == branchPageFlag {
				pos, ksize = uint64(le.Uint32(e)), uint64(le.Uint32(e[4:]))
			} else {
				pos, ksize, vsize = uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
			}
			if uint64(at)+pos+ksize+vsize > uint64(len(p)) {
				return damaged("page %d in bucket %s: element %d runs past the page", le.Uint64(p), where, i)
			}
			if flags == branchPageFlag {
				child, err := page(le.Uint64(e[8:]))
				if err != nil {
					return err
				}
				if err := node(child, where, depth); err != nil {
					return err
				}
				continue
			}
			if le.Uint32(e)&bucketLeafFlag != 0 {
				k := p[uint64(at)+pos : uint64(at)+pos+ksize]
				v := p[uint64(at)+pos+ksize : uint64(at)+pos+ksize+vsize]
				if err := bucket(v, fmt.Sprintf("%s/%q", where, k), depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	root, err := page(m.root)
	if err != nil {
		return err
	}
	return node(root, "", 0)
}

// moveAside renames path to path.damaged-<UTC time> and returns the new
// name. The directory is synced so the rename survives a crash.
func moveAside(path string) (string, error) {
	base := path + ".damaged-" + time.Now().UTC().Format("20060102T150405Z")
	aside := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, os.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s.%d", base, i)
	}
	if err := os.Rename(path, aside); err != nil {
		return "", err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return aside, nil
}

func idKey(id int) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(id))
	return k[:]
}

// NextID allocates an agent number; numbers are never reused, so a path
// such as agents/3 names one agent for the life of the state directory.
func (s *Store) NextID() (int, error) {
	var id int
	err := s.db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		id = 1
		if v := m.Get(keyNext); len(v) == 8 {
			id = int(binary.BigEndian.Uint64(v))
		}
		return m.Put(keyNext, idKey(id+1))
	})
	return id, err
}

// EnsureNext makes every later NextID return more than n: after a lost
// store, numbers found in use elsewhere (agent cgroups, log files) must
// not be handed out again. It never lowers the next number.
func (s *Store) EnsureNext(n int) error {
	if n < 0 {
		return fmt.Errorf("state store: EnsureNext(%d)", n)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		next := 1
		if v := m.Get(keyNext); len(v) == 8 {
			next = int(binary.BigEndian.Uint64(v))
		}
		if next > n {
			return nil
		}
		return m.Put(keyNext, idKey(n+1))
	})
}

// Put saves a record.
func (s *Store) Put(r *Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAgents).Put(idKey(r.ID), b)
	})
}

// Delete removes a record.
func (s *Store) Delete(id int) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAgents).Delete(idKey(id))
	})
}

// All returns every record in agent-number order.
func (s *Store) All() ([]*Record, error) {
	var out []*Record
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAgents).ForEach(func(k, v []byte) error {
			r := new(Record)
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("agent record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }
