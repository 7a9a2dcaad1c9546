package syscalls

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"aiosfs/engines/ml"
)

// Saved profiles.
//
// Once an agent's profile is calibrated it is saved as a signed model
// directory of engines/ml (ml.SaveModel: manifest.json listing the
// files' SHA-256, manifest.sig its ed25519 signature), signed with the
// threat engine's key (STATE/threat/model.key), under
//
//	DIR/agent-N/profile.json
//
// where DIR is what Persist was given (the daemon: STATE/threat/syscall).
// profile.json is
//
//	{"version":1,"agent":N,"order":4,"chunk":100,"learned":20000,
//	 "calibrated":5000,"base":3.2145,"traces":[[257,0,3,...],...]}
//
// order and chunk are the constants the profile was made with, learned
// and calibrated the calls of each phase, base the calibrated NLL
// (nats), and traces every per-thread call sequence (x86_64 numbers) the
// model was trained on. The Witten–Bell counts are rebuilt from the
// traces at load: training has no randomness and counts add up in any
// order, so the model loaded is the model saved, count for count, and
// the file stays independent of engines/ml's in-memory layout.
//
// At start (Persist) every agent-N directory is checked against the
// key's public half (ml.LoadModel) and decoded strictly; a directory that
// fails (signature, digest, shape, constants that differ from this
// daemon's) is refused: that agent learns again from its next calls,
// the log says why and threat/status counts it (refused=N, the last
// reason in why). `threat/ctl learn N` and the agent's removal delete
// its directory; so does the first registry pass for an agent the
// registry no longer has.

const (
	profileFile    = "profile.json"
	profileVersion = 1
	maxSavedCalls  = 1 << 24 // a profile larger than this is not one we wrote
)

// savedProfile is profile.json.
type savedProfile struct {
	Version    int     `json:"version"`
	Agent      int     `json:"agent"`
	Order      int     `json:"order"`
	Chunk      int     `json:"chunk"`
	Learned    int     `json:"learned"`
	Calibrated int     `json:"calibrated"`
	Base       float64 `json:"base"`
	Traces     [][]int `json:"traces"`
}

// Persist makes the signal save calibrated profiles under dir, signed
// with priv, and loads those saved there before (see above). It returns
// the number loaded; refusals are logged and counted, not errors. The
// daemon calls it once, before any agent is tracked.
func (s *Signal) Persist(dir string, priv ed25519.PrivateKey) (int, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return 0, fmt.Errorf("syscall profiles: private key of %d bytes: %w", len(priv), ml.ErrKeyLength)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("syscall profiles: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("syscall profiles: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.store, s.priv = dir, priv
	pub := priv.Public().(ed25519.PublicKey)
	loaded := 0
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "agent-")
		agent, err := strconv.Atoi(n)
		if !ok || err != nil || agent <= 0 || !e.IsDir() {
			continue // not ours (a leftover .tmp, a stray file)
		}
		p, err := s.loadProfile(filepath.Join(dir, e.Name()), agent, pub)
		if err != nil {
			s.refused++
			s.refusedWhy = fmt.Sprintf("agent %d: %v", agent, err)
			s.cfg.Logf("threat: syscall profile of agent %d refused: %v: it is learned again from its next calls", agent, err)
			continue
		}
		if s.agents[agent] != nil {
			continue // already learning from live calls
		}
		s.agents[agent] = p
		s.loaded++
		loaded++
		s.cfg.Logf("threat: syscall profile of agent %d loaded (%d calls learned, %d calibrated, base %.3f nats)", agent, p.learned, p.calibrated, p.base)
	}
	return loaded, nil
}

