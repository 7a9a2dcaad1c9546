package main

// The threat engine's live feed, tried with real agents (issue: train/
// serve skew): what scripts/threat/record gave the engine in training
// reaches it in the daemon too. An agent reading /etc/shadow in a loop is
// seen by fanotify (sensitive_opens), one holding a connection to a
// loopback listener and sending into it is seen by the sampler's socket
// view (net_sent, established), and one whose shell reads its input from
// a socket is seen as a stdin socket. Each shows in agents/N/threat. A
// download beside them is not taken for a sender: its bytes are
// received (with the undivided rate the daemon fed before, it was scored
// DataExfiltration, and the shell on a socket was not seen at all).

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// waitThreat polls agents/N/threat until ok holds of it (20 s at most)
// and returns the last line read.
func (d *testDaemon) waitThreat(id int, what string, ok func(line string) bool) string {
	d.t.Helper()
	p := fmt.Sprintf("agents/%d/threat", id)
	var l string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		l = d.read(p)
		if ok(l) {
			return l
		}
	}
	d.t.Errorf("%s: %s never showed; last %q\nthreat/status:\n%s", p, what, l, d.read("threat/status"))
	return l
}

func TestThreatFeedLive(t *testing.T) {
	d, _ := adversaryDaemon(t, "thf")
	// Alerts only: the agents stay running (and unfrozen) while their
	// assessments are read.
	d.mustRun(`echo 'policy alert 0.5; throttle off; quarantine off; kill off; escalate off' > threat/ctl`)
	if st := field(d.read("threat/status"), "opens"); st != "on" {
		t.Fatalf("threat/status opens=%q, want on (the daemon runs as root)\n%s", st, d.read("log"))
	}

	// The peer: a sink that reads everything it is sent.
	ln := loopbackServer(t, func(c net.Conn) { defer c.Close(); io.Copy(io.Discard, c) })
	port := ln.Addr().(*net.TCPAddr).Port
	// A web server whose one page never ends.
	src, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 1<<20)
	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for {
			if _, err := w.Write(blob); err != nil {
				return
			}
		}
	})}
	go web.Serve(src)
	defer web.Close()

	// 1: reads /etc/shadow in a loop (as root: the open succeeds).
	d.mustRun(`echo 'spawn shadow -- /bin/bash -c "while :; do cat /etc/shadow >/dev/null; sleep 0.1; done"' > ctl`)
	// 2: one connection, held, with data sent into it without pause.
	d.mustRun(fmt.Sprintf(`echo 'spawn exfil -- /bin/bash -c "exec 3<>/dev/tcp/127.0.0.1/%d; while :; do head -c 4194304 /dev/zero >&3 || exit; done"' > ctl`, port))
	// 3: a shell whose standard input is a connection.
	d.mustRun(fmt.Sprintf(`echo 'spawn rsh -- /bin/bash -c "exec </dev/tcp/127.0.0.1/%d; while :; do sleep 0.2; done"' > ctl`, port))

	// 4: a download (curl, as the recorded benign "download"): one
	// connection, data received without pause. Fed as one undivided
	// rate (the feed before the direction split), its bytes counted as
	// sent, as the sender's.
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed: run scripts/install-deps.sh")
	}
	d.mustRun(fmt.Sprintf(`echo 'spawn download -- /bin/bash -c "while :; do curl -s -o /dev/null http://127.0.0.1:%d/; done"' > ctl`, src.Addr().(*net.TCPAddr).Port))

	top := func(l string) string { return field(l, "top") }
	l := d.waitThreat(1, "sensitive_opens", func(l string) bool {
		return field(l, "type") == "UnauthorizedAccess" && strings.Contains(top(l), "sensitive_opens")
	})
	t.Logf("shadow reader: %s", strings.TrimSpace(l))
	l = d.waitThreat(2, "net_sent / established", func(l string) bool {
		return field(l, "type") == "DataExfiltration" || strings.Contains(top(l), "net_sent")
	})
	t.Logf("sender: %s", strings.TrimSpace(l))
	l = d.waitThreat(3, "stdin_sockets", func(l string) bool {
		return field(l, "type") == "UnauthorizedAccess" && strings.Contains(top(l), "stdin_sockets")
	})
	t.Logf("shell on a socket: %s", strings.TrimSpace(l))

	// The download, once the sender has shown (both started together):
	// its bytes are received, not sent.
	l = d.waitThreat(4, "a scored window", func(l string) bool { return field(l, "score") != "" })
	for i := 0; i < 10; i++ {
		// (net_sent may still appear among the top features of another
		// verdict: curl sends its requests; seen in make test under load)
		if l = d.read("agents/4/threat"); field(l, "type") == "DataExfiltration" {
			t.Errorf("the download is scored as a sender: %s", l)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("download: %s", strings.TrimSpace(l))

	st := d.read("threat/status")
	if fed := field(st, "opens_fed"); fed == "" || fed == "0" {
		t.Errorf("threat/status opens_fed=%q after the shadow reader: %q", fed, st)
	}
	t.Logf("threat/status: %s", strings.TrimSpace(st))
	d.term()
}
