// Package p9fs serves the aiosfs tree model (package fs) over 9P2000.L with
// github.com/hugelgupf/p9, and is the small client the `aiosfs ls|cat|write
// ADDR PATH` subcommands use.
//
// Each accepted connection gets its own p9.Server, and between the two sits
// a conn that reads every request frame before the library does:
//
//	client ──frames──▶ conn ──▶ p9.Server ──▶ dir / file ──▶ fs.Dir / fs.File
//	                    │ size     > msize (4096 before Tversion) or < 7: closed
//	                    │ type     not a 9P2000.L request: Rlerror(ENOSYS)
//	                    │ body     not decodable: Rlerror(EINVAL), with its tag
//	                    │ Tversion first and once; msize ≥ 4096, cut to MaxMsize
//	                    │ Twalk    more than 16 names: EINVAL, nothing walked
//	                    │ Tread    count cut to msize-11
//	                    │ limits   MaxFids, MaxOpen (EMFILE), MaxPaths (ENFILE),
//	                    │          MaxRequests (EAGAIN)
//	                    │ changes  EROFS on a read-only connection; remove and
//	                    │          rename EROFS on all (Tremove still clunks)
//	                    │ Tauth    answered Rlerror(ENOENT) here
//	                    │ Tattach  n_uname, believed only from root or TrustTCP
//	                    │ Tflush   interrupts the flushed read; Rflush after its reply
//	                    │ Tclunk   ends the fid's blocked reads
//	                    └ Tattach and Tlopen go in one at a time, so that
//	                      Attach and Open know the caller and fid they serve
//
// The library itself accepts any msize up to 4 MiB and allocates that much
// per connection at Tversion, walks any number of names, holds any number
// of fids, keeps a node for every path ever walked and serves any number
// of requests at once; conn is where a hostile peer meets its bounds. The listener adds MaxConns (and, on a
// unix socket, MaxConnsPerUid): a connection beyond them is closed as soon
// as it is accepted.
//
// Semantics are the model's (see package fs): reads of a file are served by
// offset from what it rendered at open, except that a Tread at offset 0
// of a text file's fid that has been read renders it afresh (Plan 9's
// polling: keep the fid, read at 0; fusefs does the same; Options.Plain
// turns it off), size is 0 in stat, ctl writes run
// line by line and fail with the refused line's errno, events reads block
// until a line arrives and end with EINTR when flushed or clunked. The qid
// path is the node's Attr().Path, so a path names one object for its life.
//
// Who is asking: on a unix socket the peer's credentials (SO_PEERCRED) are
// the caller, except that a root peer may attach as any uid (its claim is
// believed, as a root process could setuid anyway). The socket is made
// 0666 so that every local user can connect; the file mode decides
// nothing. TCP carries no credentials, so a TCP client is nobody (65534)
// unless Options.TrustTCP.
//
// What a TCP listener exposes, without TrustTCP: to anyone who can reach
// the port, the whole tree as nobody sees it, read-only. They can list
// every directory and read every file whose mode lets others read it
// (status, stat, events, log, ...), but not files readable only by their
// owner or group. Every change is refused with EROFS, whatever the file's
// mode: opening for writing or with O_TRUNC (so no ctl can be written,
// not even one open to all), write, create, mkdir, symlink, mknod, link,
// unlink, setattr, xattrcreate; remove and rename are refused everywhere.
// With TrustTCP a TCP client is whoever it says it is, root included, and
// may write whatever that user may: it is for a network that is itself
// the authentication, such as a private link between machines one owns.
// ReadOnly makes any listener read-only, unix sockets included.
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

