-- +goose Up
-- The SSO cookie is a random secret of its own, not the session id (which
-- every token carries in "sid"). Only its SHA-256 is kept, on the
-- session's refresh-token family: a revoked family (logout, reuse, a
-- disabled user) ends single sign-on with it.
ALTER TABLE refresh_families ADD COLUMN sso_hash bytea UNIQUE;

-- +goose Down
ALTER TABLE refresh_families DROP COLUMN sso_hash;
