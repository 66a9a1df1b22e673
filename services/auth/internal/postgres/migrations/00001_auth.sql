-- +goose Up
-- Roles (RBAC): the names the services' policies refer to.
CREATE TABLE roles (
    name        text PRIMARY KEY,
    description text NOT NULL
);
INSERT INTO roles (name, description) VALUES
    ('customer', 'opens accounts, moves money between own accounts'),
    ('teller',   'makes deposits in own region during business hours'),
    ('auditor',  'reads statistics'),
    ('admin',    'manages users; reads and deposits anywhere');

CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    username      text        NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,62}$'),
    password_hash text        NOT NULL,
    region        text        NOT NULL DEFAULT '',
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_roles (
    user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    role    text NOT NULL REFERENCES roles,
    PRIMARY KEY (user_id, role)
);

CREATE TABLE clients (
    id                        text PRIMARY KEY,
    kind                      text NOT NULL CHECK (kind IN ('public', 'service')),
    auth_method               text NOT NULL CHECK (auth_method IN ('none', 'tls_client_auth', 'private_key_jwt')),
    spiffe_id                 text UNIQUE,
    redirect_uris             text[] NOT NULL DEFAULT '{}',
    post_logout_redirect_uris text[] NOT NULL DEFAULT '{}',
    grant_types               text[] NOT NULL,
    audiences                 text[] NOT NULL DEFAULT '{}',
    exchange_audiences        text[] NOT NULL DEFAULT '{}',
    scopes                    text[] NOT NULL DEFAULT '{}',
    jwks                      jsonb  NOT NULL DEFAULT '{"keys":[]}',
    -- A public client must use PKCE; tls_client_auth needs the identity.
    CHECK (kind <> 'public' OR auth_method = 'none'),
    CHECK (auth_method <> 'tls_client_auth' OR spiffe_id IS NOT NULL)
);

-- Authorization requests from /oauth2/authorize until the code is redeemed.
CREATE TABLE auth_requests (
    id         uuid        PRIMARY KEY,
    client_id  text        NOT NULL REFERENCES clients ON DELETE CASCADE,
    params     jsonb       NOT NULL,
    user_id    uuid        REFERENCES users ON DELETE CASCADE,
    sid        text,
    family_id  uuid,
    auth_time  timestamptz,
    done       boolean     NOT NULL DEFAULT false,
    code_hash  bytea       UNIQUE, -- SHA-256 of the code; the code itself is never stored
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX auth_requests_by_expiry ON auth_requests (expires_at);

-- Refresh-token families: one per sign-in session. Reuse of a rotated
-- token revokes the family.
CREATE TABLE refresh_families (
    id            uuid        PRIMARY KEY,
    sid           text        NOT NULL,
    user_id       uuid        NOT NULL REFERENCES users ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    revoke_reason text
);
CREATE INDEX refresh_families_by_sid ON refresh_families (sid);

CREATE TABLE refresh_tokens (
    token_hash bytea       PRIMARY KEY, -- SHA-256 of the opaque token
    family_id  uuid        NOT NULL REFERENCES refresh_families ON DELETE CASCADE,
    client_id  text        NOT NULL REFERENCES clients ON DELETE CASCADE,
    user_id    uuid        NOT NULL,
    sid        text        NOT NULL,
    scopes     text[]      NOT NULL,
    amr        text[]      NOT NULL DEFAULT '{}',
    auth_time  timestamptz NOT NULL,
    state      text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'rotated', 'revoked')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

-- What each access token said, for userinfo, revocation and exchange.
CREATE TABLE access_tokens (
    id         uuid        PRIMARY KEY, -- the JWT's jti
    subject    text        NOT NULL,
    client_id  text        NOT NULL,
    sid        text        NOT NULL DEFAULT '',
    audiences  text[]      NOT NULL,
    scopes     text[]      NOT NULL DEFAULT '{}',
    roles      text[]      NOT NULL DEFAULT '{}',
    region     text        NOT NULL DEFAULT '',
    actor      text        NOT NULL DEFAULT '',
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);

CREATE TABLE signing_keys (
    id            text        PRIMARY KEY, -- the JWK kid
    state         text        NOT NULL CHECK (state IN ('next', 'current', 'retired', 'removed')),
    public_jwk    jsonb       NOT NULL,
    sealed        bytea,                   -- AES-256-GCM(PKCS#8) under the KEK, AAD = id
    created_at    timestamptz NOT NULL,
    publish_until timestamptz,
    CHECK (state = 'removed' OR sealed IS NOT NULL)
);
CREATE UNIQUE INDEX one_current_key ON signing_keys (state) WHERE state = 'current';
CREATE UNIQUE INDEX one_next_key ON signing_keys (state) WHERE state = 'next';

-- +goose Down
DROP TABLE signing_keys, access_tokens, refresh_tokens, refresh_families, auth_requests, clients, user_roles, users, roles;
