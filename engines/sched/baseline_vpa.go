package sched

import "math"

// Faithful baselines for the evaluation (scripts/eval/sched): the
// Kubernetes VPA recommender as kubernetes/autoscaler's
// vertical-pod-autoscaler/pkg/recommender defines it, and the VPA as it
// is deployed (recommender loop, metrics once a minute, updater). The
// forecasters NewVPA and NewAutopilot in predict.go are simpler
// relatives kept for the ensemble; these are the comparison's.
//
// Every baseline here is an Allocator: it is shown one step's use at a
// time and says the allocation that stands for the next step. Its knob
// for the evaluation's trade-off curves is its safety margin.

// Allocator is a baseline in the evaluation: Observe one step's use
// (what was used while the last allocation stood), then Alloc is the
// allocation for the next step.
type Allocator interface {
	Observe(x float64)
	Alloc() float64
}

// vpaHist is the VPA's decaying histogram: exponential buckets whose
// first has width first and each next one is ratio times wider, so
// bucket n starts at first·(ratio^n − 1)/(ratio − 1), up to maxValue
// (util/histogram_options.go NewExponentialHistogramOptions, FindBucket,
// GetBucketStart); samples weighted by 2^((t − ref)/halfLife), the
// reference shifted forward when the exponent passes 100
// (util/decaying_histogram.go); Percentile returns the end of the bucket
// the percentile falls in (util/histogram.go Percentile).
type vpaHist struct {
	first, ratio float64
	w            []float64
	total        float64
	halfLife     float64 // seconds
	ref          float64 // seconds; weights are relative to it
	started      bool
}

// vpaEpsilon is the upstream histograms' epsilon (0.001 × the least
// sample weight 0.1, model/aggregations_config.go): a bucket lighter
// than it is empty.
const vpaEpsilon = 1e-4

func newVPAHist(first, maxValue, halfLife float64) *vpaHist {
	const ratio = 1.05
	n := int(math.Ceil(math.Log(maxValue*(ratio-1)/first+1)/math.Log(ratio))) + 1
	return &vpaHist{first: first, ratio: ratio, w: make([]float64, n), halfLife: halfLife}
}

func (h *vpaHist) bucket(x float64) int {
	if x < h.first {
		return 0
	}
	b := int(math.Log(x*(h.ratio-1)/h.first+1) / math.Log(h.ratio))
	return min(b, len(h.w)-1)
}

func (h *vpaHist) start(b int) float64 {
	if b == 0 {
		return 0
	}
	return h.first * (math.Pow(h.ratio, float64(b)) - 1) / (h.ratio - 1)
}

func (h *vpaHist) decay(t float64) float64 {
	if !h.started {
		h.ref, h.started = math.Floor(t/h.halfLife)*h.halfLife, true
	}
	if t > h.ref+100*h.halfLife {
		// Shift the reference to t: every weight scales alike.
		s := math.Exp2(-(t - h.ref) / h.halfLife)
		for i := range h.w {
			h.w[i] *= s
		}
		h.total *= s
		h.ref = t
	}
	return math.Exp2((t - h.ref) / h.halfLife)
}

func (h *vpaHist) add(x, weight, t float64) {
	wt := weight * h.decay(t)
	h.w[h.bucket(x)] += wt
	h.total += wt
}

func (h *vpaHist) sub(x, weight, t float64) {
	wt := weight * h.decay(t)
	b := h.bucket(x)
	h.w[b] -= wt
	h.total -= wt
	if h.w[b] < vpaEpsilon {
		h.total -= h.w[b]
		h.w[b] = 0
	}
}

// pct is util/histogram.go's Percentile: the end of the bucket where the
// running sum first reaches p of the total (the start of the last
// bucket, which has no end); 0 when empty.
func (h *vpaHist) pct(p float64) float64 {
	if h.total < vpaEpsilon {
		return 0
	}
	want, acc := p*h.total, 0.0
	last := len(h.w) - 1
	b := 0
	for ; b < last; b++ {
		acc += h.w[b]
		if acc >= want {
			break
		}
	}
	if b < last {
		return h.start(b + 1)
	}
	return h.start(b)
}

