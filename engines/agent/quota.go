package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"syscall"

	bolt "go.etcd.io/bbolt"

	"aiosfs/ctl"
	"aiosfs/engines/bus"
	"aiosfs/fs"
	"aiosfs/hal/cgroup"
)

// Quota is what one user's agents may have together. Every non-root uid's
// agents live in one parent cgroup, user-UID under the daemon's prefix
// (the way systemd's user-UID.slice holds a user's sessions), and the
// kernel applies Weight, CPUMax, MemMax and Pids to that parent, so they
// bound the user's agents together whatever each agent's own limits say.
// Agents is checked when an agent is made; RegionBytes and Regions bound
// the memory fabric (the memory engine asks QuotaOf). Root's agents have
// no quota.
//
// Root sets quotas in the global ctl (`quota USER key=value ...`); the
// `default` row applies to every uid without a row of its own. `quotas`
// lists them:
//
//	quota uid=default agents=64 weight=100 cpumax=max memmax=max pids=4096 regionbytes=1073741824 regions=16
//	quota uid=1000 agents=8 weight=50 cpumax=1 memmax=2147483648 pids=512 regionbytes=1073741824 regions=16
//	usage uid=1000 agents=3 group=/sys/fs/cgroup/memory/aiosfs/user-1000
//
// Units as everywhere: bytes, cores, "max" for none.
type Quota struct {
	Agents      int     `json:"agents"`      // agents not yet exited
	Weight      uint64  `json:"weight"`      // cpu weight of the user's parent group, 1..10000
	CPUMax      float64 `json:"cpumax"`      // cores for all the user's agents; 0 none
	MemMax      int64   `json:"memmax"`      // bytes; -1 none
	Pids        int64   `json:"pids"`        // tasks; -1 none
	RegionBytes int64   `json:"regionbytes"` // memory fabric bytes; -1 none
	Regions     int     `json:"regions"`     // memory fabric regions; -1 none
}

// DefaultQuota applies to every non-root uid until root says otherwise.
// Memory and CPU are left to the host and to the caller's own cgroup (an
// agent never gets more than its caller has, see Ceiling); the counts stop
// a user from exhausting the pid space, the agent table or the state disk.
var DefaultQuota = Quota{Agents: 64, Weight: 100, MemMax: -1, Pids: 4096, RegionBytes: 1 << 30, Regions: 16}

// Unlimited is root's quota.
var Unlimited = Quota{Agents: -1, Weight: 100, MemMax: -1, Pids: -1, RegionBytes: -1, Regions: -1}

var bucketQuotas = []byte("quotas")

const defaultKey = "default"

func (q Quota) line(who string) string {
	return fmt.Sprintf("quota uid=%s agents=%s weight=%d cpumax=%s memmax=%s pids=%s regionbytes=%s regions=%s\n",
		who, countOrMax(int64(q.Agents)), q.Weight, cores(q.CPUMax), sizeOrMax(q.MemMax), countOrMax(q.Pids),
		sizeOrMax(q.RegionBytes), countOrMax(int64(q.Regions)))
}

func countOrMax(n int64) string {
	if n < 0 {
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

// quotas reads every stored quota; "default" is the default row.
func (s *Store) quotas() (map[string]Quota, error) {
	out := map[string]Quota{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketQuotas)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var q Quota
			if err := json.Unmarshal(v, &q); err != nil {
				return fmt.Errorf("quota %s: %w", k, err)
			}
			out[string(k)] = q
			return nil
		})
	})
	return out, err
}

// putQuota stores (or, with q nil, deletes) one row.
func (s *Store) putQuota(key string, q *Quota) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketQuotas)
		if err != nil {
			return err
		}
		if q == nil {
			return b.Delete([]byte(key))
		}
		v, err := json.Marshal(q)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), v)
	})
}

// loadQuotas reads the stored quotas into the engine; a damaged row is
// skipped, said so, and the default stands in for it.
func (e *Engine) loadQuotas() error {
	rows, err := e.store.quotas()
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.quotas = map[string]Quota{}
	for k, q := range rows {
		e.quotas[k] = q
	}
	return nil
}

