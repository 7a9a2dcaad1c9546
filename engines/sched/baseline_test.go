package sched

import (
	"math"
	"math/rand/v2"
	"testing"
)

// bucketEnd is the upstream VPA layout's bucket end for a value x,
// written out from the formulas (first·(1.05^(n+1) − 1)/0.05 with n =
// floor(log_1.05(x·0.05/first + 1))), independently of vpaHist.
func bucketEnd(x, first float64) float64 {
	n := math.Floor(math.Log(x*0.05/first+1) / math.Log(1.05))
	return first * (math.Pow(1.05, n+1) - 1) / 0.05
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Fatalf("%s: got %.6f, want %.6f", what, got, want)
	}
}

// The VPA's memory target on two days of hourly samples with one OOM,
// computed by hand. Day 1 peaks at 560 MB (weight 2^1: its window ends
// at 24 h), day 2 runs at 400 MB (weight 2^2), so p90 of the peaks (5.4
// of 6) lies in 560 MB's bucket, which ends at 584.0 MB: target 671.6 MB.
// At hour 30 use jumps to 2 GB, an OOM: used = max(request 671.6 MB,
// day 2's peak 400 MB), the bump max(used + 100 MiB, used × 1.2) = 806.0 MB
// replaces day 2's peak; p90 of {560 MB: 2, 806 MB: 4} lies in 806 MB's
// bucket, which ends at 850.7 MB: target 978.3 MB.
func TestVPAMemoryDailyPeaksAndOOM(t *testing.T) {
	v := NewVPARecommender(VPAConfig{StepSeconds: 3600, First: 1e7, Memory: true, OOMMinBump: 100 << 20, PodMin: 250 << 20, Margin: VPAMargin})
	for h := 0; h < 24; h++ {
		x := 500e6
		if h == 5 {
			x = 560e6
		}
		v.Observe(x)
	}
	near(t, "day 1", v.Alloc(), 1.15*bucketEnd(560e6, 1e7))
	for h := 24; h < 30; h++ {
		v.Observe(400e6)
	}
	before := 1.15 * bucketEnd(560e6, 1e7)
	near(t, "day 2 before the OOM", v.Alloc(), before)
	if math.Abs(before-671.63e6) > 0.01e6 {
		t.Fatalf("before the OOM: %.2f MB, by hand 671.63 MB", before/1e6)
	}
	v.Observe(2e9)
	bump := math.Max(before+100<<20, before*1.2)
	near(t, "after the OOM", v.Alloc(), 1.15*bucketEnd(bump, 1e7))
	if a := v.Alloc(); math.Abs(a-978.27e6) > 0.01e6 {
		t.Fatalf("after the OOM: %.2f MB, by hand 978.27 MB", a/1e6)
	}
	// The pod minimum: a 10 MB container is given 250 MiB.
	s := NewVPARecommender(VPAConfig{StepSeconds: 60, First: 1e7, Memory: true, OOMMinBump: 100 << 20, PodMin: 250 << 20, Margin: VPAMargin})
	s.Observe(10e6)
	near(t, "pod minimum", s.Alloc(), 250<<20)
}

// CPU: every sample counts, newer ones more (24 h half-life), and the
// percentile reports its bucket's end. Nine samples of 1 core then one of
// 2: the 2 is the heaviest sample, so the first nine weigh less than 90 %
// and p90 is the end of 2's bucket (2.0935); the other way round it is
// the end of 1's bucket (1.0163). Both × 1.15.
func TestVPACPUDecayAndBucketEnd(t *testing.T) {
	run := func(xs ...float64) float64 {
		v := NewVPARecommender(VPAConfig{StepSeconds: 60, First: 0.01, PodMin: 0.025, Margin: VPAMargin})
		for _, x := range xs {
			v.Observe(x)
		}
		return v.Alloc()
	}
	near(t, "1×9 then 2", run(1, 1, 1, 1, 1, 1, 1, 1, 1, 2), 1.15*bucketEnd(2, 0.01))
	near(t, "2 then 1×9", run(2, 1, 1, 1, 1, 1, 1, 1, 1, 1), 1.15*bucketEnd(1, 0.01))
	if math.Abs(bucketEnd(2, 0.01)-2.0935) > 1e-4 || math.Abs(bucketEnd(1, 0.01)-1.0163) > 1e-4 {
		t.Fatalf("bucket ends %.4f %.4f, by hand 2.0935 1.0163", bucketEnd(2, 0.01), bucketEnd(1, 0.01))
	}
	near(t, "pod minimum", run(0.001), 0.025)
	// The memory path is not used for CPU: an overrun is no OOM.
	near(t, "no OOM on CPU", run(1, 5), 1.15*bucketEnd(5, 0.01))
}

