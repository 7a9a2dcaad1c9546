package cgroup

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Return moves pid out of the agents' subtree into the cgroups it was in
// before it was adopted. origin is what proc.FS.Cgroups read from
// /proc/PID/cgroup at adoption: keys are the kernel's controller lists
// ("memory", "cpu,cpuacct", "unified"), values paths in that hierarchy.
// A hierarchy origin does not name gets the daemon's own cgroup there.
// This writes only cgroup.procs, the one file a move needs: the process
// goes back where it was and nothing else of that cgroup changes.
func (m *Manager) Return(pid int, origin map[string]string) error {
	find := func(ctrl string) (string, bool) {
		for key, p := range origin {
			if slices.Contains(strings.Split(key, ","), ctrl) {
				return p, true
			}
		}
		return "", false
	}
	move := func(h hierarchy, rel string) error {
		dir := filepath.Join(h.mount, filepath.Clean("/"+rel))
		if !isCgroupDir(dir) {
			dir = filepath.Join(h.mount, h.own) // the origin has gone since
		}
		err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
		if err != nil {
			return fmt.Errorf("cgroup: return pid %d to %s: %w", pid, dir, err)
		}
		return nil
	}
	for _, c := range m.v1 {
		rel, ok := find(string(c.name))
		if !ok {
			rel = c.own
		}
		if err := move(c.hierarchy, rel); err != nil {
			return err
		}
	}
	if m.unified != nil {
		rel, ok := origin["unified"]
		if !ok {
			rel = m.unified.own
		}
		if err := move(*m.unified, rel); err != nil {
			return err
		}
	}
	return nil
}
