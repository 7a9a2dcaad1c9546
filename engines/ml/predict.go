package ml

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/dsp/fourier"
)

// Params are the predictor's settings, shared by every series.
type Params struct {
	Horizons []int // steps ahead, ascending
	// Min is the smallest meaningful value of the series (VPA's first
	// bucket): 0.01 cores, 1 MiB, 1 KiB/s.
	Min float64
	// StepSeconds is the length of one step, for the VPA's 24 h
	// half-life and the time-of-day profile.
	StepSeconds float64
}

// Quantiles the predictor reports above its point forecast.
const (
	Q90 = 0.90
	Q99 = 0.99
)

// Pattern classes.
const (
	Unknown  = "unknown"
	Steady   = "steady"
	Periodic = "periodic"
	Sporadic = "sporadic"
	Growing  = "growing"
)

// Sizes of the predictor's windows.
const (
	PatternWindow = 512 // samples kept for patterns and period detection
	patEvery      = 64  // re-detect the period and the class every this many samples
	// lossDecay and sharpness were picked among {0.97, 0.99} x {3, 6}
	// on the `make eval` data (docs/sched.md), the only tuning done there.
	lossDecay = 0.99
	// sharpness of the ensemble's softmax over normalised losses: a model
	// with twice the best loss gets exp(-6) of its weight.
	sharpness = 6.0
)

// NewForecasters returns the project's forecasters for series of one
// resource, in a fixed order (the ensemble's and `sched/model`'s order).
func NewForecasters(p Params) []Forecaster {
	step := p.StepSeconds
	if step <= 0 {
		step = 1
	}
	return []Forecaster{
		&Last{},
		&EWMA{Alpha: 0.3},
		&HoltWinters{Alpha: 0.3, Beta: 0.05, Gamma: 0.3, Phi: 0.95},
		&AR{P: 8, Window: 256, Refit: 32},
		NewVPA(p.Min, step),
		NewAutopilot(step),
	}
}

// NewVPA is the VPA recommender's decaying histogram: 24 h half-life,
// p90, 15 % margin, 5 % buckets from min.
func NewVPA(min, stepSeconds float64) *DecayHist {
	if min <= 0 {
		min = 0.01
	}
	return &DecayHist{Min: min, Ratio: 1.05, Buckets: 600, HalfLife: 86400 / stepSeconds, Pct: 0.90, Margin: 0.15}
}

// NewAutopilot is Autopilot's moving-window max over the last hour (at
// least 12 steps), no decay and no margin, as its max recommender.
func NewAutopilot(stepSeconds float64) *WindowMax {
	w := int(3600 / stepSeconds)
	if w < 12 {
		w = 12
	}
	return &WindowMax{Window: w}
}

// qtrack follows one quantile of a stream of residuals online: a step up
// by tau*lr when a residual lands above it, down by (1-tau)*lr otherwise,
// which settles where a share tau lands below. lr follows the residuals'
// scale so the tracker works in any unit.
type qtrack struct{ q, scale float64 }

func (t *qtrack) add(r, tau float64) {
	a := math.Abs(r)
	t.scale += 0.05 * (a - t.scale)
	lr := 0.1*t.scale + 1e-12
	if r > t.q {
		t.q += tau * lr
	} else {
		t.q -= (1 - tau) * lr
	}
}

// track is one forecaster's record at one horizon.
type track struct {
	pending []float64 // predictions made for the next h steps, a ring
	loss    float64   // decayed mean absolute error
	q90     qtrack
	n       int
}

// Predictor forecasts one series with every forecaster and an online
// ensemble weighted per horizon by each forecaster's recent loss (as
// Autopilot's ML recommender picks among its models by recent cost). It
// also tracks p90 and p99 of each forecaster's residuals per horizon, the
// upper quantiles reported above the point forecast, and recognises the
// series' pattern.
type Predictor struct {
	p      Params
	models []Forecaster
	hw     *HoltWinters

	tracks [][]track // [model][horizon]
	ens    []track   // ensemble, per horizon
	ens99  []qtrack
	pinned int // index of a pinned forecaster, or -1

	t      int
	hist   ring
	peak   float64 // highest sample seen
	scale  float64 // EWMA of |x|, normalises losses across series
	preds  []float64
	weight [][]float64 // [horizon][model]

	pattern Pattern
	scratch []float64
	fft     *fourier.FFT

	tod      [24]struct{ sum, n float64 }
	todStart float64 // seconds of the first sample
	todLast  float64
}

