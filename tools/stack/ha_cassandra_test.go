package stack

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/authn/authntest"
	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/testenv"
)

// TestCassandraRing checks the HA topology's three-node ring
// (deploy/native/ha.env): three nodes up and talking to each other, the
// analytics keyspaces at replication factor 3, and the arithmetic of
// consistency levels with one node down: QUORUM (2 of 3) keeps writing and
// reading and loses no acknowledged write, ALL (3 of 3) fails, the other
// nodes keep hints for the down node and hand them over when it is back.
func TestCassandraRing(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so a ring that only half started is stopped too:
	// three JVMs must never outlive the test.
	t.Cleanup(func() {
		cmd := exec.Command("bash", "-c", `source deploy/native/ha.env && exec deploy/native/stack.sh down cassandra3 cassandra2 cassandra`)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("stopping the ring: %v\n%s", err, out)
		}
	})
	start := time.Now()
	h := testenv.StartHAStack(t, "cassandra", "cassandra2", "cassandra3")
	t.Logf("ring of %d nodes up in %s", len(h.CassandraNodes), time.Since(start).Round(100*time.Millisecond))
	if len(h.CassandraNodes) != 3 {
		t.Fatalf("ha.env lists %d Cassandra nodes, want 3", len(h.CassandraNodes))
	}
	src := h.Source(t, "analytics")
	session := func(t *testing.T, hosts ...string) *gocql.Session {
		t.Helper()
		c := gocql.NewCluster(hosts...)
		c.Port, c.Timeout, c.ConnectTimeout = h.CassandraPort, 5*time.Second, 5*time.Second
		c.SslOpts = &gocql.SslOptions{Config: src.StoreConfig(hosts[0])}
		c.Authenticator = gocql.PasswordAuthenticator{Username: "analytics", Password: h.Password(t, "cassandra", "analytics")}
		c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
		c.ReconnectInterval = time.Second
		c.RetryPolicy = nil // every error is the test's to see
		if len(hosts) == 1 {
			// Talk to this node only (it coordinates every statement).
			c.DisableInitialHostLookup = true
			c.HostFilter = gocql.WhiteListHostFilter(hosts...)
		}
		s, err := c.CreateSession()
		if err != nil {
			t.Fatalf("session to %v: %v", hosts, err)
		}
		t.Cleanup(s.Close)
		return s
	}

	// Every node answers CQL over mutual TLS and knows the two others.
	for _, node := range h.CassandraNodes {
		s := session(t, node)
		var addr string
		if err := s.Query("SELECT listen_address FROM system.local").Consistency(gocql.One).Scan(&addr); err != nil || addr != node {
			t.Fatalf("node %s: system.local listen_address = %q, %v", node, addr, err)
		}
		var peers []string
		it := s.Query("SELECT peer FROM system.peers_v2").Consistency(gocql.One).Iter()
		var p string
		for it.Scan(&p) {
			peers = append(peers, p)
		}
		if err := it.Close(); err != nil || len(peers) != 2 {
			t.Fatalf("node %s sees peers %v (%v), want the two other nodes", node, peers, err)
		}
	}

	ring := session(t, h.CassandraNodes...)
	for _, ks := range []string{"analytics", "analytics_test"} {
		var repl map[string]string
		if err := ring.Query("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?", ks).Consistency(gocql.One).Scan(&repl); err != nil {
			t.Fatalf("keyspace %s: %v", ks, err)
		}
		if !strings.HasSuffix(repl["class"], "NetworkTopologyStrategy") || repl["datacenter1"] != "3" {
			t.Errorf("keyspace %s replication = %v, want NetworkTopologyStrategy with datacenter1: 3", ks, repl)
		}
	}
	if err := ring.Query("CREATE TABLE IF NOT EXISTS analytics_test.ring_probe (run text, seq int, phase text, PRIMARY KEY (run, seq))").Exec(); err != nil {
		t.Fatalf("create table: %v", err)
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	acked := map[int]string{} // seq -> phase of every acknowledged write
	seq := 0
	// write writes n rows (one partition each) at level; it returns the
	// errors, and records the acknowledged rows.
	write := func(level gocql.Consistency, phase string, n int) []error {
		var errs []error
		for range n {
			seq++
			key := fmt.Sprintf("%s-%d", run, seq)
			if err := ring.Query("INSERT INTO analytics_test.ring_probe (run, seq, phase) VALUES (?, ?, ?)", key, seq, phase).Consistency(level).Exec(); err != nil {
				errs = append(errs, err)
				continue
			}
			acked[seq] = phase
		}
		return errs
	}
	// lost reads back every acknowledged write at level through s and
	// returns those not found (or not readable).
	lost := func(s *gocql.Session, level gocql.Consistency) []string {
		var missing []string
		for i, phase := range acked {
			var got string
			err := s.Query("SELECT phase FROM analytics_test.ring_probe WHERE run = ? AND seq = ?", fmt.Sprintf("%s-%d", run, i), i).Consistency(level).Scan(&got)
			if err != nil || got != phase {
				missing = append(missing, fmt.Sprintf("%d (%q, %v)", i, got, err))
			}
		}
		return missing
	}

	const n = 40
	if errs := write(gocql.LocalQuorum, "all-up", n); len(errs) > 0 {
		t.Fatalf("%d of %d LOCAL_QUORUM writes failed with three nodes up: %v", len(errs), n, errs[0])
	}
	if errs := write(gocql.All, "all-up", 1); len(errs) > 0 {
		t.Fatalf("an ALL write failed with three nodes up: %v", errs[0])
	}

	// The analytics service on the ring (token-aware, LOCAL_QUORUM), up
	// before the node goes down, as in production.
	svc := startAnalytics(t, h)

	// One node down: 2 of 3 replicas are still a quorum.
	down := "cassandra3"
	stopped := time.Now()
	h.MustScript(t, "stop", down)
	t.Logf("%s stopped in %s", down, time.Since(stopped).Round(100*time.Millisecond))
	if errs := write(gocql.LocalQuorum, "one-down", n); len(errs) > 0 {
		t.Errorf("%d of %d LOCAL_QUORUM writes failed with one node down: %v", len(errs), n, errs[0])
	}
	if errs := write(gocql.Quorum, "one-down", n/4); len(errs) > 0 {
		t.Errorf("%d of %d QUORUM writes failed with one node down: %v", len(errs), n/4, errs[0])
	}
	if m := lost(ring, gocql.Quorum); len(m) > 0 {
		t.Errorf("QUORUM reads with one node down miss %d of %d acknowledged writes: %v", len(m), len(acked), m[:min(len(m), 5)])
	}
	svc.check(t, "with "+down+" down")
	errs := write(gocql.All, "one-down", 1)
	var unavailable *gocql.RequestErrUnavailable
	if len(errs) == 0 || !errors.As(errs[0], &unavailable) {
		t.Errorf("ALL write with one node down: %v, want an Unavailable error", errs)
	} else {
		t.Logf("ALL write with one node down: %v", errs[0])
	}
	var phase string
	if err := ring.Query("SELECT phase FROM analytics_test.ring_probe WHERE run = ? AND seq = 1", run+"-1").Consistency(gocql.All).Scan(&phase); !errors.As(err, &unavailable) {
		t.Errorf("ALL read with one node down: %v, want an Unavailable error", err)
	}

	// The live nodes keep hints for the down one (flushed to disk every 10 s).
	hints := func() int {
		files := 0
		for _, d := range []string{"cassandra", "cassandra2"} {
			m, _ := filepath.Glob(filepath.Join(h.Dir, d, "hints", "*.hints"))
			files += len(m)
		}
		return files
	}
	if !eventually(30*time.Second, func() bool { return hints() > 0 }) {
		t.Errorf("no hint files on the live nodes for %s after 30 s", down)
	}

	// Back up: it rejoins, the hints are handed over, QUORUM and ALL work.
	restarted := time.Now()
	h.MustScript(t, "start", down)
	t.Logf("%s restarted in %s", down, time.Since(restarted).Round(100*time.Millisecond))
	replayed := time.Now()
	if !eventually(90*time.Second, func() bool { return hints() == 0 }) {
		t.Errorf("%d hint file(s) still undelivered 90 s after %s restarted", hints(), down)
	} else {
		t.Logf("hints handed over to %s within %s of its restart", down, time.Since(replayed).Round(100*time.Millisecond))
	}
	if !eventually(30*time.Second, func() bool { return len(write(gocql.All, "back", 1)) == 0 }) {
		t.Errorf("ALL writes still fail 30 s after %s restarted", down)
	}
	if m := lost(ring, gocql.All); len(m) > 0 {
		t.Errorf("ALL reads after the restart miss %d of %d acknowledged writes: %v", len(m), len(acked), m[:min(len(m), 5)])
	}
	t.Logf("ring test done in %s; stopping the ring", time.Since(start).Round(100*time.Millisecond))
}

