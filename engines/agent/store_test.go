package agent

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// fillStore makes a store in dir with three agent records and closes it,
// as a daemon that ran three agents leaves it.
func fillStore(t *testing.T, dir string) {
	t.Helper()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		id, err := s.NextID()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(&Record{ID: id, Name: fmt.Sprint("a", id), State: StateRunning, Cmd: []string{"sleep", "60"}, Limits: NoLimits}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// damagedFiles lists the state.db.damaged-* files in dir.
func damagedFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, storeFile+".damaged-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkWorking checks that s is a working store: it takes a record and
// an id and gives them back.
func checkWorking(t *testing.T, s *Store) {
	t.Helper()
	id, err := s.NextID()
	if err != nil {
		t.Fatalf("NextID on the store: %v", err)
	}
	if err := s.Put(&Record{ID: id, Name: "fresh"}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	recs, err := s.All()
	if err != nil {
		t.Fatalf("All: %v", err)
	}
	found := false
	for _, r := range recs {
		found = found || (r.ID == id && r.Name == "fresh")
	}
	if !found {
		t.Fatalf("record %d not read back: %+v", id, recs)
	}
}

// Each damage the review found (and a few more) ends with a working,
// empty store, the damaged file kept aside byte for byte, and a message
// that says what happened; none crashes or panics. Reopening the new
// store afterwards is quiet.
func TestOpenStoreRecoversDamagedFile(t *testing.T) {
	type damage struct {
		name string
		do   func(t *testing.T, path string)
	}
	randomAt := func(seed int64, off, n int64) func(*testing.T, string) {
		return func(t *testing.T, path string) {
			b := make([]byte, n)
			rand.New(rand.NewSource(seed)).Read(b)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		}
	}
	ps := int64(os.Getpagesize())
	cases := []damage{
		{"truncated to 10000 bytes", func(t *testing.T, p string) { os.Truncate(p, 10000) }},
		{"truncated to 3 pages", func(t *testing.T, p string) { os.Truncate(p, 3*ps) }},
		{"truncated to 5 pages", func(t *testing.T, p string) { os.Truncate(p, 5*ps) }},
		{"emptied (0 bytes)", func(t *testing.T, p string) { os.Truncate(p, 0) }},
		{"garbage text", func(t *testing.T, p string) {
			os.WriteFile(p, bytes.Repeat([]byte("this is not a database\n"), 1000), 0600)
		}},
		{"garbage, 4 whole pages", func(t *testing.T, p string) {
			b := make([]byte, 4*ps)
			rand.New(rand.NewSource(7)).Read(b)
			os.WriteFile(p, b, 0600)
		}},
		{"random bytes in both meta pages", randomAt(11, 0, 2*ps)},
	}
	for seed := int64(1); seed <= 8; seed++ {
		cases = append(cases, damage{fmt.Sprintf("random bytes over pages 2-5, seed %d", seed), randomAt(seed, 2*ps, 4*ps)})
	}
	for seed := int64(1); seed <= 4; seed++ {
		// The page whose damage made bbolt panic. (A page that was the
		// freelist of an older transaction is free space: damage there
		// is harmless, and OpenStore rightly keeps the store.)
		cases = append(cases, damage{fmt.Sprintf("random bytes in the freelist page, seed %d", seed), func(t *testing.T, p string) {
			randomAt(100+seed, int64(currentMeta(t, p).freelist)*ps, ps)(t, p)
		}})
	}
	cases = append(cases, damage{"random bytes in the root page", func(t *testing.T, p string) {
		randomAt(200, int64(currentMeta(t, p).root)*ps, ps)(t, p)
	}})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			fillStore(t, dir)
			path := filepath.Join(dir, storeFile)
			c.do(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := OpenStore(dir)
			if err != nil {
				t.Fatalf("OpenStore on a damaged file: %v", err)
			}
			defer s.Close()
			aside := damagedFiles(t, dir)
			if len(aside) != 1 {
				t.Fatalf("damaged files kept: %v (Recovered %q)", aside, s.Recovered)
			}
			if kept, _ := os.ReadFile(aside[0]); !bytes.Equal(kept, before) {
				t.Errorf("%s is not the damaged file as it was (%d bytes, was %d)", aside[0], len(kept), len(before))
			}
			if !strings.Contains(s.Recovered, "damaged") || !strings.Contains(s.Recovered, aside[0]) {
				t.Errorf("Recovered %q does not say what happened and where the file went", s.Recovered)
			}
			t.Logf("Recovered: %s", s.Recovered)
			if recs, err := s.All(); err != nil || len(recs) != 0 {
				t.Errorf("new store holds %v, %v", recs, err)
			}
			checkWorking(t, s)
			s.Close()
			s2, err := OpenStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			if s2.Recovered != "" || len(damagedFiles(t, dir)) != 1 {
				t.Errorf("the recovered store is damaged again: %q", s2.Recovered)
			}
		})
	}
}

// Random bytes in one meta page leave bbolt the other one: the store
// opens on it (or, if that older view is inconsistent, is recovered), and
// either way it works and nothing panics.
func TestOpenStoreOneMetaDamaged(t *testing.T) {
	ps := int64(os.Getpagesize())
	for _, page := range []int64{0, 1} {
		for seed := int64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("meta %d seed %d", page, seed), func(t *testing.T) {
				dir := t.TempDir()
				fillStore(t, dir)
				b := make([]byte, ps)
				rand.New(rand.NewSource(seed)).Read(b)
				f, _ := os.OpenFile(filepath.Join(dir, storeFile), os.O_WRONLY, 0)
				f.WriteAt(b, page*ps)
				f.Close()
				s, err := OpenStore(dir)
				if err != nil {
					t.Fatalf("OpenStore: %v", err)
				}
				defer s.Close()
				if s.Recovered == "" {
					if _, err := s.All(); err != nil {
						t.Fatalf("opened on the other meta, but records unreadable: %v", err)
					}
				} else if len(damagedFiles(t, dir)) != 1 {
					t.Fatalf("recovered (%s) without keeping the file", s.Recovered)
				}
				checkWorking(t, s)
			})
		}
	}
}

