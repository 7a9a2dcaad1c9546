package ml

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Healing engine: Beta–Bernoulli Thompson sampling over recovery
// procedures, with success counts per procedure (pooled over agents) and
// per agent, so that a new agent starts from what worked elsewhere and an
// agent with its own history soon follows it.

// Arm is one procedure's record: successes and failures.
type Arm struct {
	S float64 `json:"s"`
	F float64 `json:"f"`
}

// Rate is the posterior mean success rate under a Beta(1,1) prior.
func (a Arm) Rate() float64 { return (a.S + 1) / (a.S + a.F + 2) }

// Bandit keeps arms per key (a procedure name) pooled, and per agent.
// Pool weight w (default 0.25) sets how much the pooled record counts in
// an agent's posterior: Beta(1 + w·S_pool + S_agent, 1 + w·F_pool + F_agent).
// Decay (0..1, default 1 = none) multiplies old counts at each update so
// that a procedure that stopped working is noticed.
type Bandit struct {
	Pool   map[string]Arm            `json:"pool"`
	Agents map[string]map[string]Arm `json:"agents"`
	W      float64                   `json:"w"`
	Decay  float64                   `json:"decay"`
	rng    *rand.Rand
}

// NewBandit returns an empty bandit drawing from a PCG seeded with seed.
func NewBandit(seed uint64) *Bandit {
	return &Bandit{Pool: map[string]Arm{}, Agents: map[string]map[string]Arm{}, W: 0.25, Decay: 1,
		rng: rand.New(rand.NewPCG(seed, 0xbe7a))}
}

// Seed resets the random source (after loading a saved bandit).
func (b *Bandit) Seed(seed uint64) { b.rng = rand.New(rand.NewPCG(seed, 0xbe7a)) }

func (b *Bandit) ensure() {
	if b.Pool == nil {
		b.Pool = map[string]Arm{}
	}
	if b.Agents == nil {
		b.Agents = map[string]map[string]Arm{}
	}
	if b.rng == nil {
		b.Seed(1)
	}
	if b.W == 0 {
		b.W = 0.25
	}
	if b.Decay == 0 {
		b.Decay = 1
	}
}

// Posterior returns the Beta parameters of arm for agent.
func (b *Bandit) Posterior(agent, arm string) (alpha, beta float64) {
	b.ensure()
	p := b.Pool[arm]
	a := b.Agents[agent][arm]
	return 1 + b.W*p.S + a.S, 1 + b.W*p.F + a.F
}

// Choose draws one sample per arm from its posterior for agent and
// returns the arm with the largest draw, and the draws. Arms are visited
// in sorted order so that a seed gives the same choice.
func (b *Bandit) Choose(agent string, arms []string) (string, map[string]float64) {
	b.ensure()
	if len(arms) == 0 {
		return "", nil
	}
	s := append([]string(nil), arms...)
	sort.Strings(s)
	draws := make(map[string]float64, len(s))
	best, bv := "", -1.0
	for _, a := range s {
		al, be := b.Posterior(agent, a)
		v := BetaSample(b.rng, al, be)
		draws[a] = v
		if v > bv {
			best, bv = a, v
		}
	}
	return best, draws
}

// Update records one outcome of arm for agent.
func (b *Bandit) Update(agent, arm string, success bool) {
	b.ensure()
	upd := func(a Arm) Arm {
		a.S *= b.Decay
		a.F *= b.Decay
		if success {
			a.S++
		} else {
			a.F++
		}
		return a
	}
	b.Pool[arm] = upd(b.Pool[arm])
	m := b.Agents[agent]
	if m == nil {
		m = map[string]Arm{}
		b.Agents[agent] = m
	}
	m[arm] = upd(m[arm])
}

// BetaSample draws from Beta(a, b) as X/(X+Y), X~Gamma(a), Y~Gamma(b).
func BetaSample(r *rand.Rand, a, b float64) float64 {
	x := gammaSample(r, a)
	y := gammaSample(r, b)
	if x+y == 0 {
		return 0.5
	}
	return x / (x + y)
}

// gammaSample is Marsaglia and Tsang's method (2000), with the boost
// Gamma(a) = Gamma(a+1)·U^(1/a) for a < 1.
func gammaSample(r *rand.Rand, a float64) float64 {
	if a < 1 {
		return gammaSample(r, a+1) * math.Pow(r.Float64(), 1/a)
	}
	d := a - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}
