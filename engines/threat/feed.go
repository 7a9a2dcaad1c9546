package threat

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"aiosfs/engines/telemetry"
	"aiosfs/hal/fanwatch"
	"aiosfs/hal/kfile"
)

// The live feed beyond the telemetry sample, so that the engine sees what
// scripts/threat/record gave it in training: the sampler's socket view of
// each agent (telemetry.Sampler.Net: sockets by state, peers, bytes by
// direction, stdin sockets, all from the pass's one sock_diag dump) and
// opens of sensitive files (hal/fanwatch: fanotify FAN_OPEN, the opener's
// pid attributed to its agent). docs/threat.md §10 says what is fed.

// DefaultSensitive are the files and directories whose opens feed
// sensitive_opens: the password and group shadow files, sudoers and
// root's ssh directory. The daemon adds its state directory; every
// agent's owner's ~/.ssh is added as the agent is first seen.
var DefaultSensitive = []string{"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/root/.ssh"}

// maxUnattributed bounds the opens kept for another try at the next two
// passes (a process whose fork the sampler had not placed yet).
const maxUnattributed = 1024

// opens is the fanotify side of the feed.
type opens struct {
	mu      sync.Mutex
	w       *fanwatch.Watcher
	state   string          // "on", or "off: why"
	owners  map[uint32]bool // uids whose ~/.ssh was looked at
	agents  map[int]bool    // agents whose owner was looked at
	pending []unplaced      // opens of pids with no agent yet
	fed     uint64          // opens fed to an agent

	// recent maps the pids of the latest proc events (fork, exec, exit,
	// uid) to their agent, the last maxRecent of them: a `cat
	// /etc/shadow` may have exited, and left the sampler's pid table,
	// before its open is read.
	recent  map[int]int
	recentQ []int
	recentH int
}

const maxRecent = 4096

// notePid remembers that pid was agent id's (a proc event said so).
func (d *Device) notePid(pid, id int) {
	if pid <= 0 || id == 0 {
		return
	}
	o := &d.opens
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.recent == nil {
		o.recent = map[int]int{}
	}
	if _, ok := o.recent[pid]; !ok {
		if len(o.recentQ) < maxRecent {
			o.recentQ = append(o.recentQ, pid)
		} else {
			delete(o.recent, o.recentQ[o.recentH])
			o.recentQ[o.recentH] = pid
			o.recentH = (o.recentH + 1) % maxRecent
		}
	}
	o.recent[pid] = id
}

// recentAgent is pid's agent as the latest proc events said (0: none).
func (d *Device) recentAgent(pid int) int {
	d.opens.mu.Lock()
	defer d.opens.mu.Unlock()
	return d.opens.recent[pid]
}

// unplaced is an open whose pid had no agent yet, and the passes that
// looked for it.
type unplaced struct {
	e     Event
	tries int
}

// startOpens makes the fanotify watch and reads it until ctx ends. Without
// CAP_SYS_ADMIN (or fanotify) the engine goes without sensitive opens,
// and threat/status's responder line and the log say why.
func (d *Device) startOpens(ctx context.Context) {
	o := &d.opens
	if len(d.cfg.Sensitive) == 0 || d.cfg.AgentOf == nil {
		o.mu.Lock()
		o.state = "off: not configured"
		o.mu.Unlock()
		return
	}
	w, err := fanwatch.New()
	if err != nil {
		why := err.Error()
		if errors.Is(err, unix.EPERM) {
			why += " (fanotify needs CAP_SYS_ADMIN)"
		}
		o.mu.Lock()
		o.state = "off: " + why
		o.mu.Unlock()
		d.cfg.Logf("threat: no sensitive_opens: %s", why)
		return
	}
	for _, p := range d.cfg.Sensitive {
		if err := w.Add(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.cfg.Logf("threat: watch opens of %s: %v", p, err)
		}
	}
	o.mu.Lock()
	o.w, o.state = w, "on"
	o.mu.Unlock()
	go func() {
		<-ctx.Done()
		w.Close()
	}()
	go func() {
		if err := w.Read(d.sensitiveOpen); err != nil {
			d.cfg.Logf("threat: sensitive opens: %v", err)
			o.mu.Lock()
			o.state = "off: " + err.Error()
			o.mu.Unlock()
		}
	}()
}

