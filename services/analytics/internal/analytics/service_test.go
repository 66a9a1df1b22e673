package analytics

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-ref/strata/libs/resilience"
)

// The service's rules (docs/analytics.md) against an in-memory Store: who
// may write and read which account's activity, idempotent redelivery,
// per-day totals. Each case runs in microseconds; analytics_test.go runs
// the same paths against Cassandra.

type rowKey struct {
	account string
	at      time.Time
	eventID string
}

type memEvents struct {
	mu      sync.Mutex
	rows    map[rowKey]Row
	rollups map[string]Rollup // by transfer id
	owners  map[string]string
	appends int
	down    bool
}

var _ Store = (*memEvents)(nil)

func newMemEvents() *memEvents {
	return &memEvents{rows: map[rowKey]Row{}, rollups: map[string]Rollup{}, owners: map[string]string{}}
}

var errCassandra = errors.New("gocql: no hosts available in the pool")

func (m *memEvents) Append(_ context.Context, w Write) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errCassandra
	}
	m.appends++
	for _, r := range w.Rows {
		m.rows[rowKey{r.AccountID, r.OccurredAt, r.EventID}] = r
		if r.Owner != "" {
			m.owners[r.AccountID] = r.Owner
		}
	}
	for _, r := range w.Rollups {
		m.rollups[r.TransferID] = r
	}
	return nil
}

func (m *memEvents) Owner(_ context.Context, id string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return "", errCassandra
	}
	o, ok := m.owners[id]
	if !ok {
		return "", ErrNotFound
	}
	return o, nil
}

func (m *memEvents) TypesAt(_ context.Context, rows []Row) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for _, r := range rows {
		if s, ok := m.rows[rowKey{r.AccountID, r.OccurredAt, r.EventID}]; ok {
			out[r.EventID] = s.Type
		}
	}
	return out, nil
}

// Activity pages newest first; the position's State is the offset.
func (m *memEvents) Activity(_ context.Context, id string, at Position, limit int) ([]Event, Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var evs []Event
	for k, r := range m.rows {
		if k.account == id {
			evs = append(evs, r.Event)
		}
	}
	slices.SortFunc(evs, func(a, b Event) int {
		return cmp.Or(b.OccurredAt.Compare(a.OccurredAt), cmp.Compare(a.EventID, b.EventID))
	})
	off, _ := strconv.Atoi(string(at.State))
	evs = evs[min(off, len(evs)):]
	if len(evs) <= limit {
		return evs, Position{}, nil
	}
	return evs[:limit], Position{Day: Day(evs[limit].OccurredAt), State: []byte(strconv.Itoa(off + limit))}, nil
}

func (m *memEvents) TransferTotals(_ context.Context, day time.Time) ([]Totals, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	by := map[string]*Totals{}
	for _, r := range m.rollups {
		if r.Day.Equal(day) {
			t := by[r.Currency]
			if t == nil {
				t = &Totals{Currency: r.Currency}
				by[r.Currency] = t
			}
			t.Count++
			t.Amount += r.Amount
		}
	}
	var out []Totals
	for _, t := range by {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b Totals) int { return cmp.Compare(a.Currency, b.Currency) })
	return out, nil
}

type refusals struct {
	mu sync.Mutex
	m  map[string]int
}

func (r *refusals) Ingested(string, int, int) {}
func (r *refusals) Refused(source, reason string) {
	r.mu.Lock()
	r.m[source+" "+reason]++
	r.mu.Unlock()
}

// sessionsAlive answers Alive from a fixed error per session id.
type sessionsAlive map[string]error

func (s sessionsAlive) Alive(_ context.Context, sid string) error { return s[sid] }

var errSessionEnded = errors.New("session ended")

const (
	evA = "1b7e4c3a-6a51-4c0e-9d5e-3f1f3c1f4a01"
	evB = "1b7e4c3a-6a51-4c0e-9d5e-3f1f3c1f4a02"
	evC = "1b7e4c3a-6a51-4c0e-9d5e-3f1f3c1f4a03"
)

