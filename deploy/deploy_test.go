// Package deploy holds the systemd unit, the service's settings file and
// the Grafana dashboard; its tests install them into a temporary root the
// way `sudo make install` does into /.
package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// repo is the repository root (the Makefile's directory).
const repo = ".."

func makeIn(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	cmd := exec.Command("make", append([]string{"-C", repo, "--no-print-directory"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %q: %v\n%s", args, err, out)
	}
	return string(out)
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestInstall: `make install DESTDIR=tmp` puts the binary, the unit, the
// settings file and the docs in place with the paths filled in;
// systemd-analyze verify finds nothing wrong with the unit; a re-install
// keeps an edited settings file; `make uninstall` removes what install
// put there and keeps the edited settings. Then the same with PREFIX.
func TestInstall(t *testing.T) {
	root := t.TempDir()
	makeIn(t, "install", "DESTDIR="+root)

	bin := filepath.Join(root, "usr/local/bin/aiosfs")
	unitPath := filepath.Join(root, "usr/local/lib/systemd/system/aiosfs.service")
	defaults := filepath.Join(root, "etc/default/aiosfs")
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{bin, 0755}, {unitPath, 0644}, {defaults, 0644},
		{filepath.Join(root, "usr/local/share/doc/aiosfs/README.md"), 0644},
		{filepath.Join(root, "usr/local/share/doc/aiosfs/docs/architecture.md"), 0644},
		{filepath.Join(root, "usr/local/share/doc/aiosfs/docs/security.md"), 0644},
	} {
		st, err := os.Stat(f.path)
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if st.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, st.Mode().Perm(), f.mode)
		}
	}
	out, err := exec.Command(bin, "help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "aiosfs serve [flags]") {
		t.Fatalf("installed binary: %v\n%s", err, out)
	}
	serveFlags := flagsOf(string(out))

	unit := read(t, unitPath)
	if strings.Contains(unit, "@") {
		t.Errorf("placeholders left in the unit:\n%s", unit)
	}
	for _, want := range []string{
		"\nType=simple\n",
		"\nExecStart=/usr/local/bin/aiosfs serve $AIOSFS_OPTS\n",
		"\nEnvironmentFile=-/etc/default/aiosfs\n",
		"\nDelegate=yes\n",
		"\nKillMode=process\n",
		"\nRestart=on-failure\n",
		"\nStateDirectory=aiosfs\n",
		"\nWantedBy=multi-user.target\n",
		"Documentation=file:///usr/local/share/doc/aiosfs/README.md",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}

	// The settings file: the shipped one, naming every serve flag of the
	// installed binary (and no other), with AIOSFS_OPTS set.
	def := read(t, defaults)
	if def != read(t, filepath.Join(repo, "deploy/aiosfs.default")) {
		t.Error("installed settings differ from deploy/aiosfs.default")
	}
	if !regexp.MustCompile(`(?m)^AIOSFS_OPTS=""$`).MatchString(def) {
		t.Error("settings file does not set AIOSFS_OPTS")
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)(?:^#\s+|\s)-([a-z][a-z0-9-]+)\b`).FindAllStringSubmatch(def, -1) {
		documented[m[1]] = true
	}
	for f := range serveFlags {
		if !documented[f] {
			t.Errorf("deploy/aiosfs.default does not document -%s", f)
		}
	}
	for f := range documented {
		if !serveFlags[f] {
			t.Errorf("deploy/aiosfs.default documents -%s, which serve does not have", f)
		}
	}

	t.Run("systemd-analyze", func(t *testing.T) { verifyUnit(t, unit, bin) })

	// A re-install keeps an edited settings file; uninstall keeps it too
	// and removes everything else.
	edited := def + "AIOSFS_OPTS=\"-interval 2s\"\n"
	if err := os.WriteFile(defaults, []byte(edited), 0644); err != nil {
		t.Fatal(err)
	}
	makeIn(t, "install", "DESTDIR="+root)
	if read(t, defaults) != edited {
		t.Error("re-install overwrote the edited settings")
	}
	makeIn(t, "uninstall", "DESTDIR="+root)
	for _, p := range []string{bin, unitPath, filepath.Join(root, "usr/local/share/doc/aiosfs")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("uninstall left %s", p)
		}
	}
	if read(t, defaults) != edited {
		t.Error("uninstall removed the edited settings")
	}
	// Unedited, they go.
	os.WriteFile(defaults, []byte(def), 0644)
	makeIn(t, "install", "DESTDIR="+root)
	makeIn(t, "uninstall", "DESTDIR="+root)
	if _, err := os.Stat(defaults); err == nil {
		t.Error("uninstall left the unedited settings file")
	}

	// PREFIX moves the binary, the unit and the docs, and the unit says so.
	root2 := t.TempDir()
	makeIn(t, "install", "DESTDIR="+root2, "PREFIX=/opt/aiosfs")
	if _, err := os.Stat(filepath.Join(root2, "opt/aiosfs/bin/aiosfs")); err != nil {
		t.Errorf("PREFIX=/opt/aiosfs: %v", err)
	}
	u2 := read(t, filepath.Join(root2, "opt/aiosfs/lib/systemd/system/aiosfs.service"))
	if !strings.Contains(u2, "\nExecStart=/opt/aiosfs/bin/aiosfs serve $AIOSFS_OPTS\n") || !strings.Contains(u2, "file:///opt/aiosfs/share/doc/aiosfs/README.md") {
		t.Errorf("PREFIX=/opt/aiosfs unit:\n%s", u2)
	}
	if _, err := os.Stat(filepath.Join(root2, "etc/default/aiosfs")); err != nil {
		t.Errorf("PREFIX=/opt/aiosfs: settings not in /etc/default: %v", err)
	}
	makeIn(t, "uninstall", "DESTDIR="+root2, "PREFIX=/opt/aiosfs")
}

