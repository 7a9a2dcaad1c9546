// Package threat is the threat engine's core: per-agent behaviour
// features over 1 s and 10 s windows, a rule floor, a learned detector
// (engines/ml), threat intelligence (score history, trend, forecast,
// early warning), a response policy and the renderers of the engine's
// files. It holds no files, ctl hooks or kernel actions itself: the
// daemon's wiring feeds it Observations and carries out the Actions it
// recommends (see docs/threat.md, "Wiring").
package threat

// Feature indexes one behaviour feature of a window. Every feature is
// computed per agent (all processes of its cgroup) over one window; the
// comment on each constant names its source in the kernel.
type Feature int

const (
	// CPU is the mean CPU use, in cores. Source: the cgroup's
	// cpuacct.usage / cpu.stat usage_usec delta (telemetry.Sample.CPU),
	// else /proc/PID/stat utime+stime.
	CPU Feature = iota
	// CPUSteady is 1 - the coefficient of variation of CPU across the
	// window's samples when CPU ≥ 0.05 cores, else 0: a miner is busy
	// and flat, a build is busy and jagged. Needs ≥ 2 samples per window
	// (0 with one). Source: as CPU.
	CPUSteady
	// MemGrowth is the growth of resident memory, bytes/s (negative
	// clamped to 0). Source: VmRSS in /proc/PID/status, summed.
	MemGrowth
	// Forks per second: processes created (not threads). Source: proc
	// connector PROC_EVENT_FORK with child pid == child tgid.
	Forks
	// Execs per second. Source: proc connector PROC_EVENT_EXEC.
	Execs
	// Exits per second: processes ended, short-lived children included.
	// Source: proc connector PROC_EVENT_EXIT (tgid == pid).
	Exits
	// DistinctBins is the number of distinct executables exec'd in the
	// window. Source: PROC_EVENT_EXEC, then readlink /proc/PID/exe.
	DistinctBins
	// NewBins is the number of executables this agent had never exec'd
	// before (a bounded set of 512 per agent). Source: as DistinctBins.
	NewBins
	// SetIDExecs counts execs of a file with the set-user-ID or
	// set-group-ID bit. Source: PROC_EVENT_EXEC, stat(2) of
	// /proc/PID/exe (S_ISUID|S_ISGID).
	SetIDExecs
	// IDChanges counts uid/gid changes. Source: PROC_EVENT_UID and
	// PROC_EVENT_GID (ruid/euid, rgid/egid).
	IDChanges
	// CapChanges counts changes of a process's effective capability set.
	// Source: CapEff in /proc/PID/status compared between samples (the
	// proc connector has no capability event; capset(2) is seen only
	// with eBPF). 0 when the feeder does not compare.
	CapChanges
	// FDs is the largest count of open descriptors. Source: the entries
	// of /proc/PID/fd, summed.
	FDs
	// SensitiveOpens counts opens of sensitive paths (credentials,
	// /etc/shadow, ssh keys, other agents' state). Source: fanotify
	// FAN_OPEN marks on those paths (event pid → agent), else the
	// /proc/PID/fd links seen at sample time (misses short opens).
	SensitiveOpens
	// Listen is the largest count of listening TCP sockets. Source:
	// sock_diag (NETLINK_SOCK_DIAG, TCP_LISTEN) matched by inode with
	// /proc/PID/fd.
	Listen
	// Established is the largest count of connected TCP sockets.
	// Source: sock_diag, state ESTABLISHED (and SYN_SENT), by inode.
	Established
	// NewRemotes counts remote endpoints (address:port) this agent had
	// not talked to before (bounded set of 1024). Source: sock_diag
	// inet_diag_sockid.idiag_dst/dport.
	NewRemotes
	// NetSent and NetRecv are TCP payload bytes/s. Source: sock_diag
	// INET_DIAG_INFO tcp_info bytes_sent / bytes_received per socket,
	// deltas clamped at 0.
	NetSent
	NetRecv
	// DiskRead and DiskWrite are storage bytes/s. Source:
	// /proc/PID/io read_bytes / write_bytes deltas.
	DiskRead
	DiskWrite
	// FilesWritten is files closed after writing, per second. Source:
	// fanotify FAN_CLOSE_WRITE on the agent's writable mounts (event
	// pid → agent); 0 when the feeder has no fanotify.
	FilesWritten
	// StdinSockets is the largest number of processes whose standard
	// input is a socket: a shell reading its commands from the network.
	// (Standard output alone is not counted: `tar c dir >/dev/tcp/...`
	// is exfiltration, not a remote shell.) Source: readlink
	// /proc/PID/fd/0 = "socket:[N]".
	StdinSockets
	// Procs and Threads are the largest counts. Source:
	// cgroup.procs / pids.current, /proc/PID/status Threads.
	Procs
	Threads
	// MajFaults per second. Source: /proc/PID/stat majflt.
	MajFaults
	// Throttled is CFS periods throttled per second. Source: the cgroup's
	// cpu.stat nr_throttled.
	Throttled
	// OOMKills in the window. Source: memory.events oom_kill (v2),
	// memory.oom_control oom_kill (v1).
	OOMKills
	// ForkFails counts forks refused by pids.max. Source: pids.events
	// "max" (cgroup v1 and v2).
	ForkFails

	NumFeatures
)

var featureNames = [NumFeatures]string{
	"cpu", "cpu_steady", "mem_growth", "forks", "execs", "exits", "distinct_bins", "new_bins",
	"setid_execs", "id_changes", "cap_changes", "fds", "sensitive_opens", "listen", "established",
	"new_remotes", "net_sent", "net_recv", "disk_read", "disk_write", "files_written",
	"stdin_sockets", "procs", "threads", "majflt", "throttled", "oom_kills", "fork_fails",
}

func (f Feature) String() string {
	if f >= 0 && f < NumFeatures {
		return featureNames[f]
	}
	return "feature?"
}

// Windows are the window lengths, in seconds, of a feature vector: the
// vector is the 1 s window's features then the 10 s window's.
var Windows = [...]int{1, 10}

// VectorLen is the length of a feature vector.
const VectorLen = int(NumFeatures) * len(Windows)

// VectorNames names each column of a feature vector: "cpu@1s", ...,
// "cpu@10s", ...
func VectorNames() []string {
	out := make([]string, 0, VectorLen)
	for _, w := range Windows {
		for f := Feature(0); f < NumFeatures; f++ {
			out = append(out, f.String()+"@"+itoa(w)+"s")
		}
	}
	return out
}

// FeatureIndex returns the column of name ("cpu@10s"), or -1.
func FeatureIndex(name string) int {
	for i, n := range VectorNames() {
		if n == name {
			return i
		}
	}
	return -1
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// Vector is one window's features: [f@1s..., f@10s...].
type Vector [VectorLen]float64

// At returns feature f over window w (an index into Windows).
func (v *Vector) At(f Feature, w int) float64 { return v[w*int(NumFeatures)+int(f)] }
