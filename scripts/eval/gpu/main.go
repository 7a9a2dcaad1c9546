// Command gpu replays one stream of GPU jobs through each placement policy
// of engines/gpu, using the engine's own scheduler (gpu.Sched), and prints
// a table: utilisation, queueing delay, jobs turned away, jobs killed for
// outgrowing their device, and fragmentation.
//
//	go run ./scripts/eval/gpu [-seed 1] [-jobs 3000] [-gap 15s] [-patience 15m]
//
// The machine is a DGX A100 as go-nvml's mock models it: eight 40 GiB
// devices. Jobs arrive as a Poisson stream (mean gap -gap) and come in
// four kinds (drawn with the seed):
//
//	kind       share  reserves     peaks at            runs (mean, exp.)
//	infer-s    40 %   2-6 GiB      the reservation     60 s
//	infer-l    25 %   8-16 GiB     1.25x at 30 % of it 120 s
//	train      20 %   10-20 GiB    1.6x  at 30 % of it 600 s
//	finetune   15 %   20-44 GiB    1.1x  at 30 % of it 300 s
//
// Peaks carry ±10 % noise and are capped at the device size; 10 % of jobs
// have priority 5. A job asks `gpu SIZE dev=any`; one larger than every
// device is rejected at once (ENOSPC); one that waits longer than
// -patience gives up (abandoned). When a job reaches its peak it asks the
// scheduler to grow its reservation on its device (Sched.Grow); if the
// device has no room the job is killed and counted as an overrun — what
// the daemon's overuse policy "kill" does to an agent over its reservation.
//
// The predict policy's predictor learns online, as engines/sched would:
// per kind, the mean ratio of observed peak to reservation over the jobs
// that have reached their peak so far (none until five have), times the
// job's reservation. It knows nothing of a job before it runs.
//
// Metrics, all over the whole replay:
//
//	util      time-average of reserved / total memory
//	wait      mean and p95 seconds from request to grant, granted jobs
//	frag      time-average, while any request waits, of 1 - largest free
//	          hole / total free memory (0: all free memory in one device)
package main

import (
	"container/heap"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"aiosfs/engines/gpu"
)

const gib = int64(1) << 30

type kind struct {
	name       string
	weight     float64
	lo, hi     float64 // reservation range, GiB
	growth     float64 // peak / reservation
	meanRunSec float64
}

var kinds = []kind{
	{"infer-s", 0.40, 2, 6, 1.0, 60},
	{"infer-l", 0.25, 8, 16, 1.25, 120},
	{"train", 0.20, 10, 20, 1.6, 600},
	{"finetune", 0.15, 20, 44, 1.1, 300},
}

type job struct {
	id      int
	kind    int
	arrive  float64
	bytes   int64
	peak    int64
	run     float64
	prio    int
	granted float64
	state   int // 0 new, 1 waiting, 2 running, 3 done/gone
}

func makeJobs(seed uint64, n int, gap float64) []*job {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var jobs []*job
	t := 0.0
	for i := 0; i < n; i++ {
		t += rng.ExpFloat64() * gap
		x, k := rng.Float64(), 0
		for k < len(kinds)-1 && x > kinds[k].weight {
			x -= kinds[k].weight
			k++
		}
		kd := kinds[k]
		b := int64((kd.lo + rng.Float64()*(kd.hi-kd.lo)) * float64(gib))
		b &^= 1<<20 - 1 // whole MiB, as people ask
		peak := int64(float64(b) * kd.growth * (0.9 + 0.2*rng.Float64()))
		if kd.growth == 1 {
			peak = b
		}
		peak = min(max(peak, b), 40*gib)
		prio := 0
		if rng.Float64() < 0.1 {
			prio = 5
		}
		jobs = append(jobs, &job{id: i + 1, kind: k, arrive: t, bytes: b, peak: peak,
			run: max(1, rng.ExpFloat64()*kd.meanRunSec), prio: prio})
	}
	return jobs
}

// learner is the online per-kind predictor.
type learner struct {
	jobs       map[int]*job
	sum        []float64
	n          []int
	minSamples int
}

func (l *learner) observe(j *job) {
	l.sum[j.kind] += float64(j.peak) / float64(j.bytes)
	l.n[j.kind]++
}

func (l *learner) PredictGPU(agent int, _ time.Duration) (int64, bool) {
	j, ok := l.jobs[agent]
	if !ok || l.n[j.kind] < l.minSamples {
		return 0, false
	}
	return int64(float64(j.bytes) * l.sum[j.kind] / float64(l.n[j.kind])), true
}

type event struct {
	t    float64
	seq  int
	kind int // evArrive, evGrow, evEnd, evGiveUp
	job  *job
}

const (
	evArrive = iota
	evGrow
	evEnd
	evGiveUp
)

type events []event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if e[i].t != e[j].t {
		return e[i].t < e[j].t
	}
	return e[i].seq < e[j].seq
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

type result struct {
	policy                              gpu.Policy
	done, rejected, abandoned, overruns int
	util, waitMean, waitP95, frag       float64
}

