package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/strata-ref/strata/libs/mtls"
)

// TestIngestAndReadBack: a posted transfer delivered by the ledger shows in
// both accounts' activity as transfer.posted (debit and credit), a client
// event shows in its owner's activity, and the auditors' totals count it.
func TestIngestAndReadBack(t *testing.T) {
	h := start(t, nil)
	alice, bob := randID("alice"), randID("bob")
	accA, accB := randID("acc"), randID("acc")
	now := time.Now().UTC()
	mustStatus(t, h.postLedger(opened(accA, alice, now.Add(-time.Minute)), opened(accB, bob, now.Add(-time.Minute))), 202)

	xfer := randID("xfer")
	evID := uuid.NewString()
	mustStatus(t, h.postLedger(posted(evID, xfer, accA, accB, alice, bob, 1234, now)), 202)

	tokA, tokB := h.token(alice, []string{"customer"}, ""), h.token(bob, []string{"customer"}, "")
	for _, c := range []struct {
		tok, acc, dir, counterparty string
	}{{tokA, accA, "debit", accB}, {tokB, accB, "credit", accA}} {
		r, p := h.activity(c.tok, c.acc, "")
		mustStatus(t, r, 200)
		if len(p.Events) != 2 || p.NextPage != "" {
			t.Fatalf("%s: %d events, next %q: %s", c.acc, len(p.Events), p.NextPage, r.body)
		}
		e := p.Events[0] // newest first: the transfer, then the opening
		if e.Type != "transfer.posted" || e.EventID != evID || e.TransferID != xfer || e.AccountID != c.acc ||
			e.Amount != 1234 || e.Currency != "EUR" || e.Direction != c.dir || e.Counterparty != c.counterparty ||
			!e.OccurredAt.Equal(now.Truncate(time.Millisecond)) {
			t.Fatalf("%s: got %+v", c.acc, e)
		}
		if p.Events[1].Type != "account.opened" {
			t.Fatalf("%s: second event %+v", c.acc, p.Events[1])
		}
	}

	// A client event for her own account.
	clientEv := uuid.NewString()
	r := h.do(h.public, "POST", h.pub("/v1/events"), tokA, map[string]any{"events": []map[string]any{{
		"event_id": clientEv, "type": "statement.downloaded", "occurred_at": now.Add(time.Second).Format(time.RFC3339Nano),
		"account_id": accA, "attributes": map[string]string{"format": "pdf"}}}})
	mustStatus(t, r, 202)
	_, p := h.activity(tokA, accA, "")
	if len(p.Events) != 3 || p.Events[0].EventID != clientEv || p.Events[0].Type != "statement.downloaded" {
		t.Fatalf("after client event: %+v", p.Events)
	}

	// Auditors see the transfer in today's totals; customers may not look.
	day := now.Format(time.DateOnly)
	r = h.do(h.public, "GET", h.pub("/v1/stats/transfers?from="+day+"&to="+day), h.token(randID("dave"), []string{"auditor"}, ""), nil)
	mustStatus(t, r, 200)
	var st struct {
		Days []struct {
			Day    string
			Totals []struct {
				Currency      string
				Count, Amount int64
			}
		}
	}
	r.decode(t, &st)
	if len(st.Days) != 1 || st.Days[0].Day != day || len(st.Days[0].Totals) == 0 {
		t.Fatalf("stats: %s", r.body)
	}
	mustStatus(t, h.do(h.public, "GET", h.pub("/v1/stats/transfers"), tokA, nil), 403)
	mustStatus(t, h.do(h.public, "GET", h.pub("/v1/stats/transfers"), "", nil), 401)
}

// TestDuplicateStoredOnce: the relay delivers at least once; an event
// delivered twice (and twice inside one batch) is one row per account and
// one transfer in the auditors' totals.
func TestDuplicateStoredOnce(t *testing.T) {
	h := start(t, nil)
	alice, bob := randID("alice"), randID("bob")
	accA, accB := randID("acc"), randID("acc")
	at := time.Now().UTC().Add(-24 * time.Hour)
	day := at.Format(time.DateOnly)
	auditor := h.token("dave", []string{"auditor"}, "")
	before := h.totals(auditor, day, "EUR")
	ev := posted(uuid.NewString(), randID("xfer"), accA, accB, alice, bob, 500, at)
	mustStatus(t, h.postLedger(ev), 202)
	mustStatus(t, h.postLedger(ev, ev), 202)
	mustStatus(t, h.postLedger(ev), 202)

	for _, c := range []struct{ who, acc string }{{alice, accA}, {bob, accB}} {
		r, p := h.activity(h.token(c.who, nil, ""), c.acc, "")
		mustStatus(t, r, 200)
		if len(p.Events) != 1 {
			t.Fatalf("%s: %d rows for one event delivered four times: %s", c.acc, len(p.Events), r.body)
		}
	}
	after := h.totals(auditor, day, "EUR")
	if after.Count-before.Count != 1 || after.Amount-before.Amount != 500 {
		t.Fatalf("EUR totals for %s went from %+v to %+v; want one more transfer of 500", day, before, after)
	}
}

