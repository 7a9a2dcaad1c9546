package cgroup

import (
	"aiosfs/internal/testutil"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// Two Managers on the same root and prefix stand for two daemons: the
// first to LockPrefix has it, the second is refused at once with a clear
// error naming the holder; after release the second can take it. On v1
// the run covers every v1 hierarchy plus, on a hybrid host, the unified
// one; the v2 run uses the cgroup2 mount.
func TestLockPrefix(t *testing.T) {
	requireRoot(t)
	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			cfg := Config{Version: v, Prefix: testPrefix()}
			if v == "v1" {
				requireV1(t, "cpu", "cpuset", "memory")
			} else {
				cfg.Root = cgroup2Mount(t)
			}
			m1 := newTestManager(t, cfg)
			release1, err := m1.LockPrefix()
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range m1.hierarchies() {
				if !isCgroupDir(m1.prefixDir(h)) {
					t.Errorf("LockPrefix did not create the prefix %s", m1.prefixDir(h))
				}
			}
			// The second daemon's Manager: never Closed here (see
			// LockPrefix) while the first holds the prefix.
			m2, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			release2, err := m2.LockPrefix()
			if err == nil {
				release2()
				t.Fatal("second Manager locked a prefix the first holds")
			}
			want := fmt.Sprintf("cgroup prefix %s is in use by another aiosfs (pid %d)", cfg.Prefix, os.Getpid())
			if !strings.Contains(err.Error(), want) || !errors.Is(err, ErrPrefixInUse) {
				t.Errorf("second LockPrefix: %v\nwant it to say %q", err, want)
			}

			// The holder works as before: a group under the locked prefix
			// (on v1 its cpuset needs the prefix's cpus and mems).
			g, err := m1.Create("agent-1")
			if err != nil {
				t.Fatal(err)
			}
			cleanupGroup(t, g)
			s := startSleeper(t)
			if err := g.Add(s.pid); err != nil {
				t.Fatalf("add to a group under the locked prefix: %v", err)
			}

			if err := release1(); err != nil {
				t.Fatal(err)
			}
			if err := release1(); err != nil {
				t.Errorf("second release: %v", err)
			}
			release2, err = m2.LockPrefix()
			if err != nil {
				t.Fatalf("LockPrefix after the holder released: %v", err)
			}
			if err := release2(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Close removes the prefix while it is still locked (the daemon's stop
// may release after Close), and releasing afterwards is fine.
func TestLockPrefixCloseBeforeRelease(t *testing.T) {
	requireRoot(t)
	requireV1(t, "cpu", "memory")
	cfg := Config{Version: "v1", Prefix: testPrefix()}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	release, err := m.LockPrefix()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close with the prefix locked: %v", err)
	}
	for _, h := range m.hierarchies() {
		if d := m.prefixDir(h); exists(d) {
			t.Errorf("Close left %s", d)
			testutil.RmdirTree(t, d)
		}
	}
	if err := release(); err != nil {
		t.Fatalf("release after Close: %v", err)
	}
}
