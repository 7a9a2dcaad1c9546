package syscalls

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aiosfs/engines/ml"
)

type logBuf struct{ strings.Builder }

func (l *logBuf) Logf(f string, a ...any) { fmt.Fprintf(&l.Builder, f+"\n", a...) }

// calibrated is a persisted signal whose agent 7 (cgroup 1007) has
// learned and calibrated the benign loop, so its profile is saved.
func calibrated(t *testing.T, dir string, key []byte, log *logBuf) *Signal {
	t.Helper()
	s := NewOffline(Config{LearnCalls: 2000, CalibCalls: 1000, Logf: log.Logf})
	if n, err := s.Persist(dir, key); err != nil || n != 0 {
		t.Fatalf("Persist on an empty dir: %d %v", n, err)
	}
	s.Map(7, 1007)
	feed(s, 1007, 100, benign, 200)
	feed(s, 1007, 101, benign, 100)
	if ph, _ := s.Phase(7); ph != "scoring" {
		t.Fatalf("phase %q", ph)
	}
	return s
}

// scores is the signal's verdicts on a steady window and a changed one.
func scores(s *Signal) (steady, changed float64, ev []string) {
	now := time.Now()
	s.Score(7, now)
	feed(s, 1007, 102, benign, 20)
	v, _ := s.Score(7, now)
	steady = v.Score
	feed(s, 1007, 103, attack, 10)
	v, _ = s.Score(7, now)
	return steady, v.Score, v.Evidence
}

// TestProfileSurvivesRestart: a calibrated profile is saved signed, and a
// new signal (a restarted daemon) loads it, scores at once and scores
// exactly as the one that learned it; learn and Forget delete it.
func TestProfileSurvivesRestart(t *testing.T) {
	_, key, _ := ml.GenerateKey()
	dir := t.TempDir()
	var log logBuf
	a := calibrated(t, dir, key, &log)
	pdir := filepath.Join(dir, "agent-7")
	for _, f := range []string{"profile.json", ml.ManifestName, ml.SigName} {
		if _, err := os.Stat(filepath.Join(pdir, f)); err != nil {
			t.Fatalf("saved profile: %v", err)
		}
	}
	if st := a.Status(); !strings.Contains(st, "saved=1") {
		t.Errorf("status %q, want saved=1", st)
	}
	s1, c1, ev1 := scores(a)

	b := NewOffline(Config{LearnCalls: 2000, CalibCalls: 1000, Logf: log.Logf})
	if n, err := b.Persist(dir, key); err != nil || n != 1 {
		t.Fatalf("Persist: loaded %d, %v; log:\n%s", n, err, log.String())
	}
	if ph, _ := b.Phase(7); ph != "scoring" {
		t.Fatalf("loaded profile's phase %q, want scoring", ph)
	}
	if st := b.Status(); !strings.Contains(st, "loaded=1") || !strings.Contains(st, "refused=0") || !strings.Contains(st, "scoring=1") {
		t.Errorf("status %q", st)
	}
	b.Map(7, 1007)
	s2, c2, ev2 := scores(b)
	t.Logf("learned: steady %.3f changed %.3f %v; loaded: steady %.3f changed %.3f %v", s1, c1, ev1, s2, c2, ev2)
	if s1 != s2 || c1 != c2 || strings.Join(ev1, ",") != strings.Join(ev2, ",") {
		t.Errorf("the loaded profile scores differently: steady %v/%v changed %v/%v evidence %v/%v", s1, s2, c1, c2, ev1, ev2)
	}
	if c2 < 0.5 || s2 != 0 {
		t.Errorf("loaded profile: steady %.3f, changed %.3f", s2, c2)
	}
	if !strings.Contains(log.String(), "syscall profile of agent 7 loaded") {
		t.Errorf("log:\n%s", log.String())
	}

	// learn N discards the saved profile with the one in memory.
	if err := b.Learn(7); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pdir); !os.IsNotExist(err) {
		t.Errorf("after learn the saved profile is still there: %v", err)
	}
	c := NewOffline(Config{LearnCalls: 2000, CalibCalls: 1000})
	if n, _ := c.Persist(dir, key); n != 0 {
		t.Errorf("after learn a restart loads %d profiles", n)
	}
	// an agent removed: its profile goes
	calibrated(t, dir, key, &log).Forget(7)
	if _, err := os.Stat(pdir); !os.IsNotExist(err) {
		t.Errorf("after Forget the saved profile is still there: %v", err)
	}
}

