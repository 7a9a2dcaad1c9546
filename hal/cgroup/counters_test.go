package cgroup

import "testing"

// checkCounters says whether Counters and CPUUsage agree with st, the
// group's Stats read just before (the fixtures do not change between).
func checkCounters(t *testing.T, g Group, st Stats) {
	t.Helper()
	cr, ok := g.(CounterReader)
	if !ok {
		t.Fatalf("%T is not a CounterReader", g)
	}
	c, err := cr.Counters()
	if err != nil {
		t.Fatalf("Counters: %v", err)
	}
	want := Counters{CPUUsageNs: st.CPUUsageNs, NrThrottled: st.NrThrottled, MemCurrent: st.MemCurrent, OOMKills: st.OOMKills}
	if c != want {
		t.Errorf("Counters = %+v\nwant       %+v (from Stats)", c, want)
	}
	if u, err := cr.CPUUsage(); st.CPUUsageNs != 0 && (err != nil || u != st.CPUUsageNs) {
		t.Errorf("CPUUsage = %d, %v; want %d", u, err, st.CPUUsageNs)
	}
}