var (
	aliceC  = Caller{Subject: "alice", Roles: []string{"customer"}, SessionID: "s-alice"}
	bobC    = Caller{Subject: "bob", Roles: []string{"customer"}, SessionID: "s-bob"}
	adminC  = Caller{Subject: "root", Roles: []string{RoleAdmin}, SessionID: "s-root"}
	auditC  = Caller{Subject: "audrey", Roles: []string{RoleAuditor}, SessionID: "s-audrey"}
	signedO = Caller{Subject: "alice", Roles: []string{"customer"}, SessionID: "s-gone"}
)

func newRulesService(t *testing.T) (*Service, *memEvents, *refusals) {
	t.Helper()
	st, obs := newMemEvents(), &refusals{m: map[string]int{}}
	svc := NewService(st, Config{Now: func() time.Time { return now }, MaxStatsDays: 31,
		Sessions: sessionsAlive{"s-gone": errSessionEnded}}, obs, resilience.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	// The ledger tells analytics who owns a1 (alice) and a2 (bob).
	if err := svc.IngestLedger(context.Background(), []LedgerEvent{ledgerTransfer()}); err != nil {
		t.Fatal(err)
	}
	return svc, st, obs
}

func viewed(id, account string) ClientEvent {
	return ClientEvent{EventID: id, Type: "account.viewed", OccurredAt: now.Add(-time.Minute), AccountID: account}
}

func TestClientIngestRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		caller  Caller
		events  []ClientEvent
		down    bool
		want    error
		appends int // writes after the ledger's setup write
	}{
		{"the owner writes her account's events", aliceC, []ClientEvent{viewed(evA, "a1")}, false, nil, 1},
		{"an admin writes to any account analytics knows", adminC, []ClientEvent{viewed(evA, "a2")}, false, nil, 1},
		{"another customer's account is unknown to you", bobC, []ClientEvent{viewed(evA, "a1")}, false, ErrUnknownAccount, 0},
		{"an account analytics never heard of", aliceC, []ClientEvent{viewed(evA, "zz")}, false, ErrUnknownAccount, 0},
		{"one foreign account refuses the whole batch", aliceC, []ClientEvent{viewed(evA, "a1"), viewed(evB, "a2")}, false, ErrUnknownAccount, 0},
		{"clients may not post ledger event types", aliceC, []ClientEvent{{EventID: evA, Type: TypeTransferPosted, OccurredAt: now, AccountID: "a1"}}, false, ErrInvalid, 0},
		{"no overwriting a ledger row's key (hiding a transfer)", aliceC, []ClientEvent{{EventID: id1, Type: "account.viewed", OccurredAt: now.Add(-time.Hour), AccountID: "a1"}}, false, ErrInvalid, 0},
		{"an event from the future beyond the skew", aliceC, []ClientEvent{{EventID: evA, Type: "account.viewed", OccurredAt: now.Add(MaxFutureSkew + time.Minute), AccountID: "a1"}}, false, ErrInvalid, 0},
		{"an empty batch", aliceC, nil, false, ErrInvalid, 0},
		{"a signed-out session writes nothing", signedO, []ClientEvent{viewed(evA, "a1")}, false, errSessionEnded, 0},
		{"Cassandra down: unavailable (503)", aliceC, []ClientEvent{viewed(evA, "a1")}, true, ErrUnavailable, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, st, _ := newRulesService(t)
			st.down = tc.down
			before := st.appends
			err := svc.IngestClient(context.Background(), tc.caller, tc.events)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if st.appends-before != tc.appends {
				t.Errorf("%d writes, want %d", st.appends-before, tc.appends)
			}
		})
	}
}

// TestLedgerRedeliveryIsIdempotent: the outbox delivers at least once; a
// second delivery leaves the same rows and the day's totals count the
// transfer once.
func TestLedgerRedeliveryIsIdempotent(t *testing.T) {
	svc, st, _ := newRulesService(t)
	rows, rollups := len(st.rows), len(st.rollups)
	for range 3 {
		if err := svc.IngestLedger(context.Background(), []LedgerEvent{ledgerTransfer()}); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.rows) != rows || len(st.rollups) != rollups || rows != 2 || rollups != 1 {
		t.Fatalf("rows %d->%d, rollups %d->%d; want 2 and 1 throughout", rows, len(st.rows), rollups, len(st.rollups))
	}
	s, err := svc.TransferStats(context.Background(), auditC, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Totals) != 1 || s.Totals[0].Count != 1 || s.Totals[0].Amount != 250 {
		t.Fatalf("totals %+v, want one transfer of 250", s.Totals)
	}
}