// analytics is the analytics service's real binary on the ring.
type analytics struct {
	proc    *testenv.Process
	iss     *authntest.Issuer
	public  *http.Client
	ledger  *http.Client // mTLS as spiffe://strata.local/ledger
	ledgerT string       // token relayed by the ledger
}

func startAnalytics(t *testing.T, h *testenv.HAStack) *analytics {
	t.Helper()
	iss := authntest.NewIssuer(t)
	env := h.Env("analytics")
	env["STRATA_CASSANDRA_HOSTS"] = strings.Join(h.CassandraNodes, ",")
	env["STRATA_CASSANDRA_PORT"] = strconv.Itoa(h.CassandraPort)
	env["STRATA_CASSANDRA_KEYSPACE"] = "analytics_test"
	env["STRATA_CASSANDRA_REPLICATION"] = "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}"
	env["STRATA_CASSANDRA_CONSISTENCY"] = "LOCAL_QUORUM"
	env["STRATA_AUTH_ISSUER"] = authntest.IssuerURL
	env["STRATA_AUTH_JWKS_URL"] = testenv.ServeJWKS(t, &h.Stack, iss)
	a := &analytics{proc: testenv.StartProcess(t, &h.Stack, "analytics", env), iss: iss, public: h.PublicClient(t),
		ledger: h.InternalClient(t, "ledger", mtls.ID("analytics"))}
	a.ledgerT = a.token(t, "ledger-relay", nil, mtls.ID("ledger").String())
	a.check(t, "with every node up")
	return a
}

