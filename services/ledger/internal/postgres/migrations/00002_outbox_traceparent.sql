-- +goose Up
-- The W3C trace context (traceparent) of the request that wrote the event:
-- the relay delivers asynchronously, in batches, and links its delivery
-- span to each event's originating trace (docs/observability.md). Empty
-- when the writer had no span.
ALTER TABLE outbox ADD COLUMN traceparent text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE outbox DROP COLUMN traceparent;
