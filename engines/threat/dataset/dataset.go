// Package dataset reads and writes the threat engine's labelled window
// data set (testdata/threat/windows.csv): one row per agent per 1 s
// window, recorded by scripts/threat/record from real scenario runs.
//
// Columns: run,round,scenario,label,attack,window,t_end, then the
// feature vector in threat.VectorNames order. run is
// "<scenario>-r<round>"; label a threat.Type name (Benign for benign
// runs); attack 0 or 1; window the index within the run from 0; t_end
// the window's end in seconds since the run started (3 decimals).
package dataset

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"

	"aiosfs/engines/threat"
)

// Row is one window.
type Row struct {
	Run      string
	Round    int
	Scenario string
	Label    threat.Type
	Window   int
	TEnd     float64
	V        threat.Vector
}

// Attack reports whether the row's run is an attack.
func (r *Row) Attack() bool { return r.Label != threat.Benign }

func header() []string {
	return append([]string{"run", "round", "scenario", "label", "attack", "window", "t_end"}, threat.VectorNames()...)
}

// Write writes rows with a header.
func Write(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(header()); err != nil {
		return err
	}
	for _, r := range rows {
		rec := []string{r.Run, strconv.Itoa(r.Round), r.Scenario, r.Label.String(), b2s(r.Attack()), strconv.Itoa(r.Window), strconv.FormatFloat(r.TEnd, 'f', 3, 64)}
		for _, x := range r.V {
			rec = append(rec, strconv.FormatFloat(x, 'g', 6, 64))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func b2s(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Read reads a data set written by Write. The header must match this
// build's feature names exactly.
func Read(r io.Reader) ([]Row, error) {
	cr := csv.NewReader(r)
	h, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("dataset: header: %w", err)
	}
	want := header()
	if len(h) != len(want) {
		return nil, fmt.Errorf("dataset: %d columns, this build writes %d", len(h), len(want))
	}
	for i := range want {
		if h[i] != want[i] {
			return nil, fmt.Errorf("dataset: column %d is %q, want %q", i+1, h[i], want[i])
		}
	}
	var out []Row
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("dataset: line %d: %w", line, err)
		}
		var row Row
		row.Run, row.Scenario = rec[0], rec[2]
		var ok bool
		if row.Label, ok = threat.ParseType(rec[3]); !ok {
			return nil, fmt.Errorf("dataset: line %d: label %q", line, rec[3])
		}
		if row.Round, err = strconv.Atoi(rec[1]); err != nil {
			return nil, fmt.Errorf("dataset: line %d: round: %w", line, err)
		}
		if row.Window, err = strconv.Atoi(rec[5]); err != nil {
			return nil, fmt.Errorf("dataset: line %d: window: %w", line, err)
		}
		if row.TEnd, err = strconv.ParseFloat(rec[6], 64); err != nil {
			return nil, fmt.Errorf("dataset: line %d: t_end: %w", line, err)
		}
		for i := range row.V {
			v, err := strconv.ParseFloat(rec[7+i], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("dataset: line %d: %s: bad number %q", line, want[7+i], rec[7+i])
			}
			row.V[i] = v
		}
		out = append(out, row)
	}
}