// The deployed VPA samples once a minute (the minute's mean for CPU),
// sets the target at admission and then keeps the request while it is
// within the updater's bounds: after a second minute at 1.5 cores the
// recommender's target is 1.5's bucket end × 1.15, but the lower bound
// (p50 × 1.15 × (1 + 0.001/conf)^-2, conf = 2 samples/1440 = 0.0014)
// and the upper (p95 × 1.15 × (1 + 1/conf)) still hold 1.0163 × 1.15.
func TestDeployedVPAKeepsRequestInBounds(t *testing.T) {
	d := NewDeployedVPA(VPAConfig{StepSeconds: 10, First: 0.01, PodMin: 0.025, Margin: VPAMargin})
	r := NewVPARecommender(VPAConfig{StepSeconds: 10, First: 0.01, PodMin: 0.025, Margin: VPAMargin})
	for i := 0; i < 5; i++ {
		d.Observe(1)
		if d.Alloc() != 0 {
			t.Fatalf("request before the first minute: %v", d.Alloc())
		}
	}
	d.Observe(1)
	near(t, "admission", d.Alloc(), 1.15*bucketEnd(1, 0.01))
	for i := 0; i < 6; i++ {
		d.Observe(1.5)
		r.Observe(1.5)
	}
	near(t, "kept in bounds", d.Alloc(), 1.15*bucketEnd(1, 0.01))
	near(t, "recommender", r.Alloc(), 1.15*bucketEnd(1.5, 0.01))
	// A request far under the lower bound is changed: after an hour at
	// 3 cores, p50 is in 3's bucket and conf = 61/1440, so lower =
	// 3.07 × 1.15 × 0.954 > 1.17.
	for i := 0; i < 360; i++ {
		d.Observe(3)
	}
	near(t, "evicted to the target", d.Alloc(), 1.15*bucketEnd(3, 0.01))
}

// Autopilot's memory recommender: S_max of 5-minute peaks over the last
// 24 h, +15 %, the highest of the last hour's recommendations, set every
// 5 minutes. One window peaking at 100 and 24 h at 50 after it: the 100
// leaves S_max 288 windows later and the limit an hour after that.
func TestAutopilotMemoryMaxOfPeaks(t *testing.T) {
	a := NewAutopilotRecommender(AutopilotConfig{StepSeconds: 60, Memory: true, Margin: AutopilotMargin})
	a.Observe(100)
	near(t, "first step (open window)", a.Alloc(), 115)
	for i := 1; i < 5; i++ {
		a.Observe(10)
	}
	near(t, "first window", a.Alloc(), 115)
	// 288 windows of 50 after the 100's: the 100 is 289 windows old.
	for w := 0; w < 288; w++ {
		for i := 0; i < 5; i++ {
			a.Observe(50)
		}
	}
	near(t, "hour max still holds it", a.Alloc(), 115)
	for w := 0; w < 10; w++ {
		for i := 0; i < 5; i++ {
			a.Observe(50)
		}
	}
	near(t, "10 windows later", a.Alloc(), 115)
	for i := 0; i < 5; i++ {
		a.Observe(50)
	}
	near(t, "an hour of recommendations without it", a.Alloc(), 57.5)
	// Between window ends the limit stands.
	a.Observe(500)
	near(t, "mid-window", a.Alloc(), 57.5)
}

