package deploycheck

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/testenv"
)

type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func loadDashboards(t testing.TB) map[string]dashboard {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root(t), "deploy/grafana/dashboards/*.json"))
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = d
	}
	return out
}

// TestDashboardsProvisioned: the dashboards parse, have unique uids, and
// query the provisioned Prometheus data source by its uid.
func TestDashboardsProvisioned(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "deploy/grafana/provisioning/datasources/strata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Datasources []struct{ UID, Type, URL string } `json:"datasources"`
	}
	if err := yaml.Unmarshal(b, &ds); err != nil {
		t.Fatal(err)
	}
	uids := map[string]string{}
	for _, d := range ds.Datasources {
		uids[d.UID] = d.Type
	}
	if uids["prometheus"] != "prometheus" || uids["jaeger"] != "jaeger" {
		t.Fatalf("want provisioned data sources prometheus and jaeger, got %v", uids)
	}
	seen := map[string]bool{}
	dashboards := loadDashboards(t)
	for _, want := range []string{"strata-red.json", "strata-resilience.json", "strata-data.json"} {
		if _, ok := dashboards[want]; !ok {
			t.Errorf("missing dashboard %s", want)
		}
	}
	for f, d := range dashboards {
		if d.UID == "" || seen[d.UID] {
			t.Errorf("%s: uid %q empty or duplicate", f, d.UID)
		}
		seen[d.UID] = true
		for _, p := range d.Panels {
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || uids[p.Datasource.UID] != p.Datasource.Type || len(p.Targets) == 0 {
				t.Errorf("%s: panel %q must query a provisioned data source", f, p.Title)
			}
		}
	}
}

