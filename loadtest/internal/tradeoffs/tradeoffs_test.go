package tradeoffs_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/loadtest/internal/strata"
	"github.com/strata-ref/strata/loadtest/internal/tradeoffs"
)

// TestTradeoffs measures the trade-off table against the real system (four
// service processes on the native stack) plus a second analytics process
// reading and writing at consistency ONE, and checks every row is there
// with plausible values. The short form runs at low rates; with
// STRATA_TRADEOFFS_DOC=<path> (make tradeoffs) it runs the full
// measurement and writes the page.
func TestTradeoffs(t *testing.T) {
	doc := os.Getenv("STRATA_TRADEOFFS_DOC")
	cfg := tradeoffs.Config{Password: "strata-demo", Users: 4, Rate: 20, Duration: 3 * time.Second, Workers: 4,
		MaxDuration: time.Second, Probes: 10, StaleProbes: 4, StaleReaders: 4, StaleWatch: 300 * time.Millisecond, Batch: 10}
	if doc != "" {
		cfg = tradeoffs.Config{Password: "strata-demo", Users: 8, Rate: 40, Duration: 10 * time.Second, Workers: 16,
			MaxDuration: 5 * time.Second, Probes: 100, StaleProbes: 20, StaleReaders: 8, StaleWatch: 1200 * time.Millisecond, Batch: 10}
	}
	st := testenv.StartStack(t)
	sys := testenv.StartSystem(t, st, nil)
	if out, err := sys.Auth.Seed(t, cfg.Users+1); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	// The same analytics binary and keyspace, at consistency ONE for writes
	// and reads: on one node it must behave like LOCAL_QUORUM.
	env := map[string]string{}
	for _, kv := range sys.Analytics.Cmd.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	env["STRATA_PUBLIC_ADDR"], env["STRATA_INTERNAL_ADDR"] = "127.0.0.1:0", "127.0.0.1:0"
	env["STRATA_CASSANDRA_CONSISTENCY_INGEST"], env["STRATA_CASSANDRA_CONSISTENCY_ACTIVITY"] = "ONE", "ONE"
	one := testenv.StartProcess(t, st, "analytics", env)

	src := st.Source(t, "loadtest")
	cfg.API = strata.New(strata.Endpoints{Auth: sys.Issuer, Ledger: testenv.URL(sys.Ledger.Public),
		Analytics: testenv.URL(sys.Analytics.Public), Session: testenv.URL(sys.Session.Public)},
		&tls.Config{RootCAs: src.Roots(), MinVersion: tls.VersionTLS13}, 256)
	cfg.Level = "LOCAL_QUORUM (default)"
	cfg.AltAnalytics = []tradeoffs.Analytics{{URL: testenv.URL(one.Public), Level: "ONE"}}
	var log bytes.Buffer
	cfg.Log = &log
	if testing.Verbose() {
		cfg.Log = os.Stdout
	}
	res, err := tradeoffs.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	res.Command = "make tradeoffs (STRATA_TRADEOFFS_DOC=docs/tradeoffs.md go test -run TestTradeoffs ./internal/tradeoffs in loadtest: " +
		"the system booted on the native stack, plus a second analytics at ONE)"
	md := res.Markdown()
	t.Log("\n" + md)

	if len(res.Rows) != 4 {
		t.Fatalf("%d rows, want Postgres, Cassandra x2, Redis", len(res.Rows))
	}
	for _, want := range []string{"| Postgres | ledger |", "| Cassandra | analytics, LOCAL_QUORUM (default) |", "| Cassandra | analytics, ONE |",
		"| Redis | session (cache-aside over Postgres) |", "seed: consistency", tradeoffs.BeginMarker, tradeoffs.EndMarker} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	for _, r := range res.Rows {
		for what, l := range map[string]tradeoffs.Latency{"write": r.Write, "read": r.Read} {
			if l.OK == 0 || l.P50 <= 0 || l.P99 < l.P50 || l.P99 > 5000 {
				t.Errorf("%s %s latency implausible: %+v", r.Through, what, l)
			}
		}
		if r.MaxWrites.PerSec <= 0 || r.MaxReads.PerSec <= 0 {
			t.Errorf("%s throughput implausible: writes %+v reads %+v", r.Through, r.MaxWrites, r.MaxReads)
		}
		if len(r.Probes) == 0 {
			t.Errorf("%s has no consistency probe", r.Through)
		}
		for _, p := range r.Probes {
			switch {
			case strings.HasPrefix(p.Name, "read-your-write") && r.Store == "Postgres" && p.Rate != 1:
				t.Errorf("ledger read-your-write %s, want 100 %%", p.Result)
			case strings.HasPrefix(p.Name, "read-your-write") && r.Store == "Cassandra" && p.Rate < 0.9:
				// One node: every level reads what it wrote.
				t.Errorf("%s read-your-write %s on one node", r.Through, p.Result)
			case strings.HasPrefix(p.Name, "stale-read") && (p.Max > 1500*time.Millisecond || strings.Contains(p.Result, "still alive")):
				// docs/cache-aside.md: immediate, and within 1 s in the race.
				t.Errorf("stale-read window beyond the documented 1 s bound: %s", p.Result)
			}
		}
	}

	if doc != "" {
		if !filepath.IsAbs(doc) {
			t.Fatalf("STRATA_TRADEOFFS_DOC must be absolute, got %q", doc)
		}
		if err := tradeoffs.WriteDoc(doc, res); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", doc)
	}
}

func TestSplice(t *testing.T) {
	block := tradeoffs.BeginMarker + "\nnew\n" + tradeoffs.EndMarker + "\n"
	page := "# T\n\nintro\n\n" + tradeoffs.BeginMarker + "\nold\n" + tradeoffs.EndMarker + "\n\n## After\n"
	got, err := tradeoffs.Splice(page, block)
	if err != nil {
		t.Fatal(err)
	}
	if want := "# T\n\nintro\n\n" + tradeoffs.BeginMarker + "\nnew\n" + tradeoffs.EndMarker + "\n\n## After\n"; got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got, _ := tradeoffs.Splice("# T\n", block); got != "# T\n"+block {
		t.Errorf("append: got %q", got)
	}
	if _, err := tradeoffs.Splice(tradeoffs.EndMarker+tradeoffs.BeginMarker, block); err == nil {
		t.Error("markers out of order accepted")
	}
}

func TestSessionID(t *testing.T) {
	// header.{"sid":"abc"}.sig
	if sid, err := tradeoffs.SessionID("e30.eyJzaWQiOiJhYmMifQ.c2ln"); err != nil || sid != "abc" {
		t.Errorf("SessionID = %q, %v", sid, err)
	}
	if _, err := tradeoffs.SessionID("e30.e30.c2ln"); err == nil {
		t.Error("a token without sid accepted")
	}
}