// Pattern is what the predictor recognised in the series.
type Pattern struct {
	Class      string
	Period     int     // steps, for Periodic
	Confidence float64 // 0..1
	Typical    float64 // median of the window
	Peak       float64 // max of the window
	Slope      float64 // per step, from the window's linear fit
}

// NewPredictor returns a predictor with the project's forecasters.
func NewPredictor(p Params) *Predictor {
	ms := NewForecasters(p)
	pr := &Predictor{p: p, models: ms, pinned: -1, hist: newRing(PatternWindow)}
	for _, m := range ms {
		if hw, ok := m.(*HoltWinters); ok {
			pr.hw = hw
		}
	}
	nh := len(p.Horizons)
	pr.tracks = make([][]track, len(ms))
	for i := range ms {
		pr.tracks[i] = make([]track, nh)
		for j, h := range p.Horizons {
			pr.tracks[i][j].pending = make([]float64, h)
		}
	}
	pr.ens = make([]track, nh)
	for j, h := range p.Horizons {
		pr.ens[j].pending = make([]float64, h)
	}
	pr.ens99 = make([]qtrack, nh)
	pr.preds = make([]float64, len(ms)*nh)
	pr.weight = make([][]float64, nh)
	for j := range pr.weight {
		pr.weight[j] = make([]float64, len(ms))
		for i := range pr.weight[j] {
			pr.weight[j][i] = 1 / float64(len(ms))
		}
	}
	pr.pattern.Class = Unknown
	return pr
}

// Models returns the forecasters' names in order.
func (pr *Predictor) Models() []string {
	out := make([]string, len(pr.models))
	for i, m := range pr.models {
		out[i] = m.Name()
	}
	return out
}

// Pin makes forecaster name the only one the ensemble uses ("" or "auto"
// lifts the pin). It reports whether name is known.
func (pr *Predictor) Pin(name string) bool {
	if name == "" || name == "auto" {
		pr.pinned = -1
		return true
	}
	for i, m := range pr.models {
		if m.Name() == name {
			pr.pinned = i
			return true
		}
	}
	return false
}

// Pinned returns the pinned forecaster's name, or "auto".
func (pr *Predictor) Pinned() string {
	if pr.pinned < 0 {
		return "auto"
	}
	return pr.models[pr.pinned].Name()
}

// N is the number of samples seen.
func (pr *Predictor) N() int { return pr.t }

// WarmSamples is the default warm-up (sched/ctl `warmup`): how many
// samples a predictor needs before its forecast alone sets an allocation.
// Half the pattern detector's window, by which a period of up to 128
// samples has been seen twice and every forecaster scored some hundreds
// of times (chosen on the Google week, whose misses came in its first
// day; docs/sched.md).
const WarmSamples = PatternWindow / 2

// Young reports whether the predictor has seen fewer than warm samples
// (see Policy.Hold).
func (pr *Predictor) Young(warm int) bool { return pr.t < warm }

// Peak is the highest sample seen.
func (pr *Predictor) Peak() float64 { return pr.peak }

// Recent returns up to n of the latest samples, oldest first.
func (pr *Predictor) Recent(n int) []float64 {
	all := pr.hist.copyTo(make([]float64, pr.hist.n))
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return all
}

