// Command record runs the threat scenario suite and writes the labelled
// window data set (testdata/threat/windows.csv by default).
//
// Each scenario is a real program run as a real process tree: a bash
// script started in its own cgroups (v1 pids with pids.max, and cpuacct
// for exact CPU; both created under this process's own cgroups and
// removed after), sampled every 250 ms from procfs (hal/proc), sock_diag
// and the cgroup files, with the proc connector (hal/procconn) for
// fork/exec/exit/uid/gid events and fanotify for opens of sensitive files
// and files closed after writing. The samples and events become
// threat.Observations and go through threat.Aggregator, the engine's
// own window code, so the recorded vectors are what the engine would
// compute. Labels are known by construction: every window of a run
// carries its scenario's label.
//
// Bounds: each run lasts -dur (default 4.5 s), every network peer is a
// listener of this process on 127.0.0.1, file scenarios work in a temp
// dir, the fork storm is capped by pids.max, and at the end every process
// left in the run's cgroup is killed and the cgroups removed.
//
// Run as root:  go run ./scripts/threat/record [-rounds 3] [-dur 5s] [-o testdata/threat/windows.csv] [-only a,b]
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"aiosfs/engines/threat"
	"aiosfs/engines/threat/dataset"
	"aiosfs/hal/proc"
	"aiosfs/hal/procconn"
)

var (
	rounds = flag.Int("rounds", 3, "rounds of the whole suite")
	dur    = flag.Duration("dur", 4500*time.Millisecond, "length of one run")
	out    = flag.String("o", "testdata/threat/windows.csv", "output CSV")
	only   = flag.String("only", "", "comma-separated scenario names (default all)")
	tick   = flag.Duration("tick", 250*time.Millisecond, "sampling interval")
	first  = flag.Int("first", 1, "number of the first round (a held-out set is recorded as later rounds)")
)

func main() {
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "record: needs root (cgroups, proc connector, fanotify)")
		os.Exit(2)
	}
	r, err := newRecorder()
	if err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		os.Exit(1)
	}
	defer r.close()
	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n != "" {
			want[n] = true
		}
	}
	// an interrupt ends the current run normally (its processes killed,
	// its cgroups removed) and writes what was recorded
	stopCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r.stop = stopCtx
	var rows []dataset.Row
	start := time.Now()
	for round := *first; round < *first+*rounds; round++ {
		for _, sc := range scenarios {
			if len(want) > 0 && !want[sc.Name] || stopCtx.Err() != nil {
				continue
			}
			rs, err := r.run(sc, round)
			if err != nil {
				fmt.Fprintf(os.Stderr, "record: %s round %d: %v\n", sc.Name, round, err)
				continue
			}
			fmt.Fprintf(os.Stderr, "%-11s r%d %2d windows  %s\n", sc.Name, round, len(rs), summary(rs))
			rows = append(rows, rs...)
		}
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		os.Exit(1)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		os.Exit(1)
	}
	if err := dataset.Write(f, rows); err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		os.Exit(1)
	}
	f.Close()
	fmt.Fprintf(os.Stderr, "record: %d windows in %s, %.0f s\n", len(rows), *out, time.Since(start).Seconds())
}

func summary(rs []dataset.Row) string {
	var cpu, sent, forks, execs, writes, sens, est float64
	for _, r := range rs {
		cpu = max(cpu, r.V.At(threat.CPU, 0))
		sent = max(sent, r.V.At(threat.NetSent, 0))
		forks = max(forks, r.V.At(threat.Forks, 0))
		execs = max(execs, r.V.At(threat.Execs, 0))
		writes = max(writes, r.V.At(threat.FilesWritten, 0))
		sens = max(sens, r.V.At(threat.SensitiveOpens, 0))
		est = max(est, r.V.At(threat.Established, 0))
	}
	return fmt.Sprintf("max cpu=%.2f sent=%.0f forks=%.0f execs=%.0f writes=%.0f sens=%.0f est=%.0f", cpu, sent, forks, execs, writes, sens, est)
}