// VPAConfig sets a VPA baseline for one series.
type VPAConfig struct {
	StepSeconds float64
	// First is the first bucket's width in the series' unit: upstream
	// 0.01 cores for CPU and 1e7 bytes for memory
	// (model/aggregations_config.go); buckets reach 1e5 × First (1000
	// cores, 1e12 bytes).
	First float64
	// MaxValue is where the last bucket starts; 0 for upstream's 1e5 ×
	// First. A series in another unit (IO bytes/s) may need more.
	MaxValue float64
	// Memory: one peak per 24 h interval enters the histogram, and a use
	// above the allocation is an OOM kill that adds the bump
	// (model/container.go addMemorySample, RecordOOM).
	Memory bool
	// OOMMinBump is the OOM bump's least raise, 100 MiB in bytes
	// (OOMMinBumpUp); 0 where the series is not in bytes.
	OOMMinBump float64
	// PodMin is the least recommendation: 25 mCPU (0.025 cores) or
	// 250 MiB (podMinCPUMillicores, podMinMemoryMb in
	// recommender/main.go); 0 where the series' unit has none.
	PodMin float64
	// Margin is the safety margin, upstream 0.15
	// (SafetyMarginFraction): the evaluation's knob.
	Margin float64
}

// VPA default knobs (recommender/main.go, logic/recommender.go).
const (
	VPAMargin          = 0.15
	vpaTargetPct       = 0.90
	vpaLowerPct        = 0.50
	vpaUpperPct        = 0.95
	vpaHalfLife        = 86400 // both histograms, aggregations_config.go
	vpaMemInterval     = 86400 // MemoryAggregationInterval
	vpaCPUSampleWeight = 0.1   // minSampleWeight: every CPU sample's weight
	vpaOOMRatio        = 1.2   // OOMBumpUpRatio
)

// vpaState is the recommender's per-container state: the CPU histogram,
// the memory peaks' histogram and the current 24 h window
// (model/aggregate_container_state.go, model/container.go).
type vpaState struct {
	c         VPAConfig
	h         *vpaHist
	first     float64 // time of the first sample (confidence)
	last      float64
	n         int
	windowEnd float64
	memPeak   float64 // this window's usage peak
	oomPeak   float64 // this window's OOM sample
	seen      bool    // a sample was taken (confidence)
	windowed  bool    // a memory window was opened
}

func newVPAState(c VPAConfig) *vpaState {
	return &vpaState{c: c, h: newVPAHist(c.First, maxValue(c.First, c.MaxValue), vpaHalfLife)}
}

// sample adds one usage sample taken at time t.
func (s *vpaState) sample(x, t float64) {
	if !s.seen {
		s.first, s.seen = t, true
	}
	s.last = t
	s.n++
	if !s.c.Memory {
		s.h.add(x, vpaCPUSampleWeight, t)
		return
	}
	s.memSample(x, t, false)
}

// memSample is container.go addMemorySample: one peak per interval,
// timestamped at the interval's end; a higher sample in the same
// interval replaces the peak (the old one is subtracted).
func (s *vpaState) memSample(x, t float64, oom bool) {
	if !s.windowed {
		s.windowEnd, s.windowed = t, true
	}
	addNew := false
	if t < s.windowEnd {
		old := max(s.memPeak, s.oomPeak)
		if old != 0 && x > old {
			s.h.sub(old, 1, s.windowEnd)
			addNew = true
		}
	} else {
		shift := math.Floor((t-s.windowEnd)/vpaMemInterval)*vpaMemInterval + vpaMemInterval
		s.windowEnd += shift
		s.memPeak, s.oomPeak = 0, 0
		addNew = true
	}
	if addNew {
		s.h.add(x, 1, s.windowEnd)
		if oom {
			s.oomPeak = x
		} else {
			s.memPeak = x
		}
	}
}