// loadProfile verifies and decodes one saved profile.
func (s *Signal) loadProfile(dir string, agent int, pub ed25519.PublicKey) (*profile, error) {
	files, _, err := ml.LoadModel(dir, pub)
	if err != nil {
		return nil, err
	}
	b, ok := files[profileFile]
	if !ok || len(files) != 1 {
		return nil, fmt.Errorf("%w: the manifest lists %d files, want %s alone", ml.ErrManifest, len(files), profileFile)
	}
	sp, err := decodeProfile(b)
	if err != nil {
		return nil, err
	}
	switch {
	case sp.Agent != agent:
		return nil, fmt.Errorf("profile.json is agent %d's, in agent %d's directory", sp.Agent, agent)
	case sp.Order != s.cfg.Order || sp.Chunk != s.cfg.Chunk:
		return nil, fmt.Errorf("profile made with order %d, chunk %d; this daemon uses order %d, chunk %d", sp.Order, sp.Chunk, s.cfg.Order, s.cfg.Chunk)
	}
	m, err := ml.NewInterpMarkov(sp.Order, sp.Chunk)
	if err != nil {
		return nil, err
	}
	m.Train(sp.Traces)
	g, _ := ml.NewNgramCounts(evidenceGram)
	for _, tr := range sp.Traces {
		g.Add(tr)
	}
	return &profile{phase: scoring, model: m, grams: g, threads: map[uint32]*thread{}, base: sp.Base,
		learned: sp.Learned, calibrated: sp.Calibrated, loaded: true}, nil
}

// decodeProfile decodes profile.json strictly.
func decodeProfile(b []byte) (*savedProfile, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var sp savedProfile
	if err := dec.Decode(&sp); err != nil {
		return nil, fmt.Errorf("profile.json: %w", err)
	}
	if dec.More() {
		return nil, errors.New("profile.json: data after the JSON object")
	}
	if sp.Version != profileVersion {
		return nil, fmt.Errorf("profile.json: version %d, want %d", sp.Version, profileVersion)
	}
	if math.IsNaN(sp.Base) || math.IsInf(sp.Base, 0) || sp.Base < 0 {
		return nil, fmt.Errorf("profile.json: base %v is not a finite NLL ≥ 0", sp.Base)
	}
	if sp.Learned <= 0 || sp.Calibrated < 0 {
		return nil, fmt.Errorf("profile.json: learned %d, calibrated %d", sp.Learned, sp.Calibrated)
	}
	total := 0
	for _, tr := range sp.Traces {
		for _, c := range tr {
			if c < 0 || c > 0xffff {
				return nil, fmt.Errorf("profile.json: system call number %d out of 0..65535", c)
			}
		}
		total += len(tr)
	}
	if total == 0 || total > maxSavedCalls {
		return nil, fmt.Errorf("profile.json: %d calls in its traces, want 1..%d", total, maxSavedCalls)
	}
	return &sp, nil
}

func (s *Signal) profileDir(agent int) string {
	return filepath.Join(s.store, "agent-"+strconv.Itoa(agent))
}

// save writes agent's calibrated profile (s.mu held) and lets go of the
// traces it keeps for that. A failure is logged: the profile in memory
// is whole, only a restart would learn it again.
func (s *Signal) save(agent int, p *profile) {
	kept := p.kept
	p.kept = nil
	if s.store == "" {
		return
	}
	sp := savedProfile{Version: profileVersion, Agent: agent, Order: s.cfg.Order, Chunk: s.cfg.Chunk,
		Learned: p.learned, Calibrated: p.calibrated, Base: p.base, Traces: kept}
	b, err := json.Marshal(sp)
	if err == nil {
		err = ml.SaveModel(s.profileDir(agent), map[string][]byte{profileFile: append(b, '\n')}, s.priv, s.now().UTC().Format(time.RFC3339))
	}
	if err != nil {
		s.saveErr++
		s.cfg.Logf("threat: saving agent %d's syscall profile: %v (it is learned again after a restart)", agent, err)
		return
	}
	s.saved++
}

// discard removes agent's saved profile (s.mu held).
func (s *Signal) discard(agent int) error {
	if s.store == "" {
		return nil
	}
	if err := os.RemoveAll(s.profileDir(agent)); err != nil {
		return fmt.Errorf("syscall profile of agent %d not removed: %w", agent, err)
	}
	return nil
}

// prune removes the saved profiles of agents the registry no longer has
// (removed while the daemon was down), once, on the first registry pass.
func (s *Signal) prune(known map[int]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pruned || s.store == "" {
		return
	}
	s.pruned = true
	var gone []int
	for a, p := range s.agents {
		if p.loaded && !known[a] {
			gone = append(gone, a)
		}
	}
	sort.Ints(gone)
	for _, a := range gone {
		delete(s.agents, a)
		if err := s.discard(a); err != nil {
			s.cfg.Logf("threat: %v", err)
			continue
		}
		s.cfg.Logf("threat: syscall profile of agent %d removed: the agent is gone", a)
	}
}
