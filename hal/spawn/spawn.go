// Package spawn starts an agent's first process inside its cgroups before
// the program runs a single instruction.
//
// cgroup v2 can start a child directly in a cgroup (clone3 with
// CLONE_INTO_CGROUP), but cgroup v1 hierarchies cannot, and a program that
// forks at once would leave children outside the agent if it were moved
// after exec. So the daemon starts itself as a small shim (argv[1] ==
// ShimArg), places the shim's pid in the agent's cgroups, and only then
// sends the shim its Spec over a pipe. The shim sets priority, capabilities
// and credentials on its own thread and execs the program, which keeps the
// shim's pid: the daemon's child is the agent's leader, so its exit status
// comes from wait(2). An exec failure comes back on a close-on-exec pipe,
// as os/exec does it.
package spawn

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// ShimArg is argv[1] of the shim. main must call ShimMain first thing when
// it sees it.
const ShimArg = "__aiosfs_exec"

// Spec is what the agent's first process runs as.
type Spec struct {
	// Path is the program: a name searched in Env's PATH, or a path
	// (relative to Dir), resolved by the shim once it runs as Uid.
	Path string
	Args []string // argv, Args[0] the name
	Env  []string
	Dir  string
	Uid  uint32
	Gid  uint32
	// Groups are supplementary groups; nil keeps none.
	Groups []uint32
	Nice   int
	// Rlimits are set before the credentials change: the limits of the
	// unprivileged caller that started the agent, which it would have
	// passed to a child of its own.
	Rlimits []Rlimit
	// Add are capabilities (names as in capabilities(7), without CAP_)
	// raised as ambient capabilities for a non-root program; Drop are
	// removed from the bounding and inheritable sets.
	Add, Drop []string
}

// Start starts spec. place is called with the shim's pid before the
// program runs; an error from it kills the shim. stdout and stderr may be
// nil (to /dev/null).
func Start(spec Spec, place func(pid int) error, stdout, stderr *os.File) (*os.Process, error) {
	if !shimReady.Load() {
		return nil, ErrNoShim
	}
	if _, err := CapsOf(spec.Add); err != nil {
		return nil, err
	}
	if _, err := CapsOf(spec.Drop); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("spawn: find own executable: %w", err)
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer specR.Close()
	defer specW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer errR.Close()
	cmd := exec.Command(self, ShimArg)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = []*os.File{specR, errW} // fds 3 and 4 in the shim
	cmd.Env = []string{}
	// A session of its own: a signal to the daemon's terminal must not
	// reach agents, and the agent outlives a daemon killed with SIGKILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		errW.Close()
		return nil, fmt.Errorf("spawn: start shim: %w", err)
	}
	errW.Close()
	p := cmd.Process
	fail := func(err error) (*os.Process, error) {
		p.Kill()
		p.Wait()
		return nil, err
	}
	if err := place(p.Pid); err != nil {
		return fail(fmt.Errorf("spawn: place in cgroup: %w", err))
	}
	if err := json.NewEncoder(specW).Encode(spec); err != nil {
		return fail(fmt.Errorf("spawn: send spec: %w", err))
	}
	specW.Close()
	msg, _ := io.ReadAll(errR)
	if len(msg) > 0 {
		p.Wait()
		return nil, parseShimError(string(msg))
	}
	return p, nil
}

// Rlimit is one setrlimit(2) of the agent's first process.
type Rlimit struct {
	Resource int    `json:"resource"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

// Error is a failure the shim reported: the errno the kernel gave it
// (ENOENT for a missing program, EACCES for a directory the agent's user
// may not enter) and what it was doing.
type Error struct {
	Errno syscall.Errno
	Msg   string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap lets errors.As find the errno.
func (e *Error) Unwrap() error { return e.Errno }

// parseShimError reads the shim's "ERRNO message" line.
func parseShimError(s string) error {
	s = strings.TrimSpace(s)
	num, msg, _ := strings.Cut(s, " ")
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 {
		return &Error{Errno: syscall.EINVAL, Msg: s}
	}
	return &Error{Errno: syscall.Errno(n), Msg: msg}
}

// DefaultPath is an agent's PATH unless its env= sets one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// MaybeShim runs the shim, and never returns, when this process was started
// as one (argv[1] == ShimArg). main calls it first thing, and so does the
// TestMain of every package whose tests spawn agents (the test binary is
// then the shim, as the daemon's binary is).
func MaybeShim() {
	if len(os.Args) > 1 && os.Args[1] == ShimArg {
		ShimMain()
	}
	shimReady.Store(true)
}

// shimReady says MaybeShim ran in this process. Start refuses without it:
// a program that embeds the daemon but forgot MaybeShim would run its own
// main as every agent's shim, and a main that starts a daemon would then
// start one per agent, each spawning more (it happened, once, to an
// evaluation script).
var shimReady atomic.Bool

// ErrNoShim is Start's refusal in a program whose main did not call
// MaybeShim.
var ErrNoShim = errors.New("spawn: this program's main does not call spawn.MaybeShim first, so it cannot be an agent's shim")
