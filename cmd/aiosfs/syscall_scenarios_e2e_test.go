package main

// The threat scenario suite's attacks against the system-call signal,
// live (issue 13): each agent first does an ordinary job of the suite
// (a benign scenario) long enough for its profile to be learned and
// calibrated, then three of them switch to one of the suite's attack
// programs while three others go on with the same ordinary jobs. The
// attack agents' syscall signal must rise, the ordinary ones' must not,
// before or after the switch.
//
// The programs are the suite's own (scripts/threat/record/scenarios.go),
// read from that file at test time (its Script fields, with the
// constants they name), not copied, so the test runs what the recorder
// runs. What this test makes up is the environment the scripts expect
// (W with data/ and docs/, SECRETS, PORT: a loopback sink), smaller than
// the recorder's so that a loop iteration is short next to the calls
// learned.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"
)

// suiteScripts reads the scenario suite's Script of every scenario, by
// name, from its Go source.
func suiteScripts(t *testing.T) map[string]string {
	t.Helper()
	src := filepath.Join("..", "..", "scripts", "threat", "record", "scenarios.go")
	f, err := parser.ParseFile(token.NewFileSet(), src, nil, 0)
	if err != nil {
		t.Fatalf("the threat scenario suite: %v", err)
	}
	consts := map[string]ast.Expr{}
	var list *ast.CompositeLit
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok {
			continue
		}
		for _, sp := range g.Specs {
			vs, ok := sp.(*ast.ValueSpec)
			if !ok {
				continue
			}
			for i, n := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				if g.Tok == token.CONST {
					consts[n.Name] = vs.Values[i]
				} else if n.Name == "scenarios" {
					list, _ = vs.Values[i].(*ast.CompositeLit)
				}
			}
		}
	}
	if list == nil {
		t.Fatalf("%s: no var scenarios = []Scenario{...}", src)
	}
	// str evaluates a string expression of literals, constants and +.
	var str func(e ast.Expr) (string, error)
	str = func(e ast.Expr) (string, error) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind == token.STRING {
				return strconv.Unquote(e.Value)
			}
		case *ast.Ident:
			if c, ok := consts[e.Name]; ok {
				return str(c)
			}
		case *ast.BinaryExpr:
			if e.Op == token.ADD {
				a, err := str(e.X)
				if err != nil {
					return "", err
				}
				b, err := str(e.Y)
				return a + b, err
			}
		case *ast.ParenExpr:
			return str(e.X)
		}
		return "", fmt.Errorf("not a string constant expression: %T", e)
	}
	out := map[string]string{}
	for _, el := range list.Elts {
		cl, ok := el.(*ast.CompositeLit)
		if !ok {
			continue
		}
		var name, script string
		for _, kv := range cl.Elts {
			kv, ok := kv.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			k, _ := kv.Key.(*ast.Ident)
			if k == nil || (k.Name != "Name" && k.Name != "Script") {
				continue
			}
			v, err := str(kv.Value)
			if err != nil {
				t.Fatalf("%s: %s: %v", src, k.Name, err)
			}
			if k.Name == "Name" {
				name = v
			} else {
				script = v
			}
		}
		if name != "" && script != "" {
			out[name] = script
		}
	}
	return out
}

