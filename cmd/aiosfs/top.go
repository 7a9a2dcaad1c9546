package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"aiosfs/fs/p9fs"
)

// aiosfs top [-i 1s] [-a] [MOUNT|ADDR]: a live terminal view of the
// tree, refreshed every interval, through the local mount or over 9P (the
// tree as for ps). One row per agent, sorted by CPU, memory, threat or
// health:
//
//	ID NAME STATE CPU CPUMAX ALLOC CPU% MEM MEMMAX ALLOC MEM% FORECAST PATTERN THREAT HEALTH CMD
//
// CPU in cores and memory in binary units (the files keep base units).
// CPUMAX and MEMMAX are the limits in force (status), ALLOC the
// scheduler's allocation for them (agents/N/alloc: what it has written
// with `enforce on`, what it would write without), and % the use against
// the allocation where there is one, else against a finite limit.
// FORECAST is the p90 of cpu and mem at the forecast horizon nearest 5 s
// (agents/N/predict), PATTERN their classes (agents/N/pattern). THREAT
// is the threat engine's last assessment (agents/N/threat): its score and
// type, shortened (`0.97 ResEx`), red while it acts on the agent; HEALTH
// the healing engine's (agents/N/health): its score (1 healthy, 0 failed)
// and the supervisor's state (`0.12 backoff`). Below
// the table: the selected agent's allocations with their reasons and
// forecasts at every horizon, its threat assessment (action, top
// features) and health (trend, restarts, back-off), then the latest lines of `events`, read by
// a goroutine of their own (a blocking stream), then a message line.
//
// Keys: s cycles the sort (CPU, memory, threat highest first, health
// lowest first; c and m go to CPU and memory), a exited agents too, f
// freeze, t thaw, k kill (asks y/n), Q quarantine (asks y/n; writes
// `quarantine N` to threat/ctl: frozen, held and its network cut until
// root's `release N`), l a line for the agent's ctl (`memmax 1G`,
// `cpumax 0.5`, any of its verbs; Esc cancels), ↑ and ↓ (or j) select,
// q or Ctrl-C quit. A refused change shows the reason the
// daemon gave in `log`, as `aiosfs ctl` does.
func top(args []string) error {
	fl := flag.NewFlagSet("top", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	interval := fl.Duration("i", time.Second, "refresh interval")
	all := fl.Bool("a", false, "also show exited agents (the a key toggles)")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fl.NArg() > 1 {
		return fmt.Errorf("%w: top takes [-i DURATION] [-a] [MOUNT|ADDR]", errUsage)
	}
	if *interval < 100*time.Millisecond {
		return fmt.Errorf("%w: -i %s below 100ms", errUsage, *interval)
	}
	t, err := openTree(fl.Arg(0))
	if err != nil {
		return err
	}
	defer t.Close()
	ui := newTopUI(t, *interval, *all)
	return ui.run()
}

// topAgent is what top shows of one agent, in base units; NaN is unknown.
type topAgent struct {
	ID                      int
	Name, State, Cmd        string
	CPU, Mem                float64 // cores, bytes (NaN: not sampled)
	CPUMax, MemMax          float64 // limits in force (+Inf: max)
	AllocCPU, AllocMem      float64 // the scheduler's allocation (NaN: none)
	AllocWhy                []string
	FcCPU, FcMem, FcHorizon float64 // p90 forecasts at FcHorizon seconds
	PatCPU, PatMem          string  // pattern classes ("": none yet)
	Forecasts               []string
	Threat                  float64 // agents/N/threat score (NaN: none yet)
	ThreatType, ThreatAct   string  // its type and action ("": none)
	Health                  float64 // agents/N/health score (NaN: none)
	HealthState             string  // the supervisor's state ("": none)
	ThreatWhy, HealthWhy    string  // their details for the selected pane
}

// topSnap is one refresh: every agent, and the scheduler's status line.
type topSnap struct {
	Agents []topAgent
	Sched  map[string]string
	Err    error
}

// readTopSnap reads the tree once. An agent that goes away meanwhile is
// left out; an engine file that is absent (no scheduler) leaves its
// columns "-".
func readTopSnap(t tree, all bool) topSnap {
	var s topSnap
	if b, err := t.ReadFile("/sched/status"); err == nil {
		lines := strings.SplitN(string(b), "\n", 2)
		_, s.Sched = record(lines[0])
	}
	ids, err := agentIDs(t)
	if err != nil {
		s.Err = err
		return s
	}
	for _, id := range ids {
		dir := "/agents/" + strconv.Itoa(id)
		status, err := t.ReadFile(dir + "/status")
		if err != nil {
			if !errors.Is(err, syscall.ENOENT) {
				s.Err = err
			}
			continue
		}
		a, ok := parseTopAgent(id, string(status))
		if !ok || (!all && a.State == "exited") {
			continue
		}
		threat, _ := t.ReadFile(dir + "/threat")
		health, _ := t.ReadFile(dir + "/health")
		a.addThreat(string(threat))
		a.addHealth(string(health))
		if a.State != "exited" {
			stat, _ := t.ReadFile(dir + "/stat")
			alloc, _ := t.ReadFile(dir + "/alloc")
			predict, _ := t.ReadFile(dir + "/predict")
			pattern, _ := t.ReadFile(dir + "/pattern")
			a.addStat(string(stat))
			a.addSched(string(alloc), string(predict), string(pattern))
		}
		s.Agents = append(s.Agents, a)
	}
	return s
}

func parseTopAgent(id int, status string) (topAgent, bool) {
	ag := records(status, "agent")
	if len(ag) == 0 {
		return topAgent{}, false
	}
	r := ag[0]
	nan := math.NaN()
	a := topAgent{ID: id, Name: r["name"], State: r["state"], Cmd: "-",
		CPU: nan, Mem: nan, CPUMax: limit(r["cpumax"]), MemMax: limit(r["memmax"]),
		AllocCPU: nan, AllocMem: nan, FcCPU: nan, FcMem: nan, Threat: nan, Health: nan}
	if c := records(status, "cmd"); len(c) > 0 && c[0]["argv"] != "" {
		a.Cmd = c[0]["argv"]
	}
	return a, true
}

// limit parses a limit: "max" (or "-", none) is +Inf.
func limit(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.Inf(1)
	}
	return v
}

