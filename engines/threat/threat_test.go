package threat

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aiosfs/engines/ml"
	"aiosfs/engines/telemetry"
)

var t0 = time.Unix(1764795600, 0)

func obs(ms int, cpu float64) Observation {
	return Observation{Sample: telemetry.Sample{Time: t0.Add(time.Duration(ms) * time.Millisecond), CPU: cpu}}
}

func TestFeatureNamesAndSources(t *testing.T) {
	names := VectorNames()
	if len(names) != VectorLen || names[0] != "cpu@1s" || names[NumFeatures] != "cpu@10s" {
		t.Fatalf("names %v", names[:2])
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] || strings.Contains(n, "?") {
			t.Fatalf("name %q repeated or unnamed", n)
		}
		seen[n] = true
	}
	if FeatureIndex("net_sent@10s") != int(NumFeatures+NetSent) || FeatureIndex("nope") != -1 {
		t.Fatal("FeatureIndex")
	}
	// every feature constant is documented with its kernel source
	src, err := os.ReadFile("features.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, kw := range []string{"/proc/PID", "proc connector", "sock_diag", "fanotify", "cgroup", "pids.events"} {
		if !strings.Contains(string(src), kw) {
			t.Errorf("features.go names no %q source", kw)
		}
	}
}

func TestAggregatorWindows(t *testing.T) {
	g := NewAggregator()
	var vs []Vector
	// 4 samples a second for 12 s; forks in second 3, a setuid exec in 5
	for ms := 0; ms < 12000; ms += 250 {
		o := obs(ms, 1.0)
		if ms%500 == 0 {
			o.CPU = 0.5 // jagged: CPUSteady < 1
		}
		o.RSS = int64(ms) * 1000 // 1 MB/s growth
		o.NetSentRate = 1000
		o.Established = 1
		o.Remotes = []string{"127.0.0.1:1"}
		if ms/1000 == 3 {
			o.Events = []Event{{Kind: EvFork}, {Kind: EvFork}, {Kind: EvExec, Path: "/bin/a"}}
		}
		if ms == 5000 {
			o.Events = []Event{{Kind: EvExec, Path: "/usr/bin/su", SetID: true}, {Kind: EvUID}}
		}
		if v, _, ok := g.Add(o); ok {
			vs = append(vs, v)
		}
	}
	if len(vs) != 11 {
		t.Fatalf("%d windows from 12 s", len(vs))
	}
	w3 := vs[3]
	if w3.At(Forks, 0) != 8 || w3.At(Execs, 0) != 4 || w3.At(DistinctBins, 0) != 1 || w3.At(NewBins, 0) != 1 {
		t.Fatalf("second 3: forks %v execs %v bins %v new %v", w3.At(Forks, 0), w3.At(Execs, 0), w3.At(DistinctBins, 0), w3.At(NewBins, 0))
	}
	if vs[4].At(NewBins, 0) != 0 {
		t.Fatal("a known binary counted as new")
	}
	w5 := vs[5]
	if w5.At(SetIDExecs, 0) != 1 || w5.At(IDChanges, 0) != 1 {
		t.Fatal("setid exec / uid change")
	}
	if math.Abs(w5.At(CPU, 0)-0.75) > 1e-9 || w5.At(CPUSteady, 0) <= 0 || w5.At(CPUSteady, 0) >= 1 {
		t.Fatalf("cpu %v steady %v", w5.At(CPU, 0), w5.At(CPUSteady, 0))
	}
	if g := w5.At(MemGrowth, 0); math.Abs(g-1e6) > 1e5 {
		t.Fatalf("mem growth %v", g)
	}
	if w5.At(NetSent, 0) != 1000 || w5.At(Established, 0) != 1 {
		t.Fatal("net")
	}
	if vs[0].At(NewRemotes, 0) != 1 || vs[1].At(NewRemotes, 0) != 0 {
		t.Fatal("new remotes")
	}
	// the 10 s window of second 10 spans seconds 1..10: the 8 forks of
	// second 3 over 10 s, one setid exec
	w10 := vs[10]
	if w10.At(Forks, 1) != 0.8 || w10.At(SetIDExecs, 1) != 1 || w10.At(DistinctBins, 1) != 2 {
		t.Fatalf("10 s: forks %v setid %v bins %v", w10.At(Forks, 1), w10.At(SetIDExecs, 1), w10.At(DistinctBins, 1))
	}
	// out-of-order observation is dropped
	if _, _, ok := g.Add(obs(0, 1)); ok {
		t.Fatal("old observation closed a window")
	}
	if _, _, ok := g.Flush(); !ok {
		t.Fatal("flush")
	}
}

