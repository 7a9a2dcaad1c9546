package daemon

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"aiosfs/fs"
)

// Log keeps the recent human-readable lines the `log` file shows, and
// copies each to w (the daemon's stderr). A line is
//
//	2026-11-25T18:20:01.123Z uid=1000 /agents/3/ctl: refused "bogus 1": unknown control message: bogus 1
//
// Who sees a line in `log` (stderr gets every line):
//
//   - root sees every line;
//   - everyone sees the daemon's general lines, written with Printf:
//     start, stop, restore, engines' notices, 9P connection problems.
//     They must carry no caller's data (no command, no looked-up name);
//   - a line about one caller's action, written with PrintfFor(uid, ...)
//     (every refused open, write or command), is seen by root and that
//     uid only, so no user reads what another typed;
//   - a line for fs.NoUid (a failed lookup: the model is not told who
//     looked, but the name is theirs) is root's alone.
//
// The ring is shared: lines a user cannot see still take their place in
// it.
type Log struct {
	mu    sync.Mutex
	lines []logLine
	next  int
	w     io.Writer
}

// logLine is one kept line and who may read it.
type logLine struct {
	text   string
	public bool   // a general line: everyone
	uid    uint32 // else root and this uid (fs.NoUid: root only)
}

// NewLog keeps the last n lines.
func NewLog(n int, w io.Writer) *Log { return &Log{lines: make([]logLine, 0, n), w: w} }

// Printf adds a general line, which every reader of `log` sees. It must
// not carry what a caller wrote or looked up; use PrintfFor for that.
func (l *Log) Printf(format string, args ...any) {
	l.add(logLine{public: true}, format, args...)
}

// PrintfFor adds a line about uid's own action: only root and uid see it
// in `log`. fs.NoUid makes it root's alone.
func (l *Log) PrintfFor(uid uint32, format string, args ...any) {
	l.add(logLine{uid: uid}, format, args...)
}

func (l *Log) add(ll logLine, format string, args ...any) {
	ll.text = time.Now().UTC().Format("2006-01-02T15:04:05.000Z") + " " + strings.TrimRight(fmt.Sprintf(format, args...), "\n") + "\n"
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < cap(l.lines) {
		l.lines = append(l.lines, ll)
	} else {
		l.lines[l.next] = ll
		l.next = (l.next + 1) % len(l.lines)
	}
	if l.w != nil {
		io.WriteString(l.w, ll.text)
	}
}

// Bytes renders every kept line, oldest first: root's view.
func (l *Log) Bytes() []byte { return l.BytesFor(0) }

// BytesFor renders the kept lines a reader with uid may see (see Log),
// oldest first.
func (l *Log) BytesFor(uid uint32) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for i := range l.lines {
		ll := l.lines[(l.next+i)%len(l.lines)]
		if uid == 0 || ll.public || (ll.uid == uid && uid != fs.NoUid) {
			b.WriteString(ll.text)
		}
	}
	return []byte(b.String())
}

// MaxLoggedCmd is how much of a refused command, of its error message
// and of a refused path `log`, stderr and the `refused` event keep, in
// bytes. A longer one is cut at a character boundary and ends in
// "…[+N bytes]", N being what was cut. A command can be up to
// fs.MaxCtlLine (64 KiB) long and the log keeps 1000 lines: cut, the
// ring stays under a megabyte whatever callers write.
const MaxLoggedCmd = 256

// clip cuts s to MaxLoggedCmd bytes with the marker.
func clip(s string) string {
	if len(s) <= MaxLoggedCmd {
		return s
	}
	cut := MaxLoggedCmd
	for cut > MaxLoggedCmd-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…[+" + strconv.Itoa(len(s)-cut) + " bytes]"
}
