-- DPoP (RFC 9449): a family bound to a client's key keeps the key's
-- RFC 7638 thumbprint; '' for a bearer family.

-- +goose Up
ALTER TABLE families ADD COLUMN jkt text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE families DROP COLUMN jkt;
