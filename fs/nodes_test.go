package fs

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ctlProbe is a ctl file that records the lines it ran and the refusals
// it reported.
type ctlProbe struct {
	ran     []string
	refused []string // the cmd the Reject hook was told
	errs    []error
}

func (p *ctlProbe) open(t *testing.T) Handle {
	t.Helper()
	ns := &NS{Reject: func(_ Caller, _, cmd string, err error) {
		p.refused = append(p.refused, cmd)
		p.errs = append(p.errs, err)
	}}
	f := ns.Ctl("/ctl", 0666, Owner{}, nil, func(_ context.Context, _ Caller, line string) error {
		p.ran = append(p.ran, line)
		return nil
	})
	h, err := f.Open(context.Background(), Caller{Uid: 65534, Gid: 65534}, OWRITE)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestCtlLineLimit: a line of MaxCtlLine bytes runs; one byte more is
// refused with EMSGSIZE naming the limit, runs nothing, reaches the Reject
// hook only as a MaxCtlLine-byte prefix, and the rest of that line (up
// to its newline) is refused with it. The next line runs.
func TestCtlLineLimit(t *testing.T) {
	ctx := context.Background()
	p := &ctlProbe{}
	h := p.open(t)
	longest := strings.Repeat("a", MaxCtlLine)
	if _, err := h.Write(ctx, []byte(longest+"\n"), 0); err != nil || len(p.ran) != 1 || p.ran[0] != longest {
		t.Fatalf("a line of exactly MaxCtlLine bytes: %v, ran %d lines", err, len(p.ran))
	}

	// Over the limit in one piece, and over it in pieces.
	for _, pieces := range [][]string{
		{strings.Repeat("b", MaxCtlLine+1) + "\n"},
		{"memmax ", strings.Repeat("c", MaxCtlLine-10), strings.Repeat("c", 100), "ccc", "ccc\nx\n"},
	} {
		p.ran, p.refused, p.errs = nil, nil, nil
		var errs []error
		for _, s := range pieces {
			_, err := h.Write(ctx, []byte(s), 0)
			errs = append(errs, err)
		}
		first := -1
		for i, err := range errs {
			if err != nil && first < 0 {
				first = i
			}
			if first >= 0 && Errno(err) != syscall.EMSGSIZE {
				t.Fatalf("pieces %d..: write %d = %v, want EMSGSIZE from the over-long line on", first, i, err)
			}
		}
		if first < 0 {
			t.Fatal("over-long line accepted")
		}
		if msg := errs[first].Error(); !strings.Contains(msg, strconv.Itoa(MaxCtlLine)) {
			t.Errorf("error %q does not name the limit", msg)
		}
		if len(p.ran) != 0 {
			t.Errorf("over-long line ran %d lines (its tail or the line after it in the same write)", len(p.ran))
		}
		if len(p.refused) != 1 || len(p.refused[0]) != MaxCtlLine {
			t.Errorf("reported %d refusals of lengths %v, want one of the line's first %d bytes", len(p.refused), lens(p.refused), MaxCtlLine)
		}
		if _, err := h.Write(ctx, []byte("after\n"), 0); err != nil || len(p.ran) != 1 || p.ran[0] != "after" {
			t.Errorf("line after the refused one: %v, ran %q", err, p.ran)
		}
	}
}

// TestCtlWriteLimit: one write over MaxCtlWrite is refused whole before
// any of its lines runs, even when every line in it is short and good.
func TestCtlWriteLimit(t *testing.T) {
	ctx := context.Background()
	p := &ctlProbe{}
	h := p.open(t)
	batch := strings.Repeat("kill\n", MaxCtlWrite/5+1)
	_, err := h.Write(ctx, []byte(batch), 0)
	if Errno(err) != syscall.EMSGSIZE || !strings.Contains(err.Error(), strconv.Itoa(MaxCtlWrite)) {
		t.Fatalf("write of %d bytes: %v, want EMSGSIZE naming %d", len(batch), err, MaxCtlWrite)
	}
	if len(p.ran) != 0 {
		t.Fatalf("an over-large write ran %d lines", len(p.ran))
	}
	// It ended a line, so the next write starts a fresh one.
	if _, err := h.Write(ctx, []byte("kill\n"), 0); err != nil || len(p.ran) != 1 {
		t.Fatalf("after an over-large write: %v, ran %q", err, p.ran)
	}
	if _, err := h.Write(ctx, []byte(strings.Repeat("kill\n", MaxCtlWrite/5)), 0); err != nil || len(p.ran) != 1+MaxCtlWrite/5 {
		t.Fatalf("a write of just under MaxCtlWrite: %v, ran %d lines", err, len(p.ran))
	}
}

// TestCtlHugeStreamBoundedMemory is the review's memory DoS: a 100 MiB
// line with no newline, written by nobody. Each piece after the first
// fails at once, the handle keeps nothing of it, and the test process's
// heap after a GC and the bytes allocated while writing stay within a
// few MiB. (Before the limit the partial line was kept whole and copied
// at every write: 1.2 GB RSS in the daemon, gigabytes allocated.) The
// time is logged, not asserted.
func TestCtlHugeStreamBoundedMemory(t *testing.T) {
	const total = 100 << 20
	for _, piece := range []int{1 << 20, 4 << 10} {
		t.Run(strconv.Itoa(piece), func(t *testing.T) {
			ctx := context.Background()
			p := &ctlProbe{}
			h := p.open(t)
			buf := []byte(strings.Repeat("B", piece))
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			var accepted int
			for sent := 0; sent < total; sent += piece {
				if n, err := h.Write(ctx, buf, 0); err == nil {
					accepted += n
				} else if Errno(err) != syscall.EMSGSIZE {
					t.Fatalf("write at %d: %v, want EMSGSIZE", sent, err)
				}
			}
			took := time.Since(start)
			runtime.GC()
			runtime.ReadMemStats(&after)
			heapGrowth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("100 MiB in %d-byte pieces: refused in %v; heap after GC %+d bytes; %d bytes allocated while writing; %d bytes accepted before the refusal",
				piece, took, heapGrowth, allocated, accepted)
			if accepted > MaxCtlLine {
				t.Errorf("accepted %d bytes of one line, limit %d", accepted, MaxCtlLine)
			}
			if heapGrowth > 4<<20 {
				t.Errorf("heap grew by %d bytes after the stream, want under 4 MiB", heapGrowth)
			}
			if allocated > 16<<20 {
				t.Errorf("writing allocated %d bytes for a %d-byte stream, want under 16 MiB (no copying of the stream)", allocated, total)
			}
			if len(p.ran) != 0 || len(p.refused) != 1 {
				t.Errorf("ran %d lines, reported %d refusals; want 0 and 1", len(p.ran), len(p.refused))
			}
			h.Close()
			if len(p.ran) != 0 {
				t.Errorf("close ran the refused line's tail")
			}
		})
	}
}

func lens(ss []string) []int {
	var out []int
	for _, s := range ss {
		out = append(out, len(s))
	}
	return out
}
