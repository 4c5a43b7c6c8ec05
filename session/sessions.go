package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/silentrefresh/silentrefresh/token"
)

// Sessions returns the live sessions of subject, most recently refreshed
// first.
func (e *Engine) Sessions(ctx context.Context, subject string) ([]Info, error) {
	if subject == "" {
		return nil, errors.New("session: sessions: empty subject")
	}
	out, err := e.store.Sessions(ctx, subject, e.now())
	if err != nil {
		return nil, fmt.Errorf("session: sessions: %w", err)
	}
	return out, nil
}

// RevokeSubject revokes every session of subject that is not revoked yet,
// and returns how many it revoked.
func (e *Engine) RevokeSubject(ctx context.Context, subject, reason string) (int64, error) {
	if subject == "" {
		return 0, errors.New("session: revoke sessions: empty subject")
	}
	n, err := e.store.RevokeSubject(ctx, subject, e.now(), reason)
	if err != nil {
		return n, fmt.Errorf("session: revoke sessions: %w", err)
	}
	return n, nil
}

// LogoutEverywhere revokes every session of the user whose refresh token
// is presented, and returns how many it revoked. The token must still be
// good for a refresh (its family live, and the token not yet rotated or
// inside the grace window); any other token is refused with a *GrantError
// and revokes nothing, so that a stolen old token cannot end the owner's
// other sessions. keyThumbprint is the jkt of the request's DPoP proof, ""
// for none: a family bound to a key needs a proof of that key
// (ReasonProofMissing, ReasonKeyMismatch). The family of a confidential
// client is refused too (ReasonClientMismatch): this call authenticates no
// client, and that family's token is useless without the client's secret.
func (e *Engine) LogoutEverywhere(ctx context.Context, refreshToken, keyThumbprint string) (int64, error) {
	if refreshToken == "" {
		return 0, &GrantError{Reason: ReasonUnknown}
	}
	info, err := e.store.LookupToken(ctx, token.HashRefreshToken(refreshToken))
	switch {
	case errors.Is(err, ErrNotFound):
		return 0, &GrantError{Reason: ReasonUnknown}
	case err != nil:
		return 0, fmt.Errorf("session: logout everywhere: %w", err)
	case info.Attributes.ConfidentialClient:
		return 0, &GrantError{Reason: ReasonClientMismatch, SessionID: info.Family.ID}
	}
	now := e.now()
	var (
		refusal Reason
		fam     Family
	)
	err = e.store.Exchange(ctx, token.HashRefreshToken(refreshToken), func(c Chain) (Change, error) {
		refusal, fam = "", c.Family
		switch {
		case c.Family.Revoked():
			refusal = ReasonRevoked
		case c.Family.KeyThumbprint != "" && keyThumbprint == "":
			refusal = ReasonProofMissing
		case c.Family.KeyThumbprint != "" && c.Family.KeyThumbprint != keyThumbprint:
			refusal = ReasonKeyMismatch
		case !now.Before(c.Token.ExpiresAt) || !now.Before(c.Family.ExpiresAt):
			refusal = ReasonExpired
		case c.Token.Consumed() && (e.cfg.Grace <= 0 || now.After(c.Token.ConsumedAt.Add(e.cfg.Grace))):
			refusal = ReasonReused
		}
		return Change{}, nil
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return 0, &GrantError{Reason: ReasonUnknown}
	case err != nil:
		return 0, fmt.Errorf("session: logout everywhere: %w", err)
	case refusal != "":
		return 0, &GrantError{Reason: refusal, SessionID: fam.ID}
	}
	return e.RevokeSubject(ctx, fam.Subject, "logout")
}
