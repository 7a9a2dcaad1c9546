// Package daemon wires the engines into one tree and serves it: FUSE at
// the mount point, 9P2000.L on a unix socket in the state directory and,
// when asked, on TCP. It owns the files that belong to no engine:
//
//	ctl       global verbs: the engines' rows (spawn, adopt, ...) and interval
//	events    every engine's events, one line each (see package bus)
//	log       recent human-readable lines, including every refused write
//	metrics   Prometheus text exposition of every numeric value in the tree
//	version   one line: version=... go=... cgroup=v1|v2 protocols=fuse,9p2000.L
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aiosfs/ctl"
	"aiosfs/engines/agent"
	"aiosfs/engines/bus"
	"aiosfs/engines/telemetry"
	"aiosfs/fs"
	"aiosfs/fs/fusefs"
	"aiosfs/fs/p9fs"
	"aiosfs/hal/cgroup"
	"aiosfs/hal/proc"
	"aiosfs/hal/procconn"
	"aiosfs/internal/lockfile"
)

// Version is the daemon's version.
const Version = "0.1.0"

// Config is the daemon's configuration; every host root is a parameter.
type Config struct {
	Mount      string        // FUSE mount point; "" serves 9P only
	StateDir   string        // bbolt store, 9P socket, agents' output logs
	Listen     string        // extra 9P listen address, e.g. tcp!127.0.0.1!5640; "" none
	TrustTCP   bool          // believe the uid a TCP 9P client claims
	Interval   time.Duration // sampling interval
	ProcRoot   string        // /proc
	CgroupRoot string        // /sys/fs/cgroup
	Prefix     string        // agents' cgroups go under <own cgroup>/<Prefix>
	Cgroup     string        // force "v1" or "v2"; "" detects
	Grace      time.Duration // stop's TERM-to-KILL grace
	GPU        string        // "" detect through NVML, "none", or "mock:MODEL" for go-nvml's mock devices
	// ThreatPubKey pins the key threat models are checked against (hex
	// or base64 ed25519 public key); "" the daemon's own key.
	ThreatPubKey string
	// SyscallLearn is the calls the system-call signal learns an agent's
	// profile from (0: its default); negative turns the capture off.
	SyscallLearn int
	Stderr       *os.File // log copy; nil for none

	// MetricsListen serves `metrics` over HTTP at host:port/metrics
	// (metrics_http.go); "" none.
	MetricsListen string

	// Memory is the garbage collector's settings (memory.go); the zero
	// value leaves the runtime's own (GOGC, GOMEMLIMIT).
	Memory Memory
}

// Socket is the 9P unix socket inside the state directory.
func (c Config) Socket() string { return filepath.Join(c.StateDir, "9p.sock") }

// Daemon is a running aiosfs.
type Daemon struct {
	cfg    Config
	Bus    *bus.Bus
	Log    *Log
	Errstr Errstr // each caller's last refusal: the errstr file
	NS     *fs.NS
	Root   fs.Dir
	Agents *agent.Engine
	Tel    *telemetry.Sampler

	cg *cgroup.Manager
	// lock is STATE/lock, held for the daemon's life; releasePrefix
	// gives back the cgroup prefix (cgroup.Manager.LockPrefix).
	lock          *lockfile.File
	releasePrefix func() error
	mods          []Device
	peers         *Peers
	reg           *prometheus.Registry
	fuse          *fusefs.Server
	lns           []net.Listener
	pc            *procconn.Conn
	wg            sync.WaitGroup
	stop          context.CancelFunc
	gcPrev        Memory // the runtime's settings before Start, for Close
	gcSet         bool
}

