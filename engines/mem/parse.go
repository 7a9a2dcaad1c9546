package mem

import (
	"strconv"
	"strings"
	"syscall"
	"time"

	"aiosfs/ctl"
	"aiosfs/fs"
)

// Region kinds.
const (
	Ephemeral  = "ephemeral"  // ends with its lease or its owner agent; gone at restart
	Persistent = "persistent" // a file in the state directory; survives restarts
	Shared     = "shared"     // may be granted to several agents; gone at restart
)

// MaxRegionSize bounds one region: its bytes are reserved on the state
// filesystem at alloc (see reserve), and a typo such as 1T should not
// pass silently. Each uid's quota (Config.Quota) bounds them all.
const MaxRegionSize = 64 << 30

// AllocSpec is a parsed `alloc` command.
type AllocSpec struct {
	Name  string
	Size  int64
	Kind  string
	Tags  []string
	Lease time.Duration // 0: none
	Owner int           // 0: none
	Cache int64         // page cache bytes; 0: the default
}

// ParseAlloc parses the arguments of
//
//	alloc NAME SIZE [ephemeral|persistent|shared] [tag=T ...] [lease=DURATION] [owner=N] [cache=SIZE]
//
// Errors are EINVAL in the engine's words; nothing is created.
func ParseAlloc(args []string) (AllocSpec, error) {
	var s AllocSpec
	if len(args) < 2 {
		return s, ctl.Errorf("%s: alloc NAME SIZE [kind] [key=value ...]", ctl.MsgBadArgs)
	}
	if err := ValidName(args[0]); err != nil {
		return s, err
	}
	s.Name = args[0]
	n, err := ctl.ParseSize(args[1])
	if err != nil {
		return s, err
	}
	if n <= 0 || n > MaxRegionSize {
		return s, ctl.Errorf("bad region size %q (want 1 byte .. %s)", args[1], ctl.FormatSize(MaxRegionSize))
	}
	s.Size = n
	s.Kind = Ephemeral
	rest := args[2:]
	if len(rest) > 0 && !strings.Contains(rest[0], "=") {
		switch rest[0] {
		case Ephemeral, Persistent, Shared:
			s.Kind = rest[0]
		default:
			return s, ctl.Errorf("bad region kind %q (want ephemeral, persistent or shared)", rest[0])
		}
		rest = rest[1:]
	}
	kvs, left, err := ctl.KeyValues(rest, "tag*", "lease", "owner", "cache")
	if err != nil {
		return s, err
	}
	if len(left) > 0 {
		return s, ctl.Errorf("unexpected argument %q", left[0])
	}
	for _, kv := range kvs {
		switch kv.Key {
		case "tag":
			if err := validTag(kv.Value); err != nil {
				return s, err
			}
			s.Tags = append(s.Tags, kv.Value)
		case "lease":
			d, err := ctl.ParseDuration(kv.Value)
			if err != nil {
				return s, err
			}
			s.Lease = d
		case "owner":
			id, err := ctl.ParseInt(kv.Value, 1, 1<<31-1)
			if err != nil {
				return s, err
			}
			s.Owner = int(id)
		case "cache":
			c, err := ctl.ParseSize(kv.Value)
			if err != nil {
				return s, err
			}
			if c < PageSize || c > 16<<30 {
				return s, ctl.Errorf("bad cache size %q (want %d bytes .. 16G)", kv.Value, PageSize)
			}
			s.Cache = c
		}
	}
	if s.Kind == Persistent && s.Lease > 0 {
		return s, ctl.Errorf("a persistent region has no lease")
	}
	return s, nil
}

// ValidName accepts region names: 1..64 of [A-Za-z0-9._-], not starting
// with '.', so a name is always one path element and never "." or "..".
func ValidName(n string) error {
	if n == "" || len(n) > 64 || n[0] == '.' {
		return ctl.Errorf("bad region name %q (want 1..64 of A-Z a-z 0-9 . _ -, not starting with .)", n)
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return ctl.Errorf("bad region name %q (want 1..64 of A-Z a-z 0-9 . _ -, not starting with .)", n)
		}
	}
	return nil
}

func validTag(t string) error {
	if t == "" || len(t) > 64 || strings.ContainsAny(t, ",/ \t") {
		return ctl.Errorf("bad tag %q (want 1..64 characters without , / or blanks)", t)
	}
	return nil
}

func parsePolicy(s string) (string, error) {
	for _, p := range CtlPolicies {
		if s == p {
			return s, nil
		}
	}
	for _, p := range []string{ARC, S3FIFO, SIEVE, LIRS} {
		if s == p {
			return s, nil
		}
	}
	return "", ctl.Errorf("bad policy %q (want lru, lfu, predictive or adaptive; arc, s3fifo, sieve, lirs also run)", s)
}

func noRegion(name string) error { return fs.Errorf(syscall.ENOENT, "no such region %q", name) }

func itoa(n int) string { return strconv.Itoa(n) }
