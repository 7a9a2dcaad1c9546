package ctl

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"aiosfs/fs"
)

func TestTokenize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{"kill", []string{"kill"}, false},
		{"  memhigh   2G \n", []string{"memhigh", "2G"}, false},
		{`spawn web cpus=0-1 -- /usr/bin/nginx -g "daemon off;"`, []string{"spawn", "web", "cpus=0-1", "--", "/usr/bin/nginx", "-g", "daemon off;"}, false},
		{`exec -- sh -c 'echo "hi there"'`, []string{"exec", "--", "sh", "-c", `echo "hi there"`}, false},
		{`a "b\"c" ''`, []string{"a", `b"c`, ""}, false},
		{"# a comment", nil, false},
		{"", nil, false},
		{`a "open`, nil, true},
		{"a 'open", nil, true},
		{"a\x00b", nil, true},
		{"a\tb\r\n", []string{"a", "b"}, false},
		{"name=caf\u00e9 \u2603", []string{"name=caf\u00e9", "\u2603"}, false},
		{"a \uFFFD", []string{"a", "\uFFFD"}, false}, // U+FFFD written out is valid UTF-8
		{"spawn \xc3\x28x -- /bin/sleep 100", nil, true},
		{"memmax \xff\xfe300M", nil, true},
		{"a\x1b[31mb", nil, true},
		{"a\rb", nil, true},
		{"a\x7fb", nil, true},
		{"a\u0085b", nil, true},
		{"# comment \xff", nil, true},
	} {
		got, err := Tokenize(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("Tokenize(%q) error %v, want error %v", tc.in, err, tc.bad)
			continue
		}
		if !tc.bad && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Tokenize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func testTable(log *[]string) Table {
	rec := func(name string) func(context.Context, fs.Caller, []string) error {
		return func(_ context.Context, _ fs.Caller, a []string) error {
			*log = append(*log, name+" "+strings.Join(a, ","))
			return nil
		}
	}
	return Table{
		{Name: "kill", Args: "[SIG]", Min: 0, Max: 1, Doc: "signal the agent", Run: rec("kill")},
		{Name: "memhigh", Args: "SIZE", Min: 1, Max: 1, Doc: "set memory.high", Run: rec("memhigh")},
		{Name: "split", Args: "PID ...", Min: 1, Max: -1, Doc: "split", Run: rec("split")},
		{Name: "release", Min: 0, Max: 0, Root: true, Doc: "lift quarantine", Run: rec("release")},
	}
}

func TestExec(t *testing.T) {
	var log []string
	tab := testTable(&log)
	ctx := context.Background()
	user := fs.Caller{Uid: 1000, Gid: 1000}
	for _, tc := range []struct {
		line  string
		who   fs.Caller
		errno syscall.Errno
		msg   string
	}{
		{"kill", user, 0, ""},
		{"kill TERM", user, 0, ""},
		{"kill TERM now", user, syscall.EINVAL, MsgBadArgs},
		{"memhigh", user, syscall.EINVAL, MsgBadArgs},
		{"bogus 1", user, syscall.EINVAL, MsgUnknown},
		{"", user, syscall.EINVAL, MsgEmpty},
		{"split 1 2 3", user, 0, ""},
		{"release", user, syscall.EPERM, MsgPerm},
		{"release", fs.RootCaller, 0, ""},
	} {
		err := tab.Exec(ctx, tc.who, tc.line)
		if got := fs.Errno(err); got != tc.errno {
			t.Errorf("Exec(%q) errno %v (%v), want %v", tc.line, got, err, tc.errno)
		}
		if tc.msg != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.msg)) {
			t.Errorf("Exec(%q) = %v, want message starting %q", tc.line, err, tc.msg)
		}
	}
	want := []string{"kill ", "kill TERM", "split 1,2,3", "release "}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("verbs run: %q, want %q (refused lines must change nothing)", log, want)
	}
}

