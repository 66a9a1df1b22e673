-- +goose Up
-- A redeemed code's request stays as a tombstone (code_used_at set) until
-- it expires, so a second redemption is recognised as reuse (RFC 6749
-- section 4.1.2) instead of as an unknown code.
ALTER TABLE auth_requests ADD COLUMN code_used_at timestamptz;
-- The reaper deletes expired refresh tokens by this index.
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

-- +goose Down
DROP INDEX refresh_tokens_by_expiry;
ALTER TABLE auth_requests DROP COLUMN code_used_at;