func TestCounterDeltasNeverNegative(t *testing.T) {
	g := NewAggregator()
	o := obs(0, 0)
	o.MajFaults, o.ForkFails = 100, 5
	g.Add(o)
	o = obs(500, 0)
	o.MajFaults, o.ForkFails = 50, 9 // a process left: majflt sum fell
	g.Add(o)
	v, _, _ := g.Add(obs(1000, 0))
	if v.At(MajFaults, 0) != 0 || v.At(ForkFails, 0) != 4 {
		t.Fatalf("majflt %v forkfails %v", v.At(MajFaults, 0), v.At(ForkFails, 0))
	}
}

func vec(kv map[string]float64) Vector {
	var v Vector
	for k, x := range kv {
		i := FeatureIndex(k)
		if i < 0 {
			panic(k)
		}
		v[i] = x
	}
	return v
}

func TestRuleFloor(t *testing.T) {
	cases := []struct {
		v    Vector
		want Type
		rule string
	}{
		{vec(map[string]float64{"forks@1s": 500}), ResourceExhaustion, "fork-storm"},
		{vec(map[string]float64{"setid_execs@1s": 1}), PrivilegeEscalation, "setid-exec"},
		{vec(map[string]float64{"sensitive_opens@1s": 2}), UnauthorizedAccess, "credential-read"},
		{vec(map[string]float64{"net_sent@10s": 50 << 20}), DataExfiltration, "exfiltration"},
		{vec(map[string]float64{"established@1s": 300}), DenialOfService, "connection-flood"},
		{vec(map[string]float64{"stdin_sockets@1s": 1}), UnauthorizedAccess, "remote-shell"},
		{vec(map[string]float64{"cpu@10s": 1, "cpu_steady@10s": 0.95, "established@10s": 1}), ResourceExhaustion, "miner"},
	}
	for _, c := range cases {
		r := EvalRules(DefaultRules, &c.v)
		if r.Type != c.want || len(r.Fired) == 0 || r.Fired[0] != c.rule || r.Score < 0.5 {
			t.Errorf("%s: got %+v", c.rule, r)
		}
	}
	idle := vec(map[string]float64{"cpu@1s": 0.01})
	if r := EvalRules(DefaultRules, &idle); r.Score != 0 || r.Type != Benign {
		t.Fatalf("idle: %+v", r)
	}
	// strongest first: both fork storm and setid
	v := vec(map[string]float64{"forks@1s": 500, "setid_execs@1s": 1})
	if r := EvalRules(DefaultRules, &v); r.Fired[0] != "fork-storm" || len(r.Top) != 2 || r.FloorScore != 0.95 {
		t.Fatalf("order: %+v", r)
	}
	// su reading /etc/shadow for nobody: named a privilege escalation
	v = vec(map[string]float64{"setid_execs@1s": 1, "sensitive_opens@1s": 1})
	if r := EvalRules(DefaultRules, &v); r.Type != PrivilegeEscalation {
		t.Fatalf("setid+shadow: %+v", r)
	}
	// a rate rule is not a floor
	v = vec(map[string]float64{"files_written@10s": 500})
	if r := EvalRules(DefaultRules, &v); r.Score == 0 || r.FloorScore != 0 {
		t.Fatalf("mass-rewrite: %+v", r)
	}
}

