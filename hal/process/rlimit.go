package process

import "golang.org/x/sys/unix"

// RaiseNofile sets RLIMIT_NOFILE of process pid to cur (soft), lifting
// its hard limit to cur when it is lower (prlimit(2); another user's
// process and a higher hard limit need CAP_SYS_RESOURCE). It returns the
// soft limit it had.
func RaiseNofile(pid int, cur uint64) (old uint64, err error) {
	var rl unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &rl); err != nil {
		return 0, err
	}
	nl := unix.Rlimit{Cur: cur, Max: max(rl.Max, cur)}
	return rl.Cur, unix.Prlimit(pid, unix.RLIMIT_NOFILE, &nl, nil)
}
