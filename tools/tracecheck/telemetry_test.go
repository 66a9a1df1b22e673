package tracecheck_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/strata-ref/strata/libs/oidclogin"
	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/tools/tracecheck"
)

// TestTelemetry boots the whole system once, exporting spans to an
// in-process OTLP receiver, and walks one user story: sign-in (password),
// refresh, accounts, an admin deposit, ONE transfer with a memo, and the
// outbox relay's delivery to analytics (token exchange included). Then it
// stops every service (SIGTERM: spans flush, logs end) and checks the
// trace and the logs.
func TestTelemetry(t *testing.T) {
	// Every trace recorded, whatever the services' default sampler
	// (observe.DefaultSampleRatio): this test follows one request.
	sys, rcv := startSystem(t, false, 2, map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_on"})
	a := newAPI(t, sys)

	alice := a.login(t, user(1))
	bob := a.login(t, user(2))
	admin := a.login(t, "admin")
	// Refresh rotates alice's pair; the new access token is the one used.
	refreshed, err := a.oidc.Refresh(context.Background(), alice.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	from := a.openFunded(t, refreshed.AccessToken, admin.AccessToken, 10_000)
	to := a.openFunded(t, bob.AccessToken, admin.AccessToken, 0)

	const memo = "tracecheck memo: the flat on rue Secrète, deposit 4711"
	var tr transfer
	a.must(t, http.StatusCreated, refreshed.AccessToken, http.MethodPost, a.ledger("/v1/transfers"),
		map[string]any{"from_account_id": from.ID, "to_account_id": to.ID, "amount": 1234, "currency": "EUR", "memo": memo}, &tr)
	a.must(t, http.StatusOK, refreshed.AccessToken, http.MethodGet, a.ledger("/v1/transfers/"+tr.ID), nil, nil)
	waitForActivity(t, a, refreshed.AccessToken, from.ID, tr.ID)
	bogus := errorPaths(t, a, refreshed, alice.RefreshToken)
	stopAll(sys)

	t.Run("OneTraceAcrossEveryHop", func(t *testing.T) { checkTrace(t, rcv.Spans()) })
	t.Run("PictureOfTheTrace", func(t *testing.T) { pictureOfTrace(t, sys.Stack.Root, rcv.Spans()) })
	t.Run("NoSecretsInLogs", func(t *testing.T) {
		secrets := append([]string{demoPassword, memo}, bogus...)
		for _, tok := range []oidclogin.Tokens{alice, bob, admin, refreshed} {
			for _, s := range []string{tok.AccessToken, tok.RefreshToken, tok.IDToken} {
				if s != "" {
					secrets = append(secrets, s, "Bearer "+s)
				}
			}
		}
		for name, p := range map[string]*testenv.Process{"auth": sys.Auth, "ledger": sys.Ledger, "analytics": sys.Analytics, "session": sys.Session} {
			checkLogs(t, name, p.Logs(), secrets)
		}
	})
}

// errorPaths drives the failures whose handling tends to log what it was
// given: a wrong password, an unknown code and refresh token at the token
// endpoint, a reused (rotated) refresh token, a tampered bearer token, an
// authorization request that fails with an error redirect (prompt=none
// without a session) and one that may not redirect (unknown redirect URI).
// It returns the made-up secrets it sent, for the log scan.
func errorPaths(t *testing.T, a *api, tok oidclogin.Tokens, spentRefresh string) []string {
	t.Helper()
	ctx := context.Background()
	const (
		wrongPassword = "tracecheck-wrong-password-5b1e"
		bogusCode     = "tracecheck-bogus-code-7f3a9c"
		bogusRefresh  = "tracecheck-bogus-refresh-c41d"
		bogusState    = "tracecheck-state-9e2b"
		bogusVerifier = "tracecheck-verifier-0123456789abcdef0123456789abcdef01234"
	)
	if _, err := a.oidc.Login(ctx, user(1), wrongPassword); err == nil {
		t.Error("sign-in with a wrong password succeeded")
	}
	form := func(v url.Values) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.sys.Issuer+"/oauth2/token", strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := a.http.Do(req)
		if err != nil {
			t.Fatalf("token endpoint: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("token endpoint accepted %v", v.Get("grant_type"))
		}
	}
	form(url.Values{"grant_type": {"authorization_code"}, "code": {bogusCode}, "client_id": {"strata-cli"},
		"redirect_uri": {"http://127.0.0.1:8765/callback"}, "code_verifier": {bogusVerifier}})
	form(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {bogusRefresh}, "client_id": {"strata-cli"}})
	// Last, as reuse detection revokes the whole family (and its session).
	defer form(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {spentRefresh}, "client_id": {"strata-cli"}})

	tampered := tok.AccessToken[:len(tok.AccessToken)-4] + "AAAA"
	if status, _, err := a.call(ctx, tampered, http.MethodGet, a.ledger("/v1/accounts"), nil); err != nil || status != http.StatusUnauthorized {
		t.Errorf("tampered token: status %d, %v; want 401", status, err)
	}
	status, _, _ := a.call(ctx, tok.AccessToken, http.MethodGet, a.sys.Issuer+"/userinfo", nil)
	if status != http.StatusOK {
		t.Errorf("userinfo: status %d", status)
	}

	noRedirect := *a.http
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p := oidclogin.NewPKCE()
	for _, redirect := range []string{"http://127.0.0.1:8765/callback", "http://127.0.0.1:9/elsewhere"} {
		q := url.Values{"client_id": {"strata-cli"}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid"},
			"state": {bogusState}, "code_challenge": {p.Challenge}, "code_challenge_method": {"S256"}, "prompt": {"none"}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.sys.Issuer+"/oauth2/authorize?"+q.Encode(), nil)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatalf("authorize: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return []string{wrongPassword, bogusCode, bogusRefresh, bogusState, bogusVerifier, p.Challenge, tampered}
}

// waitForActivity polls analytics until the transfer shows in the
// account's activity: the relay has delivered it and Cassandra holds it.
func waitForActivity(t *testing.T, a *api, token, account, transferID string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var act struct {
			Events []struct {
				TransferID string `json:"transfer_id"`
			} `json:"events"`
		}
		status, body, err := a.call(context.Background(), token, http.MethodGet, a.analytics("/v1/accounts/"+account+"/activity"), nil)
		if err == nil && status == http.StatusOK && json.Unmarshal(body, &act) == nil {
			for _, e := range act.Events {
				if e.TransferID == transferID {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("transfer %s not in analytics after 20s (last: %d %s %v)", transferID, status, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkTrace asserts the trace of the one POST /v1/transfers: the
// ledger's server span, its Postgres query spans, the session check as a
// client span in the ledger with the session service's server span as its
// child (W3C traceparent over mTLS), and the relay's delivery span linked
// to that trace, with analytics' ingestion and Cassandra write in the
// delivery's trace.
func checkTrace(t *testing.T, spans []tracecheck.Span) {
	if len(spans) == 0 {
		t.Fatal("the receiver got no spans")
	}
	var posts []tracecheck.Span
	for _, s := range spans {
		if s.Service == "ledger" && s.Kind == tracepb.Span_SPAN_KIND_SERVER && s.Attrs["http.route"] == "/v1/transfers" &&
			s.Attrs["http.request.method"] == "POST" {
			posts = append(posts, s)
		}
	}
	if len(posts) != 1 {
		t.Fatalf("want one ledger server span for POST /v1/transfers, got %d (of %d spans)", len(posts), len(spans))
	}
	post := posts[0]
	trace := byTrace(spans, post.TraceID)
	t.Logf("transfer trace %s: %d spans", post.TraceID, len(trace))
	for _, s := range trace {
		t.Logf("  %-9s %-7s %s", s.Service, kind(s.Kind), s.Name)
	}

	if n := count(trace, func(s tracecheck.Span) bool {
		return s.Service == "ledger" && s.Attrs["db.system.name"] == "postgresql"
	}); n == 0 {
		t.Error("no Postgres (otelpgx) span in the transfer's trace")
	}
	// The session check: ledger client span -> session server span.
	var sessionServer *tracecheck.Span
	for i, s := range trace {
		if s.Service == "session" && s.Kind == tracepb.Span_SPAN_KIND_SERVER && strings.HasPrefix(s.Attrs["http.route"], "/internal/sessions/") {
			sessionServer = &trace[i]
		}
	}
	if sessionServer == nil {
		t.Fatal("no session server span (the ledger's liveness check) in the transfer's trace")
	}
	parent, ok := find(trace, sessionServer.ParentID)
	if !ok || parent.Service != "ledger" || parent.Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("the session server span's parent is %+v, want the ledger's client span", parent)
	}

	// The relay: a delivery span linked to the transfer's trace.
	var deliveries []tracecheck.Span
	for _, s := range spans {
		if s.Service == "ledger" && s.Name == "outbox.deliver" {
			for _, l := range s.Links {
				if l.TraceID == post.TraceID {
					deliveries = append(deliveries, s)
				}
			}
		}
	}
	if len(deliveries) == 0 {
		t.Fatalf("no outbox.deliver span links to the transfer's trace %s", post.TraceID)
	}
	found := false
	for _, d := range deliveries {
		if d.TraceID == post.TraceID {
			t.Errorf("the delivery span is in the transfer's trace; it should be a new root with a link")
		}
		rt := byTrace(spans, d.TraceID)
		ingest := first(rt, func(s tracecheck.Span) bool {
			return s.Service == "analytics" && s.Kind == tracepb.Span_SPAN_KIND_SERVER && s.Attrs["http.route"] == "/internal/events"
		})
		write := first(rt, func(s tracecheck.Span) bool { return s.Service == "analytics" && s.Name == "cassandra.append" })
		if ingest == nil || write == nil {
			continue
		}
		if p, ok := find(rt, ingest.ParentID); !ok || p.Service != "ledger" || p.Kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("analytics' ingestion span's parent is %+v, want the relay's client span", p)
		}
		t.Logf("delivery trace %s: %d spans", d.TraceID, len(rt))
		for _, s := range rt {
			t.Logf("  %-9s %-7s %s", s.Service, kind(s.Kind), s.Name)
		}
		found = true
	}
	if !found {
		t.Error("no delivery trace holds analytics' POST /internal/events server span and its cassandra.append span")
	}
}

func byTrace(spans []tracecheck.Span, id string) []tracecheck.Span {
	var out []tracecheck.Span
	for _, s := range spans {
		if s.TraceID == id {
			out = append(out, s)
		}
	}
	return out
}

func find(spans []tracecheck.Span, id string) (tracecheck.Span, bool) {
	for _, s := range spans {
		if s.SpanID == id {
			return s, true
		}
	}
	return tracecheck.Span{}, false
}

func first(spans []tracecheck.Span, f func(tracecheck.Span) bool) *tracecheck.Span {
	for i := range spans {
		if f(spans[i]) {
			return &spans[i]
		}
	}
	return nil
}

func count(spans []tracecheck.Span, f func(tracecheck.Span) bool) int {
	n := 0
	for _, s := range spans {
		if f(s) {
			n++
		}
	}
	return n
}

func kind(k tracepb.Span_SpanKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "SPAN_KIND_"))
}

var (
	jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}`)
	// Markers of what must never reach a log line: key material, client
	// assertions, and the query strings of the OAuth flow (codes, states,
	// PKCE challenges and verifiers travel there or in form bodies).
	forbidden = []string{"-----BEGIN", "PRIVATE KEY", "client_assertion", "code_verifier", "code_challenge",
		"code=", "state=", "refresh_token=", "access_token", "password="}
)

// checkLogs scans one service's log for the secrets the test handled, for
// anything that looks like a JWT, and for the forbidden markers; and
// checks that every line is JSON and no access log line has a query.
func checkLogs(t *testing.T, service, logs string, secrets []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	requests := 0
	for i, line := range lines {
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("%s log line %d holds a secret the test used (%.12s...): %.300s", service, i+1, s, line)
			}
		}
		if m := jwtLike.FindString(line); m != "" {
			t.Errorf("%s log line %d holds a JWT-looking string %.20s...: %.300s", service, i+1, m, line)
		}
		for _, f := range forbidden {
			if strings.Contains(line, f) {
				t.Errorf("%s log line %d holds %q: %.300s", service, i+1, f, line)
			}
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("%s log line %d is not JSON: %.300s", service, i+1, line)
			continue
		}
		if rec["msg"] == "request" {
			requests++
			if p, _ := rec["path"].(string); strings.ContainsAny(p, "?#") {
				t.Errorf("%s access log line %d has a query in its path: %.300s", service, i+1, line)
			}
			for k, v := range rec {
				if s, ok := v.(string); ok && strings.Contains(s, "?") && k != "msg" {
					t.Errorf("%s access log line %d field %s has a query string: %.300s", service, i+1, k, line)
				}
			}
		}
	}
	if requests == 0 {
		t.Errorf("%s logged no access log line; the scan proves nothing", service)
	}
	t.Logf("%s: %d log lines, %d access log lines scanned", service, len(lines), requests)
}

// pictureOfTrace draws the transfer's trace as a waterfall page and takes
// its screenshot in headless Chromium (out/trace/transfer.png, the picture
// docs/observability.md shows; make screenshots copies it to docs/img). The
// page must hold one bar per span and the screenshot must not be blank.
func pictureOfTrace(t *testing.T, root string, spans []tracecheck.Span) {
	var post *tracecheck.Span
	for i, s := range spans {
		if s.Service == "ledger" && s.Kind == tracepb.Span_SPAN_KIND_SERVER && s.Attrs["http.route"] == "/v1/transfers" {
			post = &spans[i]
		}
	}
	if post == nil {
		t.Fatal("no transfer span to draw")
	}
	trace := byTrace(spans, post.TraceID)
	dir := filepath.Join(root, "out", "trace")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(dir, "transfer.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	err = tracecheck.Waterfall(f, "POST /v1/transfers: one transfer across the ledger, the session service (Redis) and Postgres", trace)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	exe := testenv.Chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	profile := t.TempDir()
	dom, err := exec.CommandContext(ctx, exe, append(testenv.ChromiumFlags(filepath.Join(profile, "a")), "--dump-dom", "file://"+page)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	if n := strings.Count(string(dom), `class="bar"`); n != len(trace) {
		t.Errorf("the page draws %d bars for %d spans", n, len(trace))
	}
	if strings.Contains(string(dom), "ZgotmplZ") {
		t.Error("the template refused a value (ZgotmplZ in the page)")
	}
	shot := filepath.Join(dir, "transfer.png")
	args := append(testenv.ChromiumFlags(filepath.Join(profile, "b")), "--screenshot="+shot, "--window-size=1200,"+strconv.Itoa(120+22*len(trace)), "file://"+page)
	if out, err := exec.CommandContext(ctx, exe, args...).CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
		t.Fatalf("screenshot missing or blank: %v", err)
	}
	t.Logf("the transfer's trace, %d spans: %s", len(trace), shot)
}