func TestPolicyParse(t *testing.T) {
	p, err := ParsePolicy("# mine\nalert 0.4\nthrottle 0.6\nquarantine 0.8 # comment\nkill off\nescalate 0.9\nquarantine 0.5 DataExfiltration\n")
	if err != nil {
		t.Fatal(err)
	}
	if a, esc := p.Decide(0.45, Benign); a != Alert || esc {
		t.Fatal("alert")
	}
	if a, _ := p.Decide(0.99, ResourceExhaustion); a != Quarantine {
		t.Fatalf("kill is off: %v", a)
	}
	if a, _ := p.Decide(0.55, DataExfiltration); a != Quarantine {
		t.Fatalf("per-type override: %v", a)
	}
	if a, _ := p.Decide(0.55, DenialOfService); a != Alert {
		t.Fatal("override leaked to another type")
	}
	if _, esc := p.Decide(0.95, Unknown); !esc {
		t.Fatal("escalate")
	}
	q, err := ParsePolicy(p.String())
	if err != nil || q.String() != p.String() {
		t.Fatalf("round trip: %v\n%s\n%s", err, p.String(), q.String())
	}
	c, err := ParsePolicy("alert=0.3 quarantine=0.95")
	if err != nil || c.Threshold[Alert] != 0.3 || c.Threshold[Quarantine] != 0.95 || c.Threshold[Throttle] != 0.7 {
		t.Fatalf("ctl form: %v %+v", err, c)
	}
}

func TestPolicyRefusals(t *testing.T) {
	for _, bad := range []struct{ in, msg string }{
		{"nuke 0.5", "unknown verb"},
		{"alert 1.5", "outside 0..1"},
		{"alert -0.1", "outside 0..1"},
		{"alert NaN", "outside 0..1"},
		{"alert 0x1p-1", "not a number"},
		{"alert lots", "not a number"},
		{"alert", "want"},
		{"alert 0.5 Martian", "unknown threat type"},
		{"alert 0.5\nalert 0.6", "twice"},
		{"escalate 0.5 Unknown", "no type"},
		{"alert=0.5 nuke", "verb=threshold"},
	} {
		_, err := ParsePolicy(bad.in)
		if err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("%q: %v (want %q)", bad.in, err, bad.msg)
		}
	}
	e := New(Config{})
	before := e.Policy().String()
	if _, err := ParsePolicy("alert 2"); err == nil {
		t.Fatal("accepted")
	}
	if e.Policy().String() != before {
		t.Fatal("a refused table changed the policy")
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"alert 0.5", "kill off\nquarantine 0.9 DataExfiltration", "alert=0.1 throttle=1", "# x\n\n", "escalate 1;alert 0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			return
		}
		for a := Alert; a < NumActions; a++ {
			for ty := Type(0); ty < NumTypes; ty++ {
				if th := p.ThresholdFor(a, ty); th != -1 && !(th >= 0 && th <= 1) {
					t.Fatalf("%q: %v threshold %v", s, a, th)
				}
			}
		}
		q, err := ParsePolicy(p.String())
		if err != nil || q.String() != p.String() {
			t.Fatalf("%q: rendering does not read back: %v", s, err)
		}
	})
}

func TestIntelTrendForecastWarning(t *testing.T) {
	s := NewSeries()
	for i := 0; i < 12; i++ {
		s.Add(Point{t0.Add(time.Duration(i) * time.Second), 0.05 * float64(i)})
	}
	if tr, slope := s.Trend(); tr != Rising || math.Abs(slope-0.05) > 1e-9 {
		t.Fatalf("trend %v slope %v", tr, slope)
	}
	var fc [Horizon]float64
	s.Forecast(fc[:])
	if !(fc[0] > 0.55 && fc[Horizon-1] > fc[0] && fc[Horizon-1] <= 1) {
		t.Fatalf("forecast %v", fc)
	}
	p := DefaultPolicy()
	w, ok := EarlyWarning(0.55, fc[:], &p, Unknown)
	if !ok || w.Verb != "throttle" || w.In < 1 || w.Predicted < 0.7 || fc[w.In-2] >= 0.7 {
		t.Fatalf("warning %+v %v (forecast %v)", w, ok, fc)
	}
	// falling and steady
	f := NewSeries()
	for i := 0; i < 10; i++ {
		f.Add(Point{Score: 1 - 0.1*float64(i)})
	}
	if tr, _ := f.Trend(); tr != Falling {
		t.Fatal("falling")
	}
	c := NewSeries()
	for i := 0; i < 700; i++ {
		c.Add(Point{Score: 0.2})
	}
	if tr, _ := c.Trend(); tr != Steady || c.Len() != HistoryLen {
		t.Fatal("steady / bounded")
	}
	if _, ok := EarlyWarning(0.2, c.Forecast(fc[:]), &p, Benign); ok {
		t.Fatal("a flat series warned")
	}
	if pts := c.Points(); len(pts) != HistoryLen {
		t.Fatal("points")
	}
}

