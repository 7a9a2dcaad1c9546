// Package scripts holds the project's helper programs and scripts; this
// test runs scripts/fetch-datasets.sh against an offline mirror.
package scripts

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// shared is the data the evaluations use, when this checkout has it.
func shared(t *testing.T) string {
	t.Helper()
	// $AIOS_DATA as make eval reads it: relative to the repository root.
	d := os.Getenv("AIOS_DATA")
	if d == "" {
		t.Skip("$AIOS_DATA is not set: this test rebuilds an upstream mirror from the data sets there")
	}
	if !filepath.IsAbs(d) {
		d = filepath.Join("..", d)
	}
	if _, err := os.Stat(filepath.Join(d, "workload/alibaba2018/day_1.10s.csv.gz")); err != nil {
		t.Skipf("no data sets at %s ($AIOS_DATA): this test rebuilds an upstream mirror from them", d)
	}
	return d
}

func gunzip(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return b
}

// tarFiles is the regular files in a .tar.gz, name to content.
func tarFiles(t *testing.T, p string) map[string][]byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(gunzip(t, p)))
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			out[h.Name] = b
		}
	}
}

func put(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFetchDatasets rebuilds the upstream files from the shared copies
// (the CSVs and trace uncompressed, ADFA-LD.zip with two more attack
// families and more validation traces than the evaluations use, a
// non-R .rda), runs the script against that mirror, and checks it writes
// the same data sets byte for byte (ADFA-LD: the same traces), keeps an
// .rda it cannot convert, and fetches nothing the second time.
func TestFetchDatasets(t *testing.T) {
	src := shared(t)
	for _, tool := range []string{"sh", "gzip", "tar", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	mirror, dest := t.TempDir(), t.TempDir()
	const dct = "alejandrofdez-us/DataCenter-Traces-Datasets"
	for day := 1; day <= 5; day++ {
		d := string(rune('0' + day))
		put(t, filepath.Join(mirror, dct, "alibaba2018/day_"+d, "machine_usage_day_"+d+"_grouped_10_seconds.csv"),
			gunzip(t, filepath.Join(src, "workload/alibaba2018/day_"+d+".10s.csv.gz")))
	}
	put(t, filepath.Join(mirror, dct, "google2019/week1/instance_usage_grouped_300_seconds_week1.csv"),
		gunzip(t, filepath.Join(src, "workload/google2019/week1.300s.csv.gz")))
	put(t, filepath.Join(mirror, "1a1a11a/libCacheSim/data/cloudPhysicsIO.txt"), gunzip(t, filepath.Join(src, "cache/cloudphysics.txt.gz")))
	put(t, filepath.Join(mirror, "carlonlv/DataCenterSim/data/periodic_avg_78.rda"), []byte("not R data"))
	put(t, filepath.Join(mirror, "carlonlv/DataCenterSim/data/periodic_max_78.rda"), []byte("not R data"))

	// ADFA-LD.zip as upstream has it: everything under ADFA-LD/.
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	add := func(name string, b []byte) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	want := map[string]map[string][]byte{}
	for _, set := range []string{"training", "validation", "attack"} {
		files := tarFiles(t, filepath.Join(src, "adfa-ld", set+".tar.gz"))
		want[set] = files
		for name, b := range files {
			add("ADFA-LD/"+name, b)
		}
	}
	add("ADFA-LD/Validation_Data_Master/UVD-2187.txt", []byte("1 2 3\n"))
	add("ADFA-LD/Attack_Data_Master/Web_Shell_1/UAD-WS-1-1.txt", []byte("4 5 6\n"))
	add("ADFA-LD/Attack_Data_Master/Java_Meterpreter_1/UAD-Java-Meterpreter-1-1.txt", []byte("7 8 9\n"))
	syscalls, err := os.ReadFile(filepath.Join(src, "adfa-ld/syscall-list.txt"))
	if err != nil {
		t.Fatal(err)
	}
	add("ADFA-LD/ADFA-LD+Syscall+List.txt", syscalls)
	zw.Close()
	put(t, filepath.Join(mirror, "verazuo/a-labelled-version-of-the-ADFA-LD-dataset/ADFA-LD.zip"), zb.Bytes())

	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("sh", append([]string{"fetch-datasets.sh"}, args...)...)
		// No R or pyreadr: the .rda path is the one without a converter.
		cmd.Env = append(os.Environ(), "AIOS_DATA="+dest, "AIOS_DATA_MIRROR="+mirror, "PATH=/usr/bin:/bin")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("fetch-datasets.sh %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := run()
	for _, f := range []string{
		"workload/alibaba2018/day_1.10s.csv.gz", "workload/alibaba2018/day_5.10s.csv.gz",
		"workload/google2019/week1.300s.csv.gz", "cache/cloudphysics.txt.gz",
	} {
		if !bytes.Equal(gunzip(t, filepath.Join(dest, f)), gunzip(t, filepath.Join(src, f))) {
			t.Errorf("%s differs from the shared copy", f)
		}
	}
	for _, set := range []string{"training", "validation", "attack"} {
		got := tarFiles(t, filepath.Join(dest, "adfa-ld", set+".tar.gz"))
		if len(got) != len(want[set]) {
			t.Errorf("adfa-ld/%s: %d traces, want %d", set, len(got), len(want[set]))
		}
		for name, b := range want[set] {
			if !bytes.Equal(got[name], b) {
				t.Errorf("adfa-ld/%s: %s missing or different", set, name)
				break
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "adfa-ld/syscall-list.txt")); !bytes.Equal(b, syscalls) {
		t.Error("adfa-ld/syscall-list.txt differs")
	}
	if _, err := os.Stat(filepath.Join(dest, "workload/azure2017/periodic_avg_78.rda")); err != nil || !strings.Contains(out, "install R (Rscript) or python3's pyreadr") {
		t.Errorf("an .rda without a converter is not kept with a word: %v\n%s", err, out)
	}

	// Again: nothing fetched. -f cache: fetched again.
	if out := run(); strings.Contains(out, "wrote ") {
		t.Errorf("a second run fetched again:\n%s", out)
	}
	if out := run("-f", "cache"); strings.Count(out, "wrote ") != 1 {
		t.Errorf("-f cache:\n%s", out)
	}

	// A changed upstream file is refused, and nothing is written.
	os.Remove(filepath.Join(dest, "cache/cloudphysics.txt.gz"))
	put(t, filepath.Join(mirror, "1a1a11a/libCacheSim/data/cloudPhysicsIO.txt"), []byte("1\n2\n"))
	cmd := exec.Command("sh", "fetch-datasets.sh", "cache")
	cmd.Env = append(os.Environ(), "AIOS_DATA="+dest, "AIOS_DATA_MIRROR="+mirror)
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "SHA-256") {
		t.Errorf("a changed upstream was accepted: %v\n%s", err, b)
	}
	if _, err := os.Stat(filepath.Join(dest, "cache/cloudphysics.txt.gz")); err == nil {
		t.Error("a file that failed its check was put in place")
	}
	var names []string
	filepath.Walk(dest, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			r, _ := filepath.Rel(dest, p)
			names = append(names, r)
		}
		return nil
	})
	sort.Strings(names)
	t.Logf("written: %s", strings.Join(names, " "))
}