// SensitiveDirs returns dir and its subdirectories one level down, at
// most 32: the daemon's state directory as the watch is given it (a
// directory's mark covers the files directly in it).
func SensitiveDirs(dir string) []string {
	out := []string{dir}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() && len(out) < 32 {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// sensitiveOpen is one open from the watch: its agent's event, or kept
// for the next pass when the pid has no agent yet.
func (d *Device) sensitiveOpen(op fanwatch.Open) {
	e := Event{Kind: EvSensitiveOpen, Time: op.Time, Pid: op.Pid, Path: op.Path}
	if id := d.agentOf(op.Pid); id != 0 {
		d.feedEvent(id, e)
		return
	}
	o := &d.opens
	o.mu.Lock()
	if len(o.pending) < maxUnattributed {
		o.pending = append(o.pending, unplaced{e: e})
	}
	o.mu.Unlock()
}

// agentOf is pid's agent. While the process lives, its cgroup2 directory
// decides (/proc/PID/cgroup's "0::" line against each agent's unified
// directory): exact, and immune to pid reuse. A soak on a busy host
// (scripts/threat/soak) had benign agents blamed for other programs'
// reads of /etc/shadow through stale pids. Once it is gone (a cat that
// read and exited before its event was read), or on a host with no
// cgroup2 directories, it is the sampler's word (as of its last pass or
// a fork since) or the latest proc events', else that of its nearest
// known ancestor (at most 4 up, from /proc/PID/stat).
func (d *Device) agentOf(pid int) int {
	if id, known := d.cgroupAgent(pid); known {
		return id
	}
	for i := 0; i < 5 && pid > 1; i++ {
		if id := d.placed(pid); id != 0 {
			return id
		}
		pid = d.ppid(pid)
	}
	return 0
}

// cgroupAgent places a live pid by its cgroup2 directory: known is false
// when the process is gone or has no cgroup2 line (then id is 0).
func (d *Device) cgroupAgent(pid int) (id int, known bool) {
	var rel string
	err := kfile.Read(filepath.Join(d.cfg.Proc, strconv.Itoa(pid), "cgroup"), func(b []byte) error {
		for _, l := range bytes.Split(b, []byte{'\n'}) {
			if bytes.HasPrefix(l, []byte("0::")) {
				rel = string(l[3:])
			}
		}
		return nil
	})
	if err != nil || rel == "" || rel == "/" {
		return 0, err == nil && rel == "/"
	}
	for _, a := range d.cfg.Agents.IDs() {
		cg, err := d.cfg.Agents.Cgroups(a)
		if err != nil || cg["unified"] == "" {
			continue
		}
		if strings.HasSuffix(cg["unified"], rel) {
			return a, true
		}
	}
	return 0, true
}

func (d *Device) placed(pid int) int {
	if id := d.cfg.AgentOf(pid); id != 0 {
		return id
	}
	return d.recentAgent(pid)
}

// ppid reads pid's parent from /proc/PID/stat (0 if gone).
func (d *Device) ppid(pid int) int {
	pp := 0
	kfile.Read(filepath.Join(d.cfg.Proc, strconv.Itoa(pid), "stat"), func(b []byte) error {
		// "pid (comm) state ppid ...": comm runs to the last ')'.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			if f := bytes.Fields(b[i+1:]); len(f) >= 2 {
				pp, _ = strconv.Atoi(string(f[1]))
			}
		}
		return nil
	})
	return pp
}

// feedEvent queues e for agent id's next observation.
func (d *Device) feedEvent(id int, e Event) {
	d.mu.Lock()
	if len(d.pending[id]) < maxPending {
		d.pending[id] = append(d.pending[id], e)
	}
	d.mu.Unlock()
	if e.Kind == EvSensitiveOpen {
		d.opens.mu.Lock()
		d.opens.fed++
		d.opens.mu.Unlock()
	}
}

