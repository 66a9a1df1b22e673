package tradeoffs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/strata-ref/strata/loadtest/internal/strata"
)

// ledger measures Postgres through the ledger: a write is a transfer
// (POST /v1/transfers with an Idempotency-Key, one ACID transaction), a read
// is GET /v1/accounts/{id}.
func (m *measurer) ledger(ctx context.Context) (Row, error) {
	users := m.pop.Users
	transfer := func(ctx context.Context) bool {
		from := users[rand.IntN(len(users))]
		to := users[rand.IntN(len(users))]
		for to == from {
			to = users[rand.IntN(len(users))]
		}
		r := m.api.Do(ctx, from.Tokens.AccessToken, http.MethodPost, m.api.E.Ledger+"/v1/transfers",
			strata.TransferBody(from.Account.ID, to.Account.ID, 1), strata.NewKey())
		return r.Err == nil && r.Status == http.StatusCreated
	}
	read := func(ctx context.Context) bool {
		u := users[rand.IntN(len(users))]
		r := m.api.Do(ctx, u.Tokens.AccessToken, http.MethodGet, m.api.E.Ledger+"/v1/accounts/"+u.Account.ID, nil, "")
		return r.Err == nil && r.Status == http.StatusOK
	}
	row := Row{Store: "Postgres", Through: "ledger", WriteOp: "POST /v1/transfers", ReadOp: "GET /v1/accounts/{id}", WriteUnit: 1}
	m.logf("postgres via ledger: latency at %.0f/s for %s", m.cfg.Rate, m.cfg.Duration)
	lat := latencies(ctx, m.cfg.Rate, m.cfg.Duration, []op{{"write", transfer}, {"read", read}})
	row.Write, row.Read = lat["write"], lat["read"]
	m.logf("postgres via ledger: closed loop, %d workers, %s per operation", m.cfg.Workers, m.cfg.MaxDuration)
	row.MaxWrites = saturate(ctx, m.cfg.Workers, m.cfg.MaxDuration, func(ctx context.Context) (bool, bool) { return transfer(ctx), true })
	row.MaxReads = saturate(ctx, m.cfg.Workers, m.cfg.MaxDuration, func(ctx context.Context) (bool, bool) { return read(ctx), true })

	// Read-your-write: after each 201 the payer reads its own account at
	// once; the balance must already show the debit. Sequential, with no
	// other traffic, so the expected balance is exact.
	a, b := users[0], users[1]
	acc, err := m.api.GetAccount(ctx, a, a.Account.ID)
	if err != nil {
		return row, err
	}
	balance, seen := acc.Balance, 0
	for range m.cfg.Probes {
		r := m.api.Do(ctx, a.Tokens.AccessToken, http.MethodPost, m.api.E.Ledger+"/v1/transfers",
			strata.TransferBody(a.Account.ID, b.Account.ID, 1), strata.NewKey())
		if err := r.Decode(http.StatusCreated, nil); err != nil {
			return row, fmt.Errorf("read-your-write transfer: %w", err)
		}
		acc, err := m.api.GetAccount(ctx, a, a.Account.ID)
		if err != nil {
			return row, err
		}
		if acc.Balance == balance-1 {
			seen++
		}
		balance = acc.Balance
	}
	row.Probes = append(row.Probes, rywProbe("read-your-write (balance right after a 201)", seen, m.cfg.Probes, ""))
	return row, nil
}

func rywProbe(name string, seen, n int, extra string) Probe {
	p := Probe{Name: name, Rate: -1}
	if n > 0 {
		p.Rate = float64(seen) / float64(n)
	}
	p.Result = fmt.Sprintf("%d/%d (%.0f %%)%s", seen, n, 100*max(p.Rate, 0), extra)
	return p
}