// flagsOf is the serve flags `aiosfs help` lists.
func flagsOf(help string) map[string]bool {
	_, after, _ := strings.Cut(help, "serve flags:")
	fl := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`).FindAllStringSubmatch(after, -1) {
		fl[m[1]] = true
	}
	return fl
}

// verifyUnit runs systemd-analyze verify on the installed unit. The
// binary is staged under DESTDIR, not at /usr/local/bin, so the copy
// verified names the staged one in ExecStart (verify checks that the
// command is executable). verify exits 0 on unknown keys and bad values,
// only printing them, so any output is a failure; a unit broken on
// purpose shows that the check can fail.
func verifyUnit(t *testing.T, unit, stagedBin string) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian's systemd package; scripts/install-deps.sh does not install systemd, the init system, only for this check)")
	}
	run := func(text string) (string, error) {
		dir := t.TempDir()
		p := filepath.Join(dir, "aiosfs.service")
		text = strings.Replace(text, "ExecStart=/usr/local/bin/aiosfs ", "ExecStart="+stagedBin+" ", 1)
		if err := os.WriteFile(p, []byte(text), 0644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sa, "verify", "--man=no", p).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := run(unit); err != nil || out != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	broken := strings.NewReplacer("KillMode=process", "KillMode=sometimes", "Delegate=yes", "Delegat=yes").Replace(unit)
	if out, _ := run(broken); !strings.Contains(out, "kill mode") || !strings.Contains(out, "Delegat") {
		t.Errorf("systemd-analyze verify did not catch a broken unit: %q", out)
	}
}

// TestMakeRun: `make run` keeps its defaults and takes MOUNT, STATE,
// CGROUP_PREFIX and ARGS (shown with make -n: nothing runs).
func TestMakeRun(t *testing.T) {
	out := makeIn(t, "-n", "run")
	if !strings.Contains(out, "./bin/aiosfs serve -mount '/aios' -state '/var/lib/aiosfs' -cgroup-prefix 'aiosfs'") {
		t.Errorf("make -n run:\n%s", out)
	}
	out = makeIn(t, "-n", "run", "MOUNT=/tmp/aios", "STATE=/tmp/aios-state", "CGROUP_PREFIX=try", "ARGS=-interval 2s -metrics-listen 127.0.0.1:9464")
	if !strings.Contains(out, "./bin/aiosfs serve -mount '/tmp/aios' -state '/tmp/aios-state' -cgroup-prefix 'try' -interval 2s -metrics-listen 127.0.0.1:9464") {
		t.Errorf("make -n run with variables:\n%s", out)
	}
}

// TestDashboard: the Grafana dashboard is JSON Grafana can import, and
// every metric its queries use is one the daemon exports (named in the
// collectors' source).
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/aiosfs.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string `json:"title"`
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) < 6 {
		t.Fatalf("dashboard: title %q uid %q, %d panels", dash.Title, dash.UID, len(dash.Panels))
	}
	exported := exportedMetrics(t)
	used := map[string]bool{}
	name := regexp.MustCompile(`\baiosfs_[a-z_]+`)
	check := func(where, expr string) {
		for _, m := range name.FindAllString(expr, -1) {
			used[m] = true
			if !exported[m] {
				t.Errorf("%s uses %s, which the daemon does not export", where, m)
			}
		}
	}
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			check("panel "+p.Title, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		q, _ := json.Marshal(v.Query)
		check("variable "+v.Name, string(q))
	}
	var names []string
	for m := range used {
		names = append(names, m)
	}
	sort.Strings(names)
	t.Logf("metrics on the dashboard: %s", strings.Join(names, " "))
	for _, must := range []string{"aiosfs_agent_cpu_cores", "aiosfs_agent_memory_bytes", "aiosfs_agent_memory_max_bytes", "aiosfs_agents", "aiosfs_daemon_rss_bytes"} {
		if !used[must] {
			t.Errorf("the dashboard does not show %s", must)
		}
	}
}

// exportedMetrics is every metric name the collectors declare, read from
// their source: "aiosfs_"+name in daemon/metrics.go, "aiosfs_mem_"+name in
// daemon/mod_mem.go, "aiosfs_gpu_"+name in engines/gpu/metrics.go.
func exportedMetrics(t *testing.T) map[string]bool {
	out := map[string]bool{}
	desc := regexp.MustCompile(`(?m)^\s+\w+:?\s*=?\s*(?:d|desc)\("([a-z_]+)",`)
	for file, prefix := range map[string]string{
		"daemon/metrics.go":      "aiosfs_",
		"engines/mem/metrics.go": "aiosfs_mem_",
		"engines/gpu/metrics.go": "aiosfs_gpu_",
	} {
		src := read(t, filepath.Join(repo, file))
		for _, m := range desc.FindAllStringSubmatch(src, -1) {
			out[prefix+m[1]] = true
		}
	}
	if !out["aiosfs_agent_cpu_cores"] || !out["aiosfs_mem_region_bytes"] || !out["aiosfs_gpu_devices"] {
		t.Fatalf("could not read the metric names from the collectors: %v", out)
	}
	return out
}