// TestExecRefusesNonText: the review's `printf 'spawn \xc3\x28x -- ...'`
// created an agent whose name then broke metrics for everyone. Any line
// that is not valid UTF-8, or holds a control character other than tab,
// is refused with EINVAL before any verb runs, and the message says what
// and where.
func TestExecRefusesNonText(t *testing.T) {
	var log []string
	tab := testTable(&log)
	for line, want := range map[string]string{
		"split \xc3\x28 1": "not valid UTF-8: byte 0xc3 at offset 6",
		"kill \xffTERM":    "not valid UTF-8: byte 0xff at offset 5",
		"kill TERM\x07":    "control character U+0007",
		"split 1\x00 2":    "NUL byte",
		"split 1 \u009b2":  "control character U+009B",
		"split 1\r2":       "control character U+000D",
	} {
		err := tab.Exec(context.Background(), fs.Caller{Uid: 1000}, line)
		if fs.Errno(err) != syscall.EINVAL || !strings.Contains(err.Error(), want) {
			t.Errorf("Exec(%q) = %v (errno %v), want EINVAL saying %q", line, err, fs.Errno(err), want)
		}
	}
	if len(log) != 0 {
		t.Fatalf("refused lines ran verbs: %q", log)
	}
	if err := tab.Exec(context.Background(), fs.Caller{Uid: 1000}, "split 1\t2\r\n"); err != nil || len(log) != 1 {
		t.Fatalf("a tab and a CRLF ending are text: %v, ran %q", err, log)
	}
}

func TestSignals(t *testing.T) {
	// Every form kill(1) and the review tried, for the same signal.
	for _, s := range []string{"9", "-9", "KILL", "-KILL", "kill", "SIGKILL", "-SIGKILL", "sigkill", "-sigKill"} {
		if sig, err := ParseSignal(s); err != nil || sig != syscall.SIGKILL {
			t.Errorf("ParseSignal(%q) = %v, %v; want SIGKILL", s, sig, err)
		}
	}
	for s, want := range map[string]syscall.Signal{"TERM": syscall.SIGTERM, "-HUP": syscall.SIGHUP, "usr1": syscall.SIGUSR1,
		"CHLD": syscall.SIGCHLD, "-15": syscall.SIGTERM, "64": 64, "-34": 34, "WINCH": syscall.SIGWINCH, "SYS": syscall.SIGSYS} {
		if sig, err := ParseSignal(s); err != nil || sig != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", s, sig, err, want)
		}
	}
	for _, s := range []string{"", "-", "0", "-0", "65", "99", "--9", "+9", "9x", "SIG", "KIL", "SIGKILLX", "1e1", " 9"} {
		if sig, err := ParseSignal(s); err == nil {
			t.Errorf("ParseSignal(%q) = %v, want an error", s, sig)
		} else if fs.Errno(err) != syscall.EINVAL || !strings.Contains(err.Error(), "1..64") {
			t.Errorf("ParseSignal(%q): %v (errno %v), want EINVAL naming the range", s, err, fs.Errno(err))
		}
	}
	// One table both ways: every signal's name reads back as itself.
	for n := 1; n <= MaxSignal; n++ {
		sig := syscall.Signal(n)
		name := SignalName(sig)
		if back, err := ParseSignal(name); err != nil || back != sig {
			t.Errorf("SignalName(%d) = %q reads back as %v, %v", n, name, back, err)
		}
		if back, err := ParseSignal("-" + name); err != nil || back != sig {
			t.Errorf("-%s reads back as %v, %v", name, back, err)
		}
	}
	for sig, want := range map[syscall.Signal]string{syscall.SIGKILL: "KILL", syscall.SIGTERM: "TERM", syscall.SIGSEGV: "SEGV", 40: "40"} {
		if got := SignalName(sig); got != want {
			t.Errorf("SignalName(%d) = %q, want %q", sig, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"spawn job env=DB_PASSWORD=hunter2 -- /usr/bin/typo":   "spawn job env=DB_PASSWORD=… -- /usr/bin/typo",
		`spawn job "env=A=two words" env='B=x y' -- /bin/true`: "spawn job env=A=… env=B=… -- /bin/true",
		"spawn job env=hunter2 -- x":                           "spawn job env=… -- x",
		"spawn job -- /usr/bin/env API_TOKEN=abc FOO=bar prog": "spawn job -- /usr/bin/env API_TOKEN=… FOO=bar prog",
		"exec -- env FOO=bar prog":                             "exec -- env FOO=… prog",
		"exec -- mysql -u root --password hunter2 --db=x":      "exec -- mysql -u root --password … --db=x",
		"exec -- app --api-key=s3cr3t":                         "exec -- app --api-key=…",
		`bad env "hunter2" (want NAME=VALUE)`:                  "bad env … (want NAME=VALUE)",
		"bad # args to command: spawn j env=PGPASSWORD=pw":     "bad # args to command: spawn j env=PGPASSWORD=…",
		"spawn job env=DB_PASSWORD=hunt":                       "spawn job env=DB_PASSWORD=…", // cut short
		`spawn job "env=DB_PASSWORD=hunter2 -- /bin/true`:      "spawn job env=DB_PASSWORD=…", // unbalanced quote runs to the end
		"memmax 300M": "memmax 300M",
		"  kill\t-9 ": "  kill\t-9 ",
		"":            "",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}

// FuzzRedact: never panics, and a value given with env= never survives.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"spawn a env=X=secretvalue -- b", `"env=X=secretvalue`, "env env=X=secretvalue"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got := Redact(line + " env=X=secretvalue")
		if strings.Contains(got, "secretvalue") && !strings.Contains(line, "secretvalue") {
			t.Fatalf("Redact(%q) = %q keeps the env value", line+" env=X=secretvalue", got)
		}
	})
}

