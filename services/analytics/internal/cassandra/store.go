package cassandra

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/strata-ref/strata/services/analytics/internal/analytics"
)

// Consistency is the consistency level of each operation. With one replica
// every level behaves alike; on a real cluster ONE is the fastest and may
// read stale rows, LOCAL_QUORUM is the usual choice, QUORUM spans DCs.
type Consistency struct {
	Ingest   gocql.Consistency
	Activity gocql.Consistency
	Stats    gocql.Consistency
}

// Allowed are the levels the service accepts in configuration.
var Allowed = []gocql.Consistency{gocql.One, gocql.LocalQuorum, gocql.Quorum}

// ParseConsistency accepts ONE, LOCAL_QUORUM or QUORUM.
func ParseConsistency(s string) (gocql.Consistency, error) {
	c, err := gocql.ParseConsistencyWrapper(s)
	if err != nil {
		return 0, err
	}
	for _, a := range Allowed {
		if c == a {
			return c, nil
		}
	}
	return 0, fmt.Errorf("consistency %s not allowed (ONE, LOCAL_QUORUM, QUORUM)", s)
}

// Shards splits one day of transfers over this many partitions. Changing it
// changes where rows live: it is part of the schema.
const Shards = 16

// Batch limits: an unlogged batch here always targets one partition (it is
// then one mutation on one replica set, cheaper than separate statements);
// it stays under Cassandra's batch_size_warn_threshold (5 KiB).
const (
	maxBatchStatements = 32
	maxBatchBytes      = 4 << 10
)

// Store implements analytics.Store on gocql.
type Store struct {
	s                *gocql.Session
	cl               Consistency
	tracer           trace.Tracer
	duration         *prometheus.HistogramVec
	writeConcurrency int
}

var _ analytics.Store = (*Store)(nil)

// NewStore returns the store; tp and reg receive its spans and metrics.
func NewStore(s *gocql.Session, cl Consistency, tp trace.TracerProvider, reg prometheus.Registerer) *Store {
	d := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "strata_cassandra_operation_duration_seconds",
		Help:    "Duration of analytics store operations by operation, consistency level and outcome.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"operation", "consistency", "outcome"})
	reg.MustRegister(d)
	return &Store{s: s, cl: cl, tracer: tp.Tracer("github.com/strata-ref/strata/services/analytics/internal/cassandra"),
		duration: d, writeConcurrency: 32}
}

// observe opens a span for one store operation and returns the function
// that ends it and records its duration; both carry the consistency level.
func (st *Store) observe(ctx context.Context, op string, cl gocql.Consistency) (context.Context, func(error)) {
	start := time.Now()
	ctx, span := st.tracer.Start(ctx, "cassandra."+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("db.system.name", "cassandra"),
		attribute.String("db.operation.name", op),
		attribute.String("db.cassandra.consistency_level", cl.String())))
	return ctx, func(err error) {
		outcome := "ok"
		if err != nil && !errors.Is(err, analytics.ErrNotFound) {
			outcome = "error"
			span.RecordError(err)
			span.SetStatus(codes.Error, "cassandra "+op+" failed")
		}
		st.duration.WithLabelValues(op, cl.String(), outcome).Observe(time.Since(start).Seconds())
		span.End()
	}
}

const (
	insertEvent = `INSERT INTO events_by_account_day (account_id, day, occurred_at, event_id, type, transfer_id, amount, currency, counterparty, direction)
	               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// A separate statement when there are attributes: binding a null would
	// write a tombstone for the column on every attribute-less row.
	insertEventAttrs = `INSERT INTO events_by_account_day (account_id, day, occurred_at, event_id, type, transfer_id, amount, currency, counterparty, direction, attributes)
	               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertDay   = `INSERT INTO account_days (account_id, day) VALUES (?, ?)`
	insertOwner = `INSERT INTO account_days (account_id, owner) VALUES (?, ?) USING TTL 0`
	insertXfer  = `INSERT INTO transfers_by_day (day, shard, transfer_id, amount, currency, occurred_at) VALUES (?, ?, ?, ?, ?, ?)`
)