// A record that is not JSON would stop Restore; it counts as damage.
func TestOpenStoreBadRecord(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketAgents).Put(idKey(1), []byte("{not json")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.Contains(s.Recovered, "agent record 1") || len(damagedFiles(t, dir)) != 1 {
		t.Fatalf("bad record: Recovered %q", s.Recovered)
	}
}

// A healthy store opens quietly and keeps its records; NextID continues.
func TestOpenStoreHealthy(t *testing.T) {
	dir := t.TempDir()
	fillStore(t, dir)
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Recovered != "" || len(damagedFiles(t, dir)) != 0 {
		t.Fatalf("healthy store recovered: %q", s.Recovered)
	}
	recs, err := s.All()
	if err != nil || len(recs) != 3 {
		t.Fatalf("records %v, %v", recs, err)
	}
	if id, _ := s.NextID(); id != 4 {
		t.Fatalf("NextID = %d, want 4", id)
	}
}

// A second open of the same store (a second daemon on the state
// directory) fails at once, and does not take the live file for damage.
func TestOpenStoreInUse(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s2, err := OpenStore(dir)
	if err == nil {
		s2.Close()
		t.Fatal("second OpenStore succeeded")
	}
	if !strings.Contains(err.Error(), "in use") || len(damagedFiles(t, dir)) != 0 {
		t.Fatalf("second open: %v; damaged files %v", err, damagedFiles(t, dir))
	}
	checkWorking(t, s)
}

// A read-only file system must fail clearly, damaged file or not: moving
// the file aside is impossible and a fresh store could not be written.
func TestOpenStoreReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a read-only tmpfs (root ignores mode bits)")
	}
	for _, c := range []struct {
		name   string
		damage bool
	}{{"healthy", false}, {"truncated", true}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
				t.Skipf("mount tmpfs: %v", err)
			}
			t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
			fillStore(t, dir)
			if c.damage {
				os.Truncate(filepath.Join(dir, storeFile), 10000)
			}
			if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				t.Fatal(err)
			}
			s, err := OpenStore(dir)
			if err == nil {
				s.Close()
				t.Fatal("OpenStore on a read-only file system succeeded")
			}
			if !strings.Contains(err.Error(), "read-only file system") {
				t.Errorf("error does not say why: %v", err)
			}
			if len(damagedFiles(t, dir)) != 0 {
				t.Errorf("moved aside on a read-only file system?")
			}
		})
	}
}

// EnsureNext raises the next number past those found in use and never
// lowers it.
func TestStoreEnsureNext(t *testing.T) {
	s := mustStore(t, t.TempDir())
	defer s.Close()
	if err := s.EnsureNext(7); err != nil {
		t.Fatal(err)
	}
	if id, _ := s.NextID(); id != 8 {
		t.Fatalf("after EnsureNext(7): NextID = %d, want 8", id)
	}
	if err := s.EnsureNext(3); err != nil {
		t.Fatal(err)
	}
	if id, _ := s.NextID(); id != 9 {
		t.Fatalf("EnsureNext(3) lowered next: NextID = %d, want 9", id)
	}
}