func TestHelpListsEveryVerb(t *testing.T) {
	var log []string
	tab := testTable(&log)
	help := string(tab.Help())
	lines := strings.Split(strings.TrimSpace(help), "\n")
	if len(lines) != len(tab) {
		t.Fatalf("help has %d lines for %d verbs:\n%s", len(lines), len(tab), help)
	}
	for i, v := range tab {
		if !strings.HasPrefix(lines[i], v.Name) || !strings.Contains(lines[i], v.Doc) {
			t.Errorf("help line %q does not show verb %q and its doc", lines[i], v.Name)
		}
	}
	if !strings.Contains(lines[3], "(root)") {
		t.Errorf("root-only verb not marked: %q", lines[3])
	}
}

func TestKeyValues(t *testing.T) {
	kv, rest, err := KeyValues([]string{"cpus=0-1", "env=A=1", "env=B=2", "--", "sh", "-c", "x=1"}, "cpus", "env*")
	if err != nil {
		t.Fatal(err)
	}
	want := []KV{{"cpus", "0-1"}, {"env", "A=1"}, {"env", "B=2"}}
	if !reflect.DeepEqual(kv, want) || !reflect.DeepEqual(rest, []string{"sh", "-c", "x=1"}) {
		t.Fatalf("got %v %q", kv, rest)
	}
	if _, _, err := KeyValues([]string{"cpus=1", "cpus=2"}, "cpus"); err == nil {
		t.Fatal("repeated key accepted")
	}
	if _, _, err := KeyValues([]string{"color=red"}, "cpus"); err == nil {
		t.Fatal("unknown key accepted")
	}
	_, rest, _ = KeyValues([]string{"cpus=1", "/bin/true"}, "cpus")
	if !reflect.DeepEqual(rest, []string{"/bin/true"}) {
		t.Fatalf("rest without -- = %q", rest)
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{"0": 0, "4096": 4096, "1K": 1024, "2G": 2 << 30, "1.5G": 3 << 29, "512MiB": 512 << 20,
		"64mb": 64 << 20, "100B": 100, "max": Unlimited, "1T": 1 << 40}
	for s, want := range good {
		got, err := ParseSize(s)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "-1", "1.5", "G", "2X", "1e9", "0x10", "1 G", "99999999999T", "NaN", "inf"} {
		if v, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) = %d, want error", s, v)
		} else if fs.Errno(err) != syscall.EINVAL {
			t.Errorf("ParseSize(%q) errno %v, want EINVAL", s, fs.Errno(err))
		}
	}
	for _, n := range []int64{0, 1, 1023, 1024, 1536 << 20, 2 << 30, 5 << 40, Unlimited} {
		back, err := ParseSize(FormatSize(n))
		if err != nil || back != n {
			t.Errorf("FormatSize(%d) = %q reads back as %d, %v", n, FormatSize(n), back, err)
		}
	}
}

