-- Operators' controls and bounded storage: disabled users, the sessions of
-- a user (listing, revoking them all, the per-user cap), and the sweep of
-- consumed tokens past their idle expiry.

-- +goose Up
ALTER TABLE users ADD COLUMN disabled_at INTEGER;

-- Only live families are looked up by subject: revoked ones stay until their
-- absolute expiry, and a user past the session cap leaves one per login.
CREATE INDEX families_subject ON families (subject) WHERE revoked_at IS NULL;

-- Only consumed tokens are swept, so only they are indexed: the index costs
-- one entry per rotation, written when the token is consumed.
CREATE INDEX refresh_tokens_spent ON refresh_tokens (expires_at) WHERE consumed_at IS NOT NULL;

-- +goose Down
DROP INDEX refresh_tokens_spent;
DROP INDEX families_subject;
ALTER TABLE users DROP COLUMN disabled_at;