// feedPass runs before a pass's observations: opens kept from before get
// their agent now, or at the next pass (after two, they are dropped: not
// an agent's), and agents seen for the first time have their owner's
// ~/.ssh watched.
func (d *Device) feedPass(latest map[int]telemetry.Sample) {
	o := &d.opens
	o.mu.Lock()
	w := o.w
	retry := o.pending
	o.pending = nil
	var fresh []int
	if w != nil {
		if o.agents == nil {
			o.agents, o.owners = map[int]bool{}, map[uint32]bool{}
		}
		for id := range latest {
			if !o.agents[id] {
				o.agents[id] = true
				fresh = append(fresh, id)
			}
		}
	}
	o.mu.Unlock()
	var still []unplaced
	for _, u := range retry {
		if id := d.placed(u.e.Pid); id != 0 {
			d.feedEvent(id, u.e)
		} else if u.tries++; u.tries < 2 {
			still = append(still, u)
		}
	}
	if len(still) > 0 {
		o.mu.Lock()
		if len(o.pending)+len(still) <= maxUnattributed {
			o.pending = append(o.pending, still...)
		}
		o.mu.Unlock()
	}
	if len(fresh) > 0 {
		// A user lookup may ask NSS (LDAP, sssd): not on the pass's
		// goroutine.
		go d.watchOwners(w, fresh)
	}
}

// watchOwners marks the ~/.ssh of agents' owners not marked yet.
func (d *Device) watchOwners(w *fanwatch.Watcher, ids []int) {
	o := &d.opens
	for _, id := range ids {
		in, err := d.cfg.Agents.Info(id)
		if err != nil {
			continue
		}
		o.mu.Lock()
		done := o.owners[in.Uid]
		o.owners[in.Uid] = true
		o.mu.Unlock()
		if done {
			continue
		}
		u, err := user.LookupId(strconv.FormatUint(uint64(in.Uid), 10))
		if err != nil || u.HomeDir == "" || u.HomeDir == "/" {
			continue
		}
		if err := w.Add(filepath.Join(u.HomeDir, ".ssh")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.cfg.Logf("threat: watch opens of %s: %v", filepath.Join(u.HomeDir, ".ssh"), err)
		}
	}
}

// forgetOpens drops what the feed keeps of agent id.
func (d *Device) forgetOpens(id int) {
	d.opens.mu.Lock()
	delete(d.opens.agents, id)
	d.opens.mu.Unlock()
}

// opensState is the watch's state for threat/status: on, or off: why.
func (d *Device) opensState() (string, uint64) {
	d.opens.mu.Lock()
	defer d.opens.mu.Unlock()
	if d.opens.state == "" {
		return "off: not started", d.opens.fed
	}
	return d.opens.state, d.opens.fed
}

// closeOpens ends the watch.
func (d *Device) closeOpens() {
	d.opens.mu.Lock()
	w := d.opens.w
	d.opens.w = nil
	if w != nil {
		d.opens.state = "off: closed"
	}
	d.opens.mu.Unlock()
	if w != nil {
		w.Close()
	}
}

// netFacts fills o's socket facts from the sampler's view of agent id
// (Established falls back to Sample.Sockets, every socket the agent
// holds, when the daemon gives no view).
func (d *Device) netFacts(o *Observation, id int) {
	if d.cfg.Net == nil {
		o.Established = o.Sockets
		return
	}
	v, ok := d.cfg.Net(id)
	if !ok {
		return
	}
	o.NetSentRate, o.NetRecvRate = v.SentRate, v.RecvRate
	o.Listen, o.Established, o.StdinSockets = v.Listen, v.Established, v.StdinSockets
	if len(v.Remotes) > 0 {
		o.Remotes = make([]string, len(v.Remotes))
		for i, r := range v.Remotes {
			if r.Port() == 0 {
				o.Remotes[i] = r.Addr().String() // an accepted client: by address
			} else {
				o.Remotes[i] = r.String()
			}
		}
	}
}
