// Package p9fs serves the aiosfs tree model (package fs) over 9P2000.L with
// github.com/hugelgupf/p9, and is the small client the `aiosfs ls|cat|write
// ADDR PATH` subcommands use.
//
// Each accepted connection gets its own p9.Server, and between the two sits
// a conn that reads every request frame before the library does:
//
//	client ──frames──▶ conn ──▶ p9.Server ──▶ dir / file ──▶ fs.Dir / fs.File
//	                    │ Tauth    answered Rlerror(ENOENT) here
//	                    │ Tattach  n_uname, believed only from root or TrustTCP
//	                    │ Tflush   interrupts the flushed read; Rflush after its reply
//	                    │ Tclunk   ends the fid's blocked reads
//	                    └ Tattach and Tlopen go in one at a time, so that
//	                      Attach and Open know the caller and fid they serve
//
// Semantics are the model's (see package fs): reads of a file are served by
// offset from what it rendered at open, size is 0 in stat, ctl writes run
// line by line and fail with the refused line's errno, events reads block
// until a line arrives and end with EINTR when flushed or clunked. The qid
// path is the node's Attr().Path, so a path names one object for its life.
//
// Who is asking: on a unix socket the peer's credentials (SO_PEERCRED) are
// the caller, except that a root peer may attach as any uid (its claim is
// believed, as a root process could setuid anyway). TCP carries no
// credentials, so a TCP client is nobody (65534) unless Options.TrustTCP.
//
// Addresses are Plan 9 dial strings: "unix!/run/aios.sock",
// "tcp!host!port", or a plain path meaning a unix socket.
//
// diod's clients work too; they attach to "ctl" unless given -a /:
//
//	diodls -s /run/aios.sock -a / -l
//	diodcat -s 127.0.0.1:564 -a / agents/1/status
package p9fs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hugelgupf/p9/linux"

	"aiosfs/fs"
)

// Options tune a server.
type Options struct {
	// TrustTCP believes the uid a TCP client names at attach. Without it a
	// TCP client is nobody: the network says nothing about who is calling.
	TrustTCP bool
	// Logf receives connection problems; nil discards them.
	Logf func(format string, args ...any)
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// Serve serves root on every connection ln accepts, each with its own
// p9.Server. It returns when ln is closed, after closing the connections
// still open and waiting for their requests to end (blocked reads end with
// their connection, so this does not hang on an events reader).
func Serve(ln net.Listener, root fs.Dir, opts Options) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		live = map[*conn]bool{}
	)
	defer func() {
		mu.Lock()
		for c := range live {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		nc, err := ln.Accept()
		switch {
		case errors.Is(err, net.ErrClosed):
			return nil
		case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.ECONNABORTED):
			// Out of descriptors or a client gone early: later
			// accepts may work, as net/http also assumes.
			opts.logf("p9fs: accept: %v", err)
			time.Sleep(50 * time.Millisecond)
			continue
		case err != nil:
			return err
		}
		c, err := newConn(nc, root, opts)
		if err != nil {
			opts.logf("p9fs: %v: %v", nc.RemoteAddr(), err)
			nc.Close()
			continue
		}
		mu.Lock()
		live[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serve()
			mu.Lock()
			delete(live, c)
			mu.Unlock()
		}()
	}
}

// ListenAndServe listens on the dial string addr and serves root in a
// goroutine until the returned listener is closed. A unix socket file left
// by an earlier run is removed first; one that still answers is not.
func ListenAndServe(addr string, root fs.Dir, opts Options) (net.Listener, error) {
	network, address, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		if err := removeStale(address); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	go func() {
		if err := Serve(ln, root, opts); err != nil {
			opts.logf("p9fs: serve %s: %v", addr, err)
		}
	}()
	return ln, nil
}

// removeStale removes a unix socket file nobody answers on (a crashed
// server's), so that listening there works again.
func removeStale(sock string) error {
	fi, err := os.Lstat(sock)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode()&os.ModeSocket == 0:
		return fmt.Errorf("p9fs: %s exists and is not a socket", sock)
	}
	if c, err := net.Dial("unix", sock); err == nil {
		c.Close()
		return fmt.Errorf("p9fs: %s is in use by a running server", sock)
	}
	return os.Remove(sock)
}

// parseAddr turns a dial string into Go's network and address.
func parseAddr(addr string) (network, address string, err error) {
	f := strings.Split(addr, "!")
	switch {
	case len(f) == 1 && addr != "":
		return "unix", addr, nil
	case len(f) == 2 && f[0] == "unix":
		return "unix", f[1], nil
	case len(f) == 3 && f[0] == "tcp":
		return "tcp", net.JoinHostPort(f[1], f[2]), nil
	}
	return "", "", fmt.Errorf("p9fs: bad address %q: want unix!PATH, tcp!HOST!PORT or PATH", addr)
}

// errno is the adapter's one error mapping: every error the model returns
// reaches the client as the errno fs.Errno gives it, as through FUSE.
func errno(err error) error {
	if err == nil {
		return nil
	}
	return linux.Errno(fs.Errno(err))
}
