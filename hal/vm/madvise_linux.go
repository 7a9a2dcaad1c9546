package vm

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Advice values for Advise (the kernel's MADV_*).
const (
	WillNeed = unix.MADV_WILLNEED
	Cold     = unix.MADV_COLD
	PageOut  = unix.MADV_PAGEOUT
)

// Reclaim is not an madvise advice but the other lever a decision may
// pull: cgroup v2's memory.reclaim (see Reclaim).
const Reclaim = -1

// AdviceName is the word used in files and events.
func AdviceName(a int) string {
	switch a {
	case Reclaim:
		return "reclaim"
	case WillNeed:
		return "willneed"
	case Cold:
		return "cold"
	case PageOut:
		return "pageout"
	}
	return fmt.Sprintf("advice%d", a)
}

type iovec struct {
	base uintptr
	len  uint64
}

// Range is an address range of another process.
type Range struct{ Start, Len uint64 }

// Advise gives advice on ranges of process pid through process_madvise(2)
// on a pidfd, and returns the bytes the kernel reports it advised. The
// pidfd pins the process: a pid reused between our smaps read and this
// call would make pidfd_open find the new process, so callers pass ranges
// they read moments ago and the kernel rejects ranges that are not mapped.
func Advise(pid int, advice int, ranges []Range) (int64, error) {
	if len(ranges) == 0 {
		return 0, nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	// The addresses belong to another process, so they are plain
	// integers here, never Go pointers: our own iovec layout (struct iovec
	// on 64-bit Linux) keeps them so.
	iov := make([]iovec, len(ranges))
	for i, r := range ranges {
		iov[i] = iovec{base: uintptr(r.Start), len: r.Len}
	}
	// The kernel limits one call to IOV_MAX (1024) vectors; callers pass
	// far fewer (one per mapping).
	n, _, errno := syscall.Syscall6(unix.SYS_PROCESS_MADVISE, uintptr(fd),
		uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)), uintptr(advice), 0, 0)
	if errno != 0 {
		return 0, fmt.Errorf("process_madvise %s pid %d: %w", AdviceName(advice), pid, errno)
	}
	return int64(n), nil
}
