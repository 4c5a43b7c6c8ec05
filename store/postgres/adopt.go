package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/silentrefresh/silentrefresh/assertion"
	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/user"
)

// PutAttributes stores the scope and claims of a family. An unknown family
// returns an error wrapping session.ErrNotFound.
func (s *Store) PutAttributes(ctx context.Context, familyID string, a session.Attributes) error {
	cl, err := claims.Encode(a.Claims)
	if err != nil {
		return fmt.Errorf("postgres: put attributes: %w", err)
	}
	const q = `
INSERT INTO family_attributes (family_id, scope, claims, live_claims, confidential)
SELECT id, $2, $3::jsonb, $4, $5 FROM families WHERE id = $1
ON CONFLICT (family_id) DO UPDATE SET scope = excluded.scope, claims = excluded.claims,
	live_claims = excluded.live_claims, confidential = excluded.confidential`
	var n int64
	err = s.do(ctx, "put attributes", true, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, q, familyID, a.Scope, string(cl), a.LiveClaims, a.ConfidentialClient)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("postgres: put attributes: %w", session.ErrNotFound)
	}
	return nil
}

// LookupToken reads a refresh token, its family, the family's attributes
// and its subject's user claims in one statement, without locks.
func (s *Store) LookupToken(ctx context.Context, tokenHash []byte) (session.TokenInfo, error) {
	const q = `
SELECT t.family_id, t.generation, t.issued_at, t.expires_at, t.consumed_at, t.successor_hash,
       f.subject, f.client_id, f.created_at, f.expires_at, f.revoked_at, f.revoke_reason, f.jkt,
       a.family_id IS NOT NULL, COALESCE(a.scope, ''), COALESCE(a.claims::text, '{}'), COALESCE(a.live_claims, true),
       COALESCE(a.confidential, false), u.claims::text
FROM refresh_tokens t
JOIN families f ON f.id = t.family_id
LEFT JOIN family_attributes a ON a.family_id = f.id
LEFT JOIN user_claims u ON u.user_id = f.subject
WHERE t.hash = $1`
	var (
		in                 session.TokenInfo
		consumed, fRevoked pgtype.Timestamptz
		hasAttrs, live     bool
		attrClaims         string
		userClaims         *string
	)
	err := s.do(ctx, "lookup token", true, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, q, tokenHash).Scan(
			&in.Token.FamilyID, &in.Token.Generation, &in.Token.IssuedAt, &in.Token.ExpiresAt, &consumed, &in.Token.SuccessorHash,
			&in.Family.Subject, &in.Family.ClientID, &in.Family.CreatedAt, &in.Family.ExpiresAt, &fRevoked, &in.Family.RevokeReason, &in.Family.KeyThumbprint,
			&hasAttrs, &in.Attributes.Scope, &attrClaims, &live, &in.Attributes.ConfidentialClient, &userClaims)
	})
	if noRows(err) {
		return session.TokenInfo{}, fmt.Errorf("postgres: lookup token: %w", session.ErrNotFound)
	}
	if err != nil {
		return session.TokenInfo{}, err
	}
	in.Token.Hash = append([]byte(nil), tokenHash...)
	in.Token.IssuedAt, in.Token.ExpiresAt, in.Token.ConsumedAt = in.Token.IssuedAt.UTC(), in.Token.ExpiresAt.UTC(), fromNull(consumed)
	in.Family.ID = in.Token.FamilyID
	in.Family.CreatedAt, in.Family.ExpiresAt, in.Family.RevokedAt = in.Family.CreatedAt.UTC(), in.Family.ExpiresAt.UTC(), fromNull(fRevoked)
	in.Attributes.LiveClaims = live
	if in.Attributes.Claims, err = claims.Decode([]byte(attrClaims)); err != nil {
		return session.TokenInfo{}, fmt.Errorf("postgres: lookup token: %w", err)
	}
	if !hasAttrs {
		in.Attributes = session.DefaultAttributes
	}
	if userClaims != nil {
		if in.SubjectClaims, err = claims.Decode([]byte(*userClaims)); err != nil {
			return session.TokenInfo{}, fmt.Errorf("postgres: lookup token: %w", err)
		}
	}
	return in, nil
}

// SetUserClaims replaces the claims of a user; an empty set removes them.
// An unknown user returns an error wrapping user.ErrNotFound.
func (s *Store) SetUserClaims(ctx context.Context, userID string, c claims.Set, at time.Time) error {
	var (
		q    string
		args []any
	)
	if len(c) == 0 {
		q = `
WITH d AS (DELETE FROM user_claims WHERE user_id = $1)
SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`
		args = []any{userID}
	} else {
		b, err := claims.Encode(c)
		if err != nil {
			return fmt.Errorf("postgres: set user claims: %w", err)
		}
		q = `
WITH i AS (
	INSERT INTO user_claims (user_id, claims, updated_at)
	SELECT id, $2::jsonb, $3 FROM users WHERE id = $1
	ON CONFLICT (user_id) DO UPDATE SET claims = excluded.claims, updated_at = excluded.updated_at
	RETURNING user_id
)
SELECT EXISTS (SELECT 1 FROM i)`
		args = []any{userID, string(b), orNow(at)}
	}
	var found bool
	err := s.do(ctx, "set user claims", true, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, q, args...).Scan(&found)
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("postgres: set user claims: %w", user.ErrNotFound)
	}
	return nil
}

// UserClaims returns the claims of a user, nil for none.
func (s *Store) UserClaims(ctx context.Context, userID string) (claims.Set, error) {
	var b string
	err := s.do(ctx, "user claims", true, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT claims::text FROM user_claims WHERE user_id = $1`, userID).Scan(&b)
	})
	if noRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := claims.Decode([]byte(b))
	if err != nil {
		return nil, fmt.Errorf("postgres: user claims: %w", err)
	}
	return c, nil
}

// UseJTI records the jti of an accepted assertion; one seen before returns
// an error wrapping assertion.ErrReplayed. Records past their expiry are
// deleted on the way.
func (s *Store) UseJTI(ctx context.Context, issuer, jti string, expiresAt, now time.Time) error {
	// Not idempotent: a retry after a lost answer would see its own row.
	const q = `
WITH d AS (DELETE FROM assertion_jtis WHERE expires_at < $4 AND NOT (issuer = $1 AND jti = $2)),
i AS (
	INSERT INTO assertion_jtis (issuer, jti, expires_at) VALUES ($1, $2, $3)
	ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = excluded.expires_at
	WHERE assertion_jtis.expires_at < $4
	RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM i)`
	var inserted bool
	err := s.do(ctx, "use jti", false, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, q, issuer, jti, expiresAt, orNow(now)).Scan(&inserted)
	})
	if err != nil {
		return err
	}
	if !inserted {
		return fmt.Errorf("postgres: use jti: %w", assertion.ErrReplayed)
	}
	return nil
}
