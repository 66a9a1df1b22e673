package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/strata-ref/strata/libs/crypto/envelope"
)

// OutboxEvent is one stored event awaiting delivery.
type OutboxEvent struct {
	ID       int64
	Payload  []byte // a TransferPosted, as JSON
	Attempts int
	// TraceParent is the W3C traceparent of the request that wrote the
	// event ("" if it had no span); the relay links its delivery to it.
	TraceParent string
}

// TraceParent returns the span in ctx as a W3C traceparent value, or ""
// when ctx carries none. The store writes it into the outbox row in the
// transfer's transaction, so the trace context survives until the relay
// picks the event up, however much later that is.
func TraceParent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c.Get("traceparent")
}

// traceLink turns a stored traceparent back into a span link.
func traceLink(traceparent string, outboxID int64) (trace.Link, bool) {
	if traceparent == "" {
		return trace.Link{}, false
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	sc := trace.SpanContextFromContext(ctx)
	return trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.Int64("strata.outbox.id", outboxID)}}, sc.IsValid()
}

// Outbox is the relay's view of the store.
type Outbox interface {
	ClaimEvents(ctx context.Context, limit int, lease time.Duration) ([]OutboxEvent, error)
	DeleteEvents(ctx context.Context, ids []int64) error
	RetryEventsAfter(ctx context.Context, ids []int64, delay time.Duration) error
	OutboxStats(ctx context.Context) (pending int64, oldest time.Duration, err error)
}

// Sink delivers a batch of events (the analytics service's internal
// ingestion). It must be idempotent by event_id: delivery is at least once.
type Sink interface {
	Deliver(ctx context.Context, events []json.RawMessage) error
}

// RelayObserver receives the relay's metrics.
type RelayObserver interface {
	Delivered(n int)
	Failed()
	Lag(pending int64, oldest time.Duration)
	// Leading reports whether this replica's relay is the active one
	// (strata_outbox_relay_leader).
	Leading(bool)
}

// Leader elects the one active relay among the ledger's replicas
// (postgres.RelayLock: an advisory lock held on a dedicated connection).
type Leader interface {
	// Lead blocks until this replica leads or ctx ends.
	Lead(ctx context.Context) (*Term, error)
}

// Term is one stretch of leadership.
type Term struct {
	// Lost is closed when the leadership ends without Release: the
	// connection holding the lock failed, so another replica may lead now.
	Lost <-chan struct{}
	// Outbox is the store as seen by the leader: it claims events only
	// while the leadership holds (through the lock's own connection), so a
	// replica that lost it cannot claim a batch even before it notices.
	Outbox Outbox
	// Release gives the leadership up.
	Release func()
}

// ErrNotLeader is returned by a Term's Outbox once the leadership is lost.
var ErrNotLeader = errors.New("outbox relay: not the leader")

// Relay drains the outbox into the sink: at least once, in batches, with
// exponential backoff while the sink fails. Events wait in the table while
// analytics is down; nothing is lost, because a row is deleted only after
// the sink acknowledged it.
//
// With several ledger replicas, Leader lets exactly one of them relay: the
// others wait for the leadership and take over when the leader's
// connection to Postgres (or the leader) goes away. The claim lease stays
// underneath: a batch claimed by a leader that has just lost its
// leadership is not claimed again before its lease ends.
type Relay struct {
	Outbox   Outbox
	Sink     Sink
	Observer RelayObserver
	// Leader, when set, elects the one active relay across replicas; nil
	// relays unconditionally (a single replica, tests).
	Leader Leader
	Log    *slog.Logger
	// Tracer starts one span per delivered batch [no spans when nil].
	Tracer   trace.Tracer
	Batch    int           // events per delivery [100]
	Lease    time.Duration // how long a claimed batch is ours [30 s]
	Idle     time.Duration // poll interval when the outbox is empty [200 ms]
	MaxDelay time.Duration // backoff cap [30 s]
	// Yield is how long a relay that lost the leadership waits before
	// competing for it again [1 s]: its connection just failed, so a
	// replica with a working one should take over rather than race it.
	Yield time.Duration
}

