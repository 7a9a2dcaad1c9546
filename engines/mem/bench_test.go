package mem

import "testing"

// BenchmarkAccess is each policy's cost per reference (ns/op is one
// Access) at 100 pages on the phased synthetic stream, all in one run:
// Adaptive pays for its nine shadow experts on the fabric's read path.
func BenchmarkAccess(b *testing.B) {
	trace := synth(7)
	for _, name := range allPolicies {
		b.Run(name, func(b *testing.B) {
			p, _ := NewPolicy(name, 100, 1)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p.Access(trace[i%len(trace)])
			}
		})
	}
}