// analytics measures Cassandra through analytics: a write is POST
// /v1/events with Batch events, a read is GET /v1/accounts/{id}/activity.
// Every instance (the default and AltAnalytics) is measured in the same
// schedule, so their latencies compare under the same noise.
func (m *measurer) analytics(ctx context.Context) ([]Row, error) {
	insts := append([]Analytics{{URL: m.api.E.Analytics, Level: m.cfg.Level}}, m.cfg.AltAnalytics...)
	users := m.pop.Users
	if err := m.waitAccountsKnown(ctx, insts[0].URL); err != nil {
		return nil, err
	}
	write := func(base string, batch int) func(ctx context.Context) bool {
		return func(ctx context.Context) bool {
			u := users[rand.IntN(len(users))]
			r := m.api.Do(ctx, u.Tokens.AccessToken, http.MethodPost, base+"/v1/events", eventBatch(u, batch, nil), strata.NewKey())
			return r.Err == nil && r.Status == http.StatusAccepted
		}
	}
	read := func(base string) func(ctx context.Context) bool {
		return func(ctx context.Context) bool {
			u := users[rand.IntN(len(users))]
			r := m.api.Do(ctx, u.Tokens.AccessToken, http.MethodGet, base+"/v1/accounts/"+u.Account.ID+"/activity?limit=20", nil, "")
			return r.Err == nil && r.Status == http.StatusOK
		}
	}
	var ops []op
	for i, in := range insts {
		ops = append(ops, op{fmt.Sprintf("write%d", i), write(in.URL, m.cfg.Batch)}, op{fmt.Sprintf("read%d", i), read(in.URL)})
	}
	m.logf("cassandra via analytics: latency at %.0f/s for %s, %d instance(s)", m.cfg.Rate, m.cfg.Duration, len(insts))
	lat := latencies(ctx, m.cfg.Rate, m.cfg.Duration, ops)
	var rows []Row
	for i, in := range insts {
		row := Row{Store: "Cassandra", Through: "analytics, " + in.Level, WriteOp: fmt.Sprintf("POST /v1/events (%d events)", m.cfg.Batch),
			ReadOp: "GET /v1/accounts/{id}/activity", WriteUnit: m.cfg.Batch,
			Write: lat[fmt.Sprintf("write%d", i)], Read: lat[fmt.Sprintf("read%d", i)]}
		m.logf("cassandra via analytics (%s): closed loop, %d workers, %s per operation", in.Level, m.cfg.Workers, m.cfg.MaxDuration)
		w, r := write(in.URL, m.cfg.Batch), read(in.URL)
		row.MaxWrites = saturate(ctx, m.cfg.Workers, m.cfg.MaxDuration, func(ctx context.Context) (bool, bool) { return w(ctx), true })
		row.MaxReads = saturate(ctx, m.cfg.Workers, m.cfg.MaxDuration, func(ctx context.Context) (bool, bool) { return r(ctx), true })
		p, err := m.analyticsRYW(ctx, in.URL)
		if err != nil {
			return nil, err
		}
		row.Probes = append(row.Probes, p)
		rows = append(rows, row)
	}
	return rows, nil
}

// eventBatch is a POST /v1/events body of n account.viewed events on u's
// account; ids receives the event ids when not nil.
func eventBatch(u *strata.User, n int, ids []string) map[string]any {
	evs := make([]any, n)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range evs {
		id := uuid.NewString()
		if i < len(ids) {
			ids[i] = id
		}
		evs[i] = map[string]any{"event_id": id, "type": "account.viewed", "occurred_at": now, "account_id": u.Account.ID,
			"attributes": map[string]string{"screen": "tradeoffs"}}
	}
	return map[string]any{"events": evs}
}