// Options tune a server. Every limit's zero value means its default.
type Options struct {
	// TrustTCP believes the uid a TCP client names at attach and lets TCP
	// clients write. Without it a TCP client is nobody and read-only: the
	// network says nothing about who is calling.
	TrustTCP bool
	// ReadOnly refuses every change on every connection: open for
	// writing or truncation, write, create, mkdir, link, rename, remove
	// of a name, setattr and xattrcreate answer EROFS. Connections that
	// are not unix sockets are read-only anyway unless TrustTCP.
	ReadOnly bool

	// MaxConns is how many connections the listener serves at once
	// (default 256). One more is closed as soon as it is accepted, and
	// the refusal is logged (at most once a second).
	MaxConns int
	// MaxConnsPerUid is how many of those one non-root uid may hold on a
	// unix socket, as SO_PEERCRED names it (default 64), so that one
	// local user cannot take every connection. Root is not limited.
	MaxConnsPerUid int
	// MaxFids is how many fids a connection may hold (default 4096). An
	// attach or walk that would make one more is answered EMFILE.
	MaxFids int
	// MaxOpen is how many files a connection may have open at once
	// (default 1024); one more open is answered EMFILE. An open file
	// holds what the model gave it: a rendering, or for an events file
	// a bus subscription with its queue (some 96 KiB in the daemon).
	MaxOpen int
	// MaxPaths is how many distinct paths a connection may walk to
	// (default 65536); a walk or attach that would pass it is answered
	// ENFILE. hugelgupf/p9 keeps a node (some 400 bytes) for every name
	// a connection has walked to, until the connection ends, and
	// mem/find takes any name. A client that walks a new agent's files
	// for days on one connection meets this too, and must reconnect.
	MaxPaths int
	// MaxRequests is how many requests a connection may have in flight
	// (default 64). One more is answered EAGAIN, except Tflush and
	// Tclunk, which end requests; with twice as many in flight the
	// connection is closed. Each blocked read holds one msize buffer in
	// hugelgupf/p9, so this bounds what a connection can pin.
	MaxRequests int
	// MaxMsize is the largest message size the server agrees to
	// (default 64 KiB, at least 4096 and at most 4 MiB). A client
	// asking for more is given this; hugelgupf/p9 allocates msize bytes
	// per connection at Tversion, and again per read in flight.
	MaxMsize uint32

	// Plain serves a text file's fid from what it rendered at open for
	// every read, as before docs/cost.md's run 8: no re-rendering at
	// offset 0 (see file.text). For benchmarks that compare.
	Plain bool

	// Logf receives connection problems; nil discards them.
	Logf func(format string, args ...any)
}

// Defaults of the Options limits, and the floor of a client's msize.
const (
	defaultMaxConns       = 256
	defaultMaxConnsPerUid = 64
	defaultMaxFids        = 4096
	defaultMaxOpen        = 1024
	defaultMaxPaths       = 1 << 16
	defaultMaxRequests    = 64
	defaultMaxMsize       = 64 << 10
	// minMsize is the smallest msize a Tversion may ask for, as the
	// Linux client also requires: below it not even a Twalk of 16
	// names, or a useful read, fits a message.
	minMsize = 4096
)

// limits returns o with every zero limit replaced by its default and
// MaxMsize kept within what hugelgupf/p9 and a usable session allow.
func (o Options) limits() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxConns, defaultMaxConns)
	def(&o.MaxConnsPerUid, defaultMaxConnsPerUid)
	def(&o.MaxFids, defaultMaxFids)
	def(&o.MaxOpen, defaultMaxOpen)
	def(&o.MaxPaths, defaultMaxPaths)
	def(&o.MaxRequests, defaultMaxRequests)
	switch {
	case o.MaxMsize == 0:
		o.MaxMsize = defaultMaxMsize
	case o.MaxMsize < minMsize:
		o.MaxMsize = minMsize
	case o.MaxMsize > maxFrame:
		o.MaxMsize = maxFrame
	}
	return o
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// server is one listener's connections and their limits.
type server struct {
	root fs.Dir
	opts Options

	wg     sync.WaitGroup
	mu     sync.Mutex
	live   map[*conn]bool
	perUid map[uint32]int
	// refused counts connections refused since the last log line, which
	// is written at most once a second (lastLog), so that a flood of
	// connections does not become a flood of log lines.
	refused int
	lastLog time.Time
	// connLog limits what the connections log (their errors), for the
	// same reason: at most connLogRate lines a second.
	connLog struct {
		sync.Mutex
		since      time.Time
		n, dropped int
	}
}