// Start builds the engines, restores agents, mounts and listens.
func Start(cfg Config) (*Daemon, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if err := cfg.Memory.Check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0755); err != nil {
		return nil, err
	}
	// First of all: a second daemon on this state directory stops here,
	// told the first one's pid, before it touches anything.
	lock, err := lockfile.Lock(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, Bus: bus.New(4096), lock: lock}
	// After the lock, so that a second daemon refused above changes
	// nothing of this process; Close puts the runtime's back.
	d.gcPrev, _ = cfg.Memory.Apply() // checked above
	d.gcSet = true
	started := false
	defer func() {
		if !started && d.gcSet {
			d.gcPrev.Restore()
		}
	}()
	d.Log = NewLog(1000, nil)
	if cfg.Stderr != nil {
		d.Log = NewLog(1000, cfg.Stderr)
	}
	pfs, err := proc.NewFS(cfg.ProcRoot)
	if err != nil {
		lock.Close()
		return nil, err
	}
	d.cg, err = cgroup.New(cgroup.Config{Root: cfg.CgroupRoot, ProcSelf: filepath.Join(cfg.ProcRoot, "self/cgroup"), Prefix: cfg.Prefix, Version: cfg.Cgroup})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	// A second daemon with the same prefix (another state directory)
	// stops here. Not d.cg.Close() on failure: it would remove the other
	// daemon's prefix directory when that is empty.
	if d.releasePrefix, err = d.cg.LockPrefix(); err != nil {
		lock.Close()
		return nil, err
	}
	var agents *agent.Engine
	d.Tel = telemetry.New(telemetry.Config{Proc: pfs, Interval: cfg.Interval, Bus: d.Bus}, func() []telemetry.Target { return agents.Targets() })
	agents, err = agent.New(agent.Config{StateDir: cfg.StateDir, Cgroups: d.cg, Proc: pfs, Bus: d.Bus, Telemetry: d.Tel, Grace: cfg.Grace, Mount: absMount(cfg.Mount)})
	if err != nil {
		d.cg.Close()
		d.releasePrefix()
		lock.Close()
		return nil, err
	}
	if msg := agents.StoreRecovered(); msg != "" {
		d.Log.Printf("%s", msg)
	}
	d.Agents = agents
	d.Tel.OnTick(func(_ time.Time, l map[int]telemetry.Sample) { agents.Reap(l) })

	d.NS = &fs.NS{Boot: time.Now(), Reject: d.reject}
	d.reg = prometheus.NewRegistry()
	d.reg.MustRegister(newMetrics(agents, d.Tel, d.Bus.Seq))
	peers := newPeers()
	d.peers = peers
	for _, r := range devices {
		m, err := r.new(Deps{Config: cfg, NS: d.NS, Bus: d.Bus, Log: d.Log, Registry: agents, Agents: agents, Tel: d.Tel, Cgroups: d.cg, Proc: pfs, Peers: peers})
		if err != nil {
			d.closeModules()
			agents.Shutdown()
			d.releasePrefix()
			lock.Close()
			return nil, fmt.Errorf("%s engine: %w", r.name, err)
		}
		d.mods = append(d.mods, m)
		d.wire(m)
	}
	names := make([]string, len(d.mods))
	for i, m := range d.mods {
		names[i] = m.Name()
	}
	peers.setNames(names)
	d.Root = d.tree()

	ctx, cancel := context.WithCancel(context.Background())
	d.stop = cancel
	if err := agents.Restore(); err != nil {
		d.Log.Printf("restore: %v", err)
	}
	// Agent cgroups no record names (a lost or damaged store): live ones
	// become agents again, empty ones go; new numbers start above them.
	// Only safe under the prefix lock taken above.
	adopted, removed, err := agents.RecoverOrphans()
	if len(adopted) > 0 {
		d.Log.Printf("re-adopted %d running agent cgroups that had no record: %v", len(adopted), adopted)
	}
	if len(removed) > 0 {
		d.Log.Printf("removed %d empty agent cgroups that had no record: %v", len(removed), removed)
	}
	if err != nil {
		d.Log.Printf("recover orphans: %v", err)
	}
	for _, m := range d.mods {
		if r, ok := m.(Restorer); ok {
			r.Restored()
		}
	}
	// The proc connector needs CAP_NET_ADMIN; without it the daemon runs
	// on sampling alone and says so.
	if pc, err := procconn.Listen(); err != nil {
		d.Log.Printf("proc connector unavailable, exit statuses of adopted agents will be unknown: %v", err)
	} else {
		d.pc = pc
		d.wg.Add(1)
		go func() { defer d.wg.Done(); d.Tel.WatchProc(ctx, pc) }()
	}
	if cfg.Memory.MemoryLimit > 0 {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); cfg.Memory.govern(ctx, cfg.Interval, d.Log.Printf) }()
	}
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.Tel.Run(ctx) }()
	d.wg.Add(1)
	go func() { defer d.wg.Done(); agents.Run(ctx) }()
	for _, m := range d.mods {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); m.Run(ctx) }()
	}

	if err := d.serve(); err != nil {
		d.Close()
		return nil, err
	}
	started = true
	d.Log.Printf("aiosfs %s serving: mount=%q 9p=%q listen=%q cgroup=%s interval=%s %s", Version, cfg.Mount, cfg.Socket(), cfg.Listen, d.cg.Version(), cfg.Interval, gcSettings())
	return d, nil
}

