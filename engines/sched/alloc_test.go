package sched

import (
	"math"
	"testing"
)

func TestPolicyRiseFallBump(t *testing.T) {
	p := Policy{Buffer: 0.1, Fall: 0.1, FloorDecay: 0, Min: 0.05, Max: 4}
	var a Alloc
	if !p.Next(&a, 1) || a.Reason != ReasonInitial || math.Abs(a.Value-1.1) > 1e-9 {
		t.Fatalf("initial: %+v", a)
	}
	// A predicted rise is met at once.
	p.Next(&a, 2)
	if a.Reason != ReasonRise || math.Abs(a.Value-2.2) > 1e-9 {
		t.Fatalf("rise: %+v", a)
	}
	// A fall is followed slowly: at most 10 % per decision.
	p.Next(&a, 0.1)
	if a.Reason != ReasonFall || math.Abs(a.Value-1.98) > 1e-9 {
		t.Fatalf("fall: %+v", a)
	}
	// Capacity bounds it.
	p.Next(&a, 100)
	if a.Value != 4 {
		t.Fatalf("capped: %+v", a)
	}
	// A bump raises at once and is remembered as the floor.
	var m Alloc
	mp := Policy{Buffer: 0.15, Fall: 1, Min: 16 << 20}
	mp.Next(&m, 64<<20)
	mp.Bump(&m, 64<<20, 1.2, 100<<20, ReasonOOM)
	if m.Value != 164<<20 || m.Floor != m.Value || m.Reason != ReasonOOM {
		t.Fatalf("oom bump: %+v", m)
	}
	mp.Next(&m, 1<<20) // Fall 1 would drop to the forecast, but not under the floor
	if m.Value != 164<<20 {
		t.Fatalf("floor forgotten: %+v", m)
	}
}

func TestFallPer(t *testing.T) {
	// Twelve 5 s decisions fall as much as one minute's rate.
	per := FallPer(0.45, 5)
	if got := 1 - math.Pow(1-per, 12); math.Abs(got-0.45) > 1e-9 {
		t.Fatalf("compound fall %.4f", got)
	}
	if FallPer(1, 5) != 1 {
		t.Fatal("rate 1")
	}
}

func TestFairShare(t *testing.T) {
	// Fits: everyone gets their demand.
	got := FairShare(4, []Claim{{1, 1, 100}, {2, 0.5, 100}})
	if got[1] != 1 || got[2] != 0.5 {
		t.Fatalf("fits: %v", got)
	}
	// Over capacity: the small claim is met, the rest split by weight.
	got = FairShare(2, []Claim{{1, 0.2, 100}, {2, 3, 100}, {3, 3, 300}})
	if math.Abs(got[1]-0.2) > 1e-9 || math.Abs(got[2]-0.45) > 1e-9 || math.Abs(got[3]-1.35) > 1e-9 {
		t.Fatalf("water-filling: %v", got)
	}
	sum := 0.0
	for _, v := range got {
		sum += v
	}
	if math.Abs(sum-2) > 1e-9 {
		t.Fatalf("sum %.3f", sum)
	}
}

func TestWeightFor(t *testing.T) {
	if WeightFor(0, nil) != 100 || WeightFor(-5, nil) != 305 || WeightFor(5, nil) != 33 {
		t.Fatalf("prio: %d %d %d", WeightFor(0, nil), WeightFor(-5, nil), WeightFor(5, nil))
	}
	if WeightFor(0, []string{"CAP_SYS_NICE"}) != 200 {
		t.Fatal("sys_nice")
	}
	if WeightFor(-40, nil) != 10000 || WeightFor(40, nil) != 1 {
		t.Fatal("bounds")
	}
}

func TestPlanCores(t *testing.T) {
	// Two cpus: one may be given away, cpu 0 stays shared.
	got := PlanCores(2, []CoreClaim{{1, 0.9}, {2, 1.0}})
	if len(got) != 1 || got[2] != "1" {
		t.Fatalf("2 cpus: %v", got)
	}
	// Eight cpus: largest first, from the top down.
	got = PlanCores(8, []CoreClaim{{1, 1.2}, {2, 3.0}, {3, 0.8}, {4, 4}})
	if got[4] != "4-7" || got[2] != "1-3" || len(got) != 2 {
		t.Fatalf("8 cpus: %v", got)
	}
}

func TestNextUseAdaptsBuffer(t *testing.T) {
	p := Policy{Buffer: 0.15, Fall: 1, Min: 0.01, Target: 0.01, Gain: 0.02, BufferMax: 0.4}
	// Never exceeded: the buffer sheds Gain×Target a decision, down to 0.
	var a Alloc
	for i := 0; i < 2000; i++ {
		p.NextUse(&a, 1, 0.5)
	}
	if a.Buffer != 0 || math.Abs(a.Value-1) > 1e-9 {
		t.Fatalf("unexceeded: %+v", a)
	}
	// Exceeded every time: it gains Gain×(1-Target) a decision, up to BufferMax.
	var b Alloc
	p.NextUse(&b, 1, 0) // initial: starts at Buffer
	if math.Abs(b.Buffer-0.15) > 1e-9 || math.Abs(b.Value-1.15) > 1e-9 {
		t.Fatalf("start: %+v", b)
	}
	p.NextUse(&b, 1, 2)
	if math.Abs(b.Buffer-(0.15+0.02*0.99)) > 1e-9 || b.Reason != ReasonRise {
		t.Fatalf("one miss: %+v", b)
	}
	for i := 0; i < 100; i++ {
		p.NextUse(&b, 1, 2)
	}
	if b.Buffer != 0.4 || math.Abs(b.Value-1.4) > 1e-9 {
		t.Fatalf("ceiling: %+v", b)
	}
	// Misses at the target rate keep the buffer where it is, on average.
	var c Alloc
	for i := 0; i < 10000; i++ {
		use := 0.5
		if i%100 == 0 {
			use = 10
		}
		p.NextUse(&c, 1, use)
	}
	if c.Buffer < 0.1 || c.Buffer > 0.2 {
		t.Fatalf("at target rate the buffer drifted to %.3f", c.Buffer)
	}
	// No target: NextUse is Next with the fixed buffer.
	q := p
	q.Target = 0
	var d Alloc
	q.NextUse(&d, 1, 5)
	q.NextUse(&d, 1, 5)
	if math.Abs(d.Value-1.15) > 1e-9 {
		t.Fatalf("fixed: %+v", d)
	}
}

// Hold raises a young allocation to the peak seen, never lowers one, and
// says why.
func TestHold(t *testing.T) {
	p := Policy{Min: 0.05, Max: 2}
	a := Alloc{Value: 0.4, Reason: ReasonFall}
	if !p.Hold(&a, 0.9) || a.Value != 0.9 || a.Reason != ReasonWarmup {
		t.Fatalf("hold at 0.9: %+v", a)
	}
	if p.Hold(&a, 0.5) || a.Value != 0.9 {
		t.Fatalf("a lower peak lowered the allocation: %+v", a)
	}
	if !p.Hold(&a, 5) || a.Value != 2 {
		t.Fatalf("hold past capacity: %+v", a)
	}
}
