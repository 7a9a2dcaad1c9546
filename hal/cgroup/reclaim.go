package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
)

// Reclaim asks the kernel to reclaim what it can of a cgroup's memory
// (its page cache, and anonymous memory only where there is swap):
// cgroup v2's memory.reclaim with bytes, else v1's memory.force_empty.
// paths is a group's Paths() (hierarchy to directory). Memory in use that
// cannot be reclaimed makes the write fail (EAGAIN, EBUSY): the error
// says so.
func Reclaim(paths map[string]string, bytes int64) error {
	if d := paths["unified"]; d != "" {
		if _, err := os.Stat(filepath.Join(d, "memory.reclaim")); err == nil {
			return os.WriteFile(filepath.Join(d, "memory.reclaim"), []byte(strconv.FormatInt(max(bytes, 4096), 10)), 0)
		}
	}
	if d := paths["memory"]; d != "" {
		if _, err := os.Stat(filepath.Join(d, "memory.force_empty")); err == nil {
			return os.WriteFile(filepath.Join(d, "memory.force_empty"), []byte("0"), 0)
		}
		if _, err := os.Stat(filepath.Join(d, "memory.reclaim")); err == nil {
			return os.WriteFile(filepath.Join(d, "memory.reclaim"), []byte(strconv.FormatInt(max(bytes, 4096), 10)), 0)
		}
	}
	return errors.New("cgroup: no memory.reclaim or memory.force_empty for the agent")
}