// synthetic labelled windows: benign noise and five attack shapes
func synth(n int, seed uint64) []Labelled {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out []Labelled
	for i := 0; i < n; i++ {
		var v Vector
		for j := range v {
			v[j] = math.Abs(rng.NormFloat64()) * 0.1
		}
		v[CPU] = rng.Float64() * 0.8
		v[NumFeatures+CPU] = v[CPU]
		typ := Type(i % 6)
		switch typ {
		case ResourceExhaustion:
			v[Forks] = 200 + rng.Float64()*100
		case UnauthorizedAccess:
			v[SensitiveOpens] = 2 + float64(rng.IntN(3))
		case DataExfiltration:
			v[NumFeatures+NetSent] = 5e6 + rng.Float64()*1e6
			v[NetSent] = 5e6
		case DenialOfService:
			v[Established] = 300
		case PrivilegeEscalation:
			v[SetIDExecs] = 1 + float64(rng.IntN(2))
		}
		out = append(out, Labelled{V: v, Type: typ})
	}
	return out
}

func TestTrainScoreExplain(t *testing.T) {
	m, err := Train(synth(600, 1), 7)
	if err != nil {
		t.Fatal(err)
	}
	test := synth(120, 2)
	right := 0
	for _, d := range test {
		v := m.Score(&d.V, nil, nil)
		if v.Type == d.Type {
			right++
		}
	}
	if right < 110 {
		t.Fatalf("%d/120 right", right)
	}
	ex := vec(map[string]float64{"net_sent@10s": 6e6, "net_sent@1s": 6e6})
	v := m.Score(&ex, nil, nil)
	if v.Type != DataExfiltration || v.Score < 0.5 || v.Confidence < 0.5 || len(v.Top) == 0 || !strings.HasPrefix(v.Top[0].Name, "net_sent") {
		t.Fatalf("exfil verdict %+v", v)
	}
	// a shape the classifier never saw: novelty, not a known type
	odd := vec(map[string]float64{"mem_growth@1s": 5e9, "mem_growth@10s": 5e9, "majflt@1s": 1e5, "threads@1s": 5000})
	// is the agent's own baseline's to see: 30 benign windows learned
	base := ml.NewBaseline(VectorLen)
	for _, d := range synth(180, 9) {
		if d.Type == Benign {
			base.Update(m.Transform(&d.V, nil))
		}
	}
	if v := m.Score(&odd, base, nil); v.Anomaly < 0.5 || (v.Type != Unknown && v.PAttack < 0.5) {
		t.Fatalf("novel window: %+v", v)
	}
	// deterministic under the seed
	m2, _ := Train(synth(600, 1), 7)
	a, _ := m.Marshal()
	b, _ := m2.Marshal()
	if string(a) != string(b) {
		t.Fatal("same data and seed, different model")
	}
}