// QuotaOf is uid's quota: root has none (Unlimited).
func (e *Engine) QuotaOf(uid uint32) Quota {
	if uid == 0 {
		return Unlimited
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.quotaLocked(uid)
}

func (e *Engine) quotaLocked(uid uint32) Quota {
	if q, ok := e.quotas[strconv.FormatUint(uint64(uid), 10)]; ok {
		return q
	}
	if q, ok := e.quotas[defaultKey]; ok {
		return q
	}
	return DefaultQuota
}

// parentName is the parent cgroup of uid's agents: user-UID; root's agents
// sit directly under the prefix.
func parentName(uid uint32) string {
	return cgroup.ParentPrefix + strconv.FormatUint(uint64(uid), 10)
}

// groupFor is the cgroup name of agent id owned by uid.
func groupFor(id int, uid uint32) string {
	if uid == 0 {
		return groupName(id)
	}
	return parentName(uid) + "/" + groupName(id)
}

// userParent makes sure uid's parent group exists with its quota applied.
func (e *Engine) userParent(uid uint32) error {
	if uid == 0 {
		return nil
	}
	g, err := e.cfg.Cgroups.Parent(parentName(uid))
	if err != nil {
		return err
	}
	return applyQuota(g, e.QuotaOf(uid))
}

// applyQuota writes a quota's kernel limits on a user's parent group. A
// controller the host lacks is skipped (the setters say ErrUnsupported);
// anything else the kernel refuses is returned.
func applyQuota(g cgroup.Group, q Quota) error {
	ok := func(err error) error {
		if err == nil || isUnsupported(err) {
			return nil
		}
		return err
	}
	if err := ok(g.SetWeight(q.Weight)); err != nil {
		return err
	}
	if err := ok(g.SetCPUMax(q.CPUMax, 0)); err != nil {
		return err
	}
	if err := ok(g.SetMemMax(q.MemMax)); err != nil {
		return err
	}
	return ok(g.SetPidsMax(q.Pids))
}

// liveCount is how many of uid's agents have not exited; e.mu held.
func (e *Engine) liveCountLocked(uid uint32) int {
	n := 0
	for _, a := range e.agents {
		if a.Uid == uid && a.State != StateExited {
			n++
		}
	}
	return n
}

// checkAgentQuota refuses a new agent for uid past its quota. Only
// unprivileged callers are held to it: root may place agents for a user
// beyond the count (the parent group's kernel limits still hold them).
func (e *Engine) checkAgentQuota(c fs.Caller, uid uint32) error {
	if c.Uid == 0 || uid == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.quotaLocked(uid)
	if n := e.liveCountLocked(uid); q.Agents >= 0 && n >= q.Agents {
		return fs.Errorf(syscall.EDQUOT, "uid %d has %d agents, its quota is %d (root: quota %d agents=N)", uid, n, q.Agents, uid)
	}
	return nil
}

// quotaVerb is `quota USER|UID|default [key=value ...]` or `quota USER
// reset`: root sets what one user's agents may have together.
func (e *Engine) quotaVerb(_ context.Context, c fs.Caller, args []string) error {
	key := args[0]
	var uid uint32
	if key != defaultKey {
		u, _, err := e.lookupUser(key)
		if err != nil {
			return err
		}
		if u == 0 {
			return ctl.Errorf("root has no quota")
		}
		uid, key = u, strconv.FormatUint(uint64(u), 10)
	}
	e.mu.Lock()
	old, had := e.quotas[key]
	base := DefaultQuota
	if key == defaultKey {
		if had {
			base = old
		}
	} else {
		base = e.quotaLocked(uid)
	}
	e.mu.Unlock()

	var next *Quota
	if len(args) == 2 && args[1] == "reset" {
		if !had {
			return nil
		}
	} else {
		q := base
		if err := parseQuota(&q, args[1:]); err != nil {
			return err
		}
		next = &q
	}
	e.mu.Lock()
	prev := e.quotas
	e.quotas = maps.Clone(prev)
	if next == nil {
		delete(e.quotas, key)
	} else {
		e.quotas[key] = *next
	}
	e.mu.Unlock()
	// The kernel first: a memory quota below what a user's agents use now
	// is refused there (EBUSY), and then nothing is stored.
	undo := func() {
		e.mu.Lock()
		e.quotas = prev
		e.mu.Unlock()
		e.reapplyQuotas()
	}
	if err := e.reapplyQuotas(); err != nil {
		undo()
		return kernelErr("quota", err)
	}
	if err := e.store.putQuota(key, next); err != nil {
		undo()
		return saveErr(err)
	}
	e.publish(nil, "quota", bus.F("uid", key), bus.F("value", strings.Join(args[1:], " ")))
	return nil
}

// reapplyQuotas writes each user's quota on the parent groups that exist.
func (e *Engine) reapplyQuotas() error {
	e.mu.Lock()
	uids := map[uint32]bool{}
	for _, a := range e.agents {
		if a.Uid != 0 && a.Alive() {
			uids[a.Uid] = true
		}
	}
	e.mu.Unlock()
	for _, uid := range slices.Sorted(maps.Keys(uids)) {
		g, err := e.cfg.Cgroups.Load(parentName(uid))
		if err != nil {
			continue // the agents predate parents (an older daemon's)
		}
		if err := applyQuota(g, e.QuotaOf(uid)); err != nil {
			return fmt.Errorf("uid %d: %w", uid, err)
		}
	}
	return nil
}

// parseQuota applies key=value settings to q; nothing is applied on error
// by the caller, which works on a copy.
func parseQuota(q *Quota, kvs []string) error {
	if len(kvs) == 0 {
		return ctl.Errorf("quota: no settings (quota USER key=value ..., keys: agents weight cpumax memmax pids regionbytes regions; or quota USER reset)")
	}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return ctl.Errorf("quota: bad setting %q (want key=value)", kv)
		}
		var err error
		switch k {
		case "agents":
			q.Agents, err = countArg(v, 1<<20)
		case "regions":
			q.Regions, err = countArg(v, 1<<20)
		case "pids":
			var n int
			n, err = countArg(v, 1<<22)
			q.Pids = int64(n)
		case "weight":
			var w int64
			w, err = ctl.ParseInt(v, 1, 10000)
			q.Weight = uint64(w)
		case "cpumax":
			q.CPUMax, err = parseCPUMax(v)
		case "memmax":
			q.MemMax, err = ctl.ParseSize(v)
		case "regionbytes":
			q.RegionBytes, err = ctl.ParseSize(v)
		default:
			return ctl.Errorf("quota: unknown key %q (want agents weight cpumax memmax pids regionbytes regions)", k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// countArg is a count 0..hi or max (-1).
func countArg(v string, hi int64) (int, error) {
	if v == "max" {
		return -1, nil
	}
	n, err := ctl.ParseInt(v, 0, hi)
	return int(n), err
}

// Quotas renders the quotas file (see Quota).
func (e *Engine) Quotas() []byte {
	e.mu.Lock()
	rows := maps.Clone(e.quotas)
	usage := map[uint32]int{}
	for _, a := range e.agents {
		if a.Uid != 0 && a.State != StateExited {
			usage[a.Uid]++
		}
	}
	e.mu.Unlock()
	var b strings.Builder
	def, ok := rows[defaultKey]
	if !ok {
		def = DefaultQuota
	}
	b.WriteString(def.line(defaultKey))
	delete(rows, defaultKey)
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
	for _, k := range keys {
		b.WriteString(rows[k].line(k))
	}
	uids := make([]uint32, 0, len(usage))
	for u := range usage {
		uids = append(uids, u)
	}
	slices.Sort(uids)
	for _, u := range uids {
		group := "-"
		if g, err := e.cfg.Cgroups.Load(parentName(u)); err == nil {
			paths := g.Paths()
			for _, c := range []string{"memory", "unified", "pids", "cpu"} {
				if p, ok := paths[c]; ok {
					group = p
					break
				}
			}
		}
		fmt.Fprintf(&b, "usage uid=%d agents=%d group=%s\n", u, usage[u], group)
	}
	return []byte(b.String())
}