// sink is a loopback listener that reads and discards (the suite's
// "sink" peer); it closes when the test ends.
func sink(t *testing.T) int {
	t.Helper()
	l := loopbackServer(t, func(c net.Conn) { io.Copy(io.Discard, c); c.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// scenarioWrapper runs the benign script $1 until the file $3 exists,
// then the attack script $2 in its place. The agents that stay ordinary
// wait for a file that never comes, so every agent's wrapper adds the
// same polling to its calls.
const scenarioWrapper = `#!/bin/bash
cd "$W"
bash "$1" & b=$!
while [ ! -e "$3" ]; do sleep 0.2; done
kill $b; wait $b
exec bash "$2"
`

func TestSyscallScenarioAttacks(t *testing.T) {
	scripts := suiteScripts(t)
	agents := []struct{ benign, attack string }{
		{"backup", "ransomware"},
		{"gzip", "exfil"},
		{"periodic", "credread"},
		{"backup", ""},
		{"gzip", ""},
		{"periodic", ""},
	}
	for _, a := range agents {
		for _, n := range []string{a.benign, a.attack} {
			if n != "" && scripts[n] == "" {
				t.Fatalf("the scenario suite has no %q scenario (names: %v)", n, keys(scripts))
			}
		}
	}
	d, top := adversaryDaemon(t, "syssc", "-syscall-learn", "3000")
	requireCapture(t, d)
	d.alertOnly()

	port := sink(t)
	secrets := filepath.Join(top, "secrets")
	os.Mkdir(secrets, 0o700)
	os.WriteFile(filepath.Join(secrets, "id_rsa"), []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n"), 0o600)
	os.WriteFile(filepath.Join(secrets, "agent-state.db"), make([]byte, 4096), 0o600)
	wrapper := filepath.Join(top, "wrapper.sh")
	os.WriteFile(wrapper, []byte(scenarioWrapper), 0o755)
	for name, s := range scripts {
		if err := os.WriteFile(filepath.Join(top, name+".sh"), []byte(s+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	trigger := filepath.Join(top, "go")
	for i, a := range agents {
		w := filepath.Join(top, "w"+strconv.Itoa(i+1))
		if err := fillWorkDir(w); err != nil {
			t.Fatal(err)
		}
		env := filepath.Join(top, fmt.Sprintf("agent%d.sh", i+1))
		attack, trig := "", filepath.Join(top, "never")
		if a.attack != "" {
			attack, trig = filepath.Join(top, a.attack+".sh"), trigger
		}
		script := fmt.Sprintf("#!/bin/bash\nexport W=%s SECRETS=%s PORT=%d APORT=0 HOME=%s LANG=C PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\nexec bash %s %s %q %s\n",
			w, secrets, port, w, wrapper, filepath.Join(top, a.benign+".sh"), attack, trig)
		os.WriteFile(env, []byte(script), 0o755)
		name := a.benign
		if a.attack != "" {
			name += "-" + a.attack
		}
		d.mustRun(`echo 'spawn ` + name + ` -- /bin/bash ` + env + `' > ctl`)
	}
	start := time.Now()
	for statusNum(d.syscallStatus(), "scoring") != len(agents) {
		if time.Since(start) > 40*time.Second {
			for i := range agents {
				v, _ := d.syscallScore(i + 1)
				t.Logf("agent %d: syscall score %.3f (-1: not scoring)\n%s", i+1, v, d.read(fmt.Sprintf("agents/%d/status", i+1)))
			}
			t.Fatalf("timed out (40 s) waiting for every profile to be learned and calibrated: %s", d.syscallStatus())
		}
		time.Sleep(200 * time.Millisecond)
	}
	learned := time.Since(start)

	type seen struct {
		max float64
		ev  string
	}
	before := make([]seen, len(agents))
	after := make([]seen, len(agents))
	watch := func(into []seen) {
		for i := range agents {
			if v, ev := d.syscallScore(i + 1); v > into[i].max {
				into[i] = seen{v, ev}
			}
		}
	}
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		watch(before)
	}
	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	risen := func() bool {
		for i, a := range agents {
			if a.attack != "" && after[i].max < 0.5 {
				return false
			}
		}
		return true
	}
	for end := time.Now().Add(12 * time.Second); time.Now().Before(end) && !risen(); time.Sleep(200 * time.Millisecond) {
		watch(after)
	}
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		watch(after) // the ordinary ones a little longer
	}
	t.Logf("learned and calibrated in %.1f s; %s", learned.Seconds(), d.syscallStatus())
	t.Logf("%-3s %-20s %14s %14s  evidence after", "id", "agent", "max before", "max after")
	for i, a := range agents {
		name := a.benign
		if a.attack != "" {
			name += " -> " + a.attack
		}
		t.Logf("%-3d %-20s %14.3f %14.3f  %s", i+1, name, before[i].max, after[i].max, after[i].ev)
		if before[i].max >= 0.5 {
			t.Errorf("agent %d (%s) scores %.3f while doing its ordinary job (%s)", i+1, a.benign, before[i].max, before[i].ev)
		}
		switch {
		case a.attack != "" && after[i].max < 0.5:
			t.Errorf("agent %d switched to %s but its syscall signal stayed at %.3f", i+1, a.attack, after[i].max)
		case a.attack == "" && after[i].max >= 0.5:
			t.Errorf("agent %d (%s, unchanged) scores %.3f (%s)", i+1, a.benign, after[i].max, after[i].ev)
		}
	}
	d.term()
}

// fillWorkDir makes w/data (f100..f119, 32 KiB each, half text, half
// noise: what the suite's gzip and exfil read) and w/docs (40 files of
// 8 KiB: what backup copies and ransomware rewrites): the recorder's
// layout, far smaller (it writes 160 files of 128 KiB and 400 docs), so
// that a loop iteration is short and CPU-light next to the calls learned
// on a loaded host.
func fillWorkDir(w string) error {
	for _, d := range []string{"data", "docs"} {
		if err := os.MkdirAll(filepath.Join(w, d), 0o755); err != nil {
			return err
		}
	}
	chunk := make([]byte, 32<<10)
	x := uint32(1)
	for i := 0; i < 20; i++ {
		for j := range chunk {
			if j < len(chunk)/2 {
				chunk[j] = "the quick brown fox jumps over the lazy dog\n"[j%44]
			} else {
				x = x*1664525 + 1013904223
				chunk[j] = byte(x >> 24)
			}
		}
		if err := os.WriteFile(filepath.Join(w, "data", fmt.Sprintf("f%03d", 100+i)), chunk, 0o644); err != nil {
			return err
		}
	}
	for i := 0; i < 40; i++ {
		if err := os.WriteFile(filepath.Join(w, "docs", fmt.Sprintf("doc%03d.txt", i)), chunk[:8<<10], 0o644); err != nil {
			return err
		}
	}
	return nil
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
