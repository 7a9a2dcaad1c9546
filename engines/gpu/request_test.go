package gpu

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestParseRequest(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Request
	}{
		{"8G", Request{Agent: 3, Bytes: 8 * G, Dev: Any}},
		{"512M prio=5 dev=2 share=0.25", Request{Agent: 3, Bytes: 512 << 20, Prio: 5, Dev: 2, Share: 0.25}},
		{"1.5G dev=any share=50% prio=-3", Request{Agent: 3, Bytes: 3 * G / 2, Prio: -3, Dev: Any, Share: 0.5}},
		{"4096 share=1", Request{Agent: 3, Bytes: 4096, Dev: Any, Share: 1}},
	} {
		got, err := ParseRequest(3, strings.Fields(c.in))
		if err != nil || got != c.want {
			t.Errorf("%q: %+v %v, want %+v", c.in, got, err, c.want)
		}
		// Args renders what ParseRequest reads back.
		again, err := ParseRequest(3, got.Args())
		if err != nil || again != got {
			t.Errorf("%q round trip %v: %+v %v", c.in, got.Args(), again, err)
		}
	}
	for _, in := range []string{
		"", "0", "max", "none", "-1G", "8X", "1.5", "8G prio=101", "8G prio=x",
		"8G dev=-1", "8G dev=01", "8G dev=gpu0", "8G share=0", "8G share=1.5", "8G share=-0.1",
		"8G share=NaN", "8G color=red", "8G prio=1 prio=2", "8G extra",
	} {
		_, err := ParseRequest(3, strings.Fields(in))
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%q: %v, want EINVAL", in, err)
		}
	}
}

// FuzzParseRequest: the parser never panics, every error is EINVAL, and
// what it accepts is sane and survives a round trip through Args.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"8G", "512M prio=5 dev=2 share=0.25", "1.5G dev=any share=50%", "8G prio=101", "max", "8G share=0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRequest(1, strings.Fields(line))
		if err != nil {
			if !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("%q: %v is not EINVAL", line, err)
			}
			return
		}
		if r.Bytes <= 0 || r.Prio < -100 || r.Prio > 100 || r.Dev < Any || r.Share < 0 || r.Share > 1 || r.Share != r.Share {
			t.Fatalf("%q accepted as %+v", line, r)
		}
		again, err := ParseRequest(1, r.Args())
		if err != nil || again != r {
			t.Fatalf("%q: round trip %v gave %+v %v", line, r.Args(), again, err)
		}
	})
}