// recorder holds what all runs share: the proc connector, fanotify, the
// parent cgroups and the fake secrets.
type recorder struct {
	fs      proc.FS
	conn    *procconn.Conn
	fan     int
	pidsDir string // parent pids cgroup we created
	cpuDir  string // parent cpuacct cgroup we created
	base    string // temp dir for everything
	secrets string

	mu   sync.Mutex
	cur  *runState // the run events are routed to
	done chan struct{}
	stop context.Context // done on SIGINT/SIGTERM
}

// runState is one run's membership and pending events.
type runState struct {
	members map[int]bool
	events  []threat.Event
}

func ownCgroup(ctrl string) (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == ctrl {
				return filepath.Join("/sys/fs/cgroup", ctrl, parts[2]), nil
			}
		}
	}
	return "", fmt.Errorf("no v1 %s hierarchy in /proc/self/cgroup", ctrl)
}

func newRecorder() (*recorder, error) {
	fs, err := proc.NewFS("/proc")
	if err != nil {
		return nil, err
	}
	r := &recorder{fs: fs, fan: -1, done: make(chan struct{}), stop: context.Background()}
	if r.base, err = os.MkdirTemp("", "aiosfs-threat-rec-"); err != nil {
		return nil, err
	}
	os.Chmod(r.base, 0o755)
	name := fmt.Sprintf("aiosfs-threat-rec-%d", os.Getpid())
	for _, c := range []struct {
		ctrl string
		dst  *string
	}{{"pids", &r.pidsDir}, {"cpuacct", &r.cpuDir}} {
		own, err := ownCgroup(c.ctrl)
		if err != nil {
			r.close()
			return nil, err
		}
		d := filepath.Join(own, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			r.close()
			return nil, err
		}
		*c.dst = d
	}
	// fake credentials: another agent's state and a key
	r.secrets = filepath.Join(r.base, "secrets")
	os.Mkdir(r.secrets, 0o700)
	os.WriteFile(filepath.Join(r.secrets, "id_rsa"), []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n"), 0o600)
	os.WriteFile(filepath.Join(r.secrets, "agent-state.db"), make([]byte, 4096), 0o600)
	if r.conn, err = procconn.Listen(); err != nil {
		r.close()
		return nil, err
	}
	if err := r.fanotify(); err != nil {
		r.close()
		return nil, err
	}
	go r.procLoop()
	go r.fanLoop()
	return r, nil
}

// sensitive is what the recorder watches for opens: the host's password
// and group shadow files, sudoers, root's ssh keys if any, and the fake
// secrets (standing for other agents' state).
func (r *recorder) sensitive() []string {
	out := []string{"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/root/.ssh/id_rsa", "/root/.ssh/id_ed25519"}
	return append(out, filepath.Join(r.secrets, "id_rsa"), filepath.Join(r.secrets, "agent-state.db"))
}

func (r *recorder) fanotify() error {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC, unix.O_RDONLY|unix.O_LARGEFILE)
	if err != nil {
		return fmt.Errorf("fanotify_init: %w", err)
	}
	r.fan = fd
	for _, p := range r.sensitive() {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD, unix.FAN_OPEN, unix.AT_FDCWD, p); err != nil {
			return fmt.Errorf("fanotify_mark %s: %w", p, err)
		}
	}
	// files closed after writing, on the mount holding the work dirs
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_MOUNT, unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, r.base); err != nil {
		return fmt.Errorf("fanotify_mark mount of %s: %w", r.base, err)
	}
	return nil
}

