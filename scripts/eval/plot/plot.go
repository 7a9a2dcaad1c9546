// Package plot draws the evaluations' figures (PNG, gonum/plot): lines
// per method over a shared x, quantile bands, and several panels tiled
// into one image. The evaluations write them next to their tables into
// the directory of -plots, or of $AIOS_PLOTS, else eval-out; "none"
// writes none. What is written is said on stderr, so that the text an
// evaluation prints on stdout stays as it was.
package plot

import (
	"flag"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// DefaultDir is where the figures go when neither -plots nor $AIOS_PLOTS
// says.
const DefaultDir = "eval-out"

// Flag registers -plots on the command line and returns it.
func Flag() *string {
	def := os.Getenv("AIOS_PLOTS")
	if def == "" {
		def = DefaultDir
	}
	return flag.String("plots", def, `directory for the PNG figures ("none": none; default $AIOS_PLOTS, else `+DefaultDir+")")
}

// Enabled says whether dir asks for figures.
func Enabled(dir string) bool { return dir != "" && dir != "none" }

// Line is one method's curve.
type Line struct {
	Name   string
	X, Y   []float64
	Style  int  // index into the palette; the same method keeps its color in every panel
	Dashed bool // a bound or reference (Belady), not a method
	Bold   bool // the method the figure is about
	Points bool // mark every point
	Mark   int  // index of a point to mark larger (a default setting); -1: none
}

// Palette is a set of colors that stay apart when printed small
// (Okabe-Ito, with black for references).
var Palette = []color.Color{
	color.RGBA{0, 114, 178, 255},   // blue
	color.RGBA{213, 94, 0, 255},    // vermillion
	color.RGBA{0, 158, 115, 255},   // green
	color.RGBA{204, 121, 167, 255}, // purple
	color.RGBA{230, 159, 0, 255},   // orange
	color.RGBA{86, 180, 233, 255},  // sky blue
	color.RGBA{120, 120, 120, 255}, // grey
	color.RGBA{160, 130, 40, 255},  // ochre
	color.RGBA{100, 60, 150, 255},  // violet
	color.RGBA{0, 0, 0, 255},       // black
}

// New is a panel with a title and axis labels, in a size that reads when
// tiled.
func New(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.X.Label.TextStyle.Font.Size = vg.Points(9)
	p.Y.Label.TextStyle.Font.Size = vg.Points(9)
	p.X.Tick.Label.Font.Size = vg.Points(8)
	p.Y.Tick.Label.Font.Size = vg.Points(8)
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	p.Legend.Top = true
	p.Legend.Padding = vg.Points(1)
	p.Legend.ThumbnailWidth = vg.Points(14)
	p.Add(plotter.NewGrid())
	return p
}

// AddLines draws lines onto p, with a legend entry each when legend.
func AddLines(p *plot.Plot, legend bool, lines ...Line) error {
	for _, l := range lines {
		xy := make(plotter.XYs, 0, len(l.X))
		for i := range l.X {
			if !math.IsNaN(l.Y[i]) && !math.IsInf(l.Y[i], 0) {
				xy = append(xy, plotter.XY{X: l.X[i], Y: l.Y[i]})
			}
		}
		if len(xy) == 0 {
			continue
		}
		ln, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		c := Palette[l.Style%len(Palette)]
		ln.Color = c
		ln.Width = vg.Points(1)
		if l.Bold {
			ln.Width = vg.Points(2.2)
		}
		if l.Dashed {
			ln.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		p.Add(ln)
		var thumb plot.Thumbnailer = ln
		if l.Points {
			sc, err := plotter.NewScatter(xy)
			if err != nil {
				return err
			}
			sc.GlyphStyle.Color = c
			sc.GlyphStyle.Radius = vg.Points(1.6)
			sc.GlyphStyle.Shape = draw.CircleGlyph{}
			p.Add(sc)
		}
		if l.Mark >= 0 && l.Mark < len(l.X) && !math.IsNaN(l.Y[l.Mark]) {
			sc, err := plotter.NewScatter(plotter.XYs{{X: l.X[l.Mark], Y: l.Y[l.Mark]}})
			if err != nil {
				return err
			}
			sc.GlyphStyle.Color = c
			sc.GlyphStyle.Radius = vg.Points(4)
			sc.GlyphStyle.Shape = draw.RingGlyph{}
			p.Add(sc)
		}
		if legend && l.Name != "" {
			p.Legend.Add(l.Name, thumb)
		}
	}
	return nil
}

// Band fills the area between lo and hi over x.
func Band(p *plot.Plot, x, lo, hi []float64, c color.Color, name string) error {
	pts := make(plotter.XYs, 0, 2*len(x))
	for i := range x {
		pts = append(pts, plotter.XY{X: x[i], Y: lo[i]})
	}
	for i := len(x) - 1; i >= 0; i-- {
		pts = append(pts, plotter.XY{X: x[i], Y: hi[i]})
	}
	poly, err := plotter.NewPolygon(pts)
	if err != nil {
		return err
	}
	poly.Color = c
	poly.LineStyle.Width = 0
	p.Add(poly)
	if name != "" {
		p.Legend.Add(name, poly)
	}
	return nil
}

// Save tiles panels into rows × cols (filled row by row) of w × h each
// and writes the PNG to dir/name, saying so on stderr.
func Save(dir, name string, cols int, w, h vg.Length, panels []*plot.Plot) error {
	if len(panels) == 0 {
		return nil
	}
	rows := (len(panels) + cols - 1) / cols
	if len(panels) < cols {
		cols = len(panels)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	img := vgimg.NewWith(vgimg.UseWH(vg.Length(cols)*w, vg.Length(rows)*h), vgimg.UseDPI(110))
	dc := draw.New(img)
	// A white background: PNGs are transparent otherwise.
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(6), PadY: vg.Points(6),
		PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
		for c := range grid[r] {
			if i := r*cols + c; i < len(panels) {
				grid[r][c] = panels[i]
			}
		}
	}
	canvases := plot.Align(grid, tiles, dc)
	for r := range grid {
		for c := range grid[r] {
			if grid[r][c] != nil {
				grid[r][c].Draw(canvases[r][c])
			}
		}
	}
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", path)
	return nil
}

// LogTicks are ticks at 1, 2, 5 × powers of ten, labelled in plain
// numbers, for a log axis whose values are percentages or ratios.
type LogTicks struct{}

func (LogTicks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < min*0.999 || v > max*1.001 {
				continue
			}
			ts = append(ts, plot.Tick{Value: v, Label: fmt.Sprintf("%g", v)})
		}
	}
	return ts
}