type totals struct {
	Currency      string
	Count, Amount int64
}

// totals reads one day's totals in one currency as an auditor.
func (h *harness) totals(token, day, currency string) totals {
	h.t.Helper()
	r := h.do(h.public, "GET", h.pub("/v1/stats/transfers?from="+day+"&to="+day), token, nil)
	mustStatus(h.t, r, 200)
	var st struct{ Totals []totals }
	r.decode(h.t, &st)
	for _, t := range st.Totals {
		if t.Currency == currency {
			return t
		}
	}
	return totals{Currency: currency}
}

// TestActivityPaging walks an account's activity across several pages and
// three day partitions: every event exactly once, newest first.
func TestActivityPaging(t *testing.T) {
	h := start(t, nil)
	alice, bob := randID("alice"), randID("bob")
	acc, other := randID("acc"), randID("acc")
	now := time.Now().UTC()
	var batch []map[string]any
	want := map[string]bool{}
	for d := range 3 {
		for i := range 9 {
			id := uuid.NewString()
			want[id] = true
			at := now.Add(-time.Duration(d)*24*time.Hour - time.Duration(i)*time.Minute)
			batch = append(batch, posted(id, randID("x"), acc, other, alice, bob, int64(100+i), at))
		}
	}
	mustStatus(t, h.postLedger(batch...), 202)

	tok := h.token(alice, nil, "")
	seen := map[string]bool{}
	var last time.Time
	pages, cursor := 0, ""
	for {
		q := "?limit=7"
		if cursor != "" {
			q += "&page=" + url.QueryEscape(cursor)
		}
		r, p := h.activity(tok, acc, q)
		mustStatus(t, r, 200)
		pages++
		if len(p.Events) > 7 {
			t.Fatalf("page %d has %d events", pages, len(p.Events))
		}
		for _, e := range p.Events {
			if seen[e.EventID] {
				t.Fatalf("event %s on two pages", e.EventID)
			}
			seen[e.EventID] = true
			if !last.IsZero() && e.OccurredAt.After(last) {
				t.Fatalf("not newest first: %s after %s", e.OccurredAt, last)
			}
			last = e.OccurredAt
		}
		if p.NextPage == "" {
			break
		}
		cursor = p.NextPage
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != len(want) || pages < 4 {
		t.Fatalf("saw %d of %d events in %d pages", len(seen), len(want), pages)
	}
	// A cursor is bound to its account and cannot be forged.
	r, _ := h.activity(h.token(bob, nil, ""), other, "?page="+url.QueryEscape(cursor))
	if cursor != "" && r.status != 400 {
		t.Fatalf("foreign cursor: %d", r.status)
	}
	r, _ = h.activity(tok, acc, "?page=not-a-cursor")
	mustStatus(t, r, 400)
	// Well-formed, right account, forged paging state: refused, not a 500.
	forged, _ := json.Marshal(map[string]any{"v": 1, "a": acc, "d": now.Format(time.DateOnly), "s": []byte("forged paging state")})
	r, _ = h.activity(tok, acc, "?page="+base64.RawURLEncoding.EncodeToString(forged))
	if r.status != 400 {
		t.Fatalf("forged paging state: %d %s\n%s", r.status, r.body, tail(h.svc.Logs(), 3))
	}
}

// TestOwnerOnly: activity is the owner's alone; anyone else, and any
// unknown account, gets the same 404. Clients cannot post into accounts
// that are not theirs.
func TestOwnerOnly(t *testing.T) {
	h := start(t, nil)
	alice, mallory := randID("alice"), randID("mallory")
	acc := randID("acc")
	mustStatus(t, h.postLedger(opened(acc, alice, time.Now())), 202)

	r, _ := h.activity(h.token(alice, []string{"customer"}, ""), acc, "")
	mustStatus(t, r, 200)
	for name, tok := range map[string]string{
		"another customer": h.token(mallory, []string{"customer"}, ""),
		"an admin":         h.token(randID("admin"), []string{"admin"}, ""),
	} {
		r, _ := h.activity(tok, acc, "")
		if r.status != 404 {
			t.Fatalf("%s reading alice's activity: %d", name, r.status)
		}
	}
	r, _ = h.activity(h.token(alice, nil, ""), randID("acc"), "")
	mustStatus(t, r, 404)
	r, _ = h.activity("", acc, "")
	mustStatus(t, r, 401)

	ev := map[string]any{"event_id": uuid.NewString(), "type": "account.viewed", "occurred_at": time.Now().Format(time.RFC3339), "account_id": acc}
	r = h.do(h.public, "POST", h.pub("/v1/events"), h.token(mallory, []string{"customer"}, ""), map[string]any{"events": []any{ev}})
	mustStatus(t, r, 422)
	_, p := h.activity(h.token(alice, nil, ""), acc, "")
	if len(p.Events) != 1 {
		t.Fatalf("mallory's event reached alice's activity: %+v", p.Events)
	}
}

// TestValidation: what POST /v1/events refuses before anything is written.
func TestValidation(t *testing.T) {
	h := start(t, nil)
	alice, acc := randID("alice"), randID("acc")
	mustStatus(t, h.postLedger(opened(acc, alice, time.Now())), 202)
	tok := h.token(alice, nil, "")
	good := func() map[string]any {
		return map[string]any{"event_id": uuid.NewString(), "type": "account.viewed", "occurred_at": time.Now().Format(time.RFC3339Nano), "account_id": acc}
	}
	with := func(k string, v any) map[string]any { e := good(); e[k] = v; return e }
	many := make([]map[string]any, 501)
	for i := range many {
		many[i] = good()
	}
	attrs := map[string]string{}
	for i := range 17 {
		attrs["k"+strconv.Itoa(i)] = "v"
	}
	for name, events := range map[string][]map[string]any{
		"empty batch":             {},
		"batch over 500":          many,
		"unknown type":            {with("type", "account.hacked")},
		"ledger-only type":        {with("type", "transfer.posted")},
		"event id not a UUID":     {with("event_id", "1234")},
		"far future":              {with("occurred_at", time.Now().Add(time.Hour).Format(time.RFC3339))},
		"too old":                 {with("occurred_at", time.Now().Add(-30*24*time.Hour).Format(time.RFC3339))},
		"missing time":            {with("occurred_at", nil)},
		"account id with a slash": {with("account_id", "a/b")},
		"negative amount":         {with("amount", -5)},
		"amount without currency": {with("amount", 5)},
		"lowercase currency":      {with("amount", 5), with("currency", "eur")},
		"too many attributes":     {with("attributes", attrs)},
		"long attribute":          {with("attributes", map[string]string{"k": strings.Repeat("x", 257)})},
		"unknown field":           {with("password", "x")},
	} {
		t.Run(name, func(t *testing.T) {
			r := h.do(h.public, "POST", h.pub("/v1/events"), tok, map[string]any{"events": events})
			if r.status != 400 || r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("status %d (%s): %s", r.status, r.header.Get("Content-Type"), r.body)
			}
		})
	}
	mustStatus(t, h.do(h.public, "POST", h.pub("/v1/events"), tok, map[string]any{"events": []any{good()}}), 202)
}