type stmt struct {
	q    string
	args []any
	size int // rough bytes, for batch sizing
}

// partitionWrites collects statements per partition, in first-seen order.
type partitionWrites struct {
	keys []string
	m    map[string][]stmt
}

func (p *partitionWrites) add(key string, s stmt) {
	if _, ok := p.m[key]; !ok {
		p.keys = append(p.keys, key)
	}
	p.m[key] = append(p.m[key], s)
}

// Append groups the rows by partition and writes each partition's rows as
// one unlogged batch (or a plain statement when alone), all partitions
// concurrently. It never sends a multi-partition batch: that would make one
// coordinator wait on many replica sets, and a logged batch would add a
// batchlog write to buy atomicity this idempotent data does not need (a
// failed call is retried whole by the client).
func (st *Store) Append(ctx context.Context, w analytics.Write) (err error) {
	ctx, end := st.observe(ctx, "append", st.cl.Ingest)
	defer func() { end(err) }()

	pw := &partitionWrites{m: make(map[string][]stmt)}
	days := map[string]bool{}
	owners := map[string]bool{}
	for _, r := range w.Rows {
		id, err := gocql.ParseUUID(r.EventID)
		if err != nil {
			return fmt.Errorf("append: event id %q: %w", r.EventID, analytics.ErrInvalid)
		}
		day := analytics.Day(r.OccurredAt)
		dk := day.Format(time.DateOnly)
		args := []any{r.AccountID, day, r.OccurredAt, id, r.Type, r.TransferID, r.Amount, r.Currency, r.Counterparty, r.Direction}
		size := 64 + len(r.AccountID) + len(r.Type) + len(r.TransferID) + len(r.Counterparty)
		q := insertEvent
		if len(r.Attributes) > 0 {
			q = insertEventAttrs
			args = append(args, r.Attributes)
			for k, v := range r.Attributes {
				size += len(k) + len(v) + 8
			}
		}
		pw.add("e|"+r.AccountID+"|"+dk, stmt{q, args, size})
		if !days[r.AccountID+"|"+dk] {
			days[r.AccountID+"|"+dk] = true
			pw.add("d|"+r.AccountID, stmt{insertDay, []any{r.AccountID, day}, 32})
		}
		if r.Owner != "" && !owners[r.AccountID] {
			owners[r.AccountID] = true
			pw.add("d|"+r.AccountID, stmt{insertOwner, []any{r.AccountID, r.Owner}, 32 + len(r.Owner)})
		}
	}
	for _, x := range w.Rollups {
		shard := shardOf(x.TransferID)
		pw.add(fmt.Sprintf("r|%s|%d", x.Day.Format(time.DateOnly), shard),
			stmt{insertXfer, []any{x.Day, shard, x.TransferID, x.Amount, x.Currency, x.OccurredAt}, 48 + len(x.TransferID)})
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(st.writeConcurrency)
	for _, key := range pw.keys {
		for _, chunk := range chunks(pw.m[key]) {
			g.Go(func() error { return st.exec(gctx, chunk) })
		}
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("append %d rows: %w", len(w.Rows), err)
	}
	return nil
}

// chunks splits one partition's statements into batches under the limits.
func chunks(ss []stmt) [][]stmt {
	var out [][]stmt
	start, bytes := 0, 0
	for i, s := range ss {
		if i > start && (i-start >= maxBatchStatements || bytes+s.size > maxBatchBytes) {
			out = append(out, ss[start:i])
			start, bytes = i, 0
		}
		bytes += s.size
	}
	return append(out, ss[start:])
}

func (st *Store) exec(ctx context.Context, ss []stmt) error {
	if len(ss) == 1 {
		return st.s.Query(ss[0].q, ss[0].args...).Consistency(st.cl.Ingest).Idempotent(true).ExecContext(ctx)
	}
	b := st.s.Batch(gocql.UnloggedBatch).Consistency(st.cl.Ingest)
	addIdempotent(b, ss)
	return b.ExecContext(ctx)
}

// addIdempotent adds the statements to b marked idempotent, each of them:
// the driver retries a batch (NodeLostRetry) only when every entry is, and
// Batch.Query leaves the mark unset. These are plain INSERTs of fixed
// values, so running one twice writes the same cells.
func addIdempotent(b *gocql.Batch, ss []stmt) {
	for _, s := range ss {
		b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: s.q, Args: s.args, Idempotent: true})
	}
}