// TestProfileTamperedRefused: a saved profile changed by one byte, signed
// by another key, or made with other constants is refused: the agent
// learns again, the log and threat/status say why, nothing is loaded.
func TestProfileTamperedRefused(t *testing.T) {
	_, key, _ := ml.GenerateKey()
	_, other, _ := ml.GenerateKey()
	cases := []struct {
		name   string
		damage func(t *testing.T, pdir string)
		key    []byte
		cfg    Config
		why    string
	}{
		{"one byte of profile.json", func(t *testing.T, pdir string) {
			p := filepath.Join(pdir, "profile.json")
			b, _ := os.ReadFile(p)
			i := bytes.Index(b, []byte(`"base":`)) + len(`"base":`)
			b[i] ^= 1 // 3.xx -> 2.xx: a quieter base, still valid JSON
			os.WriteFile(p, b, 0o600)
		}, key, Config{}, "digest does not match"},
		{"manifest.json rewritten", func(t *testing.T, pdir string) {
			p := filepath.Join(pdir, ml.ManifestName)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"version": 1`), []byte(`"version":  1`), 1), 0o600)
		}, key, Config{}, "signature does not verify"},
		{"signature removed", func(t *testing.T, pdir string) { os.Remove(filepath.Join(pdir, ml.SigName)) }, key, Config{}, "signature does not verify"},
		{"another key", func(*testing.T, string) {}, other, Config{}, "signature does not verify"},
		{"other constants", func(*testing.T, string) {}, key, Config{Chunk: 50}, "chunk 100; this daemon uses order 4, chunk 50"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var log logBuf
			calibrated(t, dir, key, &log)
			tc.damage(t, filepath.Join(dir, "agent-7"))
			cfg := tc.cfg
			cfg.LearnCalls, cfg.CalibCalls, cfg.Logf = 2000, 1000, log.Logf
			s := NewOffline(cfg)
			n, err := s.Persist(dir, tc.key)
			if err != nil || n != 0 {
				t.Fatalf("Persist: loaded %d, %v", n, err)
			}
			if ph, _ := s.Phase(7); ph != "" {
				t.Errorf("a refused profile left phase %q", ph)
			}
			st := s.Status()
			if !strings.Contains(st, "loaded=0") || !strings.Contains(st, "refused=1") || !strings.Contains(st, "profile of agent 7") || !strings.Contains(st, tc.why) {
				t.Errorf("status %q, want refused=1 and %q", st, tc.why)
			}
			if !strings.Contains(log.String(), "syscall profile of agent 7 refused") || !strings.Contains(log.String(), "learned again") {
				t.Errorf("log:\n%s", log.String())
			}
			// the agent learns again from its calls
			s.Map(7, 1007)
			feed(s, 1007, 100, benign, 10)
			if ph, _ := s.Phase(7); ph != "learning" {
				t.Errorf("after a refusal the agent is %q, want learning", ph)
			}
		})
	}
}

// TestProfilePruned: a saved profile of an agent the registry no longer
// has is removed on the first registry pass.
func TestProfilePruned(t *testing.T) {
	_, key, _ := ml.GenerateKey()
	dir := t.TempDir()
	var log logBuf
	calibrated(t, dir, key, &log)
	s := NewOffline(Config{LearnCalls: 2000, CalibCalls: 1000, Logf: log.Logf})
	if n, _ := s.Persist(dir, key); n != 1 {
		t.Fatal("not loaded")
	}
	s.prune(map[int]bool{3: true})
	if _, err := os.Stat(filepath.Join(dir, "agent-7")); !os.IsNotExist(err) {
		t.Errorf("profile of a removed agent kept: %v", err)
	}
	if ph, _ := s.Phase(7); ph != "" {
		t.Errorf("phase %q", ph)
	}
}