var (
	braces     = regexp.MustCompile(`\{[^{}]*\}`)
	brackets   = regexp.MustCompile(`\[[^\[\]]*\]`)
	grouping   = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	strLit     = regexp.MustCompile(`"[^"]*"`)
	identifier = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*\s*\(?`)
	promqlWord = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true}
)

// metricNames extracts the metric names a PromQL expression selects: label
// matchers, ranges, grouping clauses and strings are removed, then every
// identifier not followed by "(" (a function or aggregation) is a metric.
func metricNames(expr string) []string {
	s := strLit.ReplaceAllString(expr, `""`)
	for prev := ""; prev != s; {
		prev = s
		s = braces.ReplaceAllString(s, " ")
	}
	s = brackets.ReplaceAllString(s, " ")
	s = grouping.ReplaceAllString(s, " ")
	var out []string
	for _, m := range identifier.FindAllString(s, -1) {
		if strings.HasSuffix(m, "(") {
			continue
		}
		m = strings.TrimSpace(m)
		if promqlWord[strings.ToLower(m)] {
			continue
		}
		out = append(out, m)
	}
	return out
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`histogram_quantile(0.99, sum by (service, le) (rate(http_server_request_duration_seconds_bucket{service=~"$service", code=~"5.."}[$__rate_interval]))) / on(service) max(strata_limiter_limit) and up == 0`)
	want := []string{"http_server_request_duration_seconds_bucket", "strata_limiter_limit", "up"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("metricNames = %v, want %v", got, want)
	}
}

// dashboardMetrics maps every metric family a dashboard queries to the
// panels that query it. Histogram series (_bucket, _sum, _count) map to
// their family; series Prometheus makes itself (up) are left out.
func dashboardMetrics(t testing.TB) map[string][]string {
	out := map[string][]string{}
	for f, d := range loadDashboards(t) {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				for _, m := range metricNames(tg.Expr) {
					if m == "up" || strings.HasPrefix(m, "scrape_") {
						continue
					}
					out[m] = append(out[m], f+": "+p.Title)
				}
			}
		}
	}
	return out
}

var typeLine = regexp.MustCompile(`(?m)^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$`)

// families parses the Prometheus text format's TYPE lines into the names
// of every series the exposition can contain.
func families(text string) map[string]bool {
	out := map[string]bool{}
	for _, m := range typeLine.FindAllStringSubmatch(text, -1) {
		out[m[1]] = true
		if m[2] == "histogram" || m[2] == "summary" {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				out[m[1]+suf] = true
			}
		}
	}
	return out
}

// TestDashboardMetricsExist starts every service natively against the
// stack, exercises it a little (public and internal routes, a token whose
// key must be fetched from auth), scrapes its internal /metrics over mTLS
// as the prometheus workload, and checks that every metric a dashboard
// queries is exposed by some service.
//
// client_golang prints a labelled vector only once it has a child, and
// some children appear only under conditions a short test does not create
// (a 429, a cache hit on a live session, an outbox delivery). Such a
// metric passes when it is not in any scrape but is declared in a
// service's or library's Go source; the test logs each one by name so the
// gap stays visible. A name in neither fails.
func TestDashboardMetricsExist(t *testing.T) {
	want := dashboardMetrics(t)
	if len(want) == 0 {
		t.Fatal("no metrics found in the dashboards")
	}
	scraped := map[string]bool{}
	var mu sync.Mutex
	for svc, text := range scrapeServices(t) {
		fams := families(text)
		if len(fams) == 0 {
			t.Errorf("%s: /metrics has no TYPE lines", svc)
		}
		mu.Lock()
		for f := range fams {
			scraped[f] = true
		}
		mu.Unlock()
	}
	source := goSources(t)
	var declaredOnly []string
	for _, m := range keys(want) {
		if scraped[m] {
			continue
		}
		family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
		if strings.Contains(source, `"`+family+`"`) {
			declaredOnly = append(declaredOnly, m)
			continue
		}
		t.Errorf("%s (queried by %v) is neither exposed by a running service nor declared in libs/ or services/", m, want[m])
	}
	sort.Strings(declaredOnly)
	t.Logf("%d dashboard metrics, %d seen on /metrics; declared in code but not observed in this run: %v",
		len(want), len(want)-len(declaredOnly), declaredOnly)
}

// goSources is the text of every non-test Go file in libs/ and services/.
func goSources(t testing.TB) string {
	var b strings.Builder
	for _, dir := range []string{"libs", "services"} {
		_ = filepath.WalkDir(filepath.Join(root(t), dir), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				if data, err := os.ReadFile(p); err == nil {
					b.Write(data)
				}
			}
			return nil
		})
	}
	return b.String()
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrapeServices boots the four services (each in a subtest, so one that
// does not boot fails alone) and returns each booted service's /metrics.
func scrapeServices(t *testing.T) map[string]string {
	st := testenv.StartStack(t, "postgres", "redis", "cassandra")
	addr := map[string][2]string{}
	for _, svc := range Services {
		addr[svc.Name] = [2]string{freePort(t), freePort(t)}
	}
	internal := func(name string) string { return "https://" + addr[name][1] }
	pg := func(role string) string {
		return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=verify-full", role, st.PGPort, role)
	}
	issuer := "https://" + addr["auth"][0]
	jwks := internal("auth") + "/.well-known/jwks.json"
	extra := map[string]map[string]string{
		"auth": {"STRATA_PG_URL": pg("auth"), "STRATA_AUTH_ISSUER": issuer, "STRATA_SESSION_URL": internal("session"),
			"STRATA_AUTH_KEK_FILE": filepath.Join(st.Dir, "auth", "kek")},
		"session": {"STRATA_PG_URL": pg("session"), "STRATA_REDIS_ADDR": fmt.Sprintf("127.0.0.1:%d", st.RedisPort),
			"STRATA_AUTH_ISSUER": issuer, "STRATA_AUTH_JWKS_URL": jwks},
		"analytics": {"STRATA_CASSANDRA_HOSTS": "127.0.0.1", "STRATA_CASSANDRA_PORT": fmt.Sprint(st.CassandraPort),
			"STRATA_AUTH_ISSUER": issuer, "STRATA_AUTH_JWKS_URL": jwks},
		"ledger": {"STRATA_PG_URL": pg("ledger"), "STRATA_AUTH_ISSUER": issuer, "STRATA_AUTH_JWKS_URL": jwks,
			"STRATA_SESSION_URL": internal("session"), "STRATA_ANALYTICS_URL": internal("analytics"),
			"STRATA_KMS_KEYSET": filepath.Join(st.Dir, "kms", "ledger-keyset.json")},
	}
	public := st.PublicClient(t)
	// A well-formed token whose key id no one has: the service must fetch
	// auth's JWKS (a dependency call, with its metrics) before refusing it.
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","typ":"at+jwt","kid":"deploycheck-unknown"}`))
	body := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"x","aud":"x"}`))
	token := hdr + "." + body + "." + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{1}, 64))
	out := map[string]string{}
	// session first: auth keeps its SSO sessions there (services.sh order).
	// Each service runs for its own subtest only, so one that does not boot
	// fails alone; the others' calls to it then fail, which the dependency
	// metrics record too.
	for _, name := range []string{"session", "auth", "analytics", "ledger"} {
		t.Run(name, func(t *testing.T) {
			env := st.Env(name)
			env["STRATA_PUBLIC_ADDR"], env["STRATA_INTERNAL_ADDR"] = addr[name][0], addr[name][1]
			for k, v := range extra[name] {
				env[k] = v
			}
			p := testenv.StartProcess(t, st, name, env)
			for _, path := range []string{"/healthz", "/readyz", "/v1/nothing-here"} {
				get(public, "https://"+p.Public+path, "")
			}
			for _, path := range []string{"/v1/sessions", "/v1/accounts", "/v1/stats/transfers", "/userinfo"} {
				get(public, "https://"+p.Public+path, token)
			}
			scraper := st.InternalClient(t, "prometheus", mtls.ID(name))
			get(scraper, "https://"+p.Internal+"/readyz", "")
			text, code := get(scraper, "https://"+p.Internal+"/metrics", "")
			if code != http.StatusOK {
				t.Errorf("%s: /metrics as prometheus answered %d", name, code)
			} else {
				out[name] = text
			}
			// The container healthcheck is the binary itself: `<service>
			// healthcheck` with the container's environment exits 0 while the
			// service is ready. Bounded, in case a binary ignores the argument
			// and starts serving instead.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			hc := exec.CommandContext(ctx, serviceBinary(t, name), "healthcheck")
			for k, v := range env {
				hc.Env = append(hc.Env, k+"="+v)
			}
			if b, err := hc.CombinedOutput(); err != nil {
				t.Errorf("`%s healthcheck` against the running service: %v\n%s", name, err, lastLines(string(b), 3))
			}
		})
	}
	return out
}

func get(c *http.Client, url, token string) (string, int) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", 0
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
