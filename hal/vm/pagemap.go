package vm

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// Resident returns, within [start, start+length) of process pid's address
// space, the ranges whose pages are mapped in its page table now, merged
// and in address order, from /proc/PID/pagemap (bit 63 of each page's
// 64-bit entry: present; root reads it for any process).
//
// It is the page-granular half of the analyzer. smaps says how much of a
// mapping was touched, not where; these hosts have neither idle-page
// tracking nor soft-dirty bits, and pagemap carries no accessed bit. But
// after MADV_PAGEOUT has unmapped a file-backed range, the pages present
// again are those the process faulted back in: which parts of a mapping
// came back. The grain is what one fault maps: the kernel's fault-around
// (64 KiB) or, for files cached in large folios (ext4 and tmpfs on 6.x
// kernels), the whole folio, up to 2 MiB.
func (f FS) Resident(pid int, start, length uint64) ([]Range, error) {
	fh, err := os.Open(f.path(fmt.Sprint(pid), "pagemap"))
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return residentFrom(fh, start, length, uint64(os.Getpagesize()))
}

// residentFrom reads pagemap entries from r (an io.ReaderAt over a
// pagemap file) for [start, start+length) with pages of size page.
func residentFrom(r io.ReaderAt, start, length, page uint64) ([]Range, error) {
	if page == 0 || start%page != 0 {
		return nil, fmt.Errorf("pagemap: start %#x is not page aligned", start)
	}
	pages := (length + page - 1) / page
	const chunk = 8192 // entries per read: 64 KiB, 32 MiB of address space
	buf := make([]byte, 8*chunk)
	var out []Range
	first := start / page
	for done := uint64(0); done < pages; {
		n := min(chunk, pages-done)
		b := buf[:8*n]
		if _, err := r.ReadAt(b, int64(8*(first+done))); err != nil {
			return nil, fmt.Errorf("pagemap at %#x: %w", start+done*page, err)
		}
		for i := uint64(0); i < n; i++ {
			if binary.LittleEndian.Uint64(b[8*i:])>>63 == 0 {
				continue
			}
			addr := start + (done+i)*page
			if k := len(out) - 1; k >= 0 && out[k].Start+out[k].Len == addr {
				out[k].Len += page
			} else {
				out = append(out, Range{Start: addr, Len: page})
			}
		}
		done += n
	}
	return out, nil
}

// Bytes sums the ranges' lengths.
func Bytes(rs []Range) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Len
	}
	return n
}

// Subtract returns the parts of [start, start+length) that no range of
// keep covers, in address order; keep must be sorted and non-overlapping
// (as Resident returns them).
func Subtract(start, length uint64, keep []Range) []Range {
	var out []Range
	at, end := start, start+length
	for _, k := range keep {
		ks, ke := max(k.Start, start), min(k.Start+k.Len, end)
		if ks >= ke {
			continue
		}
		if ks > at {
			out = append(out, Range{Start: at, Len: ks - at})
		}
		at = max(at, ke)
	}
	if at < end {
		out = append(out, Range{Start: at, Len: end - at})
	}
	return out
}

// Union merges two sorted, non-overlapping range lists into one.
func Union(a, b []Range) []Range {
	all := make([]Range, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var r Range
		if j >= len(b) || (i < len(a) && a[i].Start <= b[j].Start) {
			r, i = a[i], i+1
		} else {
			r, j = b[j], j+1
		}
		if k := len(all) - 1; k >= 0 && r.Start <= all[k].Start+all[k].Len {
			if e := r.Start + r.Len; e > all[k].Start+all[k].Len {
				all[k].Len = e - all[k].Start
			}
			continue
		}
		all = append(all, r)
	}
	return all
}

// Minus returns the parts of the ranges a that no range of b covers; both
// sorted and non-overlapping.
func Minus(a, b []Range) []Range {
	var out []Range
	for _, r := range a {
		out = append(out, Subtract(r.Start, r.Len, b)...)
	}
	return out
}