// PlainTicks are gonum's default ticks labelled with %g (0, 250, 2500
// rather than 0.00, 250.00, 2500.00).
type PlainTicks struct{}

func (PlainTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = fmt.Sprintf("%.6g", ts[i].Value)
		}
	}
	return ts
}

// AtTicks are ticks at the given values only (the cache sizes measured).
type AtTicks []float64

func (a AtTicks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for _, v := range a {
		if v >= min && v <= max {
			ts = append(ts, plot.Tick{Value: v, Label: fmt.Sprintf("%g", v)})
		}
	}
	return ts
}

// EmptiestTopRight is the index of the panel whose top-right quarter
// holds the fewest points of lines (relative to its y range), where one
// shared legend covers the least: ys[i] and xs[i] are panel i's points.
func EmptiestTopRight(xs, ys [][]float64) int {
	best, bi := math.Inf(1), 0
	for i := range xs {
		if len(xs[i]) == 0 {
			continue
		}
		xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
		for j := range xs[i] {
			xmin, xmax, ymax = math.Min(xmin, xs[i][j]), math.Max(xmax, xs[i][j]), math.Max(ymax, ys[i][j])
		}
		worst := 0.0 // the highest point in the right half, as a share of the range
		for j := range xs[i] {
			if xs[i][j] >= xmin+0.5*(xmax-xmin) && ymax > 0 {
				worst = math.Max(worst, ys[i][j]/ymax)
			}
		}
		if worst < best {
			best, bi = worst, i
		}
	}
	return bi
}
