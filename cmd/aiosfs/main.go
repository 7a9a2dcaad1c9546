// Command aiosfs is the aiosfs daemon and a small 9P client for it.
//
//	aiosfs serve [flags]            run the daemon
//	aiosfs ls ADDR PATH             list a directory over 9P
//	aiosfs cat ADDR PATH            print a file over 9P
//	aiosfs write ADDR PATH TEXT...  write TEXT and a newline to a file over 9P
//	aiosfs ps [-a] [MOUNT|ADDR]     the agents at a glance (ps.go)
//	aiosfs ctl [-t MOUNT|ADDR] PATH VERB...  one line to a ctl, with the reason on refusal (ctlcmd.go)
//	aiosfs top [-i 1s] [-a] [MOUNT|ADDR]  a live terminal view, with keys to act (top.go)
//	aiosfs help                     print the usage (also -h, -help, --help)
//
// With no arguments it prints the usage to stderr and exits 2: a daemon
// mounts a file system and makes cgroups and a state directory, so it
// starts only when asked (`serve`, or flags: `aiosfs -mount /x` is
// `aiosfs serve -mount /x`).
//
// ADDR is a dial string: unix!/var/lib/aiosfs/9p.sock, tcp!host!port, or a
// plain socket path.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"aiosfs/ctl"
	"aiosfs/daemon"
	"aiosfs/engines/ml"
	"aiosfs/fs"
	"aiosfs/fs/p9fs"
	"aiosfs/hal/spawn"
)

func main() {
	// The agent shim must run before anything else touches the process.
	spawn.MaybeShim()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command line: it returns the exit status, 2 for a usage
// error (including no arguments at all), 1 for a failure.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stderr)
		return 0
	}
	cmd := "serve"
	if !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args)
	case "ls", "cat", "write":
		err = client(cmd, args, stdout)
	case "ps":
		err = ps(args, stdout)
	case "ctl":
		err = ctlCmd(args)
	case "top":
		err = top(args)
	default:
		fmt.Fprintf(stderr, "aiosfs: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
	switch {
	case errors.Is(err, errHelp):
		usage(stderr)
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "aiosfs %s: %v\n", cmd, err)
		usage(stderr)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "aiosfs %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help asked for")
)

// usage prints every subcommand and every flag. The serve flags come from
// the same FlagSet serve parses, so the two cannot drift apart.
func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  aiosfs serve [flags]            run the daemon (aiosfs -flag ... is aiosfs serve -flag ...)
  aiosfs ls ADDR PATH             list a directory over 9P
  aiosfs cat ADDR PATH            print a file over 9P
  aiosfs write ADDR PATH TEXT...  write TEXT (and a newline) to a file over 9P
  aiosfs ps [-a] [MOUNT|ADDR]     the agents at a glance, in human units; -a also the exited ones
  aiosfs ctl [-t MOUNT|ADDR] PATH VERB [ARG...]
                                  write one line to a ctl (PATH: agents/N/ctl, N, /ctl, sched, ...)
                                  and on refusal print the reason from log
  aiosfs top [-i 1s] [-a] [MOUNT|ADDR]
                                  live view: agents by CPU or memory, allocations, forecasts,
                                  events; keys freeze, thaw, kill, change a limit (q quits)
  aiosfs help                     print this (also -h, -help, --help)
With no arguments aiosfs prints this and exits 2; it starts a daemon only for serve.
ADDR: unix!/var/lib/aiosfs/9p.sock, tcp!HOST!PORT, or a socket path.
ps, ctl and top read the tree through the mount at /aios, else over 9P on
/var/lib/aiosfs/9p.sock, unless told a mount point or an ADDR.
ls, cat and write take no flags.