func TestTrainSanitises(t *testing.T) {
	d := synth(120, 3)
	// a quarantined agent's windows are never learned as normal
	q := d[0]
	q.Quarantined = true
	q.Type = Benign
	bad := d[1]
	bad.V[3] = math.Inf(1)
	m, err := Train(append(d, q, bad), 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Trained.Dropped != 2 {
		t.Fatalf("dropped %d", m.Trained.Dropped)
	}
	// a freak value is clipped at 4x the 99.9th percentile
	huge := vec(map[string]float64{"forks@1s": 1e15})
	x := m.Transform(&huge, nil)
	if x[Forks] > math.Log1p(m.Hi[Forks])+1e-9 {
		t.Fatal("not clipped")
	}
	if _, err := Train(d[:3], 1); err == nil {
		t.Fatal("3 rows trained")
	}
	if h := HashCmdline([]byte("salt"), "curl http://x --token=secret"); len(h) != 16 || strings.Contains(h, "secret") {
		t.Fatal("hash")
	}
}

func TestModelFileAndFallback(t *testing.T) {
	m, err := Train(synth(300, 4), 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pub, priv, _ := ml.GenerateKey()
	if err := SaveModel(dir, m, priv, "2026-12-03T21:00:00Z"); err != nil {
		t.Fatal(err)
	}
	var logs []string
	e := New(Config{Logf: func(f string, a ...any) { logs = append(logs, f) }})
	if err := e.LoadModel(dir, pub); err != nil {
		t.Fatal(err)
	}
	if st := e.Status(); st.Mode != "ml" || len(st.Model) != 64 {
		t.Fatalf("status %+v", st)
	}
	// tamper: one byte of the model file
	p := filepath.Join(dir, ModelFile)
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 1
	os.WriteFile(p, b, 0o600)
	err = e.LoadModel(dir, pub)
	if !errors.Is(err, ml.ErrDigest) {
		t.Fatalf("tampered: %v", err)
	}
	st := e.Status()
	if st.Mode != "rules" || !strings.Contains(st.ModelErr, "digest") || !strings.Contains(logs[len(logs)-1], "falling back to rules") {
		t.Fatalf("after tamper: %+v %v", st, logs)
	}
	// rules still score
	a := e.ScoreVector(1, vec(map[string]float64{"forks@1s": 500}), t0)
	if a.Source != "rules" || a.Type != ResourceExhaustion || a.ML != nil {
		t.Fatalf("fallback assessment %+v", a)
	}
	// a model over other features is refused even when signed
	other, _ := m.Marshal()
	other = []byte(strings.Replace(string(other), `"cpu@1s"`, `"gpu@1s"`, 1))
	ml.SaveModel(dir, map[string][]byte{ModelFile: other}, priv, "")
	if err := e.LoadModel(dir, pub); err == nil || !strings.Contains(err.Error(), "gpu@1s") {
		t.Fatalf("foreign features: %v", err)
	}
	if _, err := UnmarshalModel([]byte(`{"version":1,"exec":"sh"}`)); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestEngineEndToEnd(t *testing.T) {
	m, err := Train(synth(600, 5), 1)
	if err != nil {
		t.Fatal(err)
	}
	e := New(Config{})
	e.SetModel(m, "test")
	var last Assessment
	// 20 quiet seconds, then an exfiltration
	for ms := 0; ms < 30000; ms += 500 {
		o := obs(ms, 0.1)
		if ms >= 20000 {
			o.NetSentRate = 8e6
			o.Established = 1
		}
		if a, ok := e.Observe(3, o); ok {
			last = a
		}
	}
	if last.Type != DataExfiltration || last.Action < Quarantine || !last.Escalate || last.Source != "ml" {
		t.Fatalf("exfil assessment %+v", last)
	}
	got, ok := e.Assessment(3)
	if !ok || got.Score != last.Score {
		t.Fatal("Assessment")
	}
	line := got.AgentLine()
	for _, kw := range []string{"score=", "type=DataExfiltration", "action=quarantine", "escalate=1", "source=ml", "top=net_sent@", "trend="} {
		if !strings.Contains(line, kw) {
			t.Errorf("agent line %q lacks %q", line, kw)
		}
	}
	if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
		t.Fatal("one line")
	}
	if al := got.AlertLine(); !strings.Contains(al, "agent=3 action=quarantine") || !strings.Contains(al, "rules=exfiltration") {
		t.Fatalf("alert line %q", al)
	}
	st := e.Status()
	if st.Agents != 1 || st.Windows < 25 || st.Actions[Quarantine] == 0 {
		t.Fatalf("status %+v", st)
	}
	if s := st.StatusText(); !strings.HasPrefix(s, "mode=ml model=test agents=1 quarantined=0 ") || !strings.Contains(s, "model_error=-") {
		t.Fatalf("status text %q", s)
	}
	tr := e.Trends()
	if len(tr) != 2 || tr[0].Agent != 3 || tr[1].Agent != 0 {
		t.Fatalf("trends %+v", tr)
	}
	if s := TrendsText(tr); !strings.Contains(s, "agent=3 score=") || !strings.Contains(s, "agent=host ") {
		t.Fatalf("trends text %q", s)
	}
	if s := PredictText(tr); strings.Count(strings.SplitN(s, "\n", 2)[0], ",") != Horizon-1 {
		t.Fatalf("predict text %q", s)
	}
	e.Forget(3)
	if _, ok := e.Assessment(3); ok {
		t.Fatal("forgotten agent still assessed")
	}
}

func TestQuarantinedAgentNotLearned(t *testing.T) {
	m, _ := Train(synth(300, 6), 1)
	e := New(Config{})
	e.SetModel(m, "t")
	e.SetQuarantined(9, true)
	for ms := 0; ms < 5000; ms += 500 {
		e.Observe(9, obs(ms, 0.1))
	}
	e.mu.Lock()
	n := e.agents[9].base.N
	e.mu.Unlock()
	if n != 0 || !e.Quarantined(9) || e.Status().Quarantined != 1 {
		t.Fatalf("baseline learned %d windows of a quarantined agent", n)
	}
	e.SetQuarantined(9, false)
	// Released, its windows are learned again: one the classifier calls
	// Benign (synth's row 0 is), not one it names an attack.
	benign := synth(6, 7)[0].V
	for i := 0; i < 5; i++ {
		if a := e.ScoreVector(9, benign, t0.Add(time.Duration(10+i)*time.Second)); a.Type != Benign {
			t.Fatalf("the benign row scored %v %.3f", a.Type, a.Score)
		}
	}
	e.mu.Lock()
	n = e.agents[9].base.N
	e.mu.Unlock()
	if n != 5 {
		t.Fatalf("released agent learned %d of 5 benign windows", n)
	}
	// A window the classifier names an attack is not learned, whatever
	// the policy's alert threshold.
	p, _ := ParsePolicy("alert 1")
	e.SetPolicy(p)
	for ms := 20000; ms < 24000; ms += 500 {
		e.Observe(9, obs(ms, 0.1)) // PrivilegeEscalation 0.62 under this synthetic model
	}
	e.mu.Lock()
	n = e.agents[9].base.N
	e.mu.Unlock()
	if n != 5 {
		t.Fatalf("attack-typed windows were learned: %d", n)
	}
}

// TestNoveltyMustPersist: an anomaly the classifier does not recognise
// scores as Unknown only once it has lasted NoveltyWindows windows; a
// one-window burst stays what the classifier says.
func TestNoveltyMustPersist(t *testing.T) {
	// as Model.Score makes them: Unknown when 0.45·anomaly beats pAttack
	mv := func(an float64) MLVerdict {
		v := MLVerdict{Type: Benign, Score: 0.1, Confidence: 0.9, Anomaly: an, PAttack: 0.1, Prob: []float64{0.9, 0.02, 0.02, 0.02, 0.02, 0.02}}
		if 0.45*an > v.PAttack {
			v.Type, v.Score, v.Confidence = Unknown, 0.45*an, an
		}
		return v
	}
	var a agentState
	got := []string{}
	for _, an := range []float64{1, 0, 0, 1, 1, 1, 1, 0.5} {
		v := mv(an)
		a.persistNovelty(&v, 0.45)
		got = append(got, fmt.Sprintf("%v:%.2f", v.Type, v.Score))
	}
	want := "Benign:0.10 Benign:0.10 Benign:0.10 Benign:0.10 Benign:0.10 Unknown:0.45 Unknown:0.45 Unknown:0.23"
	if g := strings.Join(got, " "); g != want {
		t.Fatalf("got  %s\nwant %s", g, want)
	}
}

func TestEarlyWarningBeforeScore(t *testing.T) {
	e := New(Config{})
	// a score climbing 0.06 a window, set through a rule that always fires
	var warned, crossed int = -1, -1
	for i := 0; i < 20; i++ {
		s := 0.06 * float64(i)
		e.rules = []Rule{{"ramp", Unknown, s, true, []Cond{{CPU, 0, 0}}}}
		a := e.ScoreVector(1, Vector{}, t0.Add(time.Duration(i)*time.Second))
		if a.Warning != nil && a.Warning.Verb == "quarantine" && warned < 0 {
			warned = i
		}
		if a.Score >= 0.85 && crossed < 0 {
			crossed = i
		}
	}
	if warned < 0 || crossed < 0 || warned >= crossed {
		t.Fatalf("warned at %d, crossed at %d", warned, crossed)
	}
}

func BenchmarkScoreWindow(b *testing.B) {
	m, _ := Train(synth(600, 8), 1)
	e := New(Config{})
	e.SetModel(m, "b")
	v := vec(map[string]float64{"cpu@1s": 0.3, "cpu@10s": 0.3, "fds@1s": 20})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.ScoreVector(i%200, v, t0.Add(time.Duration(i)*time.Second))
	}
}

// One observation a second per agent, 200 agents: every Observe closes a
// window and scores it (the daemon's 1 s telemetry tick).
// "off" and "on" are PassRemedies.
func BenchmarkObserveWindow(b *testing.B) {
	eachRemedy(b, func(b *testing.B, e *Engine) {
		o := obs(0, 0.3)
		o.FDs, o.Procs, o.Threads, o.Established = 20, 2, 4, 1
		o.Remotes = []string{"127.0.0.1:80"}
		o.Events = []Event{{Kind: EvExec, Path: "/usr/bin/x"}}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			o.Time = t0.Add(time.Duration(i/200) * time.Second)
			e.Observe(i%200, o)
		}
	})
}