// fanLoop reads fanotify events: struct fanotify_event_metadata
// {u32 event_len; u8 vers; u8 reserved; u16 metadata_len; u64 mask;
// s32 fd; s32 pid}; each carries an open fd that must be closed.
func (r *recorder) fanLoop() {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(r.fan, buf)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		now := time.Now()
		for off := 0; off+24 <= n; {
			l := int(nativeU32(buf[off:]))
			if l < 24 {
				break
			}
			mask := nativeU64(buf[off+8:])
			fd := int32(nativeU32(buf[off+16:]))
			pid := int(int32(nativeU32(buf[off+20:])))
			path := ""
			if fd >= 0 {
				path, _ = os.Readlink("/proc/self/fd/" + strconv.Itoa(int(fd)))
				unix.Close(int(fd))
			}
			kind := threat.EvFileWrite
			if mask&unix.FAN_OPEN != 0 {
				kind = threat.EvSensitiveOpen
			}
			r.event(pid, threat.Event{Kind: kind, Time: now, Pid: pid, Path: path})
			off += l
		}
	}
}

func (r *recorder) procLoop() {
	for {
		evs, err := r.conn.Read()
		for _, e := range evs {
			r.procEvent(e)
		}
		if err != nil {
			return
		}
	}
}

func (r *recorder) procEvent(e procconn.Event) {
	switch e.Kind {
	case procconn.Fork:
		if e.Pid != e.Tgid {
			return // a thread
		}
		r.mu.Lock()
		if r.cur != nil && r.cur.members[e.ParentTgid] {
			r.cur.members[e.Tgid] = true
			r.cur.events = append(r.cur.events, threat.Event{Kind: threat.EvFork, Time: e.Time, Pid: e.Tgid})
		}
		r.mu.Unlock()
	case procconn.Exec:
		path, _ := os.Readlink("/proc/" + strconv.Itoa(e.Tgid) + "/exe")
		setid := false
		if st, err := os.Stat(path); err == nil && path != "" {
			setid = st.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0
		}
		r.event(e.Tgid, threat.Event{Kind: threat.EvExec, Time: e.Time, Pid: e.Tgid, Path: path, SetID: setid})
	case procconn.Exit:
		if e.Pid != e.Tgid {
			return
		}
		r.event(e.Tgid, threat.Event{Kind: threat.EvExit, Time: e.Time, Pid: e.Tgid})
	case procconn.UID:
		r.event(e.Tgid, threat.Event{Kind: threat.EvUID, Time: e.Time, Pid: e.Tgid})
	case procconn.GID:
		r.event(e.Tgid, threat.Event{Kind: threat.EvGID, Time: e.Time, Pid: e.Tgid})
	}
}

func (r *recorder) event(pid int, ev threat.Event) {
	r.mu.Lock()
	if r.cur != nil && r.cur.members[pid] {
		r.cur.events = append(r.cur.events, ev)
	}
	r.mu.Unlock()
}

func (r *recorder) close() {
	if r.conn != nil {
		r.conn.Close()
	}
	if r.fan >= 0 {
		unix.Close(r.fan)
	}
	for _, d := range []string{r.pidsDir, r.cpuDir} {
		if d != "" {
			os.Remove(d)
		}
	}
	if r.base != "" {
		os.RemoveAll(r.base)
	}
}

// ---- one run ----

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// listener starts the recorder's loopback peer for a scenario.
func listener(ctx context.Context, kind string) (int, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	var wg sync.WaitGroup
	var conns sync.Map
	stop := func() {
		l.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	}
	if kind == "api" {
		// a JSON API: a small answer to every request, connections kept alive
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":%d,"status":"ok","items":[1,2,3],"text":"%s"}`, time.Now().UnixNano(), strings.Repeat("a", 512))
		})}
		go srv.Serve(l)
		return port, func() { srv.Close() }, nil
	}
	if kind == "http" {
		blob := make([]byte, 8<<20)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(blob) })}
		go srv.Serve(l)
		return port, func() { srv.Close() }, nil
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				switch kind {
				case "pool":
					br := bufio.NewReader(c)
					for {
						if _, err := br.ReadString('\n'); err != nil {
							return
						}
						c.Write([]byte(`{"result":{"job":"0000","target":"ffff"}}` + "\n"))
					}
				case "shell":
					go io.Copy(io.Discard, c)
					for _, cmd := range []string{"id", "uname -a", "ls /etc | head", "cat /etc/hostname", "ps ax | head", "env | wc -l"} {
						if _, err := c.Write([]byte(cmd + "\n")); err != nil {
							return
						}
						select {
						case <-ctx.Done():
							return
						case <-time.After(500 * time.Millisecond):
						}
					}
					<-ctx.Done()
				default: // sink
					io.Copy(io.Discard, c)
				}
			}()
		}
	}()
	return port, stop, nil
}

