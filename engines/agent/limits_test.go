package agent

import (
	"slices"
	"testing"

	"aiosfs/ctl"
	"aiosfs/engines/agent/view"
)

// TestLimitsTable: every limit is a spawn key and a verb of agents/N/ctl,
// parses what it renders, and takes the typed value view makes for it.
func TestLimitsTable(t *testing.T) {
	verbs := (&Engine{}).Verbs(1)
	for _, l := range limits {
		if !slices.Contains(spawnKeys, l.key) {
			t.Errorf("limit %s is not a spawn key", l.key)
		}
		if !slices.ContainsFunc(verbs, func(v ctl.Verb) bool { return v.Name == l.key && v.Args == l.args && v.Doc == l.doc }) {
			t.Errorf("limit %s is not a verb", l.key)
		}
	}
	typed := map[string]view.Limit{"weight": view.Weight(200), "cpumax": view.CPUMax(0.245), "cpuperiod": view.CPUPeriod(50e6),
		"cpus": view.Cpus("0"), "memhigh": view.MemHigh(1 << 20), "memmax": view.MemMax(2 << 20), "pidsmax": view.PidsMax(64)}
	for key, v := range typed {
		row, ok := limitRow(key)
		if !ok {
			t.Fatalf("no row %s", key)
		}
		var l Limits
		if !row.typed(v.Value, &l) {
			t.Errorf("%s refuses %v", key, v)
		}
		if key == "cpumax" && row.get(l) != "0.245" {
			t.Errorf("cpumax 0.245 is %s", row.get(l))
		}
		if key != "cpus" && row.typed("text", &l) {
			t.Errorf("%s takes a string", key)
		}
	}
}