func (a *analytics) token(t *testing.T, sub string, roles []string, actor string) string {
	c := authn.Claims{Claims: jwt.Claims{Subject: sub, Audience: jwt.Audience{"analytics"}}, Roles: roles}
	if actor != "" {
		c.Act = &authn.Actor{Sub: actor}
	}
	return a.iss.Token(t, c)
}

// check: /readyz answers 200, an account.opened event from the ledger is
// ingested (202, written at LOCAL_QUORUM) and the owner reads it back.
func (a *analytics) check(t *testing.T, when string) {
	t.Helper()
	do := func(c *http.Client, method, url, token string, body any) (int, []byte) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, url, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("analytics %s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, body := do(a.public, "GET", "https://"+a.proc.Public+"/readyz", "", nil); code != 200 {
		t.Errorf("analytics /readyz %s: %d %s", when, code, body)
	}
	owner, account := "owner-"+strconv.FormatInt(time.Now().UnixNano(), 36), "acc-"+strconv.FormatInt(time.Now().UnixNano(), 36)
	ev := map[string]any{"event_id": newUUID(t), "type": "account.opened", "occurred_at": time.Now().UTC().Format(time.RFC3339Nano),
		"account_id": account, "owner": owner, "currency": "EUR"}
	if code, body := do(a.ledger, "POST", "https://"+a.proc.Internal+"/internal/events", a.ledgerT, map[string]any{"events": []any{ev}}); code != 202 {
		t.Errorf("analytics ingestion %s: %d %s", when, code, body)
		return
	}
	code, body := do(a.public, "GET", "https://"+a.proc.Public+"/v1/accounts/"+account+"/activity", a.token(t, owner, []string{"customer"}, ""), nil)
	if code != 200 || !strings.Contains(string(body), ev["event_id"].(string)) {
		t.Errorf("analytics activity read %s: %d %s", when, code, body)
	}
}

// newUUID is a random (version 4) UUID.
func newUUID(t *testing.T) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// eventually polls cond every 250 ms until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
}
