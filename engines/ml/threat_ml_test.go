package ml

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestBaselineZAndClip(t *testing.T) {
	b := NewBaseline(2)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		b.Update([]float64{10 + rng.NormFloat64(), 0})
	}
	z := b.Z([]float64{10, 0}, nil)
	if math.Abs(z[0]) > 0.5 || z[1] != 0 {
		t.Fatalf("z of a normal point: %v", z)
	}
	z = b.Z([]float64{20, 1}, nil)
	if z[0] < 6 || z[1] < 100 {
		t.Fatalf("z of an outlier: %v (sd floor keeps a never-seen feature finite)", z)
	}
	if math.IsInf(z[1], 0) || math.IsNaN(z[1]) {
		t.Fatal("infinite z")
	}
	// one huge burst must not drag the mean: clipped to mean+4sd
	m := b.Mean[0]
	b.Update([]float64{1e9, 0})
	if b.Mean[0]-m > 1 {
		t.Fatalf("a burst moved the mean by %v", b.Mean[0]-m)
	}
	s, w := AnomalyScore(b.Z([]float64{30, 0}, nil), 3)
	if s < 0.9 || w != 0 {
		t.Fatalf("anomaly score %v worst %d", s, w)
	}
	if s, _ := AnomalyScore(b.Z([]float64{0, 0}, nil), 3); s != 0 {
		t.Fatalf("doing less scored %v", s)
	}
	// round trip
	j, _ := json.Marshal(b)
	var c Baseline
	if err := json.Unmarshal(j, &c); err != nil || !reflect.DeepEqual(c.Mean, b.Mean) || c.N != b.N {
		t.Fatalf("round trip: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"Mean":[1],"Var":[-1]}`), &c); err == nil {
		t.Fatal("negative variance accepted")
	}
}

func TestBaselineNaN(t *testing.T) {
	b := NewBaseline(1)
	b.Update([]float64{1})
	b.Update([]float64{math.NaN()})
	if math.IsNaN(b.Mean[0]) {
		t.Fatal("NaN poisoned the mean")
	}
}

func gauss(rng *rand.Rand, n, d int, mu float64) [][]float64 {
	rows := make([][]float64, n)
	for i := range rows {
		rows[i] = make([]float64, d)
		for j := range rows[i] {
			rows[i][j] = mu + rng.NormFloat64()
		}
	}
	return rows
}

func TestC(t *testing.T) {
	// c(256) from the paper's formula: 2(ln 255 + γ) - 2·255/256
	if got, want := C(256), 2*(math.Log(255)+0.5772156649015329)-2*255.0/256; math.Abs(got-want) > 1e-12 {
		t.Fatalf("C(256) = %v", got)
	}
	if C(1) != 0 || C(2) != 1 {
		t.Fatal("C small")
	}
}

func TestIForestSeparatesAndIsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rows := gauss(rng, 1000, 4, 0)
	f, err := TrainIForest(rows, 100, 256, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Trees) != 100 || f.Sample != 256 {
		t.Fatal("defaults")
	}
	in := f.Score([]float64{0, 0, 0, 0})
	out := f.Score([]float64{6, -6, 6, 0})
	if !(in < 0.5 && out > 0.65) {
		t.Fatalf("inlier %.3f outlier %.3f", in, out)
	}
	g, _ := TrainIForest(rows, 100, 256, 7)
	a, _ := json.Marshal(f)
	b, _ := json.Marshal(g)
	if string(a) != string(b) {
		t.Fatal("same seed, different forest")
	}
	if err := f.Check(4); err != nil {
		t.Fatal(err)
	}
	if err := f.Check(2); err == nil {
		t.Fatal("a forest over 4 features passed a check for 2")
	}
	f.Trees[0].Left[0] = 0 // a cycle
	if err := f.Check(4); err == nil {
		t.Fatal("cycle accepted")
	}
	if _, err := TrainIForest(rows[:1], 1, 1, 1); err == nil {
		t.Fatal("one row accepted")
	}
}

