-- +goose Up
-- Times are timestamptz (microsecond precision); NULL stands for the zero time.
CREATE TABLE families (
    id            text PRIMARY KEY,
    subject       text NOT NULL,
    client_id     text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoke_reason text NOT NULL DEFAULT ''
);
CREATE INDEX families_expires_at_idx ON families (expires_at);

-- Only the SHA-256 of a refresh token is stored, never the token itself.
CREATE TABLE refresh_tokens (
    hash           bytea PRIMARY KEY CHECK (octet_length(hash) = 32),
    family_id      text NOT NULL REFERENCES families (id) ON DELETE CASCADE,
    generation     bigint NOT NULL,
    issued_at      timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    consumed_at    timestamptz,
    successor_hash bytea,
    CHECK ((consumed_at IS NULL) = (successor_hash IS NULL))
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id, generation);

CREATE TABLE signing_keys (
    id          text PRIMARY KEY,
    algorithm   text NOT NULL,
    private_key bytea NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE secrets (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE users (
    id            text PRIMARY KEY,
    username      text NOT NULL,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username)
);

-- +goose Down
DROP TABLE users;
DROP TABLE secrets;
DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP TABLE families;
