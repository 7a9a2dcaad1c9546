package ctl

import (
	"testing"
	"time"
)

func TestLineAndField(t *testing.T) {
	at := time.UnixMilli(1700000000123)
	l := new(Line).Str("name", "web server").Int("pid", -4).Uint("n", 7).Float("cpu", 0.245, 3).
		Time("t", at).Seconds("d", 1500*time.Millisecond).OnOff("enforce", true).Str("empty", "")
	want := `name="web server" pid=-4 n=7 cpu=0.245 t=1700000000.123 d=1.500 enforce=on empty=""` + "\n"
	if got := l.String(); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	for k, v := range map[string]string{"name": "web server", "pid": "-4", "cpu": "0.245", "enforce": "on", "empty": ""} {
		if got, ok := Field(l.String(), k); !ok || got != v {
			t.Errorf("Field %s = %q %v, want %q", k, got, ok, v)
		}
	}
	// A key that ends another key's name is not that key.
	if v, ok := Field("xpid=1 pid=2\n", "pid"); !ok || v != "2" {
		t.Errorf("Field pid in xpid=1 pid=2: %q %v", v, ok)
	}
	if _, ok := Field("a=1\n", "b"); ok {
		t.Error("Field of a missing key says it is there")
	}
	// The second line's field is found too.
	if v, _ := Field("a=1\nb=2 c=3\n", "c"); v != "3" {
		t.Errorf("Field on the second line: %q", v)
	}
}

// Whatever a value holds, Field reads back what Line wrote.
func FuzzLineField(f *testing.F) {
	for _, s := range []string{"", "a b", `"`, "x=y", "tab\there", "\xff", "é", `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		rec := new(Line).Str("k", v).Int("after", 1).String()
		got, ok := Field(rec, "k")
		if !ok || got != v {
			t.Fatalf("Field(%q) = %q %v, want %q", rec, got, ok, v)
		}
		if a, _ := Field(rec, "after"); a != "1" {
			t.Fatalf("the next field after %q: %q", v, a)
		}
	})
}
