package vm

import (
	"bytes"
	"fmt"
	"strconv"

	"aiosfs/hal/kfile"
)

// SmapsReader reads /proc/PID/smaps into a buffer it keeps between calls
// and parses it in place: no bufio.Scanner, no per-line strings, no
// strings.Fields. A mapping's permissions and path are interned, so a
// process whose mappings do not change costs no string allocation from
// one read to the next. The memory engine reads the smaps of every
// process of every agent each period (docs/cost.md); os.ReadFile grew its
// buffer from 512 bytes every time and the scanner made a string and a
// slice of fields per line. A SmapsReader is not safe for concurrent use.
type SmapsReader struct {
	fs    FS
	buf   []byte
	path  []byte
	names map[string]string // interned perms and paths
}

// maxNames bounds the interned strings: past it the table starts afresh
// (a process mapping ever new files must not grow it for ever).
const maxNames = 4096

// NewSmapsReader returns a reader of f's smaps files.
func (f FS) NewSmapsReader() *SmapsReader {
	return &SmapsReader{fs: f, names: map[string]string{}}
}

// Smaps reads and parses /proc/PID/smaps, appending its mappings to
// out[:0] (out may be nil) and returning them.
func (r *SmapsReader) Smaps(pid int, out []Mapping) ([]Mapping, error) {
	r.path = append(append(append(r.path[:0], r.fs...), '/'), strconv.Itoa(pid)...)
	r.path = append(r.path, "/smaps"...)
	b, err := kfile.ReadInto(string(r.path), r.buf)
	if cap(b) > cap(r.buf) {
		r.buf = b[:0]
	}
	if err != nil {
		return out[:0], err
	}
	if len(r.names) > maxNames {
		clear(r.names)
	}
	return parseSmaps(b, out[:0], r.names)
}

// intern returns b as a string, from names when it is there (a lookup
// with string(b) does not allocate); names nil always allocates.
func intern(names map[string]string, b []byte) string {
	if names == nil {
		return string(b)
	}
	if s, ok := names[string(b)]; ok {
		return s
	}
	s := string(b)
	names[s] = s
	return s
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

// token returns the first blank-separated word of b and what follows it.
func token(b []byte) (tok, rest []byte) {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	j := i
	for j < len(b) && !isSpace(b[j]) {
		j++
	}
	return b[i:j], b[j:]
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// parseUint parses b in base 10 or 16 (no sign, no prefix).
func parseUint(b []byte, base uint64) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if v > (1<<64-1-d)/base {
			return 0, false
		}
		v = v*base + d
	}
	return v, true
}

// parseSmaps is ParseSmaps in place: out is appended to, names interns
// perms and paths (nil: none).
func parseSmaps(b []byte, out []Mapping, names map[string]string) ([]Mapping, error) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		first, rest := token(line)
		if len(first) == 0 {
			continue
		}
		if first[len(first)-1] != ':' {
			if bytes.IndexByte(first, '-') >= 0 {
				m, ok, err := parseHeaderBytes(line, first, rest, names)
				if err != nil {
					return nil, err
				}
				if ok {
					out = append(out, m)
					continue
				}
			}
			if len(out) == 0 {
				return nil, fmt.Errorf("smaps: field before any mapping: %q", line)
			}
			continue
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("smaps: field before any mapping: %q", line)
		}
		m := &out[len(out)-1]
		var dst *uint64
		switch string(first[:len(first)-1]) {
		case "Size":
			dst = &m.Size
		case "Rss":
			dst = &m.Rss
		case "Referenced":
			dst = &m.Referenced
		case "Anonymous":
			dst = &m.Anonymous
		case "Swap":
			dst = &m.Swap
		default:
			continue
		}
		val, rest := token(rest)
		if len(val) == 0 {
			continue // "Key:" alone, as a field line with under two words was
		}
		n, ok := parseUint(val, 10)
		if !ok {
			return nil, fmt.Errorf("smaps: %q: bad number %q", line, val)
		}
		if unit, _ := token(rest); string(unit) == "kB" {
			n *= 1024
		}
		*dst = n
	}
	return out, nil
}

// parseHeaderBytes parses "start-end perms offset dev inode [path]"; ok is
// false when the line has under five words (it is not a header).
func parseHeaderBytes(line, rng, rest []byte, names map[string]string) (m Mapping, ok bool, err error) {
	perms, rest := token(rest)
	off, rest := token(rest)
	dev, rest := token(rest)
	ino, rest := token(rest)
	if len(ino) == 0 {
		return m, false, nil
	}
	_ = dev
	bad := func() (Mapping, bool, error) { return m, false, fmt.Errorf("smaps: bad header %q", line) }
	i := bytes.IndexByte(rng, '-')
	var okS, okE, okO, okI bool
	m.Start, okS = parseUint(rng[:i], 16)
	m.End, okE = parseUint(rng[i+1:], 16)
	m.Offset, okO = parseUint(off, 16)
	m.Inode, okI = parseUint(ino, 10)
	if !okS || !okE || !okO || !okI {
		return bad()
	}
	m.Perms = intern(names, perms)
	if p := trimSpace(rest); len(p) > 0 {
		m.Path = intern(names, p)
	}
	return m, true, nil
}