// Autopilot's CPU recommender: S_p95 of the load-adjusted histogram.
// One window at 9 cores then 19 at 1 core (one 300 s sample each): by
// count, p95 of the decayed histogram is in 1's bucket (the 19 newer
// ones weigh 95.2 %); by load the 9 holds 8.43 of 26.93 core-weights,
// so S_p95 is the end of 9's bucket, 9.2403 × 1.15.
func TestAutopilotCPULoadAdjusted(t *testing.T) {
	a := NewAutopilotRecommender(AutopilotConfig{StepSeconds: 300, First: 0.01, Margin: AutopilotMargin})
	a.Observe(9)
	for i := 0; i < 19; i++ {
		a.Observe(1)
	}
	near(t, "S_p95 × 1.15", a.Alloc(), 1.15*bucketEnd(9, 0.01))
	if math.Abs(bucketEnd(9, 0.01)-9.2403) > 1e-4 {
		t.Fatalf("bucket end %.4f, by hand 9.2403", bucketEnd(9, 0.01))
	}
	// Plain (count) p95 of the same samples, for contrast: the VPA's
	// histogram with the same 12 h half-life gives 1's bucket.
	h := newVPAHist(0.01, 1000, apCPUHalfLife)
	h.add(9, 1, 0)
	for i := 1; i < 20; i++ {
		h.add(1, 1, float64(300*i))
	}
	near(t, "count p95", h.pct(0.95), bucketEnd(1, 0.01))
}

// Running at several margins in one pass gives what separate runs at
// each margin give (memory keeps its own OOM history per margin).
func TestBaselinesSweepEqualsSeparateRuns(t *testing.T) {
	ms := []float64{-0.3, 0, 0.15, 1}
	x := sine(3000, 97, 40e6, 300e6, 20e6, 3)
	for i := range x {
		if i%500 == 250 {
			x[i] *= 1.8 // a spike: an OOM at small margins
		}
	}
	for _, mem := range []bool{false, true} {
		c := VPAConfig{StepSeconds: 20, First: 1e7, Memory: mem, OOMMinBump: 100 << 20, PodMin: 250 << 20}
		rec, dep := NewVPARecommender(c, ms...), NewDeployedVPA(c, ms...)
		ap := NewAutopilotRecommender(AutopilotConfig{StepSeconds: 20, First: 1e7, Memory: mem}, ms...)
		var one []Allocator
		for _, m := range ms {
			c.Margin = m
			one = append(one, NewVPARecommender(c), NewDeployedVPA(c), NewAutopilotRecommender(AutopilotConfig{StepSeconds: 20, First: 1e7, Memory: mem, Margin: m}))
		}
		for _, v := range x {
			rec.Observe(v)
			dep.Observe(v)
			ap.Observe(v)
			for _, o := range one {
				o.Observe(v)
			}
			for i := range ms {
				if rec.Allocs()[i] != one[3*i].Alloc() || dep.Allocs()[i] != one[3*i+1].Alloc() || math.Abs(ap.Allocs()[i]-one[3*i+2].Alloc()) > 1e-6*ap.Allocs()[i] {
					t.Fatalf("mem=%v margin %v: sweep %v %v %v, alone %v %v %v", mem, ms[i], rec.Allocs()[i], dep.Allocs()[i], ap.Allocs()[i], one[3*i].Alloc(), one[3*i+1].Alloc(), one[3*i+2].Alloc())
				}
			}
		}
	}
}

// sine is a noisy sine wave: level + amp·sin(2πi/period) + noise·N(0,1).
func sine(n, period int, amp, level, noise float64, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	x := make([]float64, n)
	for i := range x {
		x[i] = level + amp*math.Sin(2*math.Pi*float64(i)/float64(period)) + noise*r.NormFloat64()
	}
	return x
}