func (d *Daemon) serve() error {
	// Connection problems name peers (a TCP peer's address): root's lines.
	logf := func(format string, args ...any) { d.Log.PrintfFor(fs.NoUid, format, args...) }
	ln, err := p9fs.ListenAndServe("unix!"+d.cfg.Socket(), d.Root, p9fs.Options{Logf: logf})
	if err != nil {
		return fmt.Errorf("9p on %s: %w", d.cfg.Socket(), err)
	}
	d.lns = append(d.lns, ln)
	if d.cfg.Listen != "" {
		// Without TrustTCP a TCP peer is nobody and read-only (EROFS):
		// TCP says nothing about who is calling.
		if d.cfg.TrustTCP {
			d.Log.Printf("WARNING: -trust-tcp: every TCP peer that can reach %s is believed as whatever uid it claims, root included, and may write", d.cfg.Listen)
		}
		ln, err := p9fs.ListenAndServe(d.cfg.Listen, d.Root, p9fs.Options{TrustTCP: d.cfg.TrustTCP, Logf: logf})
		if err != nil {
			return fmt.Errorf("9p on %s: %w", d.cfg.Listen, err)
		}
		d.lns = append(d.lns, ln)
	}
	if d.cfg.MetricsListen != "" {
		ln, err := serveMetricsHTTP(d.cfg.MetricsListen, d.reg, d.Log)
		if err != nil {
			return fmt.Errorf("metrics on %s: %w", d.cfg.MetricsListen, err)
		}
		d.lns = append(d.lns, ln) // Close stops the HTTP server with it
	}
	if d.cfg.Mount != "" {
		srv, err := fusefs.Mount(d.cfg.Mount, d.Root, fusefs.Options{AllowOther: true, Name: "aiosfs"})
		if err != nil {
			return fmt.Errorf("fuse mount at %s: %w", d.cfg.Mount, err)
		}
		d.fuse = srv
	}
	return nil
}

// absMount is the mount point as the kernel names it in /proc/PID/cwd.
func absMount(m string) string {
	if m == "" {
		return ""
	}
	if a, err := filepath.Abs(m); err == nil {
		return a
	}
	return m
}

// reject is every refused open, write, command and lookup: into `log`
// (and stderr) and onto the bus. What the caller wrote is redacted
// (ctl.Redact: env= values and secret-like NAME=VALUE) and clipped to
// MaxLoggedCmd, in the command and in the error, which often quotes it.
// The line and the event are the caller's own (Log.PrintfFor, a private
// event): another user's `cat log` or `cat events` does not show them.
// A failed lookup's caller is unknown (fs.NoUid), so only root sees it.
func (d *Daemon) reject(c fs.Caller, path, cmd string, err error) {
	path = clip(ctl.Redact(path))
	cmd = clip(ctl.Redact(cmd))
	msg := clip(ctl.Redact(err.Error()))
	if c.Uid == fs.NoUid {
		d.Log.PrintfFor(fs.NoUid, "%s: %s", path, msg)
	} else {
		d.Log.PrintfFor(c.Uid, "uid=%d %s: refused %q: %s", c.Uid, path, cmd, msg)
		d.Errstr.Set(c, fmt.Sprintf("%s: refused %q: %s", path, cmd, msg))
	}
	d.Bus.Publish(bus.Event{Source: "fs", Kind: "refused", Private: true, Uid: c.Uid, Fields: []bus.Field{
		bus.F("path", path), bus.F("uid", c.Uid), bus.F("cmd", cmd), bus.F("errno", int(fs.Errno(err))), bus.F("err", msg)}})
}