// Observe takes the next sample at unix time now (seconds; 0 when
// unknown): scores the predictions made for this step, updates every
// forecaster, and makes the next predictions. Constant work per sample
// except the period/pattern pass every patEvery samples (an FFT of
// PatternWindow samples, amortised).
func (pr *Predictor) Observe(x, now float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return
	}
	nh := len(pr.p.Horizons)
	nm := len(pr.models)
	if pr.t == 0 {
		pr.scale = math.Abs(x)
	}
	pr.scale += 0.01 * (math.Abs(x) - pr.scale)
	norm := pr.scale + pr.p.Min + 1e-12
	// Score: each pending slot holds the prediction made h steps ago for
	// this very step.
	for j, h := range pr.p.Horizons {
		slot := pr.t % h
		if pr.t >= h {
			for i := 0; i < nm; i++ {
				tr := &pr.tracks[i][j]
				r := x - tr.pending[slot]
				tr.loss = lossDecay*tr.loss + (1-lossDecay)*math.Abs(r)/norm
				tr.q90.add(r, Q90)
				tr.n++
			}
			e := &pr.ens[j]
			r := x - e.pending[slot]
			e.loss = lossDecay*e.loss + (1-lossDecay)*math.Abs(r)/norm
			e.q90.add(r, Q90)
			pr.ens99[j].add(r, Q99)
			e.n++
		}
	}
	for _, m := range pr.models {
		m.Observe(x)
	}
	pr.hist.add(x)
	if pr.t == 0 || x > pr.peak {
		pr.peak = x
	}
	pr.t++
	if pr.t%patEvery == 0 {
		pr.analyse()
	}
	if now > 0 {
		pr.addTOD(x, now)
	}
	// Predict and remember for scoring.
	for i, m := range pr.models {
		m.Predict(pr.p.Horizons, pr.preds[i*nh:(i+1)*nh])
	}
	for j, h := range pr.p.Horizons {
		// The prediction for step s = (t-1)+h is scored when the sample
		// with index s arrives, i.e. when pr.t == s before increment,
		// which reads slot s % h = (t-1) % h.
		slot := (pr.t - 1) % h
		pr.reweight(j)
		ens := 0.0
		for i := 0; i < nm; i++ {
			v := pr.preds[i*nh+j]
			pr.tracks[i][j].pending[slot] = v
			ens += pr.weight[j][i] * v
		}
		pr.ens[j].pending[slot] = ens
	}
}

// reweight sets horizon j's ensemble weights: a softmax over losses
// normalised by the best, so the weights do not depend on the series'
// scale; a pinned forecaster takes all.
func (pr *Predictor) reweight(j int) {
	w := pr.weight[j]
	if pr.pinned >= 0 {
		for i := range w {
			w[i] = 0
		}
		w[pr.pinned] = 1
		return
	}
	best := math.Inf(1)
	for i := range w {
		if l := pr.tracks[i][j].loss; l < best {
			best = l
		}
	}
	if pr.tracks[0][j].n == 0 || best <= 0 {
		// Nothing scored yet: trust the last value, which is what a
		// fresh agent's next sample most likely looks like.
		for i := range w {
			w[i] = 0
		}
		w[0] = 1
		return
	}
	sum := 0.0
	for i := range w {
		w[i] = math.Exp(-sharpness * (pr.tracks[i][j].loss/best - 1))
		sum += w[i]
	}
	for i := range w {
		w[i] /= sum
	}
}

// Forecast is one horizon's prediction.
type Forecast struct {
	Horizon       int // steps
	Point         float64
	P90, P99      float64
	Model         string // the forecaster with the largest weight
	Weight        float64
	EnsembleLoss  float64 // decayed MAE / scale
	ScoredSamples int
}