func shardOf(transferID string) int16 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(transferID))
	return int16(h.Sum32() % Shards)
}

// Owner reads the static owner column of the account's partition.
func (st *Store) Owner(ctx context.Context, accountID string) (owner string, err error) {
	ctx, end := st.observe(ctx, "owner", st.cl.Activity)
	defer func() { end(err) }()
	const q = `SELECT owner FROM account_days WHERE account_id = ? LIMIT 1`
	var o *string
	err = st.s.Query(q, accountID).Consistency(st.cl.Activity).Idempotent(true).ScanContext(ctx, &o)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return "", analytics.ErrNotFound
	case err != nil:
		return "", fmt.Errorf("owner of %s: %w", accountID, err)
	case o == nil || *o == "":
		return "", analytics.ErrNotFound // only client events so far: no owner learnt
	}
	return *o, nil
}

// TypesAt reads the type of any row already stored under rows' keys: one
// query per (account, day) partition, normally one per client batch.
func (st *Store) TypesAt(ctx context.Context, rows []analytics.Row) (types map[string]string, err error) {
	ctx, end := st.observe(ctx, "types_at", st.cl.Activity)
	defer func() { end(err) }()
	type part struct {
		account string
		day     time.Time
	}
	want := map[part]map[string]bool{} // partition -> event ids
	at := map[part][]time.Time{}
	for _, r := range rows {
		p := part{r.AccountID, analytics.Day(r.OccurredAt)}
		if want[p] == nil {
			want[p] = map[string]bool{}
		}
		want[p][r.EventID] = true
		at[p] = append(at[p], r.OccurredAt)
	}
	const q = `SELECT event_id, type FROM events_by_account_day WHERE account_id = ? AND day = ? AND occurred_at IN ?`
	types = map[string]string{}
	for p, ids := range want {
		iter := st.s.Query(q, p.account, p.day, at[p]).Consistency(st.cl.Activity).Idempotent(true).IterContext(ctx)
		var (
			id  gocql.UUID
			typ string
		)
		for iter.Scan(&id, &typ) {
			if ids[id.String()] {
				types[id.String()] = typ
			}
		}
		if err := iter.Close(); err != nil {
			return nil, fmt.Errorf("types at %s: %w", p.account, err)
		}
	}
	return types, nil
}

// daysPerRead bounds how many day partitions one activity page may visit.
const daysPerRead = 32

