package main

import (
	"archive/tar"
	"compress/gzip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// writeTarGz writes a tar.gz of directories (names ending in /) and files.
func writeTarGz(t *testing.T, path string, entries [][2]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		name, body := e[0], e[1]
		if name[len(name)-1] == '/' {
			if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// The attack layout: TOP/FAMILY_RUN/*.txt, a family being the run's
// directory less its _N; a family the eval has never heard of (Web_Shell)
// is read like the others; empty files are skipped and counted, other
// files ignored, numbers may span lines.
func TestReadArchiveLayout(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "attack.tar.gz")
	writeTarGz(t, p, [][2]string{
		{"Attack_Data_Master/", ""},
		{"Attack_Data_Master/Hydra_FTP_10/", ""},
		{"Attack_Data_Master/Hydra_FTP_10/UAD-Hydra-FTP-10-1.txt", "3 4 5 \n"},
		{"Attack_Data_Master/Web_Shell_2/b.txt", "6 6\n7"},
		{"Attack_Data_Master/Web_Shell_2/empty.txt", ""},
		{"Attack_Data_Master/Web_Shell_2/notes.md", "not a trace"},
		{"Attack_Data_Master/loose.txt", "11"},
	})
	got, skipped, err := readArchive(p, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []Trace{
		{Name: "Attack_Data_Master/Hydra_FTP_10/UAD-Hydra-FTP-10-1.txt", Family: "Hydra_FTP", Run: "Hydra_FTP_10", Calls: []int{3, 4, 5}},
		{Name: "Attack_Data_Master/Web_Shell_2/b.txt", Family: "Web_Shell", Run: "Web_Shell_2", Calls: []int{6, 6, 7}},
		{Name: "Attack_Data_Master/loose.txt", Family: "other", Run: "Attack_Data_Master", Calls: []int{11}},
	}
	if !reflect.DeepEqual(got, want) || skipped != 1 {
		t.Errorf("got %+v skipped %d\nwant %+v skipped 1", got, skipped, want)
	}
	// normal traces carry no family
	q := filepath.Join(dir, "training.tar.gz")
	writeTarGz(t, q, [][2]string{{"Training_Data_Master/", ""}, {"Training_Data_Master/UTD-0001.txt", "1 2"}})
	got, _, err = readArchive(q, false)
	if err != nil || len(got) != 1 || got[0].Family != "" || !reflect.DeepEqual(got[0].Calls, []int{1, 2}) {
		t.Errorf("training: %+v %v", got, err)
	}
	// a bad number is an error naming the file
	r := filepath.Join(dir, "bad.tar.gz")
	writeTarGz(t, r, [][2]string{{"X/a.txt", "1 x"}})
	if _, _, err := readArchive(r, false); err == nil {
		t.Error("bad number accepted")
	}
}

// Absent data is one clear line, not an error; present data is found.
func TestLocate(t *testing.T) {
	dir := t.TempDir()
	if _, skip := locate(dir); skip != `data=adfa-ld skipped="no `+filepath.Join(dir, "training.tar.gz")+`"` {
		t.Errorf("skip line %q", skip)
	}
	for _, n := range []string{"training", "validation", "attack"} {
		writeTarGz(t, filepath.Join(dir, n+".tar.gz"), [][2]string{{"T/a.txt", "1"}})
	}
	paths, skip := locate(dir)
	if skip != "" || len(paths) != 3 || paths["attack"] != filepath.Join(dir, "attack.tar.gz") {
		t.Errorf("%v %q", paths, skip)
	}
}
