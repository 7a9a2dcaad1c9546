package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Trace is one process's system calls from an archive.
type Trace struct {
	Name   string // path inside the archive
	Family string // attack family ("" for normal traces)
	Run    string // the directory holding it (an attack run)
	Calls  []int
	gru    []float64 // each call's NLL under the eval's GRU, filled by main
}

var runSuffix = regexp.MustCompile(`_[0-9]+$`)

// family names the attack family of a trace from the directory holding
// it: the directory's name less a trailing _N (the run number), so
// Attack_Data_Master/Hydra_FTP_3/x.txt is family Hydra_FTP, run
// Hydra_FTP_3. A trace directly under the archive's top directory (or at
// its root) has family "other".
func family(name string) (fam, run string) {
	dir := path.Dir(path.Clean(name))
	parts := strings.Split(dir, "/")
	if dir == "." || len(parts) < 2 {
		return "other", dir
	}
	run = parts[len(parts)-1]
	fam = runSuffix.ReplaceAllString(run, "")
	if fam == "" {
		fam = "other"
	}
	return fam, run
}

// readArchive reads every *.txt regular file of a .tar.gz as a trace of
// space-separated call numbers, sorted by name; empty files are skipped
// (counted in skipped). attack marks the traces with their family.
func readArchive(p string, attack bool) (traces []Trace, skipped int, err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", p, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", p, err)
		}
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(strings.ToLower(h.Name), ".txt") {
			continue
		}
		calls, err := parseCalls(tr)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %s: %w", p, h.Name, err)
		}
		if len(calls) == 0 {
			skipped++
			continue
		}
		t := Trace{Name: h.Name, Calls: calls}
		if attack {
			t.Family, t.Run = family(h.Name)
		}
		traces = append(traces, t)
	}
	sort.Slice(traces, func(i, j int) bool { return traces[i].Name < traces[j].Name })
	return traces, skipped, nil
}

func parseCalls(r io.Reader) ([]int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<26)
	sc.Split(bufio.ScanWords)
	var out []int
	for sc.Scan() {
		v, err := strconv.Atoi(sc.Text())
		if err != nil || v < 0 {
			return nil, fmt.Errorf("bad call number %q", sc.Text())
		}
		out = append(out, v)
	}
	return out, sc.Err()
}
