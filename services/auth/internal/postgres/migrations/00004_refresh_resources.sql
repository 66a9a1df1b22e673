-- +goose Up
-- The resources (audiences) a grant was limited to at /oauth2/authorize
-- (RFC 8707); empty: any of the client's registered audiences may be
-- requested, and the default set is issued when none is.
ALTER TABLE refresh_tokens ADD COLUMN resources text[] NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE refresh_tokens DROP COLUMN resources;
