package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// aiosfs ps [-a] [MOUNT|ADDR]: the agents at a glance, one line each,
// from every agents/N/status and agents/N/stat, in human units:
//
//	ID  NAME  STATE    PID    UID  CPU   MEM      MEMMAX  AGE  CMD
//	1   web   running  9819   0    0.02  584KiB   256MiB  3m   sh -c 'while :; do sleep 0.2; done'
//
// CPU is cores over the last sampling interval; MEM what the agent's
// memory cgroup is charged (its processes' resident memory where the host
// has no memory controller); MEMMAX its hard limit ("max": none); AGE the
// time since it started. Exited agents are left out unless -a. The files
// themselves stay in base units (bytes, seconds, cores).
func ps(args []string, out io.Writer) error {
	fl := flag.NewFlagSet("ps", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	all := fl.Bool("a", false, "also list exited agents")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fl.NArg() > 1 {
		return fmt.Errorf("%w: ps takes [-a] [MOUNT|ADDR]", errUsage)
	}
	t, err := openTree(fl.Arg(0))
	if err != nil {
		return err
	}
	defer t.Close()
	rows, err := psRows(t, *all, time.Now())
	if err != nil {
		return err
	}
	writeRows(out, rows)
	return nil
}

// psRow is one agent's line.
type psRow struct {
	ID, Name, State, Pid, Uid, CPU, Mem, MemMax, Age, Cmd string
}

var psHeader = psRow{"ID", "NAME", "STATE", "PID", "UID", "CPU", "MEM", "MEMMAX", "AGE", "CMD"}

// psRows reads every agent. One that goes away meanwhile is left out.
func psRows(t tree, all bool, now time.Time) ([]psRow, error) {
	ids, err := agentIDs(t)
	if err != nil {
		return nil, err
	}
	var rows []psRow
	for _, id := range ids {
		dir := "/agents/" + strconv.Itoa(id)
		status, err := t.ReadFile(dir + "/status")
		if errors.Is(err, syscall.ENOENT) {
			continue
		}
		if err != nil {
			return nil, err
		}
		// stat is empty before the first sample; a missing one is no
		// reason to leave the agent out.
		stat, _ := t.ReadFile(dir + "/stat")
		row, ok := psRowOf(string(status), string(stat), now)
		if !ok || (!all && row.State == "exited") {
			continue
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// psRowOf renders one agent from its status and stat texts.
func psRowOf(status, stat string, now time.Time) (psRow, bool) {
	ag := records(status, "agent")
	if len(ag) == 0 {
		return psRow{}, false
	}
	a := ag[0]
	r := psRow{ID: a["id"], Name: a["name"], State: a["state"], Pid: a["pid"], Uid: a["uid"],
		CPU: "-", Mem: "-", MemMax: humanBytes(a["memmax"]), Age: "-", Cmd: "-"}
	// An exited agent's last pid may be another process's by now.
	if r.Pid == "0" || r.Pid == "" || r.State == "exited" {
		r.Pid = "-"
	}
	if c := records(status, "cmd"); len(c) > 0 && c[0]["argv"] != "" {
		r.Cmd = c[0]["argv"]
	}
	if started, err := strconv.ParseFloat(a["started"], 64); err == nil && started > 0 {
		end := now
		if ended, err := strconv.ParseFloat(a["ended"], 64); err == nil && ended > 0 {
			end = unixFloat(ended)
		}
		r.Age = humanAge(end.Sub(unixFloat(started)))
	}
	if st := records(stat, ""); len(st) > 0 && r.State != "exited" {
		s := st[0]
		if c, err := strconv.ParseFloat(s["cpu"], 64); err == nil {
			r.CPU = strconv.FormatFloat(c, 'f', 2, 64)
		}
		mem := s["mem"]
		if mem == "0" || mem == "" {
			mem = s["rss"]
		}
		r.Mem = humanBytes(mem)
	}
	return r, true
}

func unixFloat(s float64) time.Time {
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// humanBytes renders a byte count in binary units (512B, 1.5KiB, 256MiB,
// 2GiB): at most one decimal, none when it is whole. "max" and "-" stay.
func humanBytes(s string) string {
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if s == "" {
			return "-"
		}
		return s
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	var v string
	switch {
	case i == 0 || n >= 100:
		v = strconv.FormatFloat(n, 'f', 0, 64)
	default:
		v = strings.TrimSuffix(strconv.FormatFloat(n, 'f', 1, 64), ".0")
	}
	return v + units[i]
}

// humanAge is a duration in its two largest units, as ps and kubectl do:
// 45s, 12m, 3h4m, 2d5h.
func humanAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		if s%60 == 0 || s >= 600 {
			return fmt.Sprintf("%dm", s/60)
		}
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	case s < 86400:
		if m := s % 3600 / 60; m != 0 {
			return fmt.Sprintf("%dh%dm", s/3600, m)
		}
		return fmt.Sprintf("%dh", s/3600)
	default:
		if h := s % 86400 / 3600; h != 0 {
			return fmt.Sprintf("%dd%dh", s/86400, h)
		}
		return fmt.Sprintf("%dd", s/86400)
	}
}

// writeRows prints the header and rows in aligned columns. Names and
// commands are printed with control characters escaped, so an agent's
// name cannot move the cursor or paint the terminal.
func writeRows(out io.Writer, rows []psRow) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, r := range append([]psRow{psHeader}, rows...) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.ID, printable(r.Name), r.State, r.Pid, r.Uid, r.CPU, r.Mem, r.MemMax, r.Age, printable(r.Cmd))
	}
	tw.Flush()
}

// printable escapes what a terminal would act on (control characters,
// invalid UTF-8) and tabs, which would break the columns.
func printable(s string) string {
	ok := true
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\uFFFD' {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}
