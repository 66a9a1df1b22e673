-- +goose Up
-- Sessions: the source of truth behind the Redis cache.
CREATE TABLE sessions (
    sid          text        PRIMARY KEY,
    user_id      text        NOT NULL,
    family_id    text        NOT NULL DEFAULT '',
    auth_time    timestamptz NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
-- A user's live sessions, newest first (GET /v1/sessions).
CREATE INDEX sessions_by_user ON sessions (user_id, created_at DESC) WHERE revoked_at IS NULL;
-- The reaper deletes by expiry.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- +goose Down
DROP TABLE sessions;
