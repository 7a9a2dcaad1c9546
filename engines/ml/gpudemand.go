package ml

import (
	"math"
	"sync"
	"time"
)

// GPUDemand forecasts each agent's GPU memory with the same predictor the
// scheduler runs on CPU, memory and IO, fed with what the GPU engine
// measures at each of its watches (NVML's per-process memory, summed per
// agent). It satisfies engines/gpu's DemandPredictor, so the GPU
// scheduler's predict policy places a request by where the agent's use is
// heading rather than by what it asked for.
type GPUDemand struct {
	step time.Duration
	mu   sync.Mutex
	pred map[int]*Predictor
}

// gpuWarm is how many watches a forecast needs before it is trusted.
const gpuWarm = 8

// NewGPUDemand forecasts a series sampled every step.
func NewGPUDemand(step time.Duration) *GPUDemand {
	if step <= 0 {
		step = time.Second
	}
	return &GPUDemand{step: step, pred: map[int]*Predictor{}}
}

// Observe records one watch: used maps agent to GPU bytes. Agents absent
// from used are no longer on a GPU and are forgotten.
func (g *GPUDemand) Observe(used map[int]int64, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for id := range g.pred {
		if _, ok := used[id]; !ok {
			delete(g.pred, id)
		}
	}
	t := float64(now.UnixNano()) / 1e9
	for id, b := range used {
		p := g.pred[id]
		if p == nil {
			p = NewPredictor(Params{Horizons: []int{1, 5, 30, 60}, Min: 1 << 20, StepSeconds: g.step.Seconds()})
			g.pred[id] = p
		}
		p.Observe(float64(b), t)
	}
}

// PredictGPU returns the largest p90 forecast of agent's GPU memory over
// the horizons up to horizon (at least the nearest one), once the agent
// has been watched long enough.
func (g *GPUDemand) PredictGPU(agent int, horizon time.Duration) (int64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.pred[agent]
	if p == nil || p.N() < gpuWarm {
		return 0, false
	}
	steps := int(math.Ceil(horizon.Seconds() / g.step.Seconds()))
	best := math.Inf(-1)
	for i, f := range p.Forecasts() {
		if i == 0 || f.Horizon <= steps {
			best = math.Max(best, f.P90)
		}
	}
	return int64(best), true
}
