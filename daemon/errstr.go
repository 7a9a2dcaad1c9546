package daemon

import (
	"strconv"
	"sync"

	"aiosfs/fs"
)

// Errstr is Plan 9's /dev/errstr for the tree: the last refusal of a
// caller, so a client that got only an errno can learn the reason. 9P's
// Rlerror carries an errno and nothing else; the reason is the daemon's.
//
// Whose last refusal: over 9P, the connection's (fs.Caller.Session), so a
// client reading `errstr` on the connection its write failed on gets that
// write's reason and nobody else's; over FUSE, which names a thread and
// not a session, the uid's (the same uid's processes share it, and their
// refusals are in `log` for that uid anyway). A failed lookup, which the
// model is not told the caller of, is not kept. The line is the one `log`
// keeps without its time and uid, redacted and cut as there:
//
//	/agents/1/ctl: refused "memmax lots": bad size "lots" (want ...)
//
// At most MaxErrstr callers are remembered; the oldest are forgotten.
type Errstr struct {
	mu    sync.Mutex
	last  map[string]string
	order []string // keys, oldest first
}

// MaxErrstr bounds the callers Errstr remembers: one per 9P connection
// and per FUSE uid, so a client opening connections cannot grow it.
const MaxErrstr = 4096

func errstrKey(c fs.Caller) string {
	if c.Session != 0 {
		return "9p:" + strconv.FormatUint(c.Session, 10)
	}
	return "uid:" + strconv.FormatUint(uint64(c.Uid), 10)
}

// Set records line as c's last refusal.
func (e *Errstr) Set(c fs.Caller, line string) {
	if c.Uid == fs.NoUid {
		return
	}
	k := errstrKey(c)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.last == nil {
		e.last = map[string]string{}
	}
	if _, ok := e.last[k]; ok {
		for i, o := range e.order {
			if o == k {
				e.order = append(e.order[:i], e.order[i+1:]...)
				break
			}
		}
	}
	e.last[k] = line
	e.order = append(e.order, k)
	for len(e.order) > MaxErrstr {
		delete(e.last, e.order[0])
		e.order = e.order[1:]
	}
}

// For is c's last refusal as the errstr file shows it: one line, or
// nothing when there was none.
func (e *Errstr) For(c fs.Caller) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.last[errstrKey(c)]
	if !ok {
		return nil
	}
	return []byte(l + "\n")
}