// Activity reads the account's day index from at.Day backwards, then each
// day partition newest first, with Cassandra's paging state carrying the
// position inside a partition from one page to the next.
func (st *Store) Activity(ctx context.Context, accountID string, at analytics.Position, limit int) (evs []analytics.Event, next analytics.Position, err error) {
	ctx, end := st.observe(ctx, "activity", st.cl.Activity)
	defer func() { end(err) }()

	q := st.s.Query(`SELECT day FROM account_days WHERE account_id = ? LIMIT ?`, accountID, daysPerRead)
	if !at.IsZero() {
		q = st.s.Query(`SELECT day FROM account_days WHERE account_id = ? AND day <= ? LIMIT ?`, accountID, at.Day, daysPerRead)
	}
	var days []time.Time
	iter := q.Consistency(st.cl.Activity).Idempotent(true).IterContext(ctx)
	var d time.Time
	for iter.Scan(&d) {
		if !d.IsZero() { // a partition holding only the static owner has no day
			days = append(days, d.UTC())
		}
		d = time.Time{}
	}
	if err := iter.Close(); err != nil {
		return nil, analytics.Position{}, fmt.Errorf("activity days of %s: %w", accountID, err)
	}

	const sel = `SELECT occurred_at, event_id, type, transfer_id, amount, currency, counterparty, direction, attributes
	             FROM events_by_account_day WHERE account_id = ? AND day = ?`
	evs = make([]analytics.Event, 0, limit)
	for i, day := range days {
		var state []byte
		if day.Equal(at.Day) {
			state = at.State
		}
		for {
			sent := state
			iter := st.s.Query(sel, accountID, day).Consistency(st.cl.Activity).Idempotent(true).
				PageSize(limit - len(evs)).PageState(sent).IterContext(ctx)
			state = iter.PageState()
			var (
				e  analytics.Event
				id gocql.UUID
			)
			for iter.Scan(&e.OccurredAt, &id, &e.Type, &e.TransferID, &e.Amount, &e.Currency, &e.Counterparty, &e.Direction, &e.Attributes) {
				e.EventID, e.AccountID, e.OccurredAt = id.String(), accountID, e.OccurredAt.UTC()
				evs = append(evs, e)
				e = analytics.Event{}
			}
			if err := iter.Close(); err != nil {
				var re gocql.RequestError
				// A paging state Cassandra rejects came from a forged cursor.
				if sent != nil && errors.As(err, &re) && (re.Code() == gocql.ErrCodeInvalid || re.Code() == gocql.ErrCodeProtocol) {
					return nil, analytics.Position{}, &analytics.ValidationError{Index: -1, Field: "page", Reason: "not a cursor from this listing"}
				}
				return nil, analytics.Position{}, fmt.Errorf("activity of %s on %s: %w", accountID, day.Format(time.DateOnly), err)
			}
			if len(evs) == limit {
				switch {
				case len(state) > 0:
					return evs, analytics.Position{Day: day, State: state}, nil
				case i+1 < len(days):
					return evs, analytics.Position{Day: days[i+1]}, nil
				case len(days) == daysPerRead:
					return evs, analytics.Position{Day: day.AddDate(0, 0, -1)}, nil
				}
				return evs, analytics.Position{}, nil
			}
			if len(state) == 0 {
				break // this day is exhausted
			}
		}
	}
	if len(days) == daysPerRead {
		// More days may follow; the next page starts before the last one read.
		return evs, analytics.Position{Day: days[len(days)-1].AddDate(0, 0, -1)}, nil
	}
	return evs, analytics.Position{}, nil
}

// TransferTotals reads the day's shards concurrently and sums them by
// currency. Reading every row is what makes redelivery harmless; see
// docs/analytics.md for when to pre-aggregate closed days instead.
func (st *Store) TransferTotals(ctx context.Context, day time.Time) (out []analytics.Totals, err error) {
	ctx, end := st.observe(ctx, "transfer_totals", st.cl.Stats)
	defer func() { end(err) }()
	const q = `SELECT currency, amount FROM transfers_by_day WHERE day = ? AND shard = ?`
	per := make([]map[string]*analytics.Totals, Shards)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for shard := range int16(Shards) {
		g.Go(func() error {
			m := map[string]*analytics.Totals{}
			iter := st.s.Query(q, day, shard).Consistency(st.cl.Stats).Idempotent(true).PageSize(5000).IterContext(gctx)
			var (
				cur    string
				amount int64
			)
			for iter.Scan(&cur, &amount) {
				t := m[cur]
				if t == nil {
					t = &analytics.Totals{Currency: cur}
					m[cur] = t
				}
				if amount > math.MaxInt64-t.Amount {
					_ = iter.Close()
					return fmt.Errorf("%s total overflows int64", cur)
				}
				t.Count++
				t.Amount += amount
			}
			per[shard] = m
			return iter.Close()
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("transfer totals %s: %w", day.Format(time.DateOnly), err)
	}
	sum := map[string]*analytics.Totals{}
	for _, m := range per {
		for c, t := range m {
			acc := sum[c]
			if acc == nil {
				acc = &analytics.Totals{Currency: c}
				sum[c] = acc
			}
			if t.Amount > math.MaxInt64-acc.Amount {
				return nil, fmt.Errorf("transfer totals %s: %s overflows int64", day.Format(time.DateOnly), c)
			}
			acc.Count += t.Count
			acc.Amount += t.Amount
		}
	}
	for _, t := range sum {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b analytics.Totals) int { return strings.Compare(a.Currency, b.Currency) })
	return out, nil
}