// TestInternalRouteAuthorization: ledger events need the ledger's SVID
// and a token the ledger exchanged; any one missing is refused.
func TestInternalRouteAuthorization(t *testing.T) {
	h := start(t, nil)
	ev := opened(randID("acc"), randID("u"), time.Now())
	body := map[string]any{"events": []any{ev}}
	loadtest := h.st.InternalClient(t, "loadtest", mtls.ID("analytics"))
	for _, c := range []struct {
		name   string
		client *http.Client
		token  string
		want   int
	}{
		{"ledger without a token", h.ledger, "", 401},
		{"ledger with a plain user token", h.ledger, h.token("alice", []string{"customer"}, ""), 403},
		{"ledger with a token exchanged by another service", h.ledger, h.token("alice", nil, mtls.ID("session").String()), 403},
		{"another workload with the ledger's token", loadtest, h.ledgerTk, 403},
		{"ledger with its exchanged token", h.ledger, h.ledgerTk, 202},
	} {
		t.Run(c.name, func(t *testing.T) {
			mustStatus(t, h.do(c.client, "POST", h.int("/internal/events"), c.token, body), c.want)
		})
	}
}

// TestCassandraFrozen freezes the Cassandra JVM (SIGSTOP): ingestion must
// answer 503 with Retry-After, within milliseconds once the breaker is
// open, without piling up goroutines or memory; after SIGCONT it recovers
// on its own.
func TestCassandraFrozen(t *testing.T) {
	h := start(t, map[string]string{
		"STRATA_ANALYTICS_WRITE_TIMEOUT": "300ms", "STRATA_ANALYTICS_READ_TIMEOUT": "300ms",
		"STRATA_ANALYTICS_BREAKER_DELAY": "1s", "STRATA_CASSANDRA_TIMEOUT": "1s",
	})
	alice, acc := randID("alice"), randID("acc")
	mustStatus(t, h.postLedger(opened(acc, alice, time.Now())), 202)
	tok := h.token(alice, nil, "")
	post := func() response {
		ev := map[string]any{"event_id": uuid.NewString(), "type": "account.viewed", "occurred_at": time.Now().Format(time.RFC3339Nano), "account_id": acc}
		return h.do(h.public, "POST", h.pub("/v1/events"), tok, map[string]any{"events": []any{ev}})
	}
	mustStatus(t, post(), 202) // warm: owner cached, connections open

	out, err := h.st.Script("pid", "cassandra")
	if err != nil {
		t.Fatalf("stack.sh pid cassandra: %v %s", err, out)
	}
	pid := strings.TrimSpace(string(out))
	signal := func(sig string) {
		if out, err := exec.Command("kill", "-"+sig, pid).CombinedOutput(); err != nil {
			t.Fatalf("kill -%s %s: %v %s", sig, pid, err, out)
		}
	}
	// Warm every connection pool at the concurrency of phase 1 (16
	// writers: the test's client, and the service's client to the session
	// check), so that idle pooled connections are not counted as growth.
	var warm sync.WaitGroup
	for range 16 {
		warm.Add(1)
		go func() { defer warm.Done(); post() }()
	}
	warm.Wait()
	runtime.GC()
	baseG := runtime.NumGoroutine()
	signal("STOP")
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			signal("CONT")
		}
	})

	// Phase 1: concurrent writers hit the frozen node; each waits at most
	// the write timeout, the breaker opens.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var statuses = map[int]int{}
	var slowest time.Duration
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				r := post()
				mu.Lock()
				statuses[r.status]++
				slowest = max(slowest, r.took)
				mu.Unlock()
				if r.status == 503 && r.header.Get("Retry-After") == "" {
					t.Errorf("503 without Retry-After")
				}
			}
		}()
	}
	wg.Wait()
	if statuses[503] != 80 || slowest > 2*time.Second {
		t.Fatalf("while frozen: statuses %v, slowest %s", statuses, slowest)
	}

	// Phase 2: the breaker is open; answers come in milliseconds, and a
	// burst leaves no goroutines or heap behind.
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapInuse
	var lat []time.Duration
	for range 200 {
		r := post()
		if r.status != 503 || r.header.Get("Retry-After") == "" {
			t.Fatalf("breaker open: status %d, Retry-After %q: %s", r.status, r.header.Get("Retry-After"), r.body)
		}
		lat = append(lat, r.took)
	}
	p99 := percentile(lat, 0.99)
	if p99 > 50*time.Millisecond {
		t.Fatalf("503s while open: p99 %s, want milliseconds", p99)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	grewG := runtime.NumGoroutine() - baseG
	grewHeap := int64(ms.HeapInuse) - int64(heapBefore)
	t.Logf("frozen: phase 1 statuses %v, slowest %s; open breaker p99 %s; goroutines +%d, heap %+d KiB",
		statuses, slowest, p99, grewG, grewHeap>>10)
	if grewG > 64 || grewHeap > 16<<20 {
		t.Fatalf("growth while Cassandra is frozen: goroutines +%d, heap %+d bytes", grewG, grewHeap)
	}

	// Phase 3: thaw; the service recovers by itself.
	signal("CONT")
	resumed = true
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := post()
		if r.status == 202 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery within 30s after SIGCONT: last %d %s\n%s", r.status, r.body, tail(h.svc.Logs(), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, p := h.activity(tok, acc, "?limit=200")
	if len(p.Events) < 3 {
		t.Fatalf("after recovery: %d events", len(p.Events))
	}
}

