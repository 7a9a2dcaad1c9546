package daemon

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Prometheus over HTTP (-metrics-listen ADDR): GET /metrics serves the
// exposition the `metrics` file renders, gathered from the same registry
// (the daemon's collector and every engine's), by client_golang's promhttp.
// It is the text format with HELP and TYPE for every family unless the
// scraper negotiates another (OpenMetrics, protobuf); gzip when asked.
//
// The endpoint has no authentication: whoever reaches ADDR reads what
// `metrics` shows every local user (agent numbers and names, usage and
// limits), and nothing else; nothing can be changed through it. Bind it
// to loopback or to a network you would show that to.
//
// A collector that fails costs its own series, not the scrape (as in the
// file); the failure goes to `log`.

// metricsHandler is the HTTP handler for reg: /metrics, and a line at /
// pointing there.
func metricsHandler(reg *prometheus.Registry, log *Log) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{log},
		ErrorHandling: promhttp.ContinueOnError,
		// A scrape gathers every agent; a few at once are plenty.
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "aiosfs "+Version+": Prometheus metrics at /metrics")
	})
	return mux
}

// promLogger is promhttp's error log: lines into the daemon's log.
type promLogger struct{ l *Log }

func (p promLogger) Println(v ...any) {
	p.l.Printf("metrics http: %s", strings.TrimSpace(fmt.Sprintln(v...)))
}

// metricsListener is the HTTP server's listener kept with the 9P ones in
// Daemon.lns: Close (the daemon's) stops the server and drops its
// connections, so Daemon.Close needs nothing more for it.
type metricsListener struct {
	net.Listener
	srv *http.Server
}

func (m metricsListener) Close() error { return m.srv.Close() }

// serveMetricsHTTP listens on addr (host:port; "127.0.0.1:0" picks a port)
// and serves reg until the returned listener is closed.
func serveMetricsHTTP(addr string, reg *prometheus.Registry, log *Log) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           metricsHandler(reg, log),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go srv.Serve(ln) // returns when Close closes the listener
	log.Printf("metrics over HTTP at http://%s/metrics", ln.Addr())
	return metricsListener{Listener: ln, srv: srv}, nil
}

// MetricsAddr is the address -metrics-listen is served on (with the port
// the kernel chose for ":0"), or nil when it is off.
func (d *Daemon) MetricsAddr() net.Addr {
	for _, ln := range d.lns {
		if m, ok := ln.(metricsListener); ok {
			return m.Addr()
		}
	}
	return nil
}