serve flags:
`)
	fl, _ := serveFlags()
	fl.SetOutput(w)
	fl.PrintDefaults()
}

// serveFlags is serve's FlagSet and the Config it fills.
func serveFlags() (*flag.FlagSet, *daemon.Config) {
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cfg daemon.Config
	fl.StringVar(&cfg.Mount, "mount", "/aios", "FUSE mount point (empty: no FUSE mount)")
	fl.StringVar(&cfg.StateDir, "state", "/var/lib/aiosfs", "state directory: store, 9P socket, agents' output")
	fl.StringVar(&cfg.Listen, "listen", "", "also serve 9P here, e.g. tcp!127.0.0.1!5640")
	fl.BoolVar(&cfg.TrustTCP, "trust-tcp", false, "believe the uid a TCP 9P client claims and let it write (default: TCP clients are nobody and read-only); only for a network you trust completely")
	fl.StringVar(&cfg.MetricsListen, "metrics-listen", "", "also serve the metrics file over HTTP for Prometheus at HOST:PORT/metrics, e.g. 127.0.0.1:9464 (no authentication)")
	fl.DurationVar(&cfg.Interval, "interval", time.Second, "sampling interval")
	fl.StringVar(&cfg.ProcRoot, "proc", "/proc", "procfs root")
	fl.StringVar(&cfg.CgroupRoot, "cgroup-root", "/sys/fs/cgroup", "cgroup filesystem root")
	fl.StringVar(&cfg.Prefix, "cgroup-prefix", "aiosfs", "agents' cgroups go under <own cgroup>/<prefix>")
	fl.StringVar(&cfg.Cgroup, "cgroup", "", "force cgroup version v1 or v2 (default: detect)")
	fl.StringVar(&cfg.ThreatPubKey, "threat-pubkey", "", "pin the ed25519 public key (hex or base64) threat models must be signed with; empty: the daemon's own key, made at first start")
	fl.IntVar(&cfg.SyscallLearn, "syscall-learn", 0, "system calls an agent's syscall profile is learned from (0: 20000); -1 turns the eBPF syscall capture off")
	fl.StringVar(&cfg.GPU, "gpu", "", "GPUs: empty detects through NVML, none, or mock:MODEL for go-nvml's mock devices")
	fl.DurationVar(&cfg.Grace, "grace", 5*time.Second, "time between SIGTERM and SIGKILL for stop and shutdown")
	cfg.Memory = daemon.DefaultMemory
	fl.IntVar(&cfg.Memory.GCPercent, "gc-percent", cfg.Memory.GCPercent, "the Go garbage collector's GOGC: the heap may grow by this percentage of the live heap between collections; lower trades CPU for memory (0: GOGC from the environment, else 100)")
	fl.Var((*memSize)(&cfg.Memory.MemoryLimit), "memory-limit", "soft limit on the Go runtime's memory (GOMEMLIMIT; size with K, M, G suffix); near it the collector runs more often and returns freed memory at once, past it -gc-percent still applies (none: GOMEMLIMIT from the environment, else no limit)")
	return fl, &cfg
}

// memSize is -memory-limit: a size as ctl.ParseSize reads it, 0 for
// none (the runtime's own).
type memSize int64

func (m *memSize) String() string {
	if *m <= 0 {
		return "none"
	}
	return ctl.FormatSize(int64(*m))
}

func (m *memSize) Set(s string) error {
	n, err := ctl.ParseSize(s)
	if err != nil {
		return err
	}
	if n == ctl.Unlimited || n == 0 {
		n = 0
	}
	*m = memSize(n)
	return nil
}

func serve(args []string) error {
	fl, cfg := serveFlags()
	// run prints what is wrong and the whole usage, as for every usage
	// error, and for -h, so the flag package prints nothing itself.
	fl.SetOutput(io.Discard)
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fl.Args())
	}
	if cfg.Interval < 10*time.Millisecond {
		return fmt.Errorf("%w: -interval %s below 10ms", errUsage, cfg.Interval)
	}
	if cfg.Cgroup != "" && cfg.Cgroup != "v1" && cfg.Cgroup != "v2" {
		return fmt.Errorf("%w: -cgroup %q: want v1 or v2", errUsage, cfg.Cgroup)
	}
	if err := cfg.Memory.Check(); err != nil {
		return fmt.Errorf("%w: -gc-percent %d -memory-limit %s: %v", errUsage, cfg.Memory.GCPercent, (*memSize)(&cfg.Memory.MemoryLimit), err)
	}
	if cfg.ThreatPubKey != "" {
		if _, err := ml.ParsePublicKey(cfg.ThreatPubKey); err != nil {
			return fmt.Errorf("%w: -threat-pubkey: %v", errUsage, err)
		}
	}
	cfg.Stderr = os.Stderr
	// A daemon whose stderr reader went away must not die of SIGPIPE on
	// its next log line and leave its agents unmanaged. Notify (not
	// Ignore): an ignored signal would be inherited by every agent.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	// Caught before Start, not after: Start mounts the tree before it
	// returns, and a SIGTERM sent by someone who saw the mount must
	// shut the daemon down cleanly (unmount, remove its cgroups), not
	// kill it by the default action. One that comes during Start waits
	// in the channel and is handled as soon as Start returns.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	d, err := daemon.Start(*cfg)
	if err != nil {
		return err
	}
	s := <-sig
	d.Log.Printf("signal %v: shutting down", s)
	return d.Close()
}

// client runs ls, cat and write over 9P.
func client(cmd string, args []string, out io.Writer) error {
	want := 2
	if cmd == "write" {
		want = 3
	}
	if len(args) < want || (cmd != "write" && len(args) > want) {
		return fmt.Errorf("%w: %s takes %s", errUsage, cmd, map[string]string{"ls": "ADDR PATH", "cat": "ADDR PATH", "write": "ADDR PATH TEXT..."}[cmd])
	}
	c, err := p9fs.Dial(args[0])
	if err != nil {
		return err
	}
	defer c.Close()
	path := args[1]
	switch cmd {
	case "ls":
		ents, err := c.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range ents {
			name := e.Name
			if e.Mode.IsDir() {
				name += "/"
			}
			fmt.Fprintf(out, "%s %5d %5d %s\n", e.Mode, e.Uid, e.Gid, name)
		}
	case "cat":
		b, err := c.ReadFile(path)
		if err != nil {
			return err
		}
		out.Write(b)
	case "write":
		if err := c.WriteFile(path, []byte(strings.Join(args[2:], " ")+"\n")); err != nil {
			msg := fmt.Sprintf("%s: %v (errno %d)", path, err, fs.Errno(err))
			// 9P's Rlerror is an errno; the reason is in errstr, this
			// connection's last refusal.
			if why := errstrReason(p9Tree{c, args[0]}, path, ""); why != "" {
				msg += ": " + why
			}
			return errors.New(msg)
		}
	}
	return nil
}