func replay(p gpu.Policy, src []*job, ndev int, patience float64) result {
	jobs := make([]*job, len(src))
	byID := map[int]*job{}
	for i, j := range src {
		c := *j
		jobs[i] = &c
		byID[c.id] = &c
	}
	totals := make([]int64, ndev)
	for i := range totals {
		totals[i] = 40 * gib
	}
	s := gpu.NewSched(totals)
	s.SetPolicy(p)
	lr := &learner{jobs: byID, sum: make([]float64, len(kinds)), n: make([]int, len(kinds)), minSamples: 5}
	s.SetPredictor(lr, time.Hour)

	var q events
	seq := 0
	push := func(t float64, k int, j *job) {
		seq++
		heap.Push(&q, event{t, seq, k, j})
	}
	for _, j := range jobs {
		push(j.arrive, evArrive, j)
	}
	res := result{policy: p}
	var waits []float64
	var capTotal = float64(int64(ndev) * 40 * gib)
	var last, resvArea, fragArea, waitTime float64
	base := time.Unix(0, 0)
	at := func(t float64) time.Time { return base.Add(time.Duration(t * float64(time.Second))) }

	started := func(grants []*gpu.Alloc, now float64) {
		for _, a := range grants {
			j := byID[a.Agent]
			j.state, j.granted = 2, now
			waits = append(waits, now-j.arrive)
			if j.peak > j.bytes {
				push(now+0.3*j.run, evGrow, j)
			}
			push(now+j.run, evEnd, j)
		}
	}
	// account integrates reserved memory and fragmentation up to now.
	account := func(now float64) {
		dt := now - last
		var resv, free, hole int64
		for d := 0; d < ndev; d++ {
			resv += s.Reserved(d)
			f := s.Free(d)
			free += f
			hole = max(hole, f)
		}
		resvArea += float64(resv) * dt
		if s.Queued() > 0 && free > 0 {
			fragArea += (1 - float64(hole)/float64(free)) * dt
			waitTime += dt
		}
		last = now
	}
	for q.Len() > 0 {
		ev := heap.Pop(&q).(event)
		account(ev.t)
		j := ev.job
		switch ev.kind {
		case evArrive:
			a, _, err := s.Request(gpu.Request{Agent: j.id, Bytes: j.bytes, Prio: j.prio, Dev: gpu.Any}, at(ev.t))
			switch {
			case errors.Is(err, syscall.ENOSPC):
				res.rejected++
				j.state = 3
			case err != nil:
				panic(err)
			case a != nil:
				started([]*gpu.Alloc{a}, ev.t)
			default:
				j.state = 1
				push(ev.t+patience, evGiveUp, j)
			}
		case evGiveUp:
			if j.state == 1 {
				g, _ := s.Release(j.id, at(ev.t))
				res.abandoned++
				j.state = 3
				started(g, ev.t)
			}
		case evGrow:
			if j.state != 2 {
				continue
			}
			lr.observe(j)
			if err := s.Grow(j.id, j.peak); err != nil {
				res.overruns++
				j.state = 3
				g, _ := s.Release(j.id, at(ev.t))
				started(g, ev.t)
			}
		case evEnd:
			if j.state != 2 {
				continue
			}
			if j.peak == j.bytes {
				lr.observe(j)
			}
			j.state = 3
			res.done++
			g, _ := s.Release(j.id, at(ev.t))
			started(g, ev.t)
		}
	}
	res.util = resvArea / (capTotal * last)
	if waitTime > 0 {
		res.frag = fragArea / waitTime
	}
	if len(waits) > 0 {
		sort.Float64s(waits)
		var sum float64
		for _, w := range waits {
			sum += w
		}
		res.waitMean = sum / float64(len(waits))
		res.waitP95 = waits[int(math.Ceil(0.95*float64(len(waits))))-1]
	}
	return res
}

func main() {
	seed := flag.Uint64("seed", 1, "random seed of the job stream")
	n := flag.Int("jobs", 3000, "number of jobs")
	gap := flag.Duration("gap", 15*time.Second, "mean time between arrivals")
	patience := flag.Duration("patience", 15*time.Minute, "how long a job waits before it gives up")
	flag.Parse()

	jobs := makeJobs(*seed, *n, gap.Seconds())
	fmt.Printf("gpu placement replay: seed=%d jobs=%d gap=%s patience=%s devices=8x40GiB (DGX A100 shape)\n",
		*seed, *n, *gap, *patience)
	fmt.Println("same job stream through every policy of engines/gpu.Sched; see the command's doc for the model")
	fmt.Println()
	var rs []result
	tw := tabwriter.NewWriter(os.Stdout, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tdone\trejected\tabandoned\toverruns\tutil\twait_mean_s\twait_p95_s\tfrag\t")
	for _, p := range gpu.Policies {
		r := replay(p, jobs, 8, patience.Seconds())
		rs = append(rs, r)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.3f\t%.1f\t%.1f\t%.3f\t\n", r.policy, r.done, r.rejected, r.abandoned, r.overruns,
			r.util, r.waitMean, r.waitP95, r.frag)
	}
	tw.Flush()
	pr, bf, sp := rs[3], rs[0], rs[1]
	fmt.Println()
	fmt.Printf("predict vs bestfit: overruns %d vs %d (%s), done %d vs %d, mean wait %.1fs vs %.1fs\n",
		pr.overruns, bf.overruns, ratio(pr.overruns, bf.overruns), pr.done, bf.done, pr.waitMean, bf.waitMean)
	fmt.Printf("predict vs spread:  overruns %d vs %d (%s), done %d vs %d, mean wait %.1fs vs %.1fs\n",
		pr.overruns, sp.overruns, ratio(pr.overruns, sp.overruns), pr.done, sp.done, pr.waitMean, sp.waitMean)
}

func ratio(a, b int) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("x%.2f", float64(a)/float64(b))
}
