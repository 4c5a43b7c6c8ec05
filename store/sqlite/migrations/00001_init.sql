-- Schema of the SQLite store. Times are INTEGER unix microseconds in UTC;
-- NULL stands for the zero time. Refresh tokens are kept only as their
-- SHA-256 hashes.

-- +goose Up
CREATE TABLE families (
    id            TEXT    NOT NULL PRIMARY KEY,
    subject       TEXT    NOT NULL,
    client_id     TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    revoke_reason TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX families_expires_at ON families (expires_at);

CREATE TABLE refresh_tokens (
    hash           BLOB    NOT NULL PRIMARY KEY CHECK (length(hash) = 32),
    family_id      TEXT    NOT NULL REFERENCES families (id) ON DELETE CASCADE,
    generation     INTEGER NOT NULL CHECK (generation >= 0),
    issued_at      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    consumed_at    INTEGER,
    successor_hash BLOB CHECK (successor_hash IS NULL OR length(successor_hash) = 32),
    -- A family is one chain: one token per generation. This also indexes
    -- family_id for FamilyTokens and the cascade of DeleteExpired.
    UNIQUE (family_id, generation)
) STRICT, WITHOUT ROWID;

CREATE TABLE signing_keys (
    id          TEXT    NOT NULL PRIMARY KEY,
    algorithm   TEXT    NOT NULL,
    private_key BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE secrets (
    name       TEXT    NOT NULL PRIMARY KEY,
    value      BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER
) STRICT;

-- +goose Down
DROP TABLE users;
DROP TABLE secrets;
DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP TABLE families;
