package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
		return fmt.Errorf("sqlite: put attributes: %w", err)
	}
	const q = `
		INSERT INTO family_attributes (family_id, scope, claims, live_claims, confidential)
		SELECT id, ?, ?, ?, ? FROM families WHERE id = ?
		ON CONFLICT (family_id) DO UPDATE SET scope = excluded.scope, claims = excluded.claims,
			live_claims = excluded.live_claims, confidential = excluded.confidential`
	res, err := s.ws.exec(ctx, nil, q, a.Scope, string(cl), a.LiveClaims, a.ConfidentialClient, familyID)
	if err != nil {
		return wrap("put attributes", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("put attributes", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: put attributes: %w", session.ErrNotFound)
	}
	return nil
}

// LookupToken reads a refresh token, its family, the family's attributes
// and its subject's user claims in one statement on a reader.
func (s *Store) LookupToken(ctx context.Context, tokenHash []byte) (session.TokenInfo, error) {
	const q = `
		SELECT t.family_id, t.generation, t.issued_at, t.expires_at, t.consumed_at, t.successor_hash,
		       f.subject, f.client_id, f.created_at, f.expires_at, f.revoked_at, f.revoke_reason, f.jkt,
		       a.family_id IS NOT NULL, COALESCE(a.scope, ''), COALESCE(a.claims, '{}'), COALESCE(a.live_claims, 1),
		       COALESCE(a.confidential, 0), u.claims
		FROM refresh_tokens t
		JOIN families f ON f.id = t.family_id
		LEFT JOIN family_attributes a ON a.family_id = f.id
		LEFT JOIN user_claims u ON u.user_id = f.subject
		WHERE t.hash = ?`
	var (
		in                       session.TokenInfo
		tIssued, tExp, tConsumed sql.NullInt64
		fCreated, fExp, fRevoked sql.NullInt64
		hasAttrs, live           bool
		attrClaims               string
		userClaims               sql.NullString
	)
	err := s.rs.queryRow(ctx, nil, q, tokenHash).Scan(
		&in.Token.FamilyID, &in.Token.Generation, &tIssued, &tExp, &tConsumed, &in.Token.SuccessorHash,
		&in.Family.Subject, &in.Family.ClientID, &fCreated, &fExp, &fRevoked, &in.Family.RevokeReason, &in.Family.KeyThumbprint,
		&hasAttrs, &in.Attributes.Scope, &attrClaims, &live, &in.Attributes.ConfidentialClient, &userClaims,
	)
	if errors.Is(err, sql.ErrNoRows) {
		return session.TokenInfo{}, fmt.Errorf("sqlite: lookup token: %w", session.ErrNotFound)
	}
	if err != nil {
		return session.TokenInfo{}, wrap("lookup token", err)
	}
	in.Token.Hash = append([]byte(nil), tokenHash...)
	in.Token.IssuedAt, in.Token.ExpiresAt, in.Token.ConsumedAt = fromMicros(tIssued), fromMicros(tExp), fromMicros(tConsumed)
	in.Family.ID = in.Token.FamilyID
	in.Family.CreatedAt, in.Family.ExpiresAt, in.Family.RevokedAt = fromMicros(fCreated), fromMicros(fExp), fromMicros(fRevoked)
	in.Attributes.LiveClaims = live
	if in.Attributes.Claims, err = claims.Decode([]byte(attrClaims)); err != nil {
		return session.TokenInfo{}, fmt.Errorf("sqlite: lookup token: %w", err)
	}
	if !hasAttrs {
		in.Attributes = session.DefaultAttributes
	}
	if userClaims.Valid {
		if in.SubjectClaims, err = claims.Decode([]byte(userClaims.String)); err != nil {
			return session.TokenInfo{}, fmt.Errorf("sqlite: lookup token: %w", err)
		}
	}
	return in, nil
}

// SetUserClaims replaces the claims of a user; an empty set removes them.
// An unknown user returns an error wrapping user.ErrNotFound.
func (s *Store) SetUserClaims(ctx context.Context, userID string, c claims.Set, at time.Time) error {
	if len(c) == 0 {
		var one int
		err := s.ws.queryRow(ctx, nil, `SELECT 1 FROM users WHERE id = ?`, userID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: set user claims: %w", user.ErrNotFound)
		} else if err != nil {
			return wrap("set user claims", err)
		}
		if _, err := s.ws.exec(ctx, nil, `DELETE FROM user_claims WHERE user_id = ?`, userID); err != nil {
			return wrap("set user claims", err)
		}
		return nil
	}
	b, err := claims.Encode(c)
	if err != nil {
		return fmt.Errorf("sqlite: set user claims: %w", err)
	}
	res, err := s.ws.exec(ctx, nil, `
		INSERT INTO user_claims (user_id, claims, updated_at)
		SELECT id, ?, ? FROM users WHERE id = ?
		ON CONFLICT (user_id) DO UPDATE SET claims = excluded.claims, updated_at = excluded.updated_at`,
		string(b), micros(at), userID)
	if err != nil {
		return wrap("set user claims", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("set user claims", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: set user claims: %w", user.ErrNotFound)
	}
	return nil
}

// UserClaims returns the claims of a user, nil for none.
func (s *Store) UserClaims(ctx context.Context, userID string) (claims.Set, error) {
	var b string
	err := s.rs.queryRow(ctx, nil, `SELECT claims FROM user_claims WHERE user_id = ?`, userID).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap("user claims", err)
	}
	c, err := claims.Decode([]byte(b))
	if err != nil {
		return nil, fmt.Errorf("sqlite: user claims: %w", err)
	}
	return c, nil
}

// UseJTI records the jti of an accepted assertion; one seen before returns
// an error wrapping assertion.ErrReplayed. Records past their expiry are
// deleted on the way.
func (s *Store) UseJTI(ctx context.Context, issuer, jti string, expiresAt, now time.Time) error {
	if _, err := s.ws.exec(ctx, nil, `DELETE FROM assertion_jtis WHERE expires_at < ?`, micros(now)); err != nil {
		return wrap("use jti: forget expired", err)
	}
	res, err := s.ws.exec(ctx, nil, `
		INSERT INTO assertion_jtis (issuer, jti, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (issuer, jti) DO NOTHING`, issuer, jti, micros(expiresAt))
	if err != nil {
		return wrap("use jti", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("use jti", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: use jti: %w", assertion.ErrReplayed)
	}
	return nil
}

// encodeScopes is the scopes column: NULL for nil (any scope).
func encodeScopes(scopes []string) (any, error) {
	if scopes == nil {
		return nil, nil
	}
	b, err := json.Marshal(scopes)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}
