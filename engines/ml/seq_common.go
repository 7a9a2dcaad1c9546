package ml

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Sequence models (issue 13): a trace is a slice of system-call numbers
// (Linux i386 numbering for ADFA-LD). An n-gram is packed into a uint64
// key, GramBits bits per call, so n ≤ MaxGram; numbers at or above
// 1<<GramBits-1 share the last code (SeqOther).

const (
	GramBits = 10
	MaxGram  = 6
	SeqOther = 1<<GramBits - 1
)

func gramCode(c int) uint64 {
	if c < 0 || c >= SeqOther {
		return SeqOther
	}
	return uint64(c)
}

// GramKey packs the calls of one n-gram (len ≤ MaxGram) into a key.
func GramKey(g []int) uint64 {
	var k uint64
	for _, c := range g {
		k = k<<GramBits | gramCode(c)
	}
	return k
}

// GramCalls unpacks a key made by GramKey from n calls.
func GramCalls(k uint64, n int) []int {
	g := make([]int, n)
	for i := n - 1; i >= 0; i-- {
		g[i] = int(k & SeqOther)
		k >>= GramBits
	}
	return g
}

// SyscallName names an i386 system-call number ("nr123" when unknown).
func SyscallName(nr int) string {
	if s, ok := i386Names[nr]; ok {
		return s
	}
	return "nr" + strconv.Itoa(nr)
}

// GramString writes an n-gram by system-call name: "open,read,close".
func GramString(g []int) string {
	s := make([]string, len(g))
	for i, c := range g {
		s[i] = SyscallName(c)
	}
	return strings.Join(s, ",")
}

// NgramCounts counts the n-grams (fixed n) of a set of traces; the STIDE
// database and the evidence of every sequence model use it.
type NgramCounts struct {
	N      int
	Counts map[uint64]uint32
	Total  uint64
}

// NewNgramCounts makes an empty table of n-grams of length n.
func NewNgramCounts(n int) (*NgramCounts, error) {
	if n < 1 || n > MaxGram {
		return nil, fmt.Errorf("ml: n-gram length %d out of 1..%d", n, MaxGram)
	}
	return &NgramCounts{N: n, Counts: map[uint64]uint32{}}, nil
}

// Add counts every sliding window of length N of tr (a trace shorter than
// N counts once, as its whole self, so that it is not invisible).
func (c *NgramCounts) Add(tr []int) {
	forWindows(tr, c.N, func(k uint64) {
		c.Counts[k]++
		c.Total++
	})
}

// Count is the training count of one window key.
func (c *NgramCounts) Count(k uint64) uint32 { return c.Counts[k] }

// forWindows calls f with the key of each sliding window of length n; a
// trace shorter than n (but not empty) yields one key of itself.
func forWindows(tr []int, n int, f func(uint64)) {
	if len(tr) == 0 {
		return
	}
	if len(tr) < n {
		f(GramKey(tr) | uint64(len(tr))<<60)
		return
	}
	for i := 0; i+n <= len(tr); i++ {
		f(GramKey(tr[i : i+n]))
	}
}

// RareGram is one piece of evidence: an n-gram seen in a trace, how often
// it was seen there, and how often in training (0: never).
type RareGram struct {
	Calls    []int  `json:"calls"`
	Names    string `json:"names"`
	Seen     int    `json:"seen"`
	Training uint32 `json:"training"`
}

// Rarest returns the top n-grams of tr with the lowest training count
// (ties: more often seen in tr first, then by key), as evidence.
func (c *NgramCounts) Rarest(tr []int, top int) []RareGram {
	seen := map[uint64]int{}
	var order []uint64
	forWindows(tr, c.N, func(k uint64) {
		if seen[k] == 0 {
			order = append(order, k)
		}
		seen[k]++
	})
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if c.Counts[a] != c.Counts[b] {
			return c.Counts[a] < c.Counts[b]
		}
		if seen[a] != seen[b] {
			return seen[a] > seen[b]
		}
		return a < b
	})
	if len(order) > top {
		order = order[:top]
	}
	out := make([]RareGram, len(order))
	for i, k := range order {
		n := c.N
		if k>>60 != 0 {
			n = int(k >> 60)
			k &= 1<<60 - 1
		}
		g := GramCalls(k, n)
		out[i] = RareGram{Calls: g, Names: GramString(g), Seen: seen[order[i]], Training: c.Counts[order[i]]}
	}
	return out
}
