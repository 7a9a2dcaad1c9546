package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"aiosfs/daemon"
)

// runChild is the daemon under evaluation: the daemon package in this
// binary, configured as `aiosfs serve -mount M -state S -cgroup-prefix P`
// with every other setting at serve's default (cmd/aiosfs serveFlags),
// GPUs off. It stops, ending its agents and removing their cgroups, on
// SIGTERM.
func runChild() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	d, err := daemon.Start(daemon.Config{
		Mount: *childMount, StateDir: *childState, Prefix: *childPfx,
		Interval: time.Second, ProcRoot: "/proc", CgroupRoot: "/sys/fs/cgroup",
		GPU: "none", Grace: 5 * time.Second, Memory: daemon.DefaultMemory, Stderr: os.Stderr,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "heal recover: daemon:", err)
		os.Exit(2)
	}
	<-sig
	if err := d.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "heal recover: daemon stop:", err)
		os.Exit(1)
	}
}