// currentMeta is the meta page bbolt uses in the file at path.
func currentMeta(t *testing.T, path string) boltMeta {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m0, err0 := readMeta(f, 0)
	m1, err1 := readMeta(f, int64(os.Getpagesize()))
	if err0 != nil || err1 != nil {
		t.Fatalf("meta pages: %v; %v", err0, err1)
	}
	if m1.txid > m0.txid {
		return m1
	}
	return m0
}

// Without precheck, bbolt itself meets the damage: a mapping past the
// end of a truncated file (SIGBUS), a meta page that points past the end,
// a freelist of random bytes (bbolt panics). faultSafe and verify must
// turn each into a recovery, not a crash.
func TestOpenStoreFaultsWithoutPrecheck(t *testing.T) {
	precheckFile = func(*os.File, int64) error { return nil }
	t.Cleanup(func() { precheckFile = precheck })
	ps := int64(os.Getpagesize())
	for _, c := range []struct {
		name string
		do   func(t *testing.T, p string)
	}{
		{"truncated to 10000 bytes", func(t *testing.T, p string) { os.Truncate(p, 10000) }},
		{"truncated to 5 pages", func(t *testing.T, p string) { os.Truncate(p, 5*ps) }},
		{"random freelist page", func(t *testing.T, p string) {
			fl := int64(currentMeta(t, p).freelist)
			b := make([]byte, ps)
			rand.New(rand.NewSource(3)).Read(b)
			f, _ := os.OpenFile(p, os.O_WRONLY, 0)
			f.WriteAt(b, fl*ps)
			f.Close()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			fillStore(t, dir)
			c.do(t, filepath.Join(dir, storeFile))
			s, err := OpenStore(dir)
			if err != nil {
				t.Fatalf("OpenStore: %v", err)
			}
			defer s.Close()
			t.Logf("Recovered: %s", s.Recovered)
			if s.Recovered == "" || len(damagedFiles(t, dir)) != 1 {
				t.Fatalf("not recovered: %q", s.Recovered)
			}
			checkWorking(t, s)
		})
	}
}

