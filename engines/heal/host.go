package heal

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// HostSample is one observation of the host. PSI values are the "some"
// avg10 percentages of /proc/pressure/{cpu,memory,io} (0..100); -1 when
// the kernel has no PSI.
type HostSample struct {
	Time                   time.Time
	PSICPU, PSIMem, PSIIO  float64
	MemAvailable, MemTotal int64 // bytes, /proc/meminfo
	Disks                  []Disk
	FDUsed, FDMax          int64   // /proc/sys/fs/file-nr: allocated, maximum
	Load1                  float64 // /proc/loadavg
	NCPU                   int
}

// Disk is the free space of one filesystem (the state directory's, an
// agent's working directory's).
type Disk struct {
	Path        string
	Free, Total int64 // bytes available to unprivileged users; size
}

// ReadHost reads a HostSample from procRoot ("/proc") and statfs of the
// paths. Missing sources leave their fields at -1 (PSI) or 0, and are
// reported in the error, which is not fatal: the sample is still usable.
func ReadHost(procRoot string, paths []string, ncpu int) (HostSample, error) {
	h := HostSample{Time: time.Now(), PSICPU: -1, PSIMem: -1, PSIIO: -1, NCPU: ncpu}
	var errs []string
	for i, n := range []string{"cpu", "memory", "io"} {
		b, err := os.ReadFile(filepath.Join(procRoot, "pressure", n))
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		v, err := ParsePSI(string(b))
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		*[]*float64{&h.PSICPU, &h.PSIMem, &h.PSIIO}[i] = v
	}
	if b, err := os.ReadFile(filepath.Join(procRoot, "meminfo")); err == nil {
		h.MemAvailable, h.MemTotal, err = ParseMeminfo(string(b))
		if err != nil {
			errs = append(errs, err.Error())
		}
	} else {
		errs = append(errs, err.Error())
	}
	if b, err := os.ReadFile(filepath.Join(procRoot, "sys/fs/file-nr")); err == nil {
		h.FDUsed, h.FDMax, err = ParseFileNr(string(b))
		if err != nil {
			errs = append(errs, err.Error())
		}
	} else {
		errs = append(errs, err.Error())
	}
	if b, err := os.ReadFile(filepath.Join(procRoot, "loadavg")); err == nil {
		h.Load1, err = ParseLoadavg(string(b))
		if err != nil {
			errs = append(errs, err.Error())
		}
	} else {
		errs = append(errs, err.Error())
	}
	for _, p := range paths {
		var st syscall.Statfs_t
		if err := syscall.Statfs(p, &st); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		h.Disks = append(h.Disks, Disk{Path: p, Free: int64(st.Bavail) * st.Bsize, Total: int64(st.Blocks) * st.Bsize})
	}
	if len(errs) > 0 {
		return h, fmt.Errorf("heal: host: %s", strings.Join(errs, "; "))
	}
	return h, nil
}

// ParsePSI returns the "some" line's avg10 of a /proc/pressure file.
func ParsePSI(s string) (float64, error) {
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "some" {
			continue
		}
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, "avg10="); ok {
				x, err := strconv.ParseFloat(v, 64)
				if err != nil || x < 0 || x > 100 {
					return 0, fmt.Errorf("psi: bad avg10 %q", v)
				}
				return x, nil
			}
		}
	}
	return 0, fmt.Errorf("psi: no some avg10")
}

// ParseMeminfo returns MemAvailable and MemTotal in bytes.
func ParseMeminfo(s string) (avail, total int64, err error) {
	sc := bufio.NewScanner(strings.NewReader(s))
	got := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		var dst *int64
		switch f[0] {
		case "MemAvailable:":
			dst = &avail
		case "MemTotal:":
			dst = &total
		default:
			continue
		}
		v, e := strconv.ParseInt(f[1], 10, 64)
		if e != nil || v < 0 {
			return 0, 0, fmt.Errorf("meminfo: bad %s %q", f[0], f[1])
		}
		*dst = v * 1024
		got++
	}
	if got < 2 {
		return avail, total, fmt.Errorf("meminfo: MemAvailable or MemTotal missing")
	}
	return avail, total, nil
}

// ParseFileNr parses /proc/sys/fs/file-nr: allocated, free, maximum.
func ParseFileNr(s string) (used, max int64, err error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("file-nr: want 3 fields, got %d", len(f))
	}
	used, e1 := strconv.ParseInt(f[0], 10, 64)
	max, e2 := strconv.ParseInt(f[2], 10, 64)
	if e1 != nil || e2 != nil || used < 0 || max <= 0 {
		return 0, 0, fmt.Errorf("file-nr: bad %q", strings.TrimSpace(s))
	}
	return used, max, nil
}

// ParseLoadavg returns the 1-minute load average.
func ParseLoadavg(s string) (float64, error) {
	f := strings.Fields(s)
	if len(f) < 1 {
		return 0, fmt.Errorf("loadavg: empty")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("loadavg: bad %q", f[0])
	}
	return v, nil
}

// EngineStat is what the daemon knows of one of its own engines: how late
// its loop ran, and its error and drop counters (cumulative).
type EngineStat struct {
	Name        string
	Time        time.Time
	LoopLatency time.Duration // the last tick's lateness
	Errors      uint64
	Drops       uint64
	// NoLoop: the engine's loop is not timed (it runs where no hook of
	// the daemon's reaches): LoopLatency means nothing and no
	// loop_latency gauge is kept, only errors.
	NoLoop bool
	Failed bool   // the engine reports itself failed or its input stale
	Why    string // why, when Failed
}
