package daemon

import (
	"bytes"
	"strings"
	"testing"
)

func TestLogKeepsTheLastLinesAndCopies(t *testing.T) {
	var copyTo bytes.Buffer
	l := NewLog(3, &copyTo)
	for i := 1; i <= 5; i++ {
		l.Printf("line %d\n", i)
	}
	got := strings.Split(strings.TrimSpace(string(l.Bytes())), "\n")
	if len(got) != 3 || !strings.HasSuffix(got[0], " line 3") || !strings.HasSuffix(got[2], " line 5") {
		t.Fatalf("log keeps %q, want lines 3..5 oldest first", got)
	}
	if n := strings.Count(copyTo.String(), "\n"); n != 5 {
		t.Fatalf("copied %d lines, want all 5", n)
	}
	if !strings.Contains(got[0], "T") || !strings.Contains(got[0], "Z line") {
		t.Fatalf("lines must start with an RFC 3339 UTC time: %q", got[0])
	}
}
