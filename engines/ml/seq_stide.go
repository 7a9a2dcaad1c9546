package ml

// Stide is the sequence time-delay embedding detector of Forrest,
// Hofmeyr, Somayaji and Longstaff ("A sense of self for Unix processes",
// 1996; Hofmeyr, Forrest and Somayaji, "Intrusion detection using
// sequences of system calls", 1998): the database of every fixed-length
// window (length N) of the training traces. A window of a new trace that
// is not in the database is a mismatch. Two trace scores:
//
//   - MismatchRate: mismatches / windows, 0..1;
//   - LFC (locality frame count): the most mismatches in any Frame
//     consecutive windows, divided by Frame, 0..1 — a burst of
//     mismatches counts more than the same number spread thin.
//
// It has no randomness.
type Stide struct {
	DB    *NgramCounts
	Frame int
}

// NewStide makes an empty database of windows of length n and a locality
// frame of frame windows.
func NewStide(n, frame int) (*Stide, error) {
	db, err := NewNgramCounts(n)
	if err != nil {
		return nil, err
	}
	if frame < 1 {
		frame = 1
	}
	return &Stide{DB: db, Frame: frame}, nil
}

// Train adds every window of each trace to the database.
func (s *Stide) Train(traces [][]int) {
	for _, t := range traces {
		s.DB.Add(t)
	}
}

// StideScore is one trace's result.
type StideScore struct {
	Windows, Mismatches int
	MismatchRate        float64
	LFC                 float64
}

// Score runs a stream over tr and returns its final scores.
func (s *Stide) Score(tr []int) StideScore {
	st := s.Stream()
	if len(tr) > 0 && len(tr) < s.DB.N {
		// a trace shorter than a window is one window of itself
		k := GramKey(tr) | uint64(len(tr))<<60
		m := 0
		if s.DB.Counts[k] == 0 {
			m = 1
		}
		return StideScore{Windows: 1, Mismatches: m, MismatchRate: float64(m), LFC: float64(m) / float64(s.Frame)}
	}
	for _, c := range tr {
		st.Push(c)
	}
	return st.Result()
}

// StideStream scores a trace one call at a time.
type StideStream struct {
	s      *Stide
	last   []int
	frame  []bool
	fpos   int
	inF    int
	res    StideScore
	maxInF int
}

// Stream starts a stream against the database.
func (s *Stide) Stream() *StideStream {
	return &StideStream{s: s, frame: make([]bool, s.Frame)}
}

// Push takes the next call and returns the running LFC score (0 until the
// first full window) and whether the newest window was a mismatch.
func (t *StideStream) Push(c int) (float64, bool) {
	n := t.s.DB.N
	t.last = append(t.last, c)
	if len(t.last) > n {
		copy(t.last, t.last[1:])
		t.last = t.last[:n]
	}
	if len(t.last) < n {
		return t.res.LFC, false
	}
	miss := t.s.DB.Counts[GramKey(t.last)] == 0
	t.res.Windows++
	if t.frame[t.fpos] {
		t.inF--
	}
	t.frame[t.fpos] = miss
	t.fpos = (t.fpos + 1) % len(t.frame)
	if miss {
		t.inF++
		t.res.Mismatches++
	}
	if t.inF > t.maxInF {
		t.maxInF = t.inF
	}
	t.res.MismatchRate = float64(t.res.Mismatches) / float64(t.res.Windows)
	t.res.LFC = float64(t.maxInF) / float64(len(t.frame))
	return t.res.LFC, miss
}

// Result is the score of the calls pushed so far.
func (t *StideStream) Result() StideScore { return t.res }
