package process

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// RaiseNofile sets RLIMIT_NOFILE of process pid to cur (soft), lifting
// its hard limit to cur when it is lower (prlimit(2); another user's
// process and a higher hard limit need CAP_SYS_RESOURCE). cur is capped
// at the kernel's fs.nr_open, above which prlimit fails with EPERM. It
// returns the soft limit the process had.
func RaiseNofile(pid int, cur uint64) (old uint64, err error) {
	var rl unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &rl); err != nil {
		return 0, err
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && cur > n {
			cur = n
		}
	}
	nl := unix.Rlimit{Cur: cur, Max: max(rl.Max, cur)}
	return rl.Cur, unix.Prlimit(pid, unix.RLIMIT_NOFILE, &nl, nil)
}