// Run relays until ctx ends: with a Leader, only while this replica leads.
func (r *Relay) Run(ctx context.Context) {
	r.defaults()
	if r.Leader == nil {
		r.relay(ctx, r.Outbox, nil)
		return
	}
	failures := 0
	for ctx.Err() == nil {
		term, err := r.Leader.Lead(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			wait := backoff(failures, r.MaxDelay)
			r.Log.WarnContext(ctx, "outbox relay: cannot reach the leadership lock", "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			continue
		}
		failures = 0
		r.leading(true)
		r.Log.InfoContext(ctx, "outbox relay: leading; this replica relays the outbox")
		r.relay(ctx, term.Outbox, term.Lost)
		term.Release()
		r.leading(false)
		if ctx.Err() == nil {
			r.Log.WarnContext(ctx, "outbox relay: leadership lost; relaying stopped until it is regained")
			select {
			case <-ctx.Done():
			case <-time.After(r.Yield):
			}
		}
	}
}

func (r *Relay) leading(on bool) {
	if r.Observer != nil {
		r.Observer.Leading(on)
	}
}

// relay runs the delivery loop on outbox until ctx ends or lost is closed
// (nil: never). A batch in flight when the leadership goes is finished,
// not abandoned: it was claimed while leading, and no other relay can
// claim it before its lease ends.
func (r *Relay) relay(ctx context.Context, outbox Outbox, lost <-chan struct{}) {
	failures := 0
	lagTick := time.NewTicker(time.Second)
	defer lagTick.Stop()
	for {
		n, err := r.once(ctx, outbox)
		wait := r.Idle
		switch {
		case errors.Is(err, ErrNotLeader):
			return
		case err != nil:
			failures++
			wait = backoff(failures, r.MaxDelay)
			if ctx.Err() == nil {
				r.Log.WarnContext(ctx, "outbox relay: delivery failed; events wait", "err", err, "retry_in", wait)
			}
		case n > 0:
			failures, wait = 0, 0
		default:
			failures = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-lost:
			return
		case <-lagTick.C:
			r.reportLag(ctx)
		case <-time.After(wait):
		}
	}
}

func (r *Relay) defaults() {
	if r.Batch == 0 {
		r.Batch = 100
	}
	if r.Lease == 0 {
		r.Lease = 30 * time.Second
	}
	if r.Idle == 0 {
		r.Idle = 200 * time.Millisecond
	}
	if r.MaxDelay == 0 {
		r.MaxDelay = 30 * time.Second
	}
	if r.Yield == 0 {
		r.Yield = time.Second
	}
	if r.Tracer == nil {
		r.Tracer = noop.NewTracerProvider().Tracer("")
	}
}

// Once delivers one batch and returns how many events it delivered.
//
// The delivery is traced as a new root span, "outbox.deliver", with a span
// link to the trace of every event in the batch (the request that wrote
// it), not as a child of one of them: a batch holds events of up to Batch
// different requests and a span has one parent, and delivery may come
// minutes after the request (analytics was down), which as a child would
// stretch the request's trace over that whole wait. The links still lead
// from the delivery to each transfer, and analytics' spans continue the
// delivery's trace through the traceparent the client sends.
func (r *Relay) Once(ctx context.Context) (n int, err error) {
	r.defaults()
	return r.once(ctx, r.Outbox)
}

func (r *Relay) once(ctx context.Context, outbox Outbox) (n int, err error) {
	events, err := outbox.ClaimEvents(ctx, r.Batch, r.Lease)
	if err != nil || len(events) == 0 {
		return 0, err
	}
	ids := make([]int64, len(events))
	raw := make([]json.RawMessage, len(events))
	links := make([]trace.Link, 0, len(events))
	for i, e := range events {
		ids[i], raw[i] = e.ID, bytes.Clone(e.Payload)
		if l, ok := traceLink(e.TraceParent, e.ID); ok {
			links = append(links, l)
		}
	}
	ctx, span := r.Tracer.Start(ctx, "outbox.deliver", trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithLinks(links...), trace.WithAttributes(attribute.Int("messaging.batch.message_count", len(events))))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "outbox delivery failed")
		}
		span.End()
	}()
	if err := r.Sink.Deliver(ctx, raw); err != nil {
		if r.Observer != nil {
			r.Observer.Failed()
		}
		// Make them due again soon rather than at the end of the lease; the
		// relay's own backoff spaces the attempts.
		if rerr := outbox.RetryEventsAfter(context.WithoutCancel(ctx), ids, time.Second); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return 0, fmt.Errorf("deliver %d events: %w", len(events), err)
	}
	if err := outbox.DeleteEvents(context.WithoutCancel(ctx), ids); err != nil {
		// Delivered but not deleted: they will be delivered again after the
		// lease, and analytics drops the duplicates by event_id.
		return 0, err
	}
	if r.Observer != nil {
		r.Observer.Delivered(len(events))
	}
	return len(events), nil
}

func (r *Relay) reportLag(ctx context.Context) {
	if r.Observer == nil {
		return
	}
	pending, oldest, err := r.Outbox.OutboxStats(ctx)
	if err == nil {
		r.Observer.Lag(pending, oldest)
	}
}

// backoff is exponential with full jitter: 100 ms, 200 ms, ... capped.
func backoff(failures int, limit time.Duration) time.Duration {
	d := 100 * time.Millisecond << min(failures-1, 10)
	d = min(d, limit)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// WrappedKey is one record's stored data key.
type WrappedKey struct {
	Table, RowID string
	Wrapped      []byte
	KEKID        string
}

// KeyStore is what Rewrap needs from the store.
type KeyStore interface {
	StaleKeys(ctx context.Context, primary string, limit int) ([]WrappedKey, error)
	UpdateKey(ctx context.Context, k WrappedKey, oldKEK string) error
}

// Rewrap moves every record's data key to the KMS's primary KEK (after a
// rotation), in batches, and returns how many it moved. Field ciphertexts
// are untouched; a record changed meanwhile is skipped and found again.
func Rewrap(ctx context.Context, store KeyStore, env *envelope.Envelope) (int, error) {
	primary, err := env.PrimaryID(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for {
		stale, err := store.StaleKeys(ctx, primary, 500)
		if err != nil {
			return total, err
		}
		if len(stale) == 0 {
			return total, nil
		}
		for _, k := range stale {
			wrapped, kek, err := env.Rewrap(ctx, k.Table, k.RowID, k.Wrapped)
			if err != nil {
				return total, err
			}
			old := k.KEKID
			k.Wrapped, k.KEKID = wrapped, kek
			if err := store.UpdateKey(ctx, k, old); err != nil {
				return total, err
			}
			total++
		}
	}
}