func TestForestClassifiesAndExplains(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var rows [][]float64
	var y []int
	for i := 0; i < 300; i++ {
		c := i % 3
		x := []float64{rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64()}
		switch c {
		case 1:
			x[0] += 5 // class 1 is told by feature 0
		case 2:
			x[2] += 5 // class 2 by feature 2
		}
		rows, y = append(rows, x), append(y, c)
	}
	f, err := TrainForest(rows, y, []string{"benign", "a", "b"}, []string{"f0", "f1", "f2"}, ForestParams{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	p := f.Predict([]float64{5, 0, 0})
	if p.Class != 1 || p.Prob[1] < 0.8 {
		t.Fatalf("predicted %d %v", p.Class, p.Prob)
	}
	if top := p.Top(1); len(top) != 1 || top[0] != 0 {
		t.Fatalf("top feature %v contrib %v", top, p.Contrib)
	}
	// Saabas: prior + contributions = probability
	prior := 0.0
	for _, tr := range f.Trees {
		prior += tr.Dist[0][p.Class]
	}
	prior /= float64(len(f.Trees))
	sum := prior
	for _, c := range p.Contrib {
		sum += c
	}
	if math.Abs(sum-p.Prob[p.Class]) > 1e-9 {
		t.Fatalf("prior+contrib %v != prob %v", sum, p.Prob[p.Class])
	}
	if q := f.Predict([]float64{0, 0, 5}); q.Class != 2 {
		t.Fatalf("class 2 predicted %d", q.Class)
	}
	g, _ := TrainForest(rows, y, []string{"benign", "a", "b"}, []string{"f0", "f1", "f2"}, ForestParams{Seed: 9})
	a, _ := json.Marshal(f)
	b, _ := json.Marshal(g)
	if string(a) != string(b) {
		t.Fatal("same seed, different forest")
	}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	f.Trees[1].Dist[0] = []float64{1}
	if err := f.Check(); err == nil {
		t.Fatal("bad distribution accepted")
	}
	if _, err := TrainForest(rows, y[:3], nil, nil, ForestParams{}); err == nil {
		t.Fatal("label count mismatch accepted")
	}
}

func signedModel(t *testing.T) (string, ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	dir := t.TempDir()
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"forest.json": []byte(`{"trees":[]}`), "policy.json": []byte(`{}`)}
	if err := SaveModel(dir, files, priv, "2026-12-03T21:00:00Z"); err != nil {
		t.Fatal(err)
	}
	return dir, pub, priv
}

func TestModelSignedRoundTrip(t *testing.T) {
	dir, pub, _ := signedModel(t)
	files, m, err := LoadModel(dir, pub)
	if err != nil {
		t.Fatal(err)
	}
	if string(files["forest.json"]) != `{"trees":[]}` || m.Version != 1 || len(m.Files) != 2 {
		t.Fatalf("loaded %v %+v", files, m)
	}
}

func TestModelRefusesWrongDigest(t *testing.T) {
	dir, pub, _ := signedModel(t)
	os.WriteFile(filepath.Join(dir, "forest.json"), []byte(`{"trees":[1]}`), 0o600)
	_, _, err := LoadModel(dir, pub)
	if !errors.Is(err, ErrDigest) || !strings.Contains(err.Error(), "forest.json") {
		t.Fatalf("tampered file: %v", err)
	}
}

func TestModelRefusesWrongSignature(t *testing.T) {
	dir, _, _ := signedModel(t)
	other, _, _ := GenerateKey()
	if _, _, err := LoadModel(dir, other); !errors.Is(err, ErrSignature) {
		t.Fatalf("other key: %v", err)
	}
	// a manifest edited to match a tampered file no longer verifies
	dir2, pub2, _ := signedModel(t)
	mb, _ := os.ReadFile(filepath.Join(dir2, ManifestName))
	mb = []byte(strings.Replace(string(mb), `"version": 1`, `"version":1`, 1))
	os.WriteFile(filepath.Join(dir2, ManifestName), mb, 0o600)
	if _, _, err := LoadModel(dir2, pub2); !errors.Is(err, ErrSignature) {
		t.Fatalf("edited manifest: %v", err)
	}
	os.WriteFile(filepath.Join(dir2, SigName), []byte("not base64!\n"), 0o600)
	if _, _, err := LoadModel(dir2, pub2); !errors.Is(err, ErrSignature) {
		t.Fatalf("garbage signature: %v", err)
	}
	os.Remove(filepath.Join(dir2, SigName))
	if _, _, err := LoadModel(dir2, pub2); !errors.Is(err, ErrSignature) {
		t.Fatalf("no signature: %v", err)
	}
}

func TestModelRefusesManifestNotJSON(t *testing.T) {
	dir, pub, _ := signedModel(t)
	for _, bad := range []string{"not json", `{"version":1,"files":{"../x":"` + strings.Repeat("0", 64) + `"}}`,
		`{"version":2,"files":{"a":"` + strings.Repeat("0", 64) + `"}}`, `{"version":1,"files":{}}`,
		`{"version":1,"files":{"a":"zz"}}`, `{"version":1,"files":{"a":"` + strings.Repeat("0", 64) + `"}} {}`,
		`{"version":1,"code":"rm -rf /","files":{"a":"` + strings.Repeat("0", 64) + `"}}`} {
		os.WriteFile(filepath.Join(dir, ManifestName), []byte(bad), 0o600)
		if _, _, err := LoadModel(dir, pub); !errors.Is(err, ErrManifest) {
			t.Errorf("manifest %q: %v", bad, err)
		}
	}
}

func TestKeyWrongLength(t *testing.T) {
	dir, _, _ := signedModel(t)
	if _, _, err := LoadModel(dir, ed25519.PublicKey(make([]byte, 31))); !errors.Is(err, ErrKeyLength) {
		t.Fatalf("short key: %v", err)
	}
	if _, err := ParsePublicKey(strings.Repeat("ab", 31)); !errors.Is(err, ErrKeyLength) {
		t.Fatalf("31-byte hex key: %v", err)
	}
	if _, err := ParsePrivateKey(strings.Repeat("ab", 33)); !errors.Is(err, ErrKeyLength) {
		t.Fatalf("33-byte seed: %v", err)
	}
	if _, err := ParsePublicKey("zz"); err == nil {
		t.Fatal("garbage key accepted")
	}
	if err := SaveModel(t.TempDir(), map[string][]byte{"a": nil}, ed25519.PrivateKey{1, 2}, ""); !errors.Is(err, ErrKeyLength) {
		t.Fatalf("short private key: %v", err)
	}
}

func TestPinnedKeyAndFirstStart(t *testing.T) {
	p := filepath.Join(t.TempDir(), "model.key")
	priv, made, err := LoadOrCreateKey(p)
	if err != nil || !made {
		t.Fatal(err, made)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", st.Mode())
	}
	again, made, err := LoadOrCreateKey(p)
	if err != nil || made || !again.Equal(priv) {
		t.Fatal("second start made another key", err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	pinned, err := ParsePublicKey(PublicKeyString(pub))
	if err != nil || !pinned.Equal(pub) {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := SaveModel(dir, map[string][]byte{"m.json": []byte("{}")}, priv, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadModel(dir, pinned); err != nil {
		t.Fatal(err)
	}
}

// Any bytes: ParseManifest returns a manifest that passes its own
// checks or an ErrManifest, never panics.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"version":1,"files":{"a.json":"` + strings.Repeat("ab", 32) + `"}}`))
	f.Add([]byte(`not json`))
	f.Add([]byte(`{"version":1,"files":{"../x":"00"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			if !errors.Is(err, ErrManifest) {
				t.Fatalf("error %v is not ErrManifest", err)
			}
			return
		}
		for n := range m.Files {
			if !validName(n) {
				t.Fatalf("accepted name %q", n)
			}
		}
	})
}