// faultSafe turns a read past the end of a mapped file (SIGBUS, fatal in
// Go without SetPanicOnFault) into an error.
func TestFaultSafeSIGBUS(t *testing.T) {
	ps := os.Getpagesize()
	f, err := os.Create(filepath.Join(t.TempDir(), "short"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(int64(ps))
	m, err := unix.Mmap(int(f.Fd()), 0, 2*ps, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	var sink byte
	err = faultSafe(func() error { sink = m[ps+1]; return nil })
	if err == nil || !strings.Contains(err.Error(), "fault") {
		t.Fatalf("faultSafe: %v (read %d)", err, sink)
	}
	t.Log(err)
}

// bigStore fills a store with enough records for branch pages, a record
// large enough for overflow pages, and churn (updates, deletes) that
// leaves freed pages, and closes it.
func bigStore(t *testing.T, dir string) {
	t.Helper()
	s := mustStore(t, dir)
	big := strings.Repeat("x", 20000)
	put := func(tx *bolt.Tx, r *Record) error {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketAgents).Put(idKey(r.ID), b)
	}
	// A few transactions rather than one per record: each commit is an
	// fsync.
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i := 1; i <= 400; i++ {
			r := &Record{ID: i, Name: fmt.Sprint("agent", i), State: StateRunning, Cmd: []string{"sleep", fmt.Sprint(i)}, Env: []string{"A=" + strings.Repeat("y", 80)}}
			if i == 7 {
				r.Cmd = append(r.Cmd, big)
			}
			if err := put(tx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = s.db.Update(func(tx *bolt.Tx) error {
			for i := 1; i <= 400; i += 3 {
				if err := tx.Bucket(bucketAgents).Delete(idKey(i)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err == nil {
		err = s.db.Update(func(tx *bolt.Tx) error {
			for i := 2; i <= 400; i += 5 {
				if err := put(tx, &Record{ID: i, Name: "renamed", State: StateExited}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err == nil {
		err = s.EnsureNext(400)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// agentsRoot is the root page of the agents bucket in the file at path.
func agentsRoot(t *testing.T, path string, b []byte) int {
	t.Helper()
	ps := os.Getpagesize()
	root := int(currentMeta(t, path).root)
	p := b[root*ps:]
	le := binary.LittleEndian
	for i := 0; i < int(le.Uint16(p[10:])); i++ {
		e := p[pageHeaderSize+i*elemSize:]
		at := pageHeaderSize + i*elemSize
		pos, ksize := int(le.Uint32(e[4:])), int(le.Uint32(e[8:]))
		if string(p[at+pos:at+pos+ksize]) == string(bucketAgents) {
			return int(le.Uint64(p[at+pos+ksize:]))
		}
	}
	t.Fatal("no agents bucket in the root page")
	return 0
}

// No false alarms: a store with branch pages, overflow pages and freed
// pages opens quietly, again and again, with all its records.
func TestOpenStoreBigHealthy(t *testing.T) {
	dir := t.TempDir()
	bigStore(t, dir)
	var n int
	for round := 0; round < 3; round++ {
		s := mustStore(t, dir)
		if s.Recovered != "" {
			t.Fatalf("round %d: healthy store recovered: %s", round, s.Recovered)
		}
		recs, err := s.All()
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			n = len(recs)
		} else if len(recs) != n {
			t.Fatalf("round %d: %d records, was %d", round, len(recs), n)
		}
		s.Put(&Record{ID: 1000 + round, Name: "more"})
		n++
		s.Close()
	}
	if n < 260 {
		t.Fatalf("only %d records", n)
	}
}

// A branch page that points back at itself would send bbolt's cursor
// down for ever (its stack grows until memory runs out: no recover
// helps), so precheck must find the cycle before bbolt sees the file.
func TestOpenStoreCycle(t *testing.T) {
	dir := t.TempDir()
	bigStore(t, dir)
	path := filepath.Join(dir, storeFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	branch := agentsRoot(t, path, b)
	if b[branch*ps+8] != branchPageFlag {
		t.Fatalf("the agents bucket's root, page %d, is not a branch page", branch)
	}
	// Its first element's child: itself.
	binary.LittleEndian.PutUint64(b[branch*ps+pageHeaderSize+8:], uint64(branch))
	if err := os.WriteFile(path, b, 0600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Logf("Recovered: %s", s.Recovered)
	if !strings.Contains(s.Recovered, "reached twice") {
		t.Fatalf("cycle not found: %q", s.Recovered)
	}
	checkWorking(t, s)
}

// Random damage anywhere in a store with branch, overflow and freed
// pages: every open either keeps a readable store or recovers to a
// working one. None crashes, panics or hangs.
func TestOpenStoreRandomDamage(t *testing.T) {
	tmpl := t.TempDir()
	bigStore(t, tmpl)
	orig, err := os.ReadFile(filepath.Join(tmpl, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(42))
	ps := os.Getpagesize()
	kept, recovered := 0, 0
	for i := 0; i < 150; i++ {
		b := bytes.Clone(orig)
		// 1 to 3 patches of 1 to 64 random bytes, half of them in page
		// headers and element arrays, where bbolt's pointers are.
		for n := 1 + rng.Intn(3); n > 0; n-- {
			off := rng.Intn(len(b))
			if rng.Intn(2) == 0 {
				off = rng.Intn(len(b)/ps)*ps + rng.Intn(64)
			}
			l := min(1+rng.Intn(64), len(b)-off)
			rng.Read(b[off : off+l])
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, storeFile), b, 0600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenStore(dir)
		if err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		if s.Recovered == "" {
			if _, err := s.All(); err != nil {
				t.Fatalf("iteration %d: kept a store whose records do not read: %v", i, err)
			}
			kept++
		} else {
			recovered++
		}
		checkWorking(t, s)
		s.Close()
	}
	t.Logf("%d kept, %d recovered", kept, recovered)
}

// FuzzOpenStore: whatever bytes state.db holds, OpenStore returns a
// working store (the bytes kept aside when they are not one) and never
// crashes. Seeds are a healthy store, its truncations and patches.
func FuzzOpenStore(f *testing.F) {
	dir := f.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		f.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		id, _ := s.NextID()
		s.Put(&Record{ID: id, Name: fmt.Sprint("a", id), State: StateRunning, Limits: NoLimits})
	}
	s.Close()
	good, err := os.ReadFile(filepath.Join(dir, storeFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:10000])
	f.Add([]byte{})
	f.Add([]byte("not a bbolt file"))
	patched := bytes.Clone(good)
	copy(patched[3*4096:], bytes.Repeat([]byte{0xff}, 64))
	f.Add(patched)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 256<<10 {
			return
		}
		// A store that makes OpenStore hang would hang the daemon's
		// start: fail with every goroutine's stack instead of stalling.
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				buf := make([]byte, 1<<20)
				panic("OpenStore hung:\n" + string(buf[:runtime.Stack(buf, true)]))
			}
		}()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, storeFile), data, 0600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenStore(dir)
		if err != nil {
			t.Fatalf("OpenStore of %d bytes: %v", len(data), err)
		}
		defer s.Close()
		if _, err := s.All(); err != nil && s.Recovered == "" {
			// A store opened as healthy reads its records; one with a
			// bad record must have been set aside at open.
			t.Fatalf("a store opened as healthy fails to list: %v", err)
		}
		checkWorking(t, s)
	})
}
