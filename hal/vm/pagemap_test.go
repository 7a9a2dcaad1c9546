package vm

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
)

func TestResidentFromEntries(t *testing.T) {
	// Pages 0,1 present, 2 absent, 3 present (with a PFN and flags in the
	// low bits, which must not matter), 4 swapped (bit 62), not present.
	var b bytes.Buffer
	for _, e := range []uint64{1 << 63, 1<<63 | 1<<61, 0, 1<<63 | 0x1234, 1 << 62} {
		binary.Write(&b, binary.LittleEndian, e)
	}
	got, err := residentFrom(bytes.NewReader(b.Bytes()), 0, 5*4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{{0, 2 * 4096}, {3 * 4096, 4096}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("resident %v, want %v", got, want)
	}
	if _, err := residentFrom(bytes.NewReader(b.Bytes()), 100, 4096, 4096); err == nil {
		t.Error("unaligned start accepted")
	}
	if _, err := residentFrom(bytes.NewReader(b.Bytes()), 0, 9*4096, 4096); err == nil {
		t.Error("a short pagemap read gave no error")
	}
}

func TestSubtractUnion(t *testing.T) {
	keep := []Range{{10, 5}, {20, 5}}
	if got, want := Subtract(0, 30, keep), []Range{{0, 10}, {15, 5}, {25, 5}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Subtract = %v, want %v", got, want)
	}
	if got, want := Subtract(12, 10, keep), []Range{{15, 5}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Subtract inside = %v, want %v", got, want)
	}
	if got := Subtract(10, 5, keep); len(got) != 0 {
		t.Errorf("Subtract of a kept range = %v", got)
	}
	if got, want := Union([]Range{{0, 10}, {30, 5}}, []Range{{5, 10}, {15, 5}, {40, 1}}), []Range{{0, 20}, {30, 5}, {40, 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Union = %v, want %v", got, want)
	}
	if got, want := Minus([]Range{{0, 10}, {20, 10}}, []Range{{5, 20}}), []Range{{0, 5}, {25, 5}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Minus = %v, want %v", got, want)
	}
	if Bytes([]Range{{0, 3}, {10, 4}}) != 7 {
		t.Error("Bytes")
	}
}

// TestResidentLive maps an 8 MiB file in this process, touches its first
// MiB, and reads its own pagemap: the first MiB is present, and of the
// rest no more than one 2 MiB page-cache folio (the kernel maps a whole
// large folio on a fault; ext4 here caches files in folios up to 2 MiB).
// A process may read its own pagemap as any user: only the PFN bits need
// CAP_SYS_ADMIN, and the present bit does not.
func TestResidentLive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, make([]byte, 8<<20), 0644); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	m, err := syscall.Mmap(int(fh.Fd()), 0, 8<<20, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	var s byte
	for i := 0; i < 1<<20; i += 4096 {
		s += m[i]
	}
	sink = s
	start := uint64(uintptrOf(m))
	rs, err := FS("/proc").Resident(os.Getpid(), start, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	first := Subtract(start, 1<<20, rs)
	rest := Bytes(rs) - (1<<20 - Bytes(first))
	t.Logf("resident %v (first MiB missing %d bytes, rest %d bytes)", rs, Bytes(first), rest)
	if len(first) != 0 {
		t.Errorf("touched pages not present: %v", first)
	}
	if rest > 2<<20 {
		t.Errorf("%d bytes present beyond the touched MiB", rest)
	}
}

var sink byte

// FuzzResident: any pagemap bytes give ranges inside the asked window,
// page aligned, sorted and disjoint, or an error; never a panic.
func FuzzResident(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0x80, 1, 2, 3, 4, 5, 6, 7, 8}, uint16(0), uint16(2))
	f.Add(make([]byte, 64), uint16(3), uint16(9))
	f.Fuzz(func(t *testing.T, b []byte, first, n uint16) {
		const page = 4096
		start, length := uint64(first)*page, uint64(n)*page
		rs, err := residentFrom(bytes.NewReader(b), start, length, page)
		if err != nil {
			return
		}
		at := start
		for _, r := range rs {
			if r.Start < at || r.Len == 0 || r.Start%page != 0 || r.Len%page != 0 || r.Start+r.Len > start+length {
				t.Fatalf("window [%#x,+%#x): bad range %+v in %v", start, length, r, rs)
			}
			at = r.Start + r.Len + 1 // merged: the next starts after a gap
		}
	})
}
