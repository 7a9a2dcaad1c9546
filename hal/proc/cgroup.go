package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Cgroups returns the cgroup of pid in each hierarchy, from
// /proc/PID/cgroup ("ID:CONTROLLERS:PATH" lines). Keys are the controller
// list as the kernel prints it ("memory", "cpu,cpuacct", "name=systemd"),
// and "unified" for the cgroup2 line (ID 0, empty list); values are paths
// relative to that hierarchy's root. The agent engine records this for an
// adopted process so it can give the process back at shutdown.
func (fs FS) Cgroups(pid int) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(fs.Root(), strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return nil, wrap(pid, err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("proc: %d/cgroup: bad line %q", pid, line)
		}
		key := parts[1]
		if parts[0] == "0" && key == "" {
			key = "unified"
		}
		out[key] = parts[2]
	}
	return out, nil
}