// oom is container.go RecordOOM: used = max(request, this window's
// usage peak); the sample is max(used + OOMMinBump, used × 1.2).
func (s *vpaState) oom(request, t float64) {
	used := max(request, s.memPeak)
	s.memSample(max(used+s.c.OOMMinBump, used*vpaOOMRatio), t, true)
}

// estimate is p of the histogram × (1+margin) × mult, floored at
// PodMin (logic/recommender.go: percentile estimator, WithMargin, the
// bounds' confidence multiplier, then WithMinResource outermost in
// GetRecommendedPodResources).
func (s *vpaState) estimate(p, margin, mult float64) float64 {
	v := s.h.pct(p) * (1 + margin) * mult
	return max(v, s.c.PodMin)
}

// confidence is logic/estimator.go getConfidence with a 24 h interval:
// min(days between the first and last sample, samples / 1440).
func (s *vpaState) confidence() float64 {
	return min((s.last-s.first)/86400, float64(s.n)/1440)
}

// maxValue is the histograms' top: max, or upstream's 1e5 × first.
func maxValue(first, max float64) float64 {
	if max > 0 {
		return max
	}
	return 1e5 * first
}

// margins returns the margins a baseline runs at: the given ones (the
// evaluation's sweep) or the config's one.
func margins(c float64, ms []float64) []float64 {
	if len(ms) == 0 {
		return []float64{c}
	}
	return append([]float64(nil), ms...)
}

// VPARecommender is the upstream recommender's target applied at every
// step: CPU (and any non-memory series) the p90 of every sample in a
// decaying histogram (24 h half-life, constant weight), memory the p90
// of one peak per 24 h interval with the OOM bump, both × (1+Margin) and
// at least PodMin. It is stronger than a deployed VPA, which samples and
// recommends once a minute and changes a pod only through the updater
// (see DeployedVPA). It runs at several margins at once (Allocs): CPU
// shares one histogram; memory keeps one per margin, since an OOM
// depends on the limit.
type VPARecommender struct {
	c     VPAConfig
	ms    []float64
	st    []*vpaState
	t     float64
	alloc []float64
}

// NewVPARecommender runs at c.Margin, or at every margin given.
func NewVPARecommender(c VPAConfig, ms ...float64) *VPARecommender {
	v := &VPARecommender{c: c, ms: margins(c.Margin, ms)}
	v.alloc = make([]float64, len(v.ms))
	n := 1
	if c.Memory {
		n = len(v.ms)
	}
	for range n {
		v.st = append(v.st, newVPAState(c))
	}
	return v
}

func (v *VPARecommender) Observe(x float64) {
	if !v.c.Memory {
		v.st[0].sample(x, v.t)
		p := v.st[0].h.pct(vpaTargetPct)
		for i, m := range v.ms {
			v.alloc[i] = max(p*(1+m), v.c.PodMin)
		}
		v.t += v.c.StepSeconds
		return
	}
	for i, s := range v.st {
		if v.alloc[i] > 0 && x > v.alloc[i] {
			// Use above the limit: an OOM kill. The container dies at
			// the limit, so its usage sample is not seen.
			s.oom(v.alloc[i], v.t)
		} else {
			s.sample(x, v.t)
		}
		v.alloc[i] = s.estimate(vpaTargetPct, v.ms[i], 1)
	}
	v.t += v.c.StepSeconds
}

// Alloc is the allocation at the first margin.
func (v *VPARecommender) Alloc() float64 { return v.alloc[0] }

// Allocs are the allocations at every margin, in order.
func (v *VPARecommender) Allocs() []float64 { return v.alloc }

