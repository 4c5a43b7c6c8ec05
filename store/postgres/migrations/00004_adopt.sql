-- Sessions opened by other logins than the built-in password: the scope and
-- claims of families, per-user claims, the jti of accepted JWT bearer
-- assertions (RFC 7523), and registered OAuth2 clients.

-- +goose Up
CREATE TABLE family_attributes (
    family_id   text PRIMARY KEY REFERENCES families (id) ON DELETE CASCADE,
    scope       text NOT NULL DEFAULT '',
    claims      jsonb NOT NULL DEFAULT '{}',
    live_claims boolean NOT NULL DEFAULT true,
    -- Opened by an authenticated confidential client, which alone may
    -- refresh it.
    confidential boolean NOT NULL DEFAULT false
);

CREATE TABLE user_claims (
    user_id    text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    claims     jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE assertion_jtis (
    issuer     text NOT NULL,
    jti        text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX assertion_jtis_expires_at_idx ON assertion_jtis (expires_at);

CREATE TABLE clients (
    id          text PRIMARY KEY,
    secret_hash text NOT NULL DEFAULT '',
    scopes      jsonb, -- NULL: any scope
    created_at  timestamptz NOT NULL
);

-- +goose Down
DROP TABLE clients;
DROP TABLE assertion_jtis;
DROP TABLE user_claims;
DROP TABLE family_attributes;