func (r *recorder) prepare(w string) error {
	for _, d := range []string{"data", "docs"} {
		if err := os.MkdirAll(filepath.Join(w, d), 0o755); err != nil {
			return err
		}
	}
	// data: 160 files of 128 KiB, half compressible text, half noise
	chunk := make([]byte, 128<<10)
	for i := 0; i < 160; i++ {
		for j := range chunk {
			if i%2 == 0 {
				chunk[j] = "lorem ipsum dolor sit amet "[j%27]
			} else {
				chunk[j] = byte((j*7919 + i*104729) >> 3)
			}
		}
		if err := os.WriteFile(filepath.Join(w, "data", fmt.Sprintf("f%03d", i)), chunk, 0o644); err != nil {
			return err
		}
	}
	// docs: 400 files of 8 KiB
	for i := 0; i < 400; i++ {
		if err := os.WriteFile(filepath.Join(w, "docs", fmt.Sprintf("doc%03d.txt", i)), chunk[:8<<10], 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (r *recorder) run(sc Scenario, round int) ([]dataset.Row, error) {
	w, err := os.MkdirTemp(r.base, sc.Name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(w)
	os.Chmod(w, 0o755)
	if err := r.prepare(w); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *dur+2*time.Second)
	defer cancel()
	port := 0
	if sc.Listen != "" {
		p, stop, err := listener(ctx, sc.Listen)
		if err != nil {
			return nil, err
		}
		defer stop()
		port = p
	}
	aport := freePort()
	name := fmt.Sprintf("%s-r%d", sc.Name, round)
	pidsCg := filepath.Join(r.pidsDir, name)
	cpuCg := filepath.Join(r.cpuDir, name)
	for _, d := range []string{pidsCg, cpuCg} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	defer r.cleanup(pidsCg, cpuCg)
	pmax := sc.Pids
	if pmax == 0 {
		pmax = 256
	}
	if err := os.WriteFile(filepath.Join(pidsCg, "pids.max"), []byte(strconv.Itoa(pmax)), 0); err != nil {
		return nil, err
	}
	run := "exec bash -c \"$SCRIPT\""
	if sc.User == "nobody" {
		run = "exec setpriv --reuid=65534 --regid=65534 --clear-groups bash -c \"$SCRIPT\""
	}
	// the shell joins both cgroups before it execs the scenario
	cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs && echo $$ > %s/cgroup.procs && %s", pidsCg, cpuCg, run))
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + w, "W=" + w, "SECRETS=" + r.secrets,
		"PORT=" + strconv.Itoa(port), "APORT=" + strconv.Itoa(aport), "SCRIPT=" + sc.Script, "LANG=C"}
	cmd.Dir = w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull

	rs := &runState{members: map[int]bool{}}
	r.mu.Lock()
	r.cur = rs
	r.mu.Unlock()
	defer func() { r.mu.Lock(); r.cur = nil; r.mu.Unlock() }()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	rs.members[cmd.Process.Pid] = true
	r.mu.Unlock()
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	if sc.Drive {
		go drive(ctx, aport, sc.DrivePath, sc.DriveEvery, sc.DriveRate)
	}

	agg := threat.NewAggregator()
	smp := newSampler(r.fs, pidsCg, cpuCg)
	t0 := time.Now()
	var rows []dataset.Row
	add := func(v threat.Vector, end time.Time) {
		rows = append(rows, dataset.Row{Run: name, Round: round, Scenario: sc.Name, Label: sc.Label, Window: len(rows), TEnd: end.Sub(t0).Seconds(), V: v})
	}
	tk := time.NewTicker(*tick)
	defer tk.Stop()
	for time.Since(t0) < *dur && r.stop.Err() == nil {
		<-tk.C
		pids := smp.pids()
		r.mu.Lock()
		for _, p := range pids {
			rs.members[p] = true
		}
		evs := rs.events
		rs.events = nil
		r.mu.Unlock()
		o := smp.observe(time.Now(), pids)
		o.Events = evs
		if v, end, ok := agg.Add(o); ok {
			add(v, end)
		}
	}
	if v, end, ok := agg.Flush(); ok {
		add(v, end)
	}
	cancel()
	return rows, nil
}

// drive sends HTTP requests to a web server agent: by default small
// documents, about 40 a second; with path, that one path every every (a
// client downloading bulk answers, a fresh connection per request as
// curl makes, read at rate bytes/s through a 64 KiB receive buffer).
func drive(ctx context.Context, port int, path string, every time.Duration, rate int) {
	c := &http.Client{Timeout: time.Second}
	if path != "" {
		d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 64<<10) })
		}}
		c = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: d.DialContext}}
	}
	if every == 0 {
		every = 25 * time.Millisecond
	}
	for ctx.Err() == nil {
		p := path
		if p == "" {
			p = fmt.Sprintf("/doc%03d.txt", time.Now().Nanosecond()%400)
		}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, p))
		if err != nil && os.Getenv("FA_DEBUG") != "" {
			fmt.Fprintln(os.Stderr, "drive:", err)
		}
		if err == nil {
			readPaced(ctx, resp.Body, rate)
			resp.Body.Close()
		}
		time.Sleep(every)
	}
}

