package analytics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/timeout"
	"golang.org/x/sync/errgroup"

	"github.com/strata-ref/strata/libs/resilience"
)

// Config tunes the service. Zero fields take the defaults in brackets.
type Config struct {
	WriteTimeout time.Duration // one ingestion's writes [1 s]
	ReadTimeout  time.Duration // one activity page or stats query [2 s]
	// MaxInFlightWrites bounds concurrent ingestions [256]. When Cassandra
	// is slow, requests beyond it are refused at once (503) instead of
	// piling up goroutines and memory while they wait.
	MaxInFlightWrites uint
	// BreakerDelay is how long the open breaker waits before a trial call [2 s].
	BreakerDelay time.Duration
	MaxStatsDays int // widest /v1/stats/transfers range [31]
	Now          func() time.Time
	// Sessions checks that a client write's session is still alive, as the
	// ledger does before moving money: a token whose user signed out (or
	// was disabled) writes nothing, although the JWT is valid until exp.
	// Nil checks nothing (unit tests of the rules only; main always sets it).
	Sessions Sessions
}

func (c *Config) defaults() {
	if c.WriteTimeout == 0 {
		c.WriteTimeout = time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 2 * time.Second
	}
	if c.MaxInFlightWrites == 0 {
		c.MaxInFlightWrites = 256
	}
	if c.BreakerDelay == 0 {
		c.BreakerDelay = 2 * time.Second
	}
	if c.MaxStatsDays == 0 {
		c.MaxStatsDays = 31
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Observer receives the ingest outcomes worth a metric.
type Observer interface {
	Ingested(source string, events, rows int)
	Refused(source, reason string) // invalid, unknown_account, session, unavailable, shed
}

// Service is the analytics use cases over a Store, with every store call
// behind a timeout inside the "cassandra" circuit breaker.
type Service struct {
	store  Store
	cfg    Config
	obs    Observer
	log    *slog.Logger
	writes failsafe.Executor[any] // bulkhead, then breaker, then timeout
	reads  failsafe.Executor[any] // breaker, then timeout
	cb     circuitbreaker.CircuitBreaker[any]
	owners *ownerCache
}

// NewService wires the service.
func NewService(store Store, cfg Config, obs Observer, res *resilience.Metrics, log *slog.Logger) *Service {
	cfg.defaults()
	// Only Cassandra's health counts against the breaker: a caller's bad
	// cursor, an unknown account or a cancelled request say nothing about it.
	cb := resilience.NewBreaker[any](resilience.BreakerConfig{Dependency: "cassandra", MinExecutions: 5, Delay: cfg.BreakerDelay,
		IsFailure: func(err error) bool {
			return resilience.DefaultIsFailure(err) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalid)
		}}, res, log)
	// The bulkhead is outermost: a request it sheds never reaches the
	// breaker, so shedding load cannot open the circuit.
	bh := bulkhead.New[any](cfg.MaxInFlightWrites)
	return &Service{
		store: store, cfg: cfg, obs: obs, log: log, cb: cb,
		writes: failsafe.With[any](bh, cb, timeout.New[any](cfg.WriteTimeout)),
		reads:  failsafe.With[any](cb, timeout.New[any](cfg.ReadTimeout)),
		owners: newOwnerCache(100_000),
	}
}

// RetryAfter is how long a client should wait after ErrUnavailable: the
// breaker's remaining open delay, at least one second.
func (s *Service) RetryAfter() time.Duration { return max(s.cb.RemainingDelay(), time.Second) }

// IngestClient stores a client batch. Every event must name an account the
// caller owns (admins: any account analytics knows), so nobody can write
// into another customer's activity.
func (s *Service) IngestClient(ctx context.Context, caller Caller, evs []ClientEvent) error {
	w, err := PlanClient(evs, s.cfg.Now())
	if err != nil {
		s.obs.Refused("client", "invalid")
		return err
	}
	if err := s.checkOwnership(ctx, caller, w.Rows); err != nil {
		return err
	}
	if err := s.checkNotLedgerRows(ctx, w.Rows); err != nil {
		return err
	}
	// Last before the write: the stateful check (a call to the session
	// service) is paid only by requests that would be written.
	if s.cfg.Sessions != nil {
		if err := s.cfg.Sessions.Alive(ctx, caller.SessionID); err != nil {
			s.obs.Refused("client", "session")
			return fmt.Errorf("ingest client events: %w", err)
		}
	}
	if err := s.write(ctx, "client", w); err != nil {
		return fmt.Errorf("ingest client events: %w", err)
	}
	s.obs.Ingested("client", len(w.Rows), len(w.Rows))
	return nil
}

// IngestLedger stores a batch from the ledger's outbox relay. Redelivery is
// expected (at-least-once) and harmless: every key holds the event id or
// transfer id, so a second write overwrites the first with the same values.
func (s *Service) IngestLedger(ctx context.Context, evs []LedgerEvent) error {
	w, err := PlanLedger(evs, s.cfg.Now())
	if err != nil {
		s.obs.Refused("ledger", "invalid")
		return err
	}
	if err := s.write(ctx, "ledger", w); err != nil {
		return fmt.Errorf("ingest ledger events: %w", err)
	}
	for _, r := range w.Rows {
		if r.Owner != "" {
			s.owners.put(r.AccountID, r.Owner)
		}
	}
	s.obs.Ingested("ledger", len(evs), len(w.Rows))
	return nil
}

func (s *Service) write(ctx context.Context, source string, w Write) error {
	err := s.writes.WithContext(ctx).RunWithExecution(func(e failsafe.Execution[any]) error {
		return s.store.Append(e.Context(), w)
	})
	return s.unavailable(ctx, source, err)
}

// unavailable turns a store or policy failure into ErrUnavailable (503 +
// Retry-After at the edge), logging the cause once per call, not per row.
func (s *Service) unavailable(ctx context.Context, source string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalid):
		return err
	case errors.Is(err, bulkhead.ErrFull):
		s.obs.Refused(source, "shed")
		return fmt.Errorf("%w: too many writes in flight", ErrUnavailable)
	case errors.Is(err, circuitbreaker.ErrOpen):
		s.obs.Refused(source, "unavailable")
		return fmt.Errorf("%w: circuit open", ErrUnavailable) // logged when it opened
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return err // the client went away
	default:
		s.obs.Refused(source, "unavailable")
		s.log.WarnContext(ctx, "cassandra call failed", "source", source, "err", err)
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
}