func percentile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestConsistencyPerOperation: each operation runs at its configured
// level, and the level is a label on the store's latency metric.
func TestConsistencyPerOperation(t *testing.T) {
	h := start(t, map[string]string{"STRATA_CASSANDRA_CONSISTENCY_ACTIVITY": "ONE", "STRATA_CASSANDRA_CONSISTENCY_INGEST": "QUORUM"})
	alice, acc := randID("alice"), randID("acc")
	if r := h.postLedger(opened(acc, alice, time.Now())); r.status != 202 {
		t.Fatalf("%d %s\n%s", r.status, r.body, tail(h.svc.Logs(), 15))
	}
	r, _ := h.activity(h.token(alice, nil, ""), acc, "")
	mustStatus(t, r, 200)

	prom := h.st.InternalClient(t, "prometheus", mtls.ID("analytics"))
	m := h.do(prom, "GET", h.int("/metrics"), "", nil)
	mustStatus(t, m, 200)
	for _, want := range []string{
		`strata_cassandra_operation_duration_seconds_count{consistency="QUORUM",operation="append",outcome="ok"}`,
		`strata_cassandra_operation_duration_seconds_count{consistency="ONE",operation="activity",outcome="ok"}`,
		`strata_analytics_events_ingested_total{source="ledger"} 1`,
	} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(h.svc.Logs(), `"STRATA_CASSANDRA_CONSISTENCY_ACTIVITY":"ONE"`) {
		t.Error("the effective consistency levels are not logged at start")
	}

	// Only ONE, LOCAL_QUORUM and QUORUM are accepted.
	_, env, _ := testEnv(t)
	env["STRATA_CASSANDRA_CONSISTENCY_STATS"] = "ALL"
	err := run(t.Context(), nil, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "STRATA_CASSANDRA_CONSISTENCY_STATS") {
		t.Fatalf("run with ALL = %v", err)
	}
}

