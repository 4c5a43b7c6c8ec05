package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/token"
)

// Introspection is what a refresh token is, for RFC 7662.
type Introspection struct {
	// Active is true while the token can be exchanged: known, not yet
	// rotated, not past its idle expiry, and its session neither revoked
	// nor past its absolute expiry.
	Active bool
	Token  RefreshToken
	Family Family
	// Scope and Claims are what the session's next access token would
	// carry.
	Scope  string
	Claims claims.Set
}

// Introspect looks a refresh token up without changing anything. An unknown
// token is inactive, not an error.
func (e *Engine) Introspect(ctx context.Context, refreshToken string) (Introspection, error) {
	if refreshToken == "" {
		return Introspection{}, nil
	}
	info, err := e.store.LookupToken(ctx, token.HashRefreshToken(refreshToken))
	switch {
	case errors.Is(err, ErrNotFound):
		return Introspection{}, nil
	case err != nil:
		return Introspection{}, fmt.Errorf("session: introspect: %w", err)
	}
	now := e.now()
	m := mintAttrs(info.Attributes, info.SubjectClaims, "")
	return Introspection{
		Active: !info.Token.Consumed() && !info.Family.Revoked() &&
			now.Before(info.Token.ExpiresAt) && now.Before(info.Family.ExpiresAt),
		Token:  info.Token,
		Family: info.Family,
		Scope:  m.scope,
		Claims: m.claims,
	}, nil
}
