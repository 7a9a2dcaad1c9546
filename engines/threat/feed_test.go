package threat

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"aiosfs/engines/telemetry"
	"aiosfs/hal/fanwatch"
)

// feedDevice is a Device with no files, no bus and no registry, alerting
// only (no act needs the registry), fed the given socket view and
// pid → agent map.
func feedDevice(t *testing.T, net func(int) (telemetry.NetView, bool), agentOf func(int) int) *Device {
	t.Helper()
	d, err := NewDevice(DeviceConfig{Dir: t.TempDir(), Proc: t.TempDir(), Net: net, AgentOf: agentOf})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePolicy("alert 0.5; throttle off; quarantine off; kill off; escalate off")
	if err != nil {
		t.Fatal(err)
	}
	d.e.SetPolicy(p)
	return d
}

// tickFor feeds agent 1 one quiet sample per 250 ms for 2 s and returns
// its assessment.
func tickFor(t *testing.T, d *Device, t0 time.Time, before func(i int)) Assessment {
	t.Helper()
	for i := 0; i <= 8; i++ {
		if before != nil {
			before(i)
		}
		now := t0.Add(time.Duration(i) * 250 * time.Millisecond)
		d.Tick(now, map[int]telemetry.Sample{1: {Time: now, Procs: 2, Threads: 2, Sockets: 40}})
	}
	a, ok := d.e.Assessment(1)
	if !ok {
		t.Fatal("no assessment after 2 s of samples")
	}
	return a
}

// TestFeedSocketView: the sampler's socket view reaches the window's
// features: listen, established (the view's, not Sample.Sockets), new
// remotes, stdin sockets and the bytes by direction.
func TestFeedSocketView(t *testing.T) {
	var remotes []netip.AddrPort
	for i := 0; i < 120; i++ {
		remotes = append(remotes, netip.MustParseAddrPort("10.1.0."+strconv.Itoa(i+1)+":22"))
	}
	view := telemetry.NetView{Dumped: true, Listen: 1, Established: 3, Remotes: remotes, StdinSockets: 1, SentRate: 5000, RecvRate: 100}
	d := feedDevice(t, func(id int) (telemetry.NetView, bool) { return view, id == 1 }, func(int) int { return 0 })
	a := tickFor(t, d, time.Unix(1764795600, 0), nil)
	v := a.Vector
	for _, c := range []struct {
		f    Feature
		want float64
	}{{Listen, 1}, {Established, 3}, {StdinSockets, 1}, {NetSent, 5000}, {NetRecv, 100}} {
		if got := v.At(c.f, 0); got != c.want {
			t.Errorf("%s@1s = %v, want %v", c.f, got, c.want)
		}
	}
	if got := v.At(NewRemotes, 0) + v.At(NewRemotes, 1); got < 120 {
		t.Errorf("new_remotes = %v over the windows, want the 120 peers", got)
	}
	if !slices.Contains(a.Rules.Fired, "remote-shell") {
		t.Errorf("rules fired %v, want remote-shell (a socket on stdin)", a.Rules.Fired)
	}

	// No view from the daemon: Established is Sample.Sockets, as before.
	d = feedDevice(t, nil, nil)
	if a := tickFor(t, d, time.Unix(1764795600, 0), nil); a.Vector.At(Established, 0) != 40 || a.Vector.At(Listen, 0) != 0 {
		t.Errorf("without a view: established %v listen %v, want 40 and 0", a.Vector.At(Established, 0), a.Vector.At(Listen, 0))
	}
}

// TestFeedSensitiveOpens: an open from the watch is counted for the
// opener's agent, also when the sampler places the pid only at the next
// pass (a child forked just before) or only the proc events knew it (it
// has exited); an open by no agent's pid is not.
func TestFeedSensitiveOpens(t *testing.T) {
	known := map[int]int{100: 1}
	d := feedDevice(t, nil, func(pid int) int { return known[pid] })
	a := tickFor(t, d, time.Unix(1764795600, 0), func(i int) {
		switch i {
		case 5:
			d.sensitiveOpen(fanwatch.Open{Time: time.Now(), Pid: 100, Path: "/etc/shadow"})
			d.sensitiveOpen(fanwatch.Open{Time: time.Now(), Pid: 101, Path: "/etc/shadow"}) // placed at the next pass
			d.sensitiveOpen(fanwatch.Open{Time: time.Now(), Pid: 999, Path: "/etc/shadow"}) // sshd: nobody's agent
			// 102 forked, opened and exited: gone from the sampler's
			// table, known from its proc events
			d.notePid(102, 1)
			d.sensitiveOpen(fanwatch.Open{Time: time.Now(), Pid: 102, Path: "/etc/gshadow"})
		case 6:
			known[101] = 1
		}
	})
	if got := a.Vector.At(SensitiveOpens, 1); got != 3 {
		t.Errorf("sensitive_opens@10s = %v, want 3", got)
	}
	if a.Type != UnauthorizedAccess || !slices.Contains(a.Rules.Fired, "credential-read") {
		t.Errorf("assessment type %v rules %v, want UnauthorizedAccess by credential-read", a.Type, a.Rules.Fired)
	}
	if st, fed := d.opensState(); fed != 3 || st == "on" {
		t.Errorf("opens state %q fed %d, want off (never started) and 3", st, fed)
	}
}

// TestFeedOpensState: with fanotify the watch is on and threat/status
// says so; without CAP_SYS_ADMIN (run the test binary under `setpriv
// --bounding-set -sys_admin`) the engine runs without it and says why.
func TestFeedOpensState(t *testing.T) {
	d, err := NewDevice(DeviceConfig{Dir: t.TempDir(), AgentOf: func(int) int { return 0 }, Sensitive: []string{"/etc/shadow"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.startOpens(ctx)
	defer d.closeOpens()
	st, _ := d.opensState()
	status := d.statusText()
	switch {
	case st == "on":
		t.Log("fanotify: on")
	case strings.HasPrefix(st, "off: fanotify_init: operation not permitted") && strings.Contains(st, "CAP_SYS_ADMIN"):
		t.Logf("without CAP_SYS_ADMIN: %s", st)
	default:
		t.Fatalf("opens state %q", st)
	}
	if !strings.Contains(status, `opens="`+st+`"`) && !strings.Contains(status, "opens="+st+" ") {
		t.Errorf("threat/status does not say opens=%q:\n%s", st, status)
	}
}