func TestCPUList(t *testing.T) {
	got, err := ParseCPUList("3,0-1,1", 4)
	if err != nil || !reflect.DeepEqual(got, []int{0, 1, 3}) {
		t.Fatalf("ParseCPUList = %v, %v", got, err)
	}
	if s := FormatCPUList([]int{0, 1, 2, 5, 7, 8}); s != "0-2,5,7-8" {
		t.Fatalf("FormatCPUList = %q", s)
	}
	for _, s := range []string{"", "a", "3-1", "0-4", "-1", "1,,2"} {
		if _, err := ParseCPUList(s, 4); err == nil {
			t.Errorf("ParseCPUList(%q) accepted", s)
		}
	}
}

func TestCoresDurationsSignals(t *testing.T) {
	if c, err := ParseCores("150%"); err != nil || c != 1.5 {
		t.Errorf("ParseCores(150%%) = %v, %v", c, err)
	}
	if c, err := ParseCores("max"); err != nil || c != 0 {
		t.Errorf("ParseCores(max) = %v, %v", c, err)
	}
	for _, s := range []string{"-1", "0.001", "x", "NaN"} {
		if _, err := ParseCores(s); err == nil {
			t.Errorf("ParseCores(%q) accepted", s)
		}
	}
	if d, err := ParseDuration("1.5"); err != nil || d.Seconds() != 1.5 {
		t.Errorf("ParseDuration(1.5) = %v, %v", d, err)
	}
	for _, s := range []string{"0", "-1s", "soon"} {
		if _, err := ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q) accepted", s)
		}
	}
	if s, err := ParseSignal("sigterm"); err != nil || s != syscall.SIGTERM {
		t.Errorf("ParseSignal(sigterm) = %v, %v", s, err)
	}
	if _, err := ParseSignal("99"); err == nil {
		t.Error("ParseSignal(99) accepted")
	}
	if f, err := ParseFraction("25%"); err != nil || f != 0.25 {
		t.Errorf("ParseFraction(25%%) = %v, %v", f, err)
	}
	if _, err := ParseFraction("1.5"); err == nil {
		t.Error("ParseFraction(1.5) accepted")
	}
}

// FuzzExec feeds arbitrary lines through a table: it must never panic, a
// refused line must run no verb, and every refusal must be an *fs.Error
// with a client-visible errno.
func FuzzExec(f *testing.F) {
	for _, s := range []string{"kill", "kill TERM", `memhigh "2 G"`, "split 1 2", "release", "", "'", "bogus"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var log []string
		tab := testTable(&log)
		err := tab.Exec(context.Background(), fs.Caller{Uid: 1}, line)
		if err != nil {
			var fe *fs.Error
			if !errors.As(err, &fe) || fe.Errno == 0 {
				t.Fatalf("Exec(%q) error %v is not an *fs.Error with errno", line, err)
			}
			if len(log) != 0 {
				t.Fatalf("Exec(%q) refused but ran %q", line, log)
			}
		}
	})
}

// FuzzParseSize: never panics; what it accepts formats and parses back.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1G", "1.5M", "max", "4096", "12KiB", "-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			return
		}
		back, err := ParseSize(FormatSize(v))
		if err != nil || back != v {
			t.Fatalf("ParseSize(%q) = %d, but FormatSize gives %q which reads %d, %v", s, v, FormatSize(v), back, err)
		}
	})
}

// FuzzCPUList: never panics; accepted lists format and parse back.
func FuzzCPUList(f *testing.F) {
	for _, s := range []string{"0-3", "1,2", "0-1,3-5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cpus, err := ParseCPUList(s, 64)
		if err != nil {
			return
		}
		back, err := ParseCPUList(FormatCPUList(cpus), 64)
		if err != nil || !reflect.DeepEqual(back, cpus) {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, cpus, FormatCPUList(cpus), back, err)
		}
	})
}
