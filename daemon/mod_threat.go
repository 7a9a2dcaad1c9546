package daemon

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aiosfs"
	"aiosfs/ctl"
	"aiosfs/engines/ml"
	"aiosfs/engines/telemetry"
	"aiosfs/engines/threat"
	"aiosfs/engines/threat/dataset"
	"aiosfs/engines/threat/syscalls"
	"aiosfs/fs"
)

// The threat engine: threat/ and agents/N/threat (package engines/threat).
// It follows every sampler pass (with the sampler's socket view of each
// agent), the proc connector's events and fanotify's opens of sensitive
// files (DefaultSensitive, the state directory, agents' owners' ~/.ssh);
// its first model is trained on the windows this binary carries.
func init() {
	register("threat", func(d Deps) (Device, error) {
		var pub ed25519.PublicKey
		var err error
		if d.Config.ThreatPubKey != "" {
			k, err := ml.ParsePublicKey(d.Config.ThreatPubKey)
			if err != nil {
				return nil, fmt.Errorf("-threat-pubkey: %w", err)
			}
			pub = k
		}
		// the system-call signal (issue 13): with no BPF it says why in
		// threat/status and the daemon runs on without it
		var sig *syscalls.Signal
		if d.Config.SyscallLearn >= 0 {
			if sig, err = syscalls.New(syscalls.Config{LearnCalls: d.Config.SyscallLearn, Logf: d.Log.Printf}); err != nil {
				d.Log.Printf("threat: syscall capture off: %v", err)
			}
		} else {
			sig = syscalls.Disabled(syscalls.Config{}, "turned off (-syscall-learn -1)")
		}
		dev, err := threat.NewDevice(threat.DeviceConfig{NS: d.NS, Bus: d.Bus, Agents: d.Registry,
			Dir: filepath.Join(d.Config.StateDir, "threat"), PubKey: pub, PinPrefix: d.Config.Prefix,
			Proc: d.Config.ProcRoot, Training: embeddedWindows, Signals: []threat.Signal{sig}, Logf: d.Log.Printf,
			Net: d.Tel.Net, AgentOf: d.Tel.AgentOf,
			Sensitive: append(append([]string(nil), threat.DefaultSensitive...), threat.SensitiveDirs(d.Config.StateDir)...)})
		if err != nil {
			sig.Close()
			return nil, err
		}
		// learned profiles are saved signed with the engine's own key
		// (made by NewDevice; even with -threat-pubkey pinned: a profile
		// is this daemon's own learning, not a model brought in)
		if d.Config.SyscallLearn >= 0 {
			priv, _, err := ml.LoadOrCreateKey(filepath.Join(d.Config.StateDir, "threat", "model.key"))
			if err == nil {
				_, err = sig.Persist(filepath.Join(d.Config.StateDir, "threat", "syscall"), priv)
			}
			if err != nil {
				d.Log.Printf("threat: syscall profiles are not saved: %v", err)
			}
		}
		d.Tel.OnTick(d.Peers.Timed("threat", func(now time.Time, latest map[int]telemetry.Sample) {
			sig.SyncRegistry(d.Registry) // track alive agents' cgroup2 directories, untrack the rest
			dev.Tick(now, latest)
		}))
		return threatDevice{dev, sig}, nil
	})
}

// embeddedWindows are the recorded scenario windows (testdata/threat,
// both sets) as training rows.
func embeddedWindows() ([]threat.Labelled, error) {
	var out []threat.Labelled
	for _, b := range [][]byte{aiosfs.ThreatWindows, aiosfs.ThreatHoldout} {
		rows, err := dataset.Read(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			out = append(out, threat.Labelled{V: r.V, Type: r.Label})
		}
	}
	return out, nil
}

// threatDevice is the threat engine as a Device.
type threatDevice struct {
	d   *threat.Device
	sig *syscalls.Signal
}

func (m threatDevice) Name() string                    { return "threat" }
func (m threatDevice) Nodes() []fs.Node                { return m.d.Nodes() }
func (m threatDevice) AgentTab() fs.Dirtab             { return m.d.AgentTab() }
func (m threatDevice) AgentVerbs(id int) ctl.Table     { return nil }
func (m threatDevice) GlobalVerbs() ctl.Table          { return nil }
func (m threatDevice) Collector() prometheus.Collector { return m.d.Collector() }
func (m threatDevice) Run(ctx context.Context)         { m.d.Run(ctx) }
func (m threatDevice) Close() error                    { m.sig.Close(); return m.d.Close() }
func (m threatDevice) Restored()                       { m.d.Reapply() }
