-- +goose Up
-- Accounts. Balances are bigint minor units. Only settlement accounts (the
-- bank's side of deposits, one per currency) may go negative; the CHECK is
-- the database's backstop behind the domain rule. The name is stored only
-- sealed: ciphertext, its record's wrapped data key and the KEK id.
CREATE TABLE accounts (
    id         uuid        PRIMARY KEY,
    owner      text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('customer', 'settlement')),
    currency   text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance    bigint      NOT NULL DEFAULT 0,
    region     text        NOT NULL DEFAULT '',
    name_ct    bytea,
    name_dek   bytea,
    name_kek   text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT customer_balance_not_negative CHECK (kind = 'settlement' OR balance >= 0),
    CONSTRAINT customer_name_sealed CHECK (kind = 'settlement' OR (name_ct IS NOT NULL AND name_dek IS NOT NULL AND name_kek IS NOT NULL))
);
CREATE INDEX accounts_owner ON accounts (owner, created_at);
CREATE UNIQUE INDEX accounts_one_settlement_per_currency ON accounts (currency) WHERE kind = 'settlement';
INSERT INTO accounts (id, owner, kind, currency)
SELECT gen_random_uuid(), 'bank', 'settlement', c FROM unnest(ARRAY['EUR', 'USD', 'GBP', 'CHF', 'JPY']) AS c;

-- Transfers (deposits are transfers from a settlement account).
CREATE TABLE transfers (
    id              uuid        PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind IN ('transfer', 'deposit')),
    from_account_id uuid        NOT NULL REFERENCES accounts (id),
    to_account_id   uuid        NOT NULL REFERENCES accounts (id),
    amount          bigint      NOT NULL CHECK (amount > 0),
    currency        text        NOT NULL,
    memo_ct         bytea,
    memo_dek        bytea,
    memo_kek        text,
    created_at      timestamptz NOT NULL,
    CHECK (from_account_id <> to_account_id)
);

-- Postings: the two legs of every transfer, summing to zero.
CREATE TABLE postings (
    id            bigserial   PRIMARY KEY,
    transfer_id   uuid        NOT NULL REFERENCES transfers (id),
    account_id    uuid        NOT NULL REFERENCES accounts (id),
    amount        bigint      NOT NULL CHECK (amount <> 0),
    currency      text        NOT NULL,
    balance_after bigint      NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE INDEX postings_account ON postings (account_id, id DESC);
CREATE INDEX postings_transfer ON postings (transfer_id);

-- Transactional outbox: written in the transfer's transaction, drained by
-- the relay. available_at is the lease / backoff: a row is due when it has
-- passed.
CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    type         text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(),
    attempts     integer     NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox (available_at, id);

-- libs/idempotency.Schema
CREATE TABLE idempotency_keys (
    scope        text        NOT NULL,
    key          text        NOT NULL,
    fingerprint  bytea       NOT NULL,
    status       integer     NOT NULL,
    content_type text        NOT NULL,
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE outbox;
DROP TABLE postings;
DROP TABLE transfers;
DROP TABLE accounts;
