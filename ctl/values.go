package ctl

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Unlimited is what ParseSize returns for "max" (and the limit setters
// take as "no limit").
const Unlimited int64 = -1

// sizeRE is a decimal number, an optional binary unit, an optional "iB"/"B".
var sizeRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)([kKmMgGtT])?(?:i?[bB])?$`)

// ParseSize parses a byte count: a decimal number with an optional binary
// suffix K, M, G, T (also written KiB, MB, ...), e.g. 512M, 1.5G, 4096.
// "max" and "none" mean Unlimited. Fractional bytes and sizes over 2^62
// are errors.
func ParseSize(s string) (int64, error) {
	if s == "max" || s == "none" {
		return Unlimited, nil
	}
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, badSize(s)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, badSize(s)
	}
	if m[2] != "" {
		f *= float64(int64(1) << (10 * (1 + strings.Index("KMGT", strings.ToUpper(m[2])))))
	}
	if f != math.Trunc(f) || f > 1<<62 {
		return 0, badSize(s)
	}
	return int64(f), nil
}

func badSize(s string) error {
	return Errorf("bad size %q (want bytes with an optional K, M, G or T suffix, or max)", s)
}

// FormatSize renders bytes as ParseSize reads them, exactly: the largest
// binary suffix that divides the value ("2G", "1536M", "4097"), "max" for
// Unlimited.
func FormatSize(n int64) string {
	if n < 0 {
		return "max"
	}
	for _, u := range []struct {
		s string
		v int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.v && n%u.v == 0 {
			return strconv.FormatInt(n/u.v, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

// ParseDuration parses a Go duration ("90s", "1h30m") or a plain number of
// seconds ("1.5"). It must be positive.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) || f > 1e9 {
			return 0, Errorf("bad duration %q (want e.g. 1s, 500ms, 2m or seconds)", s)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d <= 0 {
		return 0, Errorf("bad duration %q: must be positive", s)
	}
	return d, nil
}

// ParseCPUList parses the kernel's cpu list format ("0-3,5,7-8") into a
// sorted list without duplicates. ncpu, when positive, bounds the cpus.
func ParseCPUList(s string, ncpu int) ([]int, error) {
	if s == "" {
		return nil, Errorf("empty cpu list")
	}
	set := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, Errorf("bad cpu list %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, Errorf("bad cpu list %q", s)
			}
		}
		if b-a > 4096 || (ncpu > 0 && b >= ncpu) {
			return nil, Errorf("cpu list %q: this machine has cpus 0-%d", s, ncpu-1)
		}
		for i := a; i <= b; i++ {
			set[i] = true
		}
	}
	out := make([]int, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Ints(out)
	return out, nil
}

// FormatCPUList renders cpus in the kernel's format, with ranges.
func FormatCPUList(cpus []int) string {
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		} else {
			parts = append(parts, strconv.Itoa(cpus[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// ParseCores parses a CPU bandwidth in cores ("0.5", "2", "150%" of one
// core). "max" and "0" mean no limit (returned as 0). Under 0.01 cores is
// refused: the kernel's smallest quota is 1 ms per 100 ms period.
func ParseCores(s string) (float64, error) {
	if s == "max" || s == "none" {
		return 0, nil
	}
	scale := 1.0
	num := s
	if strings.HasSuffix(s, "%") {
		num, scale = strings.TrimSuffix(s, "%"), 0.01
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, Errorf("bad cores %q (want a decimal like 0.5, a percentage like 50%%, or max)", s)
	}
	f *= scale
	if f > 0 && f < 0.01 {
		return 0, Errorf("cores %q below the 0.01 minimum", s)
	}
	if f > 4096 {
		return 0, Errorf("cores %q too large", s)
	}
	return f, nil
}

// ParseInt parses a decimal integer within [lo, hi].
func ParseInt(s string, lo, hi int64) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, Errorf("bad number %q (want an integer in %d..%d)", s, lo, hi)
	}
	return v, nil
}

// ParseFraction parses a fraction 0..1, also written as a percentage.
func ParseFraction(s string) (float64, error) {
	scale := 1.0
	num := s
	if strings.HasSuffix(s, "%") {
		num, scale = strings.TrimSuffix(s, "%"), 0.01
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || f*scale < 0 || f*scale > 1 {
		return 0, Errorf("bad fraction %q (want 0..1 or 0%%..100%%)", s)
	}
	return f * scale, nil
}

// ParseOnOff parses a switch: on or off.
func ParseOnOff(s string) (bool, error) {
	switch s {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, Errorf("%q: want on or off", s)
}

// OnOff is a switch as files show it: on or off.
func OnOff(v bool) string {
	if v {
		return "on"
	}
	return "off"
}
