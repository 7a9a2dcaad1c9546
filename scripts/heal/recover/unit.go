package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// A unit is the baseline: a systemd service's restart logic at its
// defaults, as systemd.service(5) and systemd.unit(5) state it.
//
//   - Restart=on-failure: start again after an unclean exit code, a
//     signal other than HUP, INT, TERM or PIPE (a kernel OOM kill is
//     SIGKILL), or a watchdog timeout; not after exit 0 or a stop.
//   - RestartSec=100ms between the exit and the next start.
//   - Start limit: more than StartLimitBurst=5 starts within
//     StartLimitIntervalSec=10s and the unit is refused further starts
//     and stays failed (until an operator's reset-failed).
//   - WatchdogSec: when set, a service that has not pinged within it is
//     sent WatchdogSignal=SIGABRT (and counts as failed). The ping is the
//     program's heartbeat file, written every 500 ms, as sd_notify
//     WATCHDOG=1 would be; the timer starts at the service's start.
//
// Resource limits as the unit would set them: MemoryMax= is the memory
// cgroup's limit (48 MiB), LimitNOFILE= the program's own setrlimit.
type unit struct {
	run      *run
	cg       string
	watchdog time.Duration
	args     []string

	mu       sync.Mutex
	cmd      *exec.Cmd
	stopping bool
	state    string // running, failed (start-limit-hit), exited
	done     chan struct{}
}

func startUnit(x *run, self, cg string, watchdog time.Duration) (*unit, error) {
	if err := os.Mkdir(cg, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cg, "memory.limit_in_bytes"), []byte(strconv.Itoa(memLimit)), 0o644); err != nil {
		return nil, err
	}
	u := &unit{run: x, cg: cg, watchdog: watchdog, args: append(x.args(self), "-cgroup", cg), done: make(chan struct{})}
	unitsMu.Lock()
	units = append(units, u)
	unitsMu.Unlock()
	go u.loop()
	return u, nil
}

func (u *unit) loop() {
	defer close(u.done)
	var starts []time.Time
	for {
		now := time.Now()
		for len(starts) > 0 && now.Sub(starts[0]) > startPeriod {
			starts = starts[1:]
		}
		u.mu.Lock()
		if u.stopping {
			u.mu.Unlock()
			return
		}
		if len(starts) >= startBurst {
			u.state = "failed (start-limit-hit)"
			u.mu.Unlock()
			return
		}
		cmd := exec.Command(u.args[0], u.args[1:]...)
		// The program moves itself into the unit's cgroup first (-cgroup).
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			u.state = "failed (" + err.Error() + ")"
			u.mu.Unlock()
			return
		}
		u.cmd, u.state = cmd, "running"
		u.mu.Unlock()
		started := time.Now()
		starts = append(starts, started)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var err error
	wait:
		for tick := time.NewTicker(20 * time.Millisecond); ; {
			select {
			case err = <-exited:
				tick.Stop()
				break wait
			case <-tick.C:
				if u.watchdog > 0 {
					last := started
					if fi, e := os.Stat(filepath.Join(u.run.dir, "hb")); e == nil && fi.ModTime().After(last) {
						last = fi.ModTime()
					}
					if time.Since(last) > u.watchdog {
						cmd.Process.Signal(syscall.SIGABRT)
					}
				}
			}
		}
		u.mu.Lock()
		stopping := u.stopping
		u.mu.Unlock()
		if stopping {
			return
		}
		if err == nil { // exit 0: on-failure does not restart
			u.mu.Lock()
			u.state = "exited"
			u.mu.Unlock()
			return
		}
		time.Sleep(restartSec)
	}
}

// stop is `systemctl stop`: no restart after it; the process is killed
// (the fault programs have nothing to flush).
func (u *unit) stop() error {
	u.mu.Lock()
	u.stopping = true
	if u.cmd != nil && u.cmd.Process != nil {
		u.cmd.Process.Kill()
	}
	u.mu.Unlock()
	<-u.done
	return nil
}
