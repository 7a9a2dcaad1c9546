package gpu

import (
	"strconv"

	"aiosfs/ctl"
)

// ParseRequest reads the arguments of an agent's `gpu` verb:
//
//	gpu SIZE [prio=P] [dev=D|any] [share=FRACTION]
//
// SIZE is bytes with an optional K/M/G/T suffix (ctl.ParseSize) and must be
// positive and finite; prio an integer -100..100 (higher first, default
// 0); dev a device index or any (default); share the compute fraction
// (0,1] or a percentage, default proportional to the memory reserved.
// Keys may come in any order, each once. Whether the device exists and the
// size fits is Sched.Check's business.
func ParseRequest(agent int, args []string) (Request, error) {
	if len(args) == 0 {
		return Request{}, ctl.Errorf("%s: gpu SIZE [prio=P] [dev=D|any] [share=FRACTION]", ctl.MsgBadArgs)
	}
	r := Request{Agent: agent, Dev: Any}
	size, err := ctl.ParseSize(args[0])
	if err != nil {
		return Request{}, err
	}
	if size == ctl.Unlimited || size == 0 {
		return Request{}, ctl.Errorf("gpu: size %q must be a positive number of bytes", args[0])
	}
	r.Bytes = size
	kvs, rest, err := ctl.KeyValues(args[1:], "prio", "dev", "share")
	if err != nil {
		return Request{}, err
	}
	if len(rest) > 0 {
		return Request{}, ctl.Errorf("gpu: unexpected %q (want key=value)", rest[0])
	}
	for _, kv := range kvs {
		switch kv.Key {
		case "prio":
			p, err := ctl.ParseInt(kv.Value, -100, 100)
			if err != nil {
				return Request{}, err
			}
			r.Prio = int(p)
		case "dev":
			if kv.Value == "any" {
				r.Dev = Any
				continue
			}
			d, err := strconv.Atoi(kv.Value)
			if err != nil || d < 0 || strconv.Itoa(d) != kv.Value {
				return Request{}, ctl.Errorf("gpu: bad device %q (want an index or any)", kv.Value)
			}
			r.Dev = d
		case "share":
			f, err := ctl.ParseFraction(kv.Value)
			if err != nil {
				return Request{}, err
			}
			if f == 0 {
				return Request{}, ctl.Errorf("gpu: share %q must be above 0", kv.Value)
			}
			r.Share = f
		}
	}
	return r, nil
}

// Args renders r as ParseRequest reads it.
func (r Request) Args() []string {
	out := []string{ctl.FormatSize(r.Bytes), "prio=" + strconv.Itoa(r.Prio)}
	if r.Dev == Any {
		out = append(out, "dev=any")
	} else {
		out = append(out, "dev="+strconv.Itoa(r.Dev))
	}
	if r.Share > 0 {
		out = append(out, "share="+strconv.FormatFloat(r.Share, 'g', -1, 64))
	}
	return out
}
