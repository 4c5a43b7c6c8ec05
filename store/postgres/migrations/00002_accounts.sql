-- +goose Up
-- Operators' controls and bounded storage: disabled users, the sessions of
-- a user (listing, revoking them all, the per-user cap), and the sweep of
-- consumed tokens past their idle expiry.
ALTER TABLE users ADD COLUMN disabled_at timestamptz;

-- Only live families are looked up by subject: revoked ones stay until their
-- absolute expiry, and a user past the session cap leaves one per login.
CREATE INDEX families_subject_idx ON families (subject) WHERE revoked_at IS NULL;

-- Only consumed tokens are swept, so only they are indexed.
CREATE INDEX refresh_tokens_spent_idx ON refresh_tokens (expires_at) WHERE consumed_at IS NOT NULL;

-- +goose Down
DROP INDEX refresh_tokens_spent_idx;
DROP INDEX families_subject_idx;
ALTER TABLE users DROP COLUMN disabled_at;