// Forecasts returns the ensemble's forecast at every horizon. Quantiles
// are the point plus the tracked residual quantile, never below the point.
func (pr *Predictor) Forecasts() []Forecast {
	nh := len(pr.p.Horizons)
	out := make([]Forecast, nh)
	for j, h := range pr.p.Horizons {
		// The ensemble prediction for step t-1+h sits in slot (t-1)%h.
		pt := 0.0
		if pr.t > 0 {
			pt = pr.ens[j].pending[(pr.t-1)%h]
		}
		f := Forecast{Horizon: h, Point: pt, EnsembleLoss: pr.ens[j].loss, ScoredSamples: pr.ens[j].n}
		f.P90 = pt + math.Max(0, pr.ens[j].q90.q)
		f.P99 = math.Max(f.P90, pt+math.Max(0, pr.ens99[j].q))
		bi := 0
		for i, w := range pr.weight[j] {
			if w > pr.weight[j][bi] {
				bi = i
			}
		}
		f.Model, f.Weight = pr.models[bi].Name(), pr.weight[j][bi]
		out[j] = f
	}
	return out
}

// ModelForecast returns forecaster i's last point and p90 at horizon j,
// for the evaluation's per-forecaster scores.
func (pr *Predictor) ModelForecast(i, j int) (point, p90 float64) {
	h := pr.p.Horizons[j]
	if pr.t == 0 {
		return 0, 0
	}
	tr := &pr.tracks[i][j]
	pt := tr.pending[(pr.t-1)%h]
	return pt, pt + tr.q90.q
}

// ModelStat is one forecaster's standing at one horizon (`sched/model`).
type ModelStat struct {
	Model   string
	Horizon int
	Loss    float64 // decayed MAE over the series' scale
	Weight  float64
	Samples int
}

// ModelStats lists every forecaster at every horizon, then the ensemble
// (Model "ensemble", weight 1).
func (pr *Predictor) ModelStats() []ModelStat {
	var out []ModelStat
	for j, h := range pr.p.Horizons {
		for i, m := range pr.models {
			tr := &pr.tracks[i][j]
			out = append(out, ModelStat{m.Name(), h, tr.loss, pr.weight[j][i], tr.n})
		}
		out = append(out, ModelStat{"ensemble", h, pr.ens[j].loss, 1, pr.ens[j].n})
	}
	return out
}

// Pattern returns the class found at the last analysis.
func (pr *Predictor) Pattern() Pattern { return pr.pattern }

// analyse finds the period (autocorrelation through an FFT), hands it to
// Holt-Winters, and classifies the window.
func (pr *Predictor) analyse() {
	x := pr.hist.copyTo(pr.scratchBuf(pr.hist.n))
	pr.pattern = Classify(x, &pr.fft)
	if pr.hw != nil {
		if pr.pattern.Period > 0 {
			pr.hw.SetPeriod(pr.pattern.Period)
		} else if pr.pattern.Class != Periodic && pr.pattern.Class != Unknown {
			pr.hw.SetPeriod(0)
		}
	}
}

func (pr *Predictor) scratchBuf(n int) []float64 {
	if cap(pr.scratch) < n {
		pr.scratch = make([]float64, n)
	}
	return pr.scratch[:n]
}

// Classify puts a window of samples (oldest first) into one class:
//
//	growing   a linear fit explains most of the variance (R² > 0.6) and
//	          rises by over 20 % of the mean across the window; confidence R²
//	steady    coefficient of variation under 0.1; confidence 1-cv/0.1
//	periodic  the detrended autocorrelation has a peak > 0.4 at a lag of
//	          2..n/3; confidence the peak's height; Period the lag
//	sporadic  anything else (bursts, noise); confidence 1-max(acf peak, R²)
//
// in that order of precedence. fftp caches an FFT plan between calls
// (nil: none).
// The window is modified (detrended in place).
func Classify(x []float64, fftp **fourier.FFT) Pattern {
	n := len(x)
	p := Pattern{Class: Unknown}
	if n < 16 {
		return p
	}
	sorted := append([]float64(nil), x...)
	sort.Float64s(sorted)
	p.Typical = sorted[n/2]
	p.Peak = sorted[n-1]
	// Linear fit against index.
	var sx, sy, sxx, sxy float64
	for i, v := range x {
		fi := float64(i)
		sx += fi
		sy += v
		sxx += fi * fi
		sxy += fi * v
	}
	fn := float64(n)
	mean := sy / fn
	den := fn*sxx - sx*sx
	slope := (fn*sxy - sx*sy) / den
	icpt := (sy - slope*sx) / fn
	var ssTot, ssRes float64
	for i, v := range x {
		d := v - mean
		ssTot += d * d
		e := v - (icpt + slope*float64(i))
		ssRes += e * e
	}
	p.Slope = slope
	r2 := 0.0
	if ssTot > 0 {
		r2 = 1 - ssRes/ssTot
	}
	cv := math.Sqrt(ssTot/fn) / (math.Abs(mean) + 1e-12)
	if r2 > 0.6 && slope > 0 && slope*fn > 0.2*math.Abs(mean) {
		p.Class, p.Confidence = Growing, r2
		return p
	}
	if cv < 0.1 {
		p.Class, p.Confidence = Steady, 1-cv/0.1
		return p
	}
	// Detrend, then autocorrelation by FFT (zero-padded to 2n, so it is
	// the linear, not circular, autocorrelation).
	for i := range x {
		x[i] -= icpt + slope*float64(i)
	}
	lag, peak := acfPeak(x, fftp)
	if peak > 0.4 {
		p.Class, p.Period, p.Confidence = Periodic, lag, clamp01(peak)
		return p
	}
	p.Class = Sporadic
	p.Confidence = clamp01(1 - math.Max(math.Max(peak, 0), r2))
	return p
}