func num(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

func (a *topAgent) addStat(stat string) {
	st := records(stat, "")
	if len(st) == 0 || st[0]["time"] == "" {
		return
	}
	a.CPU = num(st[0]["cpu"])
	a.Mem = num(st[0]["mem"])
	if a.Mem == 0 || math.IsNaN(a.Mem) { // no memory controller: resident memory
		a.Mem = num(st[0]["rss"])
	}
}

// addThreat reads agents/N/threat (docs/threat.md §7):
// score= type= confidence= action= ...
func (a *topAgent) addThreat(threat string) {
	r := records(threat, "")
	if len(r) == 0 || r[0]["score"] == "" {
		return
	}
	a.Threat = num(r[0]["score"])
	a.ThreatType, a.ThreatAct = r[0]["type"], r[0]["action"]
	a.ThreatWhy = fmt.Sprintf("threat %s %s action=%s top=%s", r[0]["score"], r[0]["type"], orDash(r[0]["action"]), orDash(r[0]["top"]))
}

// addHealth reads agents/N/health's summary line (docs/heal.md §4):
// agent=N score= trend= state= restart= ...
func (a *topAgent) addHealth(health string) {
	r := records(health, "")
	if len(r) == 0 || r[0]["agent"] == "" {
		return
	}
	a.Health = num(r[0]["score"])
	a.HealthState = r[0]["state"]
	a.HealthWhy = fmt.Sprintf("health %s %s state=%s restart=%s starts=%s backoff=%s", r[0]["score"], r[0]["trend"],
		orDash(r[0]["state"]), orDash(r[0]["restart"]), orDash(r[0]["starts"]), orDash(r[0]["backoff"]))
}

// threatTypes shortens the threat engine's types for the THREAT column.
var threatTypes = map[string]string{
	"Benign": "Benign", "ResourceExhaustion": "ResEx", "UnauthorizedAccess": "UnAuth",
	"DataExfiltration": "Exfil", "DenialOfService": "DoS", "PrivilegeEscalation": "PrivEsc", "Unknown": "Unknown",
}

// threatCell is "0.97 ResEx", or "-".
func (a topAgent) threatCell() string {
	if math.IsNaN(a.Threat) {
		return "-"
	}
	t, ok := threatTypes[a.ThreatType]
	if !ok {
		t = orDash(a.ThreatType)
	}
	return strconv.FormatFloat(a.Threat, 'f', 2, 64) + " " + t
}

// threatActs: the threat engine acts on the agent (its row's THREAT in red).
func (a topAgent) threatActs() bool {
	return a.ThreatAct != "" && a.ThreatAct != "none" && a.ThreatAct != "-"
}

// healthCell is "0.12 backoff", or "-".
func (a topAgent) healthCell() string {
	if math.IsNaN(a.Health) && a.HealthState == "" {
		return "-"
	}
	v := "-"
	if !math.IsNaN(a.Health) {
		v = strconv.FormatFloat(a.Health, 'f', 2, 64)
	}
	return v + " " + orDash(a.HealthState)
}

// addSched reads the scheduler's files (docs/sched.md has their formats).
func (a *topAgent) addSched(alloc, predict, pattern string) {
	for _, r := range records(alloc, "") {
		switch r["limit"] {
		case "cpumax":
			a.AllocCPU = num(r["value"])
		case "memmax":
			a.AllocMem = num(r["value"])
		default:
			if r["limit"] == "" {
				continue
			}
		}
		v := r["value"]
		switch r["limit"] {
		case "cpumax":
			v = fmtCores(num(v))
		case "memhigh", "memmax":
			v = humanBytes(v)
		case "cpuperiod":
			v = fmtSeconds(num(v))
		}
		why := r["limit"] + " " + v
		if r["reason"] != "" {
			why += " (" + r["reason"] + ")"
		}
		a.AllocWhy = append(a.AllocWhy, why)
	}
	// The horizon nearest 5 s for the table; every horizon for the detail.
	best := math.Inf(1)
	for _, r := range records(predict, "") {
		h := num(r["horizon"])
		if math.IsNaN(h) || (r["resource"] != "cpu" && r["resource"] != "mem") {
			continue
		}
		if d := math.Abs(h - 5); d < best {
			best, a.FcHorizon = d, h
		}
	}
	byRes := map[string][]string{}
	for _, r := range records(predict, "") {
		h, p90 := num(r["horizon"]), num(r["p90"])
		var v string
		switch r["resource"] {
		case "cpu":
			v = fmtCores(p90)
			if h == a.FcHorizon {
				a.FcCPU = p90
			}
		case "mem":
			v = humanBytes(strconv.FormatFloat(p90, 'f', 0, 64))
			if h == a.FcHorizon {
				a.FcMem = p90
			}
		default:
			continue
		}
		byRes[r["resource"]] = append(byRes[r["resource"]], fmtSeconds(h)+" "+v)
	}
	for _, res := range []string{"cpu", "mem"} {
		if len(byRes[res]) > 0 {
			a.Forecasts = append(a.Forecasts, res+" p90: "+strings.Join(byRes[res], ", "))
		}
	}
	for _, r := range records(pattern, "") {
		c := r["class"]
		if c == "" {
			continue
		}
		if c == "periodic" {
			c += " " + fmtSeconds(num(r["period"]))
		}
		switch r["resource"] {
		case "cpu":
			a.PatCPU = c
		case "mem":
			a.PatMem = c
		}
	}
}

// fmtCores is a number of cores, two decimals.
func fmtCores(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.IsInf(v, 1):
		return "max"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func fmtSeconds(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return (time.Duration(v*1000) * time.Millisecond).String()
}

func fmtMem(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.IsInf(v, 1):
		return "max"
	}
	return humanBytes(strconv.FormatFloat(v, 'f', 0, 64))
}

// usePct is use against the allocation if there is one, else against a
// finite limit: "49%", or "-".
func usePct(use, alloc, lim float64) string {
	d := alloc
	if math.IsNaN(d) || d <= 0 {
		d = lim
	}
	if math.IsNaN(use) || math.IsNaN(d) || math.IsInf(d, 1) || d <= 0 {
		return "-"
	}
	return strconv.FormatFloat(100*use/d, 'f', 0, 64) + "%"
}

var topHeader = []string{"ID", "NAME", "STATE", "CPU", "CPUMAX", "ALLOC", "CPU%", "MEM", "MEMMAX", "ALLOC", "MEM%", "FORECAST", "PATTERN", "THREAT", "HEALTH", "CMD"}

// The columns past the numbers (left aligned), and THREAT's.
const (
	colForecast = 11
	colThreat   = 13
)

// cells is the agent's table row, in human units.
func (a topAgent) cells() []string {
	fc := "-"
	if !math.IsNaN(a.FcCPU) || !math.IsNaN(a.FcMem) {
		fc = fmtCores(a.FcCPU) + "c " + fmtMem(a.FcMem) + " @" + fmtSeconds(a.FcHorizon)
	}
	pat := "-"
	if a.PatCPU != "" || a.PatMem != "" {
		pat = orDash(a.PatCPU) + "/" + orDash(a.PatMem)
	}
	return []string{strconv.Itoa(a.ID), printable(a.Name), a.State,
		fmtCores(a.CPU), fmtCores(a.CPUMax), fmtCores(a.AllocCPU), usePct(a.CPU, a.AllocCPU, a.CPUMax),
		fmtMem(a.Mem), fmtMem(a.MemMax), fmtMem(a.AllocMem), usePct(a.Mem, a.AllocMem, a.MemMax),
		fc, pat, a.threatCell(), a.healthCell(), printable(a.Cmd)}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sortKeys are the sort orders, in the order s cycles through them.
var sortKeys = []string{"cpu", "mem", "threat", "health"}

// sortAgents orders by by (cpu, mem, threat: highest first; health:
// lowest, the sickest, first), then by number; the unknown last.
func sortAgents(as []topAgent, by string) {
	key := func(a topAgent) float64 {
		var v float64
		switch by {
		case "mem":
			v = a.Mem
		case "threat":
			v = a.Threat
		case "health":
			v = -a.Health
		default:
			v = a.CPU
		}
		if math.IsNaN(v) {
			return math.Inf(-1)
		}
		return v
	}
	sort.SliceStable(as, func(i, j int) bool {
		ki, kj := key(as[i]), key(as[j])
		if ki != kj {
			return ki > kj
		}
		return as[i].ID < as[j].ID
	})
}

// eventLine shortens one `events` record for the screen: its time of
// day, then the record without time= and seq=. Processes' fork, exec
// and exit (source=proc) are left out (ok false): a shell loop makes
// several a second and would push everything else off the pane.
func eventLine(line string) (string, bool) {
	_, kv := record(line)
	if kv["source"] == "proc" && (kv["kind"] == "fork" || kv["kind"] == "exec" || kv["kind"] == "exit") {
		return "", false
	}
	when := "--:--:--"
	if ts := num(kv["time"]); !math.IsNaN(ts) {
		when = unixFloat(ts).Format("15:04:05")
	}
	var rest []string
	for _, f := range strings.Fields(line) {
		if !strings.HasPrefix(f, "time=") && !strings.HasPrefix(f, "seq=") {
			rest = append(rest, f)
		}
	}
	return when + " " + printable(strings.Join(rest, " ")), true
}

// openEvents opens the tree's blocking `events` stream on a connection
// of its own, so that a blocked read never holds up the snapshots.
func openEvents(t tree) (io.ReadCloser, error) {
	switch t := t.(type) {
	case localTree:
		return os.Open(filepath.Join(string(t), "events.follow"))
	case p9Tree:
		c, err := p9fs.Dial(t.addr)
		if err != nil {
			return nil, err
		}
		f, err := c.Open("/events.follow", false)
		if err != nil {
			c.Close()
			return nil, err
		}
		return eventsConn{f, c}, nil
	}
	return nil, fmt.Errorf("%s: no events stream", t)
}

type eventsConn struct {
	*p9fs.File
	c *p9fs.Client
}

func (e eventsConn) Close() error { e.File.Close(); return e.c.Close() }

// topUI is the screen and its state. Only the tview goroutine touches
// the widgets and the fields below them; readers and actions run in
// goroutines of their own and hand results over with QueueUpdateDraw.
type topUI struct {
	t        tree
	interval time.Duration
	app      *tview.Application
	head     *tview.TextView
	table    *tview.Table
	detail   *tview.TextView
	events   *tview.TextView
	msg      *tview.TextView
	input    *tview.InputField
	foot     *tview.Pages
	refresh  chan struct{}

	all      bool
	sortBy   string // one of sortKeys
	snap     topSnap
	rows     []topAgent // as shown, in order
	selID    int        // the selected agent, kept across refreshes
	confirm  func()     // what y does, while a question is asked
	question string     // the question
	inputFor int        // the agent the prompt's line is for
}

func newTopUI(t tree, interval time.Duration, all bool) *topUI {
	u := &topUI{t: t, interval: interval, all: all, sortBy: "cpu", refresh: make(chan struct{}, 1)}
	u.app = tview.NewApplication()
	u.head = tview.NewTextView().SetDynamicColors(true)
	u.table = tview.NewTable().SetFixed(1, 0).SetSelectable(true, false)
	u.table.SetSelectionChangedFunc(func(row, _ int) {
		if row >= 1 && row-1 < len(u.rows) {
			u.selID = u.rows[row-1].ID
			u.drawDetail()
		}
	})
	u.detail = tview.NewTextView().SetDynamicColors(true)
	u.detail.SetBorder(true).SetTitle(" selected ").SetTitleAlign(tview.AlignLeft)
	u.events = tview.NewTextView().SetDynamicColors(true).SetMaxLines(200)
	u.events.SetBorder(true).SetTitle(" events ").SetTitleAlign(tview.AlignLeft)
	u.msg = tview.NewTextView().SetDynamicColors(true)
	u.input = tview.NewInputField().SetFieldWidth(0)
	u.input.SetDoneFunc(u.inputDone)
	u.foot = tview.NewPages().AddPage("msg", u.msg, true, true).AddPage("input", u.input, true, false)
	root := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(u.head, 2, 0, false).
		AddItem(u.table, 0, 1, true).
		AddItem(u.detail, 6, 0, false).
		AddItem(u.events, 9, 0, false).
		AddItem(u.foot, 1, 0, false)
	u.app.SetRoot(root, true).SetFocus(u.table)
	u.app.SetInputCapture(u.key)
	u.drawHead()
	return u
}

func (u *topUI) run() error {
	done := make(chan struct{})
	defer close(done)
	go u.poll(done)
	go u.readEvents(done)
	return u.app.Run()
}

// poll reads a snapshot every interval, or at once when asked.
func (u *topUI) poll(done chan struct{}) {
	tick := time.NewTicker(u.interval)
	defer tick.Stop()
	all := u.all
	for {
		s := readTopSnap(u.t, all)
		u.app.QueueUpdateDraw(func() { u.show(s) })
		select {
		case <-done:
			return
		case <-tick.C:
		case <-u.refresh:
		}
		ch := make(chan bool, 1)
		u.app.QueueUpdate(func() { ch <- u.all })
		select {
		case all = <-ch:
		case <-done:
			return
		}
	}
}

func (u *topUI) kick() {
	select {
	case u.refresh <- struct{}{}:
	default:
	}
}

// readEvents copies `events` lines to the events pane until the stream
// ends or top does.
func (u *topUI) readEvents(done chan struct{}) {
	r, err := openEvents(u.t)
	if err != nil {
		u.app.QueueUpdateDraw(func() { fmt.Fprintf(u.events, "[red]events: %s[-]\n", tview.Escape(err.Error())) })
		return
	}
	go func() { <-done; r.Close() }()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := eventLine(sc.Text())
		if !ok {
			continue
		}
		u.app.QueueUpdateDraw(func() {
			fmt.Fprintln(u.events, tview.Escape(line))
			u.events.ScrollToEnd()
		})
	}
}

func (u *topUI) show(s topSnap) {
	u.snap = s
	rows := append([]topAgent(nil), s.Agents...)
	sortAgents(rows, u.sortBy)
	u.rows = rows
	u.table.Clear()
	for c, h := range topHeader {
		align := tview.AlignRight
		if c == 1 || c == 2 || c >= colForecast {
			align = tview.AlignLeft
		}
		if c == 0 {
			align = tview.AlignLeft
		}
		u.table.SetCell(0, c, tview.NewTableCell(h).SetSelectable(false).SetAlign(align).
			SetAttributes(tcell.AttrBold|tcell.AttrReverse))
	}
	sel := 0
	for i, a := range rows {
		for c, v := range a.cells() {
			cell := tview.NewTableCell(tview.Escape(v))
			if c >= 3 && c <= 10 {
				cell.SetAlign(tview.AlignRight)
			}
			if c == 2 && a.State == "frozen" {
				cell.SetTextColor(tcell.ColorAqua)
			}
			if c == colThreat && a.threatActs() {
				cell.SetTextColor(tcell.ColorRed)
			}
			if c == len(topHeader)-1 {
				cell.SetExpansion(1)
			}
			u.table.SetCell(i+1, c, cell)
		}
		if a.ID == u.selID {
			sel = i
		}
	}
	if len(rows) > 0 {
		u.selID = rows[sel].ID
		u.table.Select(sel+1, 0)
	}
	u.drawHead()
	u.drawDetail()
}

func (u *topUI) drawHead() {
	var run, frozen int
	for _, a := range u.snap.Agents {
		switch a.State {
		case "running":
			run++
		case "frozen":
			frozen++
		}
	}
	sortBy := u.sortBy
	sched := "sched -"
	if s := u.snap.Sched; s != nil {
		sched = fmt.Sprintf("sched enforce=%s capacity=%s cores", s["enforce"], fmtCores(num(s["capacity"])))
	}
	line := fmt.Sprintf("[::b]aiosfs top[::-] %s  %s  agents %d running, %d frozen  %s  sort=%s",
		tview.Escape(u.t.String()), time.Now().Format("15:04:05"), run, frozen, sched, sortBy)
	if u.snap.Err != nil {
		line += "  [red]" + tview.Escape(u.snap.Err.Error()) + "[-]"
	}
	u.head.SetText(line + "\n[gray]s sort cpu/mem/threat/health  f freeze  t thaw  k kill  Q quarantine  l limit (ctl line)  a exited  ↑↓ select  q quit[-]")
}

func (u *topUI) selected() (topAgent, bool) {
	for _, a := range u.rows {
		if a.ID == u.selID {
			return a, true
		}
	}
	return topAgent{}, false
}

func (u *topUI) drawDetail() {
	a, ok := u.selected()
	if !ok {
		u.detail.SetText("")
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "agent %d %s: ", a.ID, tview.Escape(printable(a.Name)))
	if len(a.AllocWhy) == 0 {
		b.WriteString("no allocation yet")
	} else {
		b.WriteString("alloc " + tview.Escape(strings.Join(a.AllocWhy, ", ")))
	}
	for _, f := range a.Forecasts {
		b.WriteString("\n" + tview.Escape(f))
	}
	if w := strings.Trim(a.ThreatWhy+"; "+a.HealthWhy, "; "); w != "" {
		b.WriteString("\n" + tview.Escape(printable(w)))
	}
	u.detail.SetText(b.String())
}

func (u *topUI) say(color, text string) {
	u.msg.SetText("[" + color + "]" + tview.Escape(text) + "[-]")
}

// key handles a key while the table has the focus; the prompt's keys go
// to the prompt.
func (u *topUI) key(ev *tcell.EventKey) *tcell.EventKey {
	if u.app.GetFocus() == u.input {
		return ev
	}
	if u.confirm != nil {
		f := u.confirm
		u.confirm = nil
		if ev.Key() == tcell.KeyRune && (ev.Rune() == 'y' || ev.Rune() == 'Y') {
			f()
		} else {
			u.say("gray", "cancelled")
		}
		return nil
	}
	if ev.Key() == tcell.KeyCtrlC {
		u.app.Stop()
		return nil
	}
	if ev.Key() != tcell.KeyRune {
		return ev
	}
	switch ev.Rune() {
	case 'q':
		u.app.Stop()
	case 's':
		for i, k := range sortKeys {
			if k == u.sortBy {
				u.sortBy = sortKeys[(i+1)%len(sortKeys)]
				break
			}
		}
		u.show(u.snap)
	case 'c':
		u.sortBy = "cpu"
		u.show(u.snap)
	case 'm':
		u.sortBy = "mem"
		u.show(u.snap)
	case 'a':
		u.all = !u.all
		u.kick()
	case 'j':
		return tcell.NewEventKey(tcell.KeyDown, 0, tcell.ModNone)
	case 'f':
		u.act("freeze")
	case 't':
		u.act("thaw")
	case 'k':
		if a, ok := u.selected(); ok {
			u.question = fmt.Sprintf("kill agent %d (%s)? y/n", a.ID, printable(a.Name))
			u.say("yellow", u.question)
			u.confirm = func() { u.act("kill") }
		}
	case 'Q':
		if a, ok := u.selected(); ok {
			id := a.ID
			u.question = fmt.Sprintf("quarantine agent %d (%s): freeze, hold, cut its network until root's release? y/n", id, printable(a.Name))
			u.say("yellow", u.question)
			u.confirm = func() { u.sendTo("/threat/ctl", fmt.Sprintf("quarantine %d", id)) }
		}
	case 'l':
		if a, ok := u.selected(); ok {
			u.inputFor = a.ID
			u.input.SetLabel(fmt.Sprintf("agents/%d/ctl> ", a.ID)).SetText("")
			u.input.SetPlaceholder("memmax 1G, cpumax 0.5, memhigh 512M, weight 200, prio 5 ... (Esc: cancel)")
			u.foot.SwitchToPage("input")
			u.app.SetFocus(u.input)
		}
	default:
		return ev
	}
	return nil
}

func (u *topUI) inputDone(k tcell.Key) {
	line := strings.TrimSpace(u.input.GetText())
	u.foot.SwitchToPage("msg")
	u.app.SetFocus(u.table)
	if k != tcell.KeyEnter || line == "" {
		u.say("gray", "cancelled")
		return
	}
	u.send(u.inputFor, line)
}

// act writes verb to the selected agent's ctl.
func (u *topUI) act(verb string) {
	if a, ok := u.selected(); ok {
		u.send(a.ID, verb)
	}
}

// send writes line to agents/id/ctl off the UI goroutine, then shows
// what came of it: done, or the errno and the daemon's reason.
func (u *topUI) send(id int, line string) {
	u.sendTo("/agents/"+strconv.Itoa(id)+"/ctl", line)
}

// sendTo writes line to the ctl file p, as send does.
func (u *topUI) sendTo(p, line string) {
	u.say("gray", fmt.Sprintf("%s: %s ...", p, line))
	go func() {
		start := time.Now()
		err := u.t.WriteFile(p, []byte(line+"\n"))
		color, text := "green", fmt.Sprintf("%s: %q done", p, line)
		if err != nil {
			color = "red"
			text = fmt.Sprintf("%s: %q: %v", p, line, errnoText(err))
			if why := refusalReason(u.t, p, line, start); why != "" && !strings.HasPrefix(errnoText(err), why+" (") {
				text += ": " + why
			}
		}
		u.app.QueueUpdateDraw(func() {
			u.say(color, text)
			if u.confirm != nil { // a question asked meanwhile stays on screen
				u.msg.SetText(u.msg.GetText(false) + "  [yellow]" + tview.Escape(u.question) + "[-]")
			}
		})
		u.kick()
	}()
}