// rootVerbs is the global ctl table.
func (d *Daemon) rootVerbs() ctl.Table {
	t := d.Agents.RootVerbs()
	for _, m := range d.mods {
		t = append(t, m.GlobalVerbs()...)
	}
	return append(t, ctl.Verb{Name: "interval", Args: "DURATION", Min: 1, Max: 1, Root: true,
		Doc: "sampling interval, e.g. 1s, 500ms",
		Run: func(_ context.Context, _ fs.Caller, a []string) error {
			dur, err := ctl.ParseDuration(a[0])
			if err != nil {
				return err
			}
			if dur < 10*time.Millisecond {
				return ctl.Errorf("interval %s below 10ms", dur)
			}
			d.Tel.SetInterval(dur)
			d.Bus.Publish(bus.Event{Source: "telemetry", Kind: "interval", Fields: []bus.Field{bus.F("seconds", dur.Seconds())}})
			return nil
		}})
}

func (d *Daemon) tree() fs.Dir {
	ns := d.NS
	root := fs.Owner{}
	verbs := d.rootVerbs()
	kids := []fs.Node{
		ns.Ctl("/ctl", 0666, root, verbs.Help, verbs.Exec),
		// Each reader sees public events and their own private ones
		// (their refusals); root sees all. Likewise for log lines.
		ns.StreamOf("/events", 0444, root, func(c fs.Caller) (fs.Stream, error) { return d.Bus.SubscribeFor(c.Uid, nil, 1024), nil }),
		ns.Text("/log", 0444, root, func(c fs.Caller) ([]byte, error) { return d.Log.BytesFor(c.Uid), nil }),
		// The reader's own last refusal (Errstr): its 9P connection's, or
		// over FUSE its uid's.
		ns.Text("/errstr", 0444, root, func(c fs.Caller) ([]byte, error) { return d.Errstr.For(c), nil }),
		ns.Text("/metrics", 0444, root, func(fs.Caller) ([]byte, error) { return render(d.reg) }),
		ns.Text("/version", 0444, root, func(fs.Caller) ([]byte, error) {
			return []byte(fmt.Sprintf("version=%s go=%s cgroup=%s protocols=fuse,9p2000.L\n", Version, runtime.Version(), d.cg.Version())), nil
		}),
	}
	kids = append(kids, d.Agents.Nodes(ns)...)
	for _, m := range d.mods {
		kids = append(kids, m.Nodes()...)
	}
	for p, doc := range map[string]string{
		"/ctl":     "the global verbs (read it for the table): spawn, adopt, quota, interval and the engines'",
		"/events":  "time= seq= source= kind= agent= then the event's fields: bus.Event.Line; yours and the public ones",
		"/log":     "RFC3339-time [uid=U] PATH: refused \"CMD\": REASON, and the daemon's own lines; yours and the public ones",
		"/errstr":  "PATH: refused \"CMD\": REASON, your last refusal (9P: this connection's; FUSE: your uid's)",
		"/metrics": "Prometheus text exposition: aiosfs_agent_*{agent,name}, aiosfs_agents{state}, aiosfs_daemon_*",
		"/version": "version= go= cgroup= protocols=",
	} {
		ns.Document(p, doc)
	}
	return ns.StaticDir("/", 0555, root, kids...)
}

// Close unmounts, stops listening, stops the engines and removes every
// cgroup the daemon made. It is the SIGINT/SIGTERM path.
func (d *Daemon) Close() error {
	var errs []error
	if d.fuse != nil {
		errs = append(errs, d.fuse.Unmount())
	}
	for _, ln := range d.lns {
		ln.Close()
	}
	if d.stop != nil {
		d.stop()
	}
	if d.pc != nil {
		d.pc.Close()
	}
	d.wg.Wait()
	errs = append(errs, d.closeModules())
	if d.Agents != nil {
		errs = append(errs, d.Agents.Shutdown()) // also closes the cgroup Manager and the store
	}
	if d.releasePrefix != nil {
		errs = append(errs, d.releasePrefix())
	}
	if d.lock != nil {
		errs = append(errs, d.lock.Close()) // last: the state directory is free
	}
	if d.gcSet {
		d.gcPrev.Restore()
		d.gcSet = false
	}
	d.Log.Printf("aiosfs stopped")
	return errors.Join(errs...)
}

func (d *Daemon) closeModules() error {
	var errs []error
	for _, m := range d.mods {
		errs = append(errs, m.Close())
	}
	d.mods = nil
	return errors.Join(errs...)
}
