-- Sessions opened by other logins than the built-in password: the scope and
-- claims of families, per-user claims, the jti of accepted JWT bearer
-- assertions (RFC 7523), and registered OAuth2 clients.

-- +goose Up
CREATE TABLE family_attributes (
    family_id   TEXT    NOT NULL PRIMARY KEY REFERENCES families (id) ON DELETE CASCADE,
    scope       TEXT    NOT NULL DEFAULT '',
    claims      TEXT    NOT NULL DEFAULT '{}', -- JSON object
    live_claims INTEGER NOT NULL DEFAULT 1 CHECK (live_claims IN (0, 1)),
    -- Opened by an authenticated confidential client, which alone may
    -- refresh it.
    confidential INTEGER NOT NULL DEFAULT 0 CHECK (confidential IN (0, 1))
) STRICT;

CREATE TABLE user_claims (
    user_id    TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    claims     TEXT    NOT NULL, -- JSON object
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE assertion_jtis (
    issuer     TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
) STRICT, WITHOUT ROWID;

CREATE INDEX assertion_jtis_expires_at ON assertion_jtis (expires_at);

CREATE TABLE clients (
    id          TEXT    NOT NULL PRIMARY KEY,
    secret_hash TEXT    NOT NULL DEFAULT '',
    scopes      TEXT, -- JSON array; NULL: any scope
    created_at  INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE clients;
DROP TABLE assertion_jtis;
DROP TABLE user_claims;
DROP TABLE family_attributes;