// acfPeak returns the lag in 2..n/3 of the highest local maximum of the
// autocorrelation of x (zero mean), and its value.
func acfPeak(x []float64, fftp **fourier.FFT) (int, float64) {
	n := len(x)
	m := 1
	for m < 2*n {
		m <<= 1
	}
	if fftp == nil {
		var local *fourier.FFT
		fftp = &local
	}
	if *fftp == nil || (*fftp).Len() != m {
		*fftp = fourier.NewFFT(m)
	}
	f := *fftp
	buf := make([]float64, m)
	copy(buf, x)
	c := f.Coefficients(nil, buf)
	for i, v := range c {
		c[i] = complex(real(v)*real(v)+imag(v)*imag(v), 0)
	}
	acf := f.Sequence(nil, c)
	if acf[0] <= 0 {
		return 0, 0
	}
	// Collect local maxima, then take the shortest lag within 10 % of
	// the highest: multiples of the true period peak almost as high, and
	// picking among them by a hair would make the period jump (and
	// Holt-Winters restart its season) from one analysis to the next.
	type peak struct {
		lag int
		r   float64
	}
	var peaks []peak
	top := 0.0
	maxLag := n / 3
	for k := 2; k <= maxLag && k+1 < n; k++ {
		// Normalise by the overlap so long lags are not penalised.
		r := acf[k] / acf[0] * fnRatio(n, k)
		rp := acf[k-1] / acf[0] * fnRatio(n, k-1)
		rn := acf[k+1] / acf[0] * fnRatio(n, k+1)
		if r > rp && r >= rn && r > 0 {
			peaks = append(peaks, peak{k, r})
			top = math.Max(top, r)
		}
	}
	for _, p := range peaks {
		if p.r >= 0.9*top {
			return p.lag, p.r
		}
	}
	return 0, 0
}

func fnRatio(n, k int) float64 { return float64(n) / float64(n-k) }

func clamp01(v float64) float64 { return math.Max(0, math.Min(1, v)) }

// addTOD keeps the mean per hour of day (UTC).
func (pr *Predictor) addTOD(x, now float64) {
	if pr.todStart == 0 {
		pr.todStart = now
	}
	pr.todLast = now
	h := int(math.Mod(now, 86400) / 3600)
	pr.tod[h].sum += x
	pr.tod[h].n++
}

// TimeOfDay returns the mean per UTC hour once the series spans a day,
// else nil.
func (pr *Predictor) TimeOfDay() []float64 {
	if pr.todLast-pr.todStart < 86400 {
		return nil
	}
	out := make([]float64, 24)
	for h, b := range pr.tod {
		if b.n > 0 {
			out[h] = b.sum / b.n
		}
	}
	return out
}