// waitAccountsKnown waits until analytics has learned every account from
// the ledger's outbox (before that, events on them are refused with 422).
func (m *measurer) waitAccountsKnown(ctx context.Context, base string) error {
	deadline := time.Now().Add(60 * time.Second)
	for _, u := range m.pop.Users {
		for {
			r := m.api.Do(ctx, u.Tokens.AccessToken, http.MethodGet, base+"/v1/accounts/"+u.Account.ID+"/activity?limit=1", nil, "")
			if r.Err == nil && r.Status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("analytics does not know account %s after 60 s (last: %d %v)", u.Account.ID, r.Status, r.Err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// analyticsRYW posts one event, reads the account's activity at once from
// the same instance, and counts how often the event is already there; an
// event not there yet is polled for up to 2 s to measure its lag.
func (m *measurer) analyticsRYW(ctx context.Context, base string) (Probe, error) {
	u := m.pop.Users[0]
	seen := 0
	var worst time.Duration
	lagged := 0
	for range m.cfg.Probes {
		ids := make([]string, 1)
		r := m.api.Do(ctx, u.Tokens.AccessToken, http.MethodPost, base+"/v1/events", eventBatch(u, 1, ids), strata.NewKey())
		if err := r.Decode(http.StatusAccepted, nil); err != nil {
			return Probe{}, fmt.Errorf("read-your-write event: %w", err)
		}
		acked := time.Now()
		visible, err := m.activityHas(ctx, u, base, ids[0])
		if err != nil {
			return Probe{}, err
		}
		if visible {
			seen++
			continue
		}
		lagged++
		for !visible && time.Since(acked) < 2*time.Second {
			time.Sleep(5 * time.Millisecond)
			if visible, err = m.activityHas(ctx, u, base, ids[0]); err != nil {
				return Probe{}, err
			}
		}
		worst = max(worst, time.Since(acked))
	}
	extra := ""
	if lagged > 0 {
		extra = fmt.Sprintf("; the other %d visible within %s", lagged, worst.Round(time.Millisecond))
	}
	return rywProbe("read-your-write (event in activity right after a 202)", seen, m.cfg.Probes, extra), nil
}

func (m *measurer) activityHas(ctx context.Context, u *strata.User, base, id string) (bool, error) {
	var page struct {
		Events []struct {
			EventID string `json:"event_id"`
		} `json:"events"`
	}
	r := m.api.Do(ctx, u.Tokens.AccessToken, http.MethodGet, base+"/v1/accounts/"+u.Account.ID+"/activity?limit=50", nil, "")
	if err := r.Decode(http.StatusOK, &page); err != nil {
		return false, fmt.Errorf("activity: %w", err)
	}
	for _, e := range page.Events {
		if e.EventID == id {
			return true, nil
		}
	}
	return false, nil
}

// session measures Redis through the session service: a read is GET
// /v1/sessions/{sid} of the caller's own session (served from Redis after
// the first miss), a write is DELETE /v1/sessions/{sid}, a revoke: a
// Postgres write, then the cache key deleted. Sessions are only created by
// auth at login, so the sessions to revoke are made by signing one user in
// many times beforehand.
func (m *measurer) session(ctx context.Context) (Row, error) {
	name := fmt.Sprintf("load-%06d", m.cfg.Users+1)
	reader, err := m.api.Login(ctx, name, m.cfg.Password)
	if err != nil {
		return Row{}, err
	}
	own, err := SessionID(reader.Tokens.AccessToken)
	if err != nil {
		return Row{}, err
	}
	writes := int(m.cfg.Rate*m.cfg.Duration.Seconds()/2) + 2
	poolN := max(m.cfg.Workers*8, 32)
	m.logf("redis via session: signing %s in %d times for sessions to revoke", name, writes+poolN+m.cfg.StaleProbes)
	sids, err := m.sessions(ctx, name, writes+poolN+m.cfg.StaleProbes)
	if err != nil {
		return Row{}, err
	}
	pool := make(chan string, len(sids))
	for _, s := range sids[:writes] {
		pool <- s
	}
	get := func(ctx context.Context, sid string) int {
		r := m.api.Do(ctx, reader.Tokens.AccessToken, http.MethodGet, m.api.E.Session+"/v1/sessions/"+sid, nil, "")
		if r.Err != nil {
			return 0
		}
		return r.Status
	}
	revoke := func(ctx context.Context, sid string) bool {
		r := m.api.Do(ctx, reader.Tokens.AccessToken, http.MethodDelete, m.api.E.Session+"/v1/sessions/"+sid, nil, "")
		return r.Err == nil && r.Status == http.StatusNoContent
	}
	write := func(ctx context.Context) bool {
		select {
		case sid := <-pool:
			return revoke(ctx, sid)
		default:
			return false
		}
	}
	read := func(ctx context.Context) bool { return get(ctx, own) == http.StatusOK }
	if !read(ctx) { // fill the cache
		return Row{}, errors.New("session: own session not readable")
	}
	row := Row{Store: "Redis", Through: "session (cache-aside over Postgres)", WriteOp: "DELETE /v1/sessions/{sid}",
		ReadOp: "GET /v1/sessions/{sid}", WriteUnit: 1}
	m.logf("redis via session: latency at %.0f/s for %s", m.cfg.Rate, m.cfg.Duration)
	lat := latencies(ctx, m.cfg.Rate, m.cfg.Duration, []op{{"write", write}, {"read", read}})
	row.Write, row.Read = lat["write"], lat["read"]

	m.logf("redis via session: closed loop, %d workers, %s for reads, %d revokes for writes", m.cfg.Workers, m.cfg.MaxDuration, poolN)
	row.MaxReads = saturate(ctx, m.cfg.Workers, m.cfg.MaxDuration, func(ctx context.Context) (bool, bool) { return read(ctx), true })
	drain := make(chan string, poolN)
	for _, s := range sids[writes : writes+poolN] {
		drain <- s
	}
	close(drain)
	row.MaxWrites = saturate(ctx, m.cfg.Workers, time.Minute, func(ctx context.Context) (bool, bool) {
		sid, ok := <-drain
		if !ok {
			return false, false
		}
		return revoke(ctx, sid), true
	})

	m.logf("redis via session: stale-read window, %d revokes, %d readers", m.cfg.StaleProbes, m.cfg.StaleReaders)
	st, err := StaleWindow(ctx, sids[writes+poolN:], m.cfg.StaleReaders, m.cfg.StaleWatch, get, revoke)
	if err != nil {
		return row, err
	}
	row.Probes = append(row.Probes, st.Probe())
	return row, nil
}

// sessions signs name in n times (4 at a time: each login hashes a password
// with argon2id) and returns the new sessions' ids.
func (m *measurer) sessions(ctx context.Context, name string, n int) ([]string, error) {
	out := make([]string, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			u, err := m.api.Login(ctx, name, m.cfg.Password)
			if err == nil {
				out[i], err = SessionID(u.Tokens.AccessToken)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return out, nil
}

// SessionID reads the sid claim of an access token (its payload only: the
// services verify the signature, the load generator just needs the id).
func SessionID(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("access token is not a JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("access token payload: %w", err)
	}
	var c struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.SID == "" {
		return "", fmt.Errorf("access token has no sid (%v)", err)
	}
	return c.SID, nil
}