// checkOwnership verifies the caller owns every account in rows. Owners
// never change, so a positive answer is cached for the life of the process
// and a steady stream of events costs no extra reads.
func (s *Service) checkOwnership(ctx context.Context, caller Caller, rows []Row) error {
	accounts := make(map[string]bool)
	for _, r := range rows {
		accounts[r.AccountID] = true
	}
	for id := range accounts {
		owner, err := s.owner(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			s.obs.Refused("client", "unknown_account")
			return fmt.Errorf("account %s: %w", id, ErrUnknownAccount)
		case err != nil:
			return err
		case owner != caller.Subject && !caller.HasRole(RoleAdmin):
			s.obs.Refused("client", "unknown_account")
			return fmt.Errorf("account %s: %w", id, ErrUnknownAccount)
		}
	}
	return nil
}

// checkNotLedgerRows refuses client events whose key (account, day,
// occurred_at, event_id) already holds a ledger row: both are visible in
// the owner's activity, so without this check a customer could overwrite
// their own transfer.posted rows and hide a transfer from their history.
// Ledger event ids are random, so a row can only be targeted once it
// exists and is visible; a read before the write is therefore enough, and
// a ledger redelivery still overwrites whatever a client wrote. Re-sending
// one's own client event (a retry) stays idempotent.
func (s *Service) checkNotLedgerRows(ctx context.Context, rows []Row) error {
	v, err := s.reads.WithContext(ctx).GetWithExecution(func(e failsafe.Execution[any]) (any, error) {
		return s.store.TypesAt(e.Context(), rows)
	})
	if err != nil {
		return s.unavailable(ctx, "read", err)
	}
	for id, typ := range v.(map[string]string) {
		if !slices.Contains(ClientTypes, typ) {
			s.obs.Refused("client", "invalid")
			return bad(-1, "event_id", id+" is already used by a ledger event")
		}
	}
	return nil
}

func (s *Service) owner(ctx context.Context, accountID string) (string, error) {
	if o, ok := s.owners.get(accountID); ok {
		return o, nil
	}
	v, err := s.reads.WithContext(ctx).GetWithExecution(func(e failsafe.Execution[any]) (any, error) {
		return s.store.Owner(e.Context(), accountID)
	})
	if err != nil {
		return "", s.unavailable(ctx, "read", err)
	}
	o := v.(string)
	s.owners.put(accountID, o)
	return o, nil
}

