package fusefs

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"aiosfs/fs/fstest"
)

// TestStaleMount crashes a daemon and mounts again where it was: the
// kernel keeps the dead mount (every access fails with ENOTCONN) until
// Mount clears it.
func TestStaleMount(t *testing.T) {
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "mnt")

	// The daemon is this test binary, turned into one by TestMain.
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), childEnv+"="+dir)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		child.Process.Kill()
		child.Wait()
		ClearStale(dir) // if the test failed before Mount cleared it
	})
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line == "ready\n"
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("child daemon did not mount")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("child daemon did not report its mount in 10s")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ctl")); err != nil || len(b) == 0 {
		t.Fatalf("child's tree: ctl = %q, %v", b, err)
	}

	// SIGKILL: the daemon gets no chance to unmount.
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	if _, err := os.Stat(dir); errnoOf(err) != syscall.ENOTCONN {
		t.Fatalf("stat after the daemon died: %v, want ENOTCONN (a stale mount)", err)
	}

	tr := fstest.NewTree()
	srv, err := Mount(dir, tr.Root, Options{AllowOther: true, Name: testName})
	if err != nil {
		t.Fatalf("mount over the stale mount: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ctl"), []byte("echo again\n"), 0); err != nil {
		t.Errorf("write ctl on the new mount: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "value")); err != nil || string(b) != "again\n" {
		t.Errorf("value on the new mount = %q, %v; want %q", b, err, "again\n")
	}
	if err := srv.Unmount(); err != nil {
		t.Fatal(err)
	}
	if mounted(dir) {
		t.Errorf("%s still mounted after Unmount", dir)
	}
}
