package telemetry

import (
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
	"aiosfs/hal/sockdiag"
)

// fakeSocks is a settable full sock_diag dump (states, peers, bytes).
type fakeSocks struct {
	mu    sync.Mutex
	socks map[uint64]sockdiag.Socket
	calls int
}

func (f *fakeSocks) dump() (map[uint64]sockdiag.Socket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return maps.Clone(f.socks), nil
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func sortedRemotes(v NetView) []string {
	var out []string
	for _, r := range v.Remotes {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return out
}

// TestNetView: one dump per pass gives each agent its listeners, its
// connections, its distinct peers (accepted ones by address alone), its
// bytes per direction and its stdin sockets; the history ring keeps none
// of it; a held sample repeats the counts with rates 0.
func TestNetView(t *testing.T) {
	ft := &fakeSocks{socks: map[uint64]sockdiag.Socket{
		// agent 1: a server on 8080 with two clients from the same
		// host, and an outgoing connection to a database
		100: {State: sockdiag.StateListen, LocalPort: 8080},
		101: {State: sockdiag.StateEstablished, LocalPort: 8080, Remote: ap("10.0.0.5:40001"), Bytes: sockdiag.Bytes{Sent: 100, Received: 10}},
		102: {State: sockdiag.StateEstablished, LocalPort: 8080, Remote: ap("10.0.0.5:40002")},
		103: {State: sockdiag.StateEstablished, LocalPort: 51000, Remote: ap("10.0.0.9:5432"), Bytes: sockdiag.Bytes{Sent: 1000, Received: 2000}},
		// agent 2: a connect in progress and a closing socket
		200: {State: sockdiag.StateSynSent, LocalPort: 52000, Remote: ap("[2001:db8::1]:443")},
		201: {State: 8 /* CLOSE_WAIT */, LocalPort: 52001, Remote: ap("10.0.0.1:80")},
		999: {State: sockdiag.StateListen, LocalPort: 22}, // nobody's
	}}
	g1 := &counterGroup{fakeGroup: fakeGroup{pids: []int{10, 11}, stats: cgroup.Stats{CPUUsageNs: 1e9}}}
	g2 := &fakeGroup{pids: []int{20}}
	fp := newFakeProc()
	p10 := process(10, 0, 0, 0)
	p10.SocketInodes = []uint64{100, 101, 102, 103, 555} // 555: a unix socket
	p11 := process(11, 0, 0, 0)
	p11.SocketInodes = []uint64{101} // shared with 10: counts once
	p11.StdinSocket = true           // a shell on the connection
	p20 := process(20, 0, 0, 0)
	p20.SocketInodes = []uint64{200, 201}
	fp.set(p10)
	fp.set(p11)
	fp.set(p20)
	tun := Tuning{Hold: 3, Counters: true, RawProc: true, SockGate: true}
	s := New(Config{Proc: fp, TCPSockets: ft.dump, Tuning: &tun}, func() []Target {
		return []Target{{ID: 1, Group: g1}, {ID: 2, Group: g2}}
	})
	if _, ok := s.Net(1); ok {
		t.Fatal("a view before any sample")
	}
	s.Tick(at(0))
	if ft.calls != 1 {
		t.Fatalf("%d dumps in a pass over two agents, want 1", ft.calls)
	}
	v1, ok := s.Net(1)
	if !ok || !v1.Dumped || !v1.Time.Equal(at(0)) || v1.Listen != 1 || v1.Established != 3 || v1.StdinSockets != 1 || v1.SentRate != 0 {
		t.Fatalf("agent 1: %+v %v", v1, ok)
	}
	if got, want := sortedRemotes(v1), []string{"10.0.0.5:0", "10.0.0.9:5432"}; !slices.Equal(got, want) {
		t.Errorf("agent 1 remotes %v, want %v (clients of its listener by address, once)", got, want)
	}
	v2, _ := s.Net(2)
	if v2.Listen != 0 || v2.Established != 1 || v2.StdinSockets != 0 {
		t.Errorf("agent 2: %+v, want one connection (SYN_SENT), CLOSE_WAIT not counted", v2)
	}
	if got := sortedRemotes(v2); !slices.Equal(got, []string{"[2001:db8::1]:443"}) {
		t.Errorf("agent 2 remotes %v", got)
	}

	// 2 s later: 101 sent 400 more and received 30, 103 received 2000.
	ft.mu.Lock()
	ft.socks[101] = sockdiag.Socket{State: sockdiag.StateEstablished, LocalPort: 8080, Remote: ap("10.0.0.5:40001"), Bytes: sockdiag.Bytes{Sent: 500, Received: 40}}
	ft.socks[103] = sockdiag.Socket{State: sockdiag.StateEstablished, LocalPort: 51000, Remote: ap("10.0.0.9:5432"), Bytes: sockdiag.Bytes{Sent: 1000, Received: 4000}}
	ft.mu.Unlock()
	g1.mu.Lock()
	g1.stats.CPUUsageNs += 1e8
	g1.mu.Unlock()
	s.Tick(at(2))
	v1, _ = s.Net(1)
	l1, _ := s.Latest(1)
	if !near(v1.SentRate, 200) || !near(v1.RecvRate, (30+2000)/2.0) || !near(v1.SentRate+v1.RecvRate, l1.NetRate) {
		t.Errorf("rates: sent %v recv %v (net_rate %v), want 200, 1015", v1.SentRate, v1.RecvRate, l1.NetRate)
	}
	// The ring's samples are plain Samples: the view is not in them.
	if h := s.History(1); len(h) != 2 {
		t.Fatalf("history %d samples", len(h))
	}

	// Idle (CPU usage unchanged): after one full sample without CPU,
	// held, the same sockets, no bytes.
	s.Tick(at(3))
	s.Tick(at(4))
	v1, _ = s.Net(1)
	if !v1.Time.Equal(at(4)) || v1.Listen != 1 || v1.Established != 3 || v1.SentRate != 0 || v1.RecvRate != 0 || len(v1.Remotes) != 2 {
		t.Errorf("held: %+v", v1)
	}
	if g1.procs.Load() != 3 {
		t.Errorf("agent 1 sampled in full %d times, want 3 (the fourth pass held)", g1.procs.Load())
	}
}

// TestNetViewBounded: an agent with more peers than MaxRemotes lists
// MaxRemotes of them, and counts every connection.
func TestNetViewBounded(t *testing.T) {
	ft := &fakeSocks{socks: map[uint64]sockdiag.Socket{}}
	p := process(10, 0, 0, 0)
	for i := 0; i < 3*MaxRemotes; i++ {
		ino := uint64(1000 + i)
		ft.socks[ino] = sockdiag.Socket{State: sockdiag.StateEstablished, LocalPort: uint16(30000 + i), Remote: ap(fmt.Sprintf("10.0.%d.%d:443", i/200, i%200+1))}
		p.SocketInodes = append(p.SocketInodes, ino)
	}
	fp := newFakeProc()
	fp.set(p)
	s := New(Config{Proc: fp, TCPSockets: ft.dump}, func() []Target { return []Target{{ID: 1, Group: &fakeGroup{pids: []int{10}}}} })
	s.Tick(at(0))
	v, _ := s.Net(1)
	if v.Established != 3*MaxRemotes || len(v.Remotes) != MaxRemotes {
		t.Errorf("established %d remotes %d, want %d and %d", v.Established, len(v.Remotes), 3*MaxRemotes, MaxRemotes)
	}
}

// TestLiveNetView samples this test process, holding a real loopback
// listener, a connection to it and the accepted end, through the real
// procfs and sock_diag.
func TestLiveNetView(t *testing.T) {
	pfs, err := proc.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc := <-acc
	if sc == nil {
		t.Fatal("accept failed")
	}
	defer sc.Close()
	go io.Copy(io.Discard, sc)
	s := New(Config{Proc: pfs}, func() []Target { return []Target{{ID: 1, Group: pidGroup{os.Getpid()}}} })
	t0 := time.Now()
	s.Tick(t0)
	const n = 256 << 10
	if _, err := cc.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	s.Tick(time.Now())
	v, ok := s.Net(1)
	if !ok || !v.Dumped || v.Listen < 1 || v.Established < 2 {
		t.Fatalf("view %+v %v, want a listener and two connected ends", v, ok)
	}
	lport := uint16(ln.Addr().(*net.TCPAddr).Port)
	lo := netip.MustParseAddr("127.0.0.1")
	if !slices.Contains(v.Remotes, netip.AddrPortFrom(lo, lport)) || !slices.Contains(v.Remotes, netip.AddrPortFrom(lo, 0)) {
		t.Errorf("remotes %v, want 127.0.0.1:%d (the connection) and 127.0.0.1 (the accepted client)", v.Remotes, lport)
	}
	if v.SentRate <= 0 || v.RecvRate <= 0 {
		t.Errorf("rates sent %v recv %v: this process both sent and received %d bytes", v.SentRate, v.RecvRate, n)
	}
}