// Activity returns one page of an account's events, newest first. Anyone
// but the owner gets ErrNotFound, exactly as for an account that does not
// exist, so ids cannot be probed.
func (s *Service) Activity(ctx context.Context, caller Caller, accountID, page string, limit int) (Page, error) {
	if !idPattern.MatchString(accountID) {
		return Page{}, ErrNotFound
	}
	if limit < 1 || limit > 200 {
		return Page{}, bad(-1, "limit", "must be between 1 and 200")
	}
	at, err := decodeCursor(accountID, page)
	if err != nil {
		return Page{}, err
	}
	owner, err := s.owner(ctx, accountID)
	if err != nil {
		return Page{}, err
	}
	if owner != caller.Subject {
		return Page{}, ErrNotFound
	}
	type result struct {
		events []Event
		next   Position
	}
	v, err := s.reads.WithContext(ctx).GetWithExecution(func(e failsafe.Execution[any]) (any, error) {
		evs, next, err := s.store.Activity(e.Context(), accountID, at, limit)
		return result{evs, next}, err
	})
	if err != nil {
		return Page{}, fmt.Errorf("activity: %w", s.unavailable(ctx, "read", err))
	}
	r := v.(result)
	if r.events == nil {
		r.events = []Event{}
	}
	return Page{Events: r.events, NextPage: encodeCursor(accountID, r.next)}, nil
}

// TransferStats sums posted transfers per UTC day in [from, to] for
// auditors and admins. Each day's total is computed at read time from the
// idempotent per-transfer rows, so a redelivered event never counts twice.
func (s *Service) TransferStats(ctx context.Context, caller Caller, from, to string) (Stats, error) {
	if !caller.HasRole(RoleAuditor, RoleAdmin) {
		return Stats{}, ErrForbidden
	}
	today := Day(s.cfg.Now())
	end, start := today, today
	if to != "" {
		t, ok := ParseDay(to)
		if !ok {
			return Stats{}, bad(-1, "to", "must be YYYY-MM-DD")
		}
		end = t
	}
	start = end
	if from != "" {
		t, ok := ParseDay(from)
		if !ok {
			return Stats{}, bad(-1, "from", "must be YYYY-MM-DD")
		}
		start = t
	}
	days := int(end.Sub(start)/(24*time.Hour)) + 1
	switch {
	case days < 1:
		return Stats{}, bad(-1, "from", "must not be after to")
	case days > s.cfg.MaxStatsDays:
		return Stats{}, bad(-1, "from", "range longer than "+fmt.Sprint(s.cfg.MaxStatsDays)+" days")
	}
	out := Stats{From: start.Format(dayLayout), To: end.Format(dayLayout), Days: make([]DayTotals, days)}
	_, err := s.reads.WithContext(ctx).GetWithExecution(func(e failsafe.Execution[any]) (any, error) {
		g, gctx := errgroup.WithContext(e.Context())
		g.SetLimit(4)
		for i := range days {
			day := start.AddDate(0, 0, i)
			g.Go(func() error {
				t, err := s.store.TransferTotals(gctx, day)
				out.Days[i] = DayTotals{Day: day.Format(dayLayout), Totals: t}
				return err
			})
		}
		return nil, g.Wait()
	})
	if err != nil {
		return Stats{}, fmt.Errorf("transfer stats: %w", s.unavailable(ctx, "read", err))
	}
	sum := map[string]*Totals{}
	var order []string
	for i := range out.Days {
		if out.Days[i].Totals == nil {
			out.Days[i].Totals = []Totals{}
		}
		for _, t := range out.Days[i].Totals {
			acc, ok := sum[t.Currency]
			if !ok {
				acc = &Totals{Currency: t.Currency}
				sum[t.Currency] = acc
				order = append(order, t.Currency)
			}
			acc.Count += t.Count
			if t.Amount > math.MaxInt64-acc.Amount {
				return Stats{}, fmt.Errorf("transfer stats: %s total overflows int64", t.Currency)
			}
			acc.Amount += t.Amount
		}
	}
	out.Totals = []Totals{}
	slices.Sort(order)
	for _, c := range order {
		out.Totals = append(out.Totals, *sum[c])
	}
	return out, nil
}

// ownerCache holds account owners, which never change once learnt. It is
// bounded: when full it starts over, which costs one read per account.
type ownerCache struct {
	mu  sync.RWMutex
	max int
	m   map[string]string
}

func newOwnerCache(n int) *ownerCache { return &ownerCache{max: n, m: make(map[string]string)} }

func (c *ownerCache) get(id string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	o, ok := c.m[id]
	return o, ok
}

func (c *ownerCache) put(id, owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		c.m = make(map[string]string)
	}
	c.m[id] = owner
}
