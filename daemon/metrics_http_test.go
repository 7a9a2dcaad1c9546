package daemon

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"aiosfs/fs/p9fs"
)

// scrape GETs url as Prometheus does and parses the body with
// Prometheus's own text parser (classic metric names). It fails the test
// unless every family has a HELP and a TYPE line of its own.
func scrape(t *testing.T, url string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape %s: %s\n%s", url, resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("Prometheus's parser refuses the scrape: %v\n%s", err, body)
	}
	if len(mfs) == 0 {
		t.Fatalf("empty scrape:\n%s", body)
	}
	for name, mf := range mfs {
		if !regexp.MustCompile(`(?m)^# HELP `+regexp.QuoteMeta(name)+` \S`).Match(body) || mf.GetHelp() == "" {
			t.Errorf("family %s has no HELP", name)
		}
		if !regexp.MustCompile(`(?m)^# TYPE ` + regexp.QuoteMeta(name) + ` (counter|gauge|histogram|summary)$`).Match(body) {
			t.Errorf("family %s has no TYPE (parsed as %v)", name, mf.GetType())
		}
	}
	return mfs, string(body)
}

// failing is a collector that always fails, as a broken engine's would.
type failing struct{ d *prometheus.Desc }

func (f failing) Describe(ch chan<- *prometheus.Desc) { ch <- f.d }
func (f failing) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(f.d, errors.New("engine broke"))
}

// TestMetricsHandler (no root): the handler serves a registry's families
// with HELP and TYPE, a failing collector costs only its own series (the
// failure is logged), and / points at /metrics.
func TestMetricsHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "aiosfs_test_gauge", Help: "A gauge."})
	g.Set(3)
	reg.MustRegister(g, failing{prometheus.NewDesc("aiosfs_test_broken", "Broken.", nil, nil)})
	log := NewLog(10, nil)
	srv := httptest.NewServer(metricsHandler(reg, log))
	defer srv.Close()

	mfs, body := scrape(t, srv.URL+"/metrics")
	if mf := mfs["aiosfs_test_gauge"]; mf == nil || mf.GetMetric()[0].GetGauge().GetValue() != 3 {
		t.Errorf("gauge missing or wrong:\n%s", body)
	}
	if _, ok := mfs["aiosfs_test_broken"]; ok {
		t.Errorf("the failing collector's family was served:\n%s", body)
	}
	if !strings.Contains(string(log.Bytes()), "metrics http:") || !strings.Contains(string(log.Bytes()), "engine broke") {
		t.Errorf("the collector's failure is not in log:\n%s", log.Bytes())
	}
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "/metrics") {
		t.Errorf("/ says %q", b)
	}
	if resp, _ := http.Get(srv.URL + "/nothing"); resp == nil || resp.StatusCode != 404 {
		t.Errorf("/nothing: %v, want 404", resp)
	}
}

// TestMetricsHTTP (root): a real daemon with -metrics-listen on loopback
// and an agent. The scrape parses with Prometheus's parser, every family
// has HELP and TYPE, it holds the agent's series with their labels, and
// it has the same families, help texts and types as the `metrics` file.
// After Close nothing listens there.
func TestMetricsHTTP(t *testing.T) {
	if !canStartDaemon(t) {
		return
	}
	cfg := Config{StateDir: t.TempDir(), Interval: 50 * time.Millisecond, ProcRoot: "/proc",
		CgroupRoot: "/sys/fs/cgroup", Prefix: newPrefix(), Grace: time.Second, GPU: "none", MetricsListen: "127.0.0.1:0"}
	d, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closeD := func() {
		once.Do(func() {
			if err := d.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Cleanup(closeD)
	c, err := p9fs.Dial("unix!" + cfg.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := d.MetricsAddr()
	if addr == nil {
		t.Fatal("MetricsAddr is nil with MetricsListen set")
	}
	if err := c.WriteFile("/ctl", []byte("spawn promweb memmax=64M -- sleep 600\n")); err != nil {
		t.Fatal(err)
	}
	gpuWaitFor(t, "a sample of the agent", func() bool {
		b, err := c.ReadFile("/agents/1/stat")
		return err == nil && strings.Contains(string(b), "procs=1")
	})
	url := "http://" + addr.String() + "/metrics"
	mfs, body := scrape(t, url)
	for _, want := range []string{
		`aiosfs_agent_memory_max_bytes{agent="1",name="promweb"} 6.7108864e+07`,
		`aiosfs_agents{state="running"} 1`,
		`aiosfs_agent_processes{agent="1",name="promweb"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q:\n%s", want, body)
		}
	}

	file, err := c.ReadFile("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := func() (map[string]*dto.MetricFamily, error) {
		p := expfmt.NewTextParser(model.LegacyValidation)
		return p.TextToMetricFamilies(bytes.NewReader(file))
	}()
	if err != nil {
		t.Fatalf("the metrics file does not parse: %v", err)
	}
	if a, b := familyKeys(mfs), familyKeys(fromFile); a != b {
		t.Errorf("HTTP and the metrics file differ in families:\nhttp: %s\nfile: %s", a, b)
	}

	c.Close()
	closeD()
	if _, err := http.Get(url); err == nil {
		t.Error("the metrics endpoint still answers after Close")
	}
}

// familyKeys is each family's name, type and help, sorted: what must not
// differ between two scrapes a moment apart.
func familyKeys(mfs map[string]*dto.MetricFamily) string {
	var ks []string
	for name, mf := range mfs {
		ks = append(ks, name+" "+mf.GetType().String()+" "+mf.GetHelp())
	}
	sort.Strings(ks)
	return strings.Join(ks, "\n")
}

// TestMetricsListenBusy: an address that cannot be bound stops Start
// with a clear error and leaves nothing behind (the next start works).
func TestMetricsListenBusy(t *testing.T) {
	busy := httptest.NewServer(http.NotFoundHandler())
	defer busy.Close()
	addr := strings.TrimPrefix(busy.URL, "http://")
	if !canStartDaemon(t) {
		return
	}
	cfg := Config{StateDir: t.TempDir(), Interval: 50 * time.Millisecond, ProcRoot: "/proc",
		CgroupRoot: "/sys/fs/cgroup", Prefix: newPrefix(), Grace: time.Second, GPU: "none", MetricsListen: addr}
	d, err := Start(cfg)
	if err == nil {
		d.Close()
		t.Fatal("Start succeeded on a busy metrics address")
	}
	if !strings.Contains(err.Error(), "metrics on "+addr) {
		t.Errorf("error %q does not name the metrics address", err)
	}
	cfg.MetricsListen = "127.0.0.1:0"
	d, err = Start(cfg)
	if err != nil {
		t.Fatalf("start after the failed one: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

// canStartDaemon says whether a real daemon can run here (root: it makes
// cgroups), skipping the test otherwise.
func canStartDaemon(t *testing.T) bool {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the daemon makes cgroups")
		return false
	}
	return true
}
