package daemon

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Log keeps the recent human-readable lines the `log` file shows, and
// copies each to w (the daemon's stderr). A line is
//
//	2026-11-25T18:20:01.123Z uid=1000 /agents/3/ctl: refused "bogus 1": unknown control message: bogus 1
type Log struct {
	mu    sync.Mutex
	lines []string
	next  int
	w     io.Writer
}

// NewLog keeps the last n lines.
func NewLog(n int, w io.Writer) *Log { return &Log{lines: make([]string, 0, n), w: w} }

// Printf adds a line.
func (l *Log) Printf(format string, args ...any) {
	line := time.Now().UTC().Format("2006-01-02T15:04:05.000Z") + " " + strings.TrimRight(fmt.Sprintf(format, args...), "\n") + "\n"
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < cap(l.lines) {
		l.lines = append(l.lines, line)
	} else {
		l.lines[l.next] = line
		l.next = (l.next + 1) % len(l.lines)
	}
	if l.w != nil {
		io.WriteString(l.w, line)
	}
}

// Bytes renders the kept lines, oldest first.
func (l *Log) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for i := range l.lines {
		b.WriteString(l.lines[(l.next+i)%len(l.lines)])
	}
	return []byte(b.String())
}