// connLogRate is how many lines a second a listener's connections may log.
const connLogRate = 10

// connLogf is the Logf of the listener's connections: Options.Logf, at
// most connLogRate lines a second, then one line saying how many were
// dropped.
func (s *server) connLogf(format string, args ...any) {
	l := &s.connLog
	l.Lock()
	now := time.Now()
	if now.Sub(l.since) >= time.Second {
		if l.dropped > 0 {
			s.opts.logf("p9fs: %d more connection log lines dropped", l.dropped)
		}
		l.since, l.n, l.dropped = now, 0, 0
	}
	ok := l.n < connLogRate
	if ok {
		l.n++
	} else {
		l.dropped++
	}
	l.Unlock()
	if ok {
		s.opts.logf(format, args...)
	}
}

// Serve serves root on every connection ln accepts, each with its own
// p9.Server, within opts' limits. It returns when ln is closed, after
// closing the connections still open and waiting for their requests to
// end (blocked reads end with their connection, so this does not hang on
// an events reader).
func Serve(ln net.Listener, root fs.Dir, opts Options) error {
	return newServer(root, opts).serve(ln)
}

func newServer(root fs.Dir, opts Options) *server {
	return &server{root: root, opts: opts.limits(), live: map[*conn]bool{}, perUid: map[uint32]int{}}
}

func (s *server) serve(ln net.Listener) error {
	defer func() {
		s.mu.Lock()
		for c := range s.live {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	}()
	for {
		nc, err := ln.Accept()
		switch {
		case errors.Is(err, net.ErrClosed):
			return nil
		case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.ECONNABORTED):
			// Out of descriptors or a client gone early: later
			// accepts may work, as net/http also assumes.
			s.opts.logf("p9fs: accept: %v", err)
			time.Sleep(50 * time.Millisecond)
			continue
		case err != nil:
			return err
		}
		c, err := newConn(nc, s.root, s.opts)
		if err != nil {
			s.connLogf("p9fs: %v: %v", nc.RemoteAddr(), err)
			nc.Close()
			continue
		}
		c.logf = s.connLogf
		if !s.admit(c) {
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
			s.leave(c)
		}()
	}
}

// admit counts c in, or says why not (in the log) and returns false when
// the listener or c's uid has all the connections it may have.
func (s *server) admit(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	why := ""
	switch {
	case len(s.live) >= s.opts.MaxConns:
		why = fmt.Sprintf("%d connections open (MaxConns)", len(s.live))
	case c.limitUid && s.perUid[c.own.Uid] >= s.opts.MaxConnsPerUid:
		why = fmt.Sprintf("uid %d has %d connections open (MaxConnsPerUid)", c.own.Uid, s.perUid[c.own.Uid])
	}
	if why != "" {
		s.refused++
		if now := time.Now(); now.Sub(s.lastLog) >= time.Second {
			s.opts.logf("p9fs: refused %d connection(s), the last from %v: %s", s.refused, c.RemoteAddr(), why)
			s.refused, s.lastLog = 0, now
		}
		return false
	}
	s.live[c] = true
	if c.limitUid {
		s.perUid[c.own.Uid]++
	}
	return true
}

func (s *server) leave(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, c)
	if c.limitUid {
		if s.perUid[c.own.Uid]--; s.perUid[c.own.Uid] <= 0 {
			delete(s.perUid, c.own.Uid)
		}
	}
}

// open is how many connections are being served.
func (s *server) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// ListenAndServe listens on the dial string addr and serves root in a
// goroutine until the returned listener is closed. A unix socket file left
// by an earlier run is removed first; one that still answers is not. A
// unix socket is made 0666: every local user may connect, and SO_PEERCRED,
// not the file mode, decides who each of them is.
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
	if network == "unix" && !strings.HasPrefix(address, "@") {
		if err := os.Chmod(address, 0666); err != nil {
			ln.Close()
			return nil, fmt.Errorf("p9fs: %w", err)
		}
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
