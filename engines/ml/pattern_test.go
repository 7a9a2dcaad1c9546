package ml

import (
	"encoding/csv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestClassifySynthetic(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 42))
	n := 512
	steady := make([]float64, n)
	growing := make([]float64, n)
	sporadic := make([]float64, n)
	for i := 0; i < n; i++ {
		steady[i] = 1 + 0.03*r.NormFloat64()
		growing[i] = 100 + 0.5*float64(i) + 5*r.NormFloat64()
		// Bursts at random times: idle, then a few samples of load.
		if r.Float64() < 0.05 {
			sporadic[i] = 1 + r.Float64()
		}
	}
	periodic := sine(n, 24, 1, 2, 0.1, 42)
	// A square wave, the shape of a cron-like batch job.
	square := make([]float64, n)
	for i := range square {
		if i%40 < 10 {
			square[i] = 1
		}
	}
	cases := []struct {
		name   string
		x      []float64
		class  string
		period int
	}{
		{"steady", steady, Steady, 0},
		{"growing", growing, Growing, 0},
		{"sporadic", sporadic, Sporadic, 0},
		{"periodic", periodic, Periodic, 24},
		{"square", square, Periodic, 40},
	}
	for _, c := range cases {
		p := Classify(append([]float64(nil), c.x...), nil)
		if p.Class != c.class || (c.period > 0 && p.Period != c.period) {
			t.Errorf("%s: got %+v, want %s period %d", c.name, p, c.class, c.period)
		}
		if p.Confidence <= 0 || p.Confidence > 1 {
			t.Errorf("%s: confidence %.3f", c.name, p.Confidence)
		}
	}
	if p := Classify(make([]float64, 5), nil); p.Class != Unknown {
		t.Errorf("5 samples: %+v", p)
	}
}

// readTrace reads one column of a trace recorded by scripts/trace.
func readTrace(t *testing.T, name, col string) []float64 {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "testdata", "traces", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	c := -1
	for i, h := range rows[0] {
		if h == col {
			c = i
		}
	}
	var out []float64
	for _, r := range rows[1:] {
		v, _ := strconv.ParseFloat(r[c], 64)
		out = append(out, v)
	}
	return out
}

// Real programs whose class is obvious: perl pushing 1 MiB a second grows;
// the shell loop that burns CPU then sleeps 6 s is periodic (its period
// stretched by whatever else ran on the machine while it was recorded);
// sqlite's resident set, once its cache is full, is steady.
func TestClassifyRecorded(t *testing.T) {
	cases := []struct {
		file, col, class string
		from             int
	}{
		{"growing_mem_perl.csv", "rss", Growing, 0},
		{"periodic_cpu_sh.csv", "cpu", Periodic, 0},
		{"sqlite_insert.csv", "rss", Steady, 10},
	}
	for _, c := range cases {
		x := readTrace(t, c.file, c.col)[c.from:]
		p := Classify(x, nil)
		t.Logf("%s %s: %+v", c.file, c.col, p)
		if p.Class != c.class {
			t.Errorf("%s %s: class %s, want %s", c.file, c.col, p.Class, c.class)
		}
	}
}

// The predictor recognises the pattern online from samples alone.
func TestPredictorPatternOnline(t *testing.T) {
	pr := NewPredictor(Params{Horizons: []int{1, 5}, Min: 0.01, StepSeconds: 1})
	for i := 0; i < 600; i++ {
		v := 0.0
		if i%20 < 8 {
			v = 1
		}
		pr.Observe(v, 0)
	}
	if p := pr.Pattern(); p.Class != Periodic || p.Period != 20 || math.Abs(p.Peak-1) > 1e-9 {
		t.Fatalf("pattern %+v", p)
	}
}
