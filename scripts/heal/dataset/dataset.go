// Package dataset reads the healing suite's recording
// (testdata/heal/runs.csv, written by scripts/heal/record).
//
// Format: CSV with the header
//
//	round,scenario,t,mem,mem_max,fds,fd_max,disk_used,disk_size,cpu,cpu_s,procs,psi_cpu,hb_age,event
//
// One row per sample (every 0.5 s) or event. t is seconds since the
// round began. A sample row has every measurement and event "-": mem the
// memory cgroup's usage_in_bytes, mem_max its limit, fds the open fds of
// the agent's process, fd_max its RLIMIT_NOFILE, disk_used/disk_size the
// tmpfs the disk filler writes (0 for the others), cpu cores over the
// last interval, cpu_s cumulative CPU seconds, procs, psi_cpu the host's
// /proc/pressure/cpu some avg10 (-1 none), hb_age seconds since the
// agent last touched its heartbeat file (-1 none). An event row has only
// round, scenario, t and event: start, exit:CODE (negative: killed by
// that signal), oom (the cgroup's oom_kill count rose), and fail:KIND —
// the true time of the injected failure (ground truth, never shown to a
// predictor).
package dataset

import (
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Row is one sample or event.
type Row struct {
	T                  float64
	Mem, MemMax        int64
	FDs, FDMax         int64
	DiskUsed, DiskSize int64
	CPU, CPUSec        float64
	Procs              int
	PSI, HBAge         float64
	Event              string // "" for a sample
}

// Run is one scenario in one round.
type Run struct {
	Round    int
	Scenario string
	Kind     string  // the injected failure's kind, "" for healthy controls
	FailAt   float64 // the injected failure's time, -1 none
	Rows     []Row   // by time, events after samples of the same time
}

// Kinds maps scenarios to the failure kind they inject.
var Kinds = map[string]string{"memleak": "MemoryExhaustion", "fdleak": "FDExhaustion", "diskfill": "DiskExhaustion",
	"crashloop": "CrashLoop", "hang": "Hang", "cpuhog": "CPUOverload"}

// Read parses a recording into runs, sorted by round and scenario.
func Read(r io.Reader) ([]*Run, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 15
	hdr, err := cr.Read()
	if err != nil {
		return nil, err
	}
	if hdr[0] != "round" || hdr[14] != "event" {
		return nil, fmt.Errorf("heal dataset: bad header %v", hdr)
	}
	runs := map[string]*Run{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		round, err := strconv.Atoi(rec[0])
		if err != nil {
			return nil, fmt.Errorf("heal dataset: line %d: bad round", line)
		}
		key := rec[0] + "/" + rec[1]
		run := runs[key]
		if run == nil {
			run = &Run{Round: round, Scenario: rec[1], Kind: Kinds[rec[1]], FailAt: -1}
			runs[key] = run
		}
		var row Row
		if row.T, err = strconv.ParseFloat(rec[2], 64); err != nil {
			return nil, fmt.Errorf("heal dataset: line %d: bad t", line)
		}
		if ev := rec[14]; ev != "-" {
			row.Event = ev
			if k, ok := strings.CutPrefix(ev, "fail:"); ok && run.FailAt < 0 {
				if k != run.Kind {
					return nil, fmt.Errorf("heal dataset: line %d: %s failed as %s", line, run.Scenario, k)
				}
				run.FailAt = row.T
			}
			run.Rows = append(run.Rows, row)
			continue
		}
		ints := []*int64{&row.Mem, &row.MemMax, &row.FDs, &row.FDMax, &row.DiskUsed, &row.DiskSize}
		for i, p := range ints {
			if *p, err = strconv.ParseInt(rec[3+i], 10, 64); err != nil {
				return nil, fmt.Errorf("heal dataset: line %d: bad %s", line, hdr[3+i])
			}
		}
		fl := []*float64{&row.CPU, &row.CPUSec}
		for i, p := range fl {
			if *p, err = strconv.ParseFloat(rec[9+i], 64); err != nil {
				return nil, fmt.Errorf("heal dataset: line %d: bad %s", line, hdr[9+i])
			}
		}
		if row.Procs, err = strconv.Atoi(rec[11]); err != nil {
			return nil, fmt.Errorf("heal dataset: line %d: bad procs", line)
		}
		if row.PSI, err = strconv.ParseFloat(rec[12], 64); err != nil {
			return nil, fmt.Errorf("heal dataset: line %d: bad psi_cpu", line)
		}
		if row.HBAge, err = strconv.ParseFloat(rec[13], 64); err != nil {
			return nil, fmt.Errorf("heal dataset: line %d: bad hb_age", line)
		}
		run.Rows = append(run.Rows, row)
	}
	out := make([]*Run, 0, len(runs))
	for _, r := range runs {
		sort.SliceStable(r.Rows, func(i, j int) bool { return r.Rows[i].T < r.Rows[j].T })
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Round != out[j].Round {
			return out[i].Round < out[j].Round
		}
		return out[i].Scenario < out[j].Scenario
	})
	return out, nil
}
