package sched

import (
	"math"
	"time"
)

// HostForecast is the host's CPU load forecast in cores: for each of the
// next k steps of the sampling interval, the sum over the agents the
// scheduler follows of each one's CPU forecast (the ensemble's point
// forecast, ml.Predictor.Path, never below 0). Load[i] is the forecast
// for Start + i·Step, Start being one step after the newest sample. k ≤ 0
// takes the longest forecast horizon (sched/ctl's horizons, 60 s by
// default): beyond it no forecaster was scored, so its shape there is
// extrapolation. It is computed when asked, from the predictors every
// pass already feeds, under the engine's lock; ok is false while no agent
// has a sample (nothing to forecast from).
func (e *Engine) HostForecast(k int) (start time.Time, step time.Duration, load []float64, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	sec := e.stepSeconds()
	if k <= 0 {
		hs := horizonSteps(e.set.Horizons, sec)
		k = 1
		if len(hs) > 0 {
			k = hs[len(hs)-1]
		}
	}
	var last time.Time
	load = make([]float64, k)
	for _, st := range e.agents {
		p := st.pred[resCPU]
		if p.N() == 0 {
			continue
		}
		ok = true
		if st.lastTime.After(last) {
			last = st.lastTime
		}
		path := p.Path(k)
		for i := range load {
			if i < len(path) {
				load[i] += math.Max(0, path[i])
			}
		}
	}
	if !ok {
		return time.Time{}, 0, nil, false
	}
	step = time.Duration(sec * float64(time.Second))
	return last.Add(step), step, load, true
}

// Forecasting reports whether HostForecast has anything to forecast from
// (some agent has a sample), without computing it.
func (e *Engine) Forecasting() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, st := range e.agents {
		if st.pred[resCPU].N() > 0 {
			return true
		}
	}
	return false
}