func TestRenderEmpty(t *testing.T) {
	a := Assessment{Agent: 2, Time: t0, Type: Benign}
	if got := a.AgentLine(); got != "score=0.000 type=Benign confidence=0.000 action=none escalate=0 trend=steady source=- top=- warn=- time=1764795600.000\n" {
		t.Fatalf("%q", got)
	}
	if got := a.AlertLine(); !strings.Contains(got, "rules=- top=-") {
		t.Fatalf("%q", got)
	}
	st := Status{Mode: "rules", Model: "-", ModelErr: "ml: bad \"x\""}
	if got := st.StatusText(); !strings.HasSuffix(got, `model_error="ml: bad \"x\""`+"\n") {
		t.Fatalf("%q", got)
	}
	e := New(Config{})
	if got := TrendsText(e.Trends()); got != "agent=host score=0.000 type=- trend=steady slope=0.000\n" {
		t.Fatalf("%q", got)
	}
}

// BenchmarkObserveIdle200 is the engine's share of a pass at 200 idle
// agents: each observation the held sample of an agent that ran nothing
// (CPU and rates 0, the same memory, fds and processes, no events), one
// a second, after the agents' ten-window history is full of them; "off"
// and "on" are PassRemedies.
//
//	go test -run '^$' -bench 'ObserveIdle200|ObserveWindow' -benchmem -count 3 ./engines/threat/
func BenchmarkObserveIdle200(b *testing.B) {
	eachRemedy(b, func(b *testing.B, e *Engine) {
		o := obs(0, 0)
		o.FDs, o.Procs, o.Threads, o.RSS, o.Mem = 5, 1, 1, 3<<20, 3<<20
		sec := 0
		pass := func() {
			sec++
			o.Time = t0.Add(time.Duration(sec) * time.Second)
			for id := 1; id <= 200; id++ {
				e.Observe(id, o)
			}
		}
		for range 30 {
			pass()
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			pass()
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/200, "µs/agent-pass")
	})
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// TestSeriesKeepsInstants: a series keeps each point's instant (as Unix
// nanoseconds) and score exactly, the zero time included, and wraps at
// HistoryLen.
func TestSeriesKeepsInstants(t *testing.T) {
	s := NewSeries()
	t0 := time.Date(2026, 12, 4, 21, 0, 0, 123456789, time.UTC)
	s.Add(Point{Score: 0.25}) // no time
	for i := 1; i <= HistoryLen; i++ {
		s.Add(Point{Time: t0.Add(time.Duration(i) * time.Second), Score: float64(i) / 1000})
	}
	if s.Len() != HistoryLen {
		t.Fatalf("Len %d, want %d", s.Len(), HistoryLen)
	}
	for i := 0; i < HistoryLen; i++ {
		p := s.At(i)
		want := t0.Add(time.Duration(HistoryLen-i) * time.Second)
		if !p.Time.Equal(want) || p.Score != float64(HistoryLen-i)/1000 {
			t.Fatalf("At(%d) = %v %v, want %v %v", i, p.Time, p.Score, want, float64(HistoryLen-i)/1000)
		}
	}
	z := NewSeries()
	z.Add(Point{Score: 0.5})
	if p := z.Last(); !p.Time.IsZero() || p.Score != 0.5 {
		t.Errorf("a point with no time came back as %v %v", p.Time, p.Score)
	}
}

// eachRemedy runs body on a fresh engine with a trained model, first
// with PassRemedies off and then on, as sub-benchmarks "off" and "on".
func eachRemedy(b *testing.B, body func(b *testing.B, e *Engine)) {
	m, _ := Train(synth(600, 8), 1)
	for _, on := range []bool{false, true} {
		b.Run(onOff(on), func(b *testing.B) {
			defer SetPassRemedies(PassRemedies())
			SetPassRemedies(on)
			e := New(Config{})
			e.SetModel(m, "b")
			body(b, e)
		})
	}
}