// A customer sees their transfer.posted rows in /activity, with event id
// and time: sending a client event under that key must not overwrite the
// row and hide the transfer from their history (repudiation). A retry of
// their own client event stays accepted.
func TestClientEventCannotOverwriteLedgerRow(t *testing.T) {
	h := start(t, nil)
	alice, bob := randID("alice"), randID("bob")
	accA, accB := randID("acc"), randID("acc")
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	xfer := randID("xfer")
	mustStatus(t, h.postLedger(posted(uuid.NewString(), xfer, accA, accB, alice, bob, 700, at)), 202)
	tok := h.token(alice, []string{"customer"}, "")
	_, p := h.activity(tok, accA, "")
	if len(p.Events) != 1 || p.Events[0].Type != "transfer.posted" {
		t.Fatalf("activity before: %+v", p.Events)
	}
	row := p.Events[0]
	forged := map[string]any{"event_id": row.EventID, "type": "account.viewed", "occurred_at": row.OccurredAt.Format(time.RFC3339Nano), "account_id": accA}
	r := h.do(h.public, "POST", h.pub("/v1/events"), tok, map[string]any{"events": []any{forged}})
	mustStatus(t, r, 400)
	_, p = h.activity(tok, accA, "")
	if len(p.Events) != 1 || p.Events[0].Type != "transfer.posted" || p.Events[0].TransferID != xfer {
		t.Fatalf("the ledger row was overwritten: %+v", p.Events)
	}
	// Control: the owner's own client event, sent twice, is accepted both times.
	own := map[string]any{"event_id": uuid.NewString(), "type": "account.viewed", "occurred_at": at.Format(time.RFC3339Nano), "account_id": accA}
	for range 2 {
		mustStatus(t, h.do(h.public, "POST", h.pub("/v1/events"), tok, map[string]any{"events": []any{own}}), 202)
	}
}

// An access token stays valid until exp, but once its session has ended
// (the user signed out, or was disabled) it must write nothing, as at the
// ledger; reads go on until the token expires. (A session service that
// cannot answer fails the write closed: libs/authn TestSessionCheck.)
func TestWritesNeedALiveSession(t *testing.T) {
	h := start(t, nil)
	alice, acc := randID("alice"), randID("acc")
	mustStatus(t, h.postLedger(opened(acc, alice, time.Now())), 202)
	tok := h.token(alice, []string{"customer"}, "")
	post := func() response {
		ev := map[string]any{"event_id": uuid.NewString(), "type": "account.viewed", "occurred_at": time.Now().Format(time.RFC3339Nano), "account_id": acc}
		return h.do(h.public, "POST", h.pub("/v1/events"), tok, map[string]any{"events": []any{ev}})
	}
	mustStatus(t, post(), 202) // control: a live session writes
	h.sessions.End("sid-" + alice)
	r := post()
	mustStatus(t, r, 401)
	if r.header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without a WWW-Authenticate challenge")
	}
	_, p := h.activity(tok, acc, "")
	if len(p.Events) != 2 { // account.opened and the one accepted event
		t.Fatalf("activity after the refused write: %d events", len(p.Events))
	}
}
