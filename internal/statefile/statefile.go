// Package statefile writes the daemon's state files whole: the bytes go
// to PATH.tmp, are synced, and the temporary file is renamed over PATH, so
// a crash or a kill -9 at any moment leaves either the old file or the
// new one, never a torn mix. Every engine that keeps state beside the
// agents' records (sched.json and its history, gpu.json, the memory
// manager's region metadata, patterns and settings) writes through it.
//
// Errors are the kernel's, unwrapped only by *os.PathError or
// *os.LinkError, so errors.As(err, &syscall.Errno) (and fs.Errno) finds
// ENOSPC, EROFS, EDQUOT or EIO: an engine returning a failed save from a
// ctl write hands the writer that errno. A failed Write before the rename
// leaves PATH as it was and no PATH.tmp behind; engines rely on that to
// roll a refused change back (nothing of it is on disk).
package statefile

import (
	"os"
	"path/filepath"
)

// Write replaces path with b atomically (see the package comment). The
// file is created with mode 0600: state can name users' agents. After
// the rename the directory is synced too, so that a change reported saved
// survives a power loss, not only a kill; if that sync fails the new file
// is in place (a restart of the daemon reads it) but the error is still
// returned, since its durability is not known.
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
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