// readPaced reads r to its end at about rate bytes/s (0: unpaced).
func readPaced(ctx context.Context, r io.Reader, rate int) {
	if rate <= 0 {
		io.Copy(io.Discard, r)
		return
	}
	buf := make([]byte, 32<<10)
	t0, n := time.Now(), 0
	for ctx.Err() == nil {
		k, err := r.Read(buf)
		n += k
		if err != nil {
			return
		}
		if ahead := time.Duration(float64(n)/float64(rate)*float64(time.Second)) - time.Since(t0); ahead > 0 {
			time.Sleep(ahead)
		}
	}
}

// cleanup kills whatever is left in the run's cgroup (pids.max bounds a
// fork storm, so this converges) and removes both cgroups.
func (r *recorder) cleanup(pidsCg, cpuCg string) {
	for i := 0; i < 200; i++ {
		b, _ := os.ReadFile(filepath.Join(pidsCg, "cgroup.procs"))
		fields := strings.Fields(string(b))
		if len(fields) == 0 {
			break
		}
		for _, f := range fields {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range []string{pidsCg, cpuCg} {
		for i := 0; i < 100; i++ {
			if err := os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// ---- sampling ----

type sockPrev struct{ sent, recv uint64 }

type sampler struct {
	fs            proc.FS
	pidsCg, cpuCg string
	prevT         time.Time
	prevUsage     uint64
	prevProc      map[int]proc.Sample
	prevSock      map[uint64]sockPrev
}

func newSampler(fs proc.FS, pidsCg, cpuCg string) *sampler {
	return &sampler{fs: fs, pidsCg: pidsCg, cpuCg: cpuCg, prevProc: map[int]proc.Sample{}, prevSock: map[uint64]sockPrev{}}
}

func (s *sampler) pids() []int {
	b, _ := os.ReadFile(filepath.Join(s.pidsCg, "cgroup.procs"))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func readUint(path string) uint64 {
	b, _ := os.ReadFile(path)
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v
}

func (s *sampler) forkFails() uint64 {
	b, _ := os.ReadFile(filepath.Join(s.pidsCg, "pids.events"))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "max" {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			return v
		}
	}
	return 0
}

func (s *sampler) observe(now time.Time, pids []int) threat.Observation {
	var o threat.Observation
	o.Time = now
	dt := now.Sub(s.prevT).Seconds()
	usage := readUint(filepath.Join(s.cpuCg, "cpuacct.usage"))
	if !s.prevT.IsZero() && dt > 0 && usage >= s.prevUsage {
		o.CPU = float64(usage-s.prevUsage) / 1e9 / dt
	}
	o.CPUSeconds = float64(usage) / 1e9
	o.ForkFails = s.forkFails()
	cur := map[int]proc.Sample{}
	inodes := map[uint64]bool{}
	for _, p := range pids {
		ps, err := s.fs.Sample(p)
		if err != nil {
			continue
		}
		cur[p] = ps
		o.Procs++
		o.Threads += ps.Threads
		o.RSS += ps.RSS
		if ps.FDs > 0 {
			o.FDs += ps.FDs
		}
		o.MajFaults += ps.MajFaults
		if prev, ok := s.prevProc[p]; ok && prev.StartTicks == ps.StartTicks && dt > 0 {
			if d := ps.ReadBytes - prev.ReadBytes; d > 0 && prev.ReadBytes >= 0 {
				o.IOReadRate += float64(d) / dt
			}
			if d := ps.WriteBytes - prev.WriteBytes; d > 0 && prev.WriteBytes >= 0 {
				o.IOWriteRate += float64(d) / dt
			}
		}
		for _, in := range ps.SocketInodes {
			inodes[in] = true
		}
		if len(ps.SocketInodes) > 0 {
			if l, err := os.Readlink("/proc/" + strconv.Itoa(p) + "/fd/0"); err == nil && strings.HasPrefix(l, "socket:") {
				o.StdinSockets++
			}
		}
	}
	// sockets: state, peers and bytes from one sock_diag dump
	listenPorts := map[uint16]bool{}
	type sk struct {
		state        uint8
		src, dst     string
		sport, dport uint16
		sent, recv   uint64
	}
	var mine []sk
	curSock := map[uint64]sockPrev{}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		socks, _ := netlink.SocketDiagTCPInfo(fam)
		for _, x := range socks {
			if x == nil || x.InetDiagMsg == nil || !inodes[uint64(x.InetDiagMsg.INode)] {
				continue
			}
			m := x.InetDiagMsg
			k := sk{state: m.State, dst: m.ID.Destination.String(), sport: m.ID.SourcePort, dport: m.ID.DestinationPort}
			if x.TCPInfo != nil {
				k.sent, k.recv = x.TCPInfo.Bytes_sent, x.TCPInfo.Bytes_received
				if k.sent == 0 {
					k.sent = x.TCPInfo.Bytes_acked
				}
			}
			if m.State == netlink.TCP_LISTEN {
				listenPorts[m.ID.SourcePort] = true
			}
			mine = append(mine, k)
			in := uint64(m.INode)
			curSock[in] = sockPrev{k.sent, k.recv}
			if p, ok := s.prevSock[in]; ok && dt > 0 {
				if k.sent > p.sent {
					o.NetSentRate += float64(k.sent-p.sent) / dt
				}
				if k.recv > p.recv {
					o.NetRecvRate += float64(k.recv-p.recv) / dt
				}
			} else if dt > 0 && !s.prevT.IsZero() {
				o.NetSentRate += float64(k.sent) / dt
				o.NetRecvRate += float64(k.recv) / dt
			}
		}
	}
	for _, k := range mine {
		switch k.state {
		case netlink.TCP_LISTEN:
			o.Listen++
		case netlink.TCP_ESTABLISHED, netlink.TCP_SYN_SENT:
			o.Established++
			// accepted connections count by peer address only, so a
			// server's clients' ephemeral ports are not "new endpoints"
			if listenPorts[k.sport] {
				o.Remotes = append(o.Remotes, k.dst)
			} else {
				o.Remotes = append(o.Remotes, net.JoinHostPort(k.dst, strconv.Itoa(int(k.dport))))
			}
		}
	}
	o.NetRate = o.NetSentRate + o.NetRecvRate
	s.prevSock = curSock
	s.prevProc = cur
	s.prevT, s.prevUsage = now, usage
	return o
}

func nativeU32(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }
func nativeU64(b []byte) uint64 { return binary.NativeEndian.Uint64(b) }
