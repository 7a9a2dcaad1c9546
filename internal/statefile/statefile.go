// Package statefile writes the daemon's state files whole: the bytes go
// to PATH.tmp, are synced, and the temporary file is renamed over PATH, so
// a crash or a kill -9 at any moment leaves either the old file or the
// new one, never a torn mix. Every engine that keeps state beside the
// agents' records (sched.json and its history, gpu.json, the memory
// manager's region metadata, patterns and settings) writes through it.
package statefile

import "os"

// Write replaces path with b atomically (see the package comment). The
// file is created with mode 0600: state can name users' agents.
func Write(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