func TestActivityRules(t *testing.T) {
	svc, _, _ := newRulesService(t)
	ctx := context.Background()
	if err := svc.IngestClient(ctx, aliceC, []ClientEvent{viewed(evA, "a1"), viewed(evB, "a1"), viewed(evC, "a1")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		caller  Caller
		account string
		page    string
		limit   int
		want    error
		events  int
	}{
		{"the owner reads her activity, newest first", aliceC, "a1", "", 10, nil, 4},
		{"another customer gets 404, as for no account", bobC, "a1", "", 10, ErrNotFound, 0},
		{"an admin reads no one's activity but their own", adminC, "a1", "", 10, ErrNotFound, 0},
		{"an unknown account is 404", aliceC, "zz", "", 10, ErrNotFound, 0},
		{"a malformed id is 404", aliceC, "a/1", "", 10, ErrNotFound, 0},
		{"limit 0 (400)", aliceC, "a1", "", 0, ErrInvalid, 0},
		{"limit above 200 (400)", aliceC, "a1", "", 201, ErrInvalid, 0},
		{"a cursor that is not one (400)", aliceC, "a1", "garbage", 10, ErrInvalid, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := svc.Activity(ctx, tc.caller, tc.account, tc.page, tc.limit)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if len(p.Events) != tc.events {
				t.Fatalf("%d events, want %d", len(p.Events), tc.events)
			}
		})
	}
	// Paging: two pages of two; the cursor is bound to the account.
	first, err := svc.Activity(ctx, aliceC, "a1", "", 2)
	if err != nil || len(first.Events) != 2 || first.NextPage == "" {
		t.Fatalf("first page %+v, %v", first, err)
	}
	second, err := svc.Activity(ctx, aliceC, "a1", first.NextPage, 2)
	if err != nil || len(second.Events) != 2 || second.NextPage != "" {
		t.Fatalf("second page %+v, %v", second, err)
	}
	if first.Events[0].OccurredAt.Before(second.Events[1].OccurredAt) {
		t.Fatalf("not newest first")
	}
	if _, err := svc.Activity(ctx, bobC, "a2", first.NextPage, 2); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a1's cursor used on a2: %v, want ErrInvalid", err)
	}
}

func TestTransferStatsRules(t *testing.T) {
	svc, _, _ := newRulesService(t)
	ctx := context.Background()
	yesterday := ledgerTransfer()
	yesterday.EventID, yesterday.TransferID, yesterday.OccurredAt = evB, "t2", now.Add(-24*time.Hour)
	usd := ledgerTransfer()
	usd.EventID, usd.TransferID, usd.Currency, usd.Amount = evC, "t3", "USD", 7
	if err := svc.IngestLedger(ctx, []LedgerEvent{yesterday, usd}); err != nil {
		t.Fatal(err)
	}
	today, dayBefore := now.Format(dayLayout), now.Add(-24*time.Hour).Format(dayLayout)
	for _, tc := range []struct {
		name     string
		caller   Caller
		from, to string
		want     error
		days     int
		eur      int64 // EUR total over the range
	}{
		{"an auditor reads today's totals", auditC, "", "", nil, 1, 250},
		{"over two days, summed per currency", auditC, dayBefore, today, nil, 2, 500},
		{"admins too", adminC, dayBefore, today, nil, 2, 500},
		{"customers may not (403)", aliceC, "", "", ErrForbidden, 0, 0},
		{"from after to (400)", auditC, today, dayBefore, ErrInvalid, 0, 0},
		{"longer than MaxStatsDays (400)", auditC, now.AddDate(0, 0, -40).Format(dayLayout), today, ErrInvalid, 0, 0},
		{"a day that is not YYYY-MM-DD (400)", auditC, "yesterday", "", ErrInvalid, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := svc.TransferStats(ctx, tc.caller, tc.from, tc.to)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			if len(s.Days) != tc.days {
				t.Fatalf("%d days, want %d", len(s.Days), tc.days)
			}
			var eur int64
			for _, tot := range s.Totals {
				if tot.Currency == "EUR" {
					eur = tot.Amount
				}
			}
			if eur != tc.eur || len(s.Totals) != 2 {
				t.Fatalf("totals %+v, want EUR %d and USD", s.Totals, tc.eur)
			}
		})
	}
}