// DeployedVPA is the VPA as it runs: the metrics it reads are sampled
// once a minute (MetricsFetcherInterval; CPU as the minute's mean rate,
// memory as the working set at the scrape), the recommendation is
// recomputed once a minute, and the pod's request (the allocation here)
// is changed by the updater only when it lies outside the recommended
// [lower, upper] bounds (updater/priority/priority_processor.go), or when
// the pod has run 12 h and the target differs by 10 % or more
// (update_priority_calculator.go, podLifetimeUpdateThreshold,
// defaultUpdateThreshold). Bounds (logic/recommender.go): lower = p50 ×
// (1+Margin) × (1 + 0.001/conf)^-2, upper = p95 × (1+Margin) × (1 +
// 1/conf), both at least PodMin, conf from getConfidence. A new pod gets
// the target at admission. An OOM kill is seen at once (an event) and
// adds the bump to the recommender; the pod keeps its request until the
// updater evicts it. Several margins at once, as VPARecommender.
type DeployedVPA struct {
	c       VPAConfig
	ms      []float64
	st      []*vpaState
	t       float64
	perMin  int // steps per minute, at least 1
	k       int // steps into the current minute
	sum     []float64
	last    []float64
	request []float64
	since   []float64 // when the pod got its request
}

func NewDeployedVPA(c VPAConfig, ms ...float64) *DeployedVPA {
	per := int(math.Round(60 / c.StepSeconds))
	v := &DeployedVPA{c: c, ms: margins(c.Margin, ms), perMin: max(per, 1)}
	n := 1
	if c.Memory {
		n = len(v.ms)
	}
	for range n {
		v.st = append(v.st, newVPAState(c))
	}
	v.sum = make([]float64, n)
	v.last = make([]float64, n)
	v.request = make([]float64, len(v.ms))
	v.since = make([]float64, len(v.ms))
	return v
}

func (v *DeployedVPA) Observe(x float64) {
	for i, s := range v.st {
		y := x
		if v.c.Memory && v.request[i] > 0 && x > v.request[i] {
			s.oom(v.request[i], v.t)
			// The killed container restarts with the same request; its
			// usage at the scrape is at most that, not x.
			y = v.request[i]
		}
		v.sum[i] += y
		v.last[i] = y
	}
	v.k++
	v.t += v.c.StepSeconds
	if v.k < v.perMin {
		return
	}
	// A minute has passed: one metrics sample, one recommendation, one
	// updater pass.
	for i, s := range v.st {
		m := v.last[i]
		if !v.c.Memory {
			m = v.sum[i] / float64(v.k)
		}
		s.sample(m, v.t)
		v.sum[i] = 0
	}
	v.k = 0
	for i, mg := range v.ms {
		s := v.st[0]
		if v.c.Memory {
			s = v.st[i]
		}
		v.update(i, s, mg)
	}
}

func (v *DeployedVPA) update(i int, s *vpaState, margin float64) {
	target := s.estimate(vpaTargetPct, margin, 1)
	if v.request[i] == 0 {
		v.request[i], v.since[i] = target, v.t
		return
	}
	// With no spread of history yet (conf 0) the multipliers make the
	// bounds [PodMin, ∞).
	lower, upper := v.c.PodMin, math.Inf(1)
	if conf := s.confidence(); conf > 0 {
		lower = s.estimate(vpaLowerPct, margin, math.Pow(1+0.001/conf, -2))
		upper = s.estimate(vpaUpperPct, margin, 1+1/conf)
	}
	req := v.request[i]
	outside := req < lower || req > upper
	old := v.t-v.since[i] > 12*3600 && math.Abs(req-target)/req >= 0.1
	if outside || old {
		v.request[i], v.since[i] = target, v.t
	}
}

// Alloc is the request at the first margin.
func (v *DeployedVPA) Alloc() float64 { return v.request[0] }

// Allocs are the requests at every margin, in order.
func (v *DeployedVPA) Allocs() []float64 { return v.request }
