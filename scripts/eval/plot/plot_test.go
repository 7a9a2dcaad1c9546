package plot

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// Save tiles panels into one PNG of the asked size, on white.
func TestSave(t *testing.T) {
	dir := t.TempDir()
	var panels []*plot.Plot
	for i := 0; i < 3; i++ {
		p := New("panel", "x", "y")
		x := []float64{1, 2, 3, 4}
		if err := Band(p, x, []float64{0, 1, 1, 0}, []float64{2, 3, 3, 2}, Palette[0], "band"); err != nil {
			t.Fatal(err)
		}
		if err := AddLines(p, true, Line{Name: "a", X: x, Y: []float64{1, 2, 2, 1}, Points: true, Mark: 1},
			Line{Name: "b", X: x, Y: []float64{0.5, 1, 1.5, 2}, Dashed: true, Mark: -1}); err != nil {
			t.Fatal(err)
		}
		panels = append(panels, p)
	}
	if err := Save(dir, "t.png", 2, 3*vg.Inch, 2*vg.Inch, panels); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "t.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 2 columns × 3 in and 2 rows × 2 in at 110 dpi.
	if b := img.Bounds(); b.Dx() != 660 || b.Dy() != 440 {
		t.Errorf("size %v, want 660×440", b)
	}
	if r, g, b, a := img.At(1, 1).RGBA(); r != 0xffff || g != 0xffff || b != 0xffff || a != 0xffff {
		t.Errorf("corner %v %v %v %v, want opaque white", r, g, b, a)
	}
	if Enabled("none") || Enabled("") || !Enabled("eval-out") {
		t.Error("Enabled")
	}
}

func TestTicks(t *testing.T) {
	var got []string
	for _, tk := range (LogTicks{}).Ticks(0.01, 60) {
		got = append(got, tk.Label)
	}
	if want := "0.01 0.02 0.05 0.1 0.2 0.5 1 2 5 10 20 50"; join(got) != want {
		t.Errorf("LogTicks %q, want %q", join(got), want)
	}
	for _, tk := range (PlainTicks{}).Ticks(0, 1.2) {
		if len(tk.Label) > 4 {
			t.Errorf("PlainTicks label %q", tk.Label)
		}
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}
