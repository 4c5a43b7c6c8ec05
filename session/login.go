package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/token"
)

// Login is what opens a session: who, through which client, with which
// scope and claims.
type Login struct {
	Subject  string // required
	ClientID string // the OAuth2 client_id, or "" (recorded as PublicClientID)
	Attributes
	// SubjectClaims are the subject's user claims now, for the first
	// access token of a session with LiveClaims; refreshes read them
	// again. They are not stored with the session.
	SubjectClaims claims.Set
	// KeyThumbprint binds the session to the DPoP key of this RFC 7638
	// thumbprint (see LoginBound); "" opens a bearer session.
	KeyThumbprint string
}

// minted is what an access token carries besides what the family says.
type minted struct {
	scope  string
	claims claims.Set
	jkt    string // the DPoP key the token is bound to, or ""
}

// mintAttrs is what a session with attributes a puts into a token: its
// scope, or the narrower scope asked for, and its claims, with the live user
// claims when a says so (the session's own claims win a name both hold).
func mintAttrs(a Attributes, subjectClaims claims.Set, scope string) minted {
	if scope == "" {
		scope = a.Scope
	}
	m := minted{scope: scope, claims: a.Claims}
	if a.LiveClaims {
		m.claims = claims.Merge(subjectClaims, a.Claims)
	}
	return m
}

// LoginWith opens a new family for l.Subject with l's scope and claims
// and returns its first tokens. The scope must parse (ParseScope) and the
// claims must pass claims.Validate; otherwise nothing is stored.
func (e *Engine) LoginWith(ctx context.Context, l Login) (Grant, error) {
	if l.Subject == "" {
		return Grant{}, errors.New("session: login needs a subject")
	}
	scope, err := ParseScope(l.Scope)
	if err != nil {
		return Grant{}, err
	}
	l.Scope = scope
	if err := claims.Validate(claims.Merge(l.SubjectClaims, l.Claims)); err != nil {
		return Grant{}, fmt.Errorf("session: login: %w", err)
	}
	return e.login(ctx, l)
}

// putAttributes stores a family's attributes unless they are the default.
// The family's tokens have not left the server yet, so a failure here
// leaves a family nobody can refresh; it is revoked to say so.
func (e *Engine) putAttributes(ctx context.Context, f Family, a Attributes) error {
	if a.isDefault() {
		return nil
	}
	if err := e.store.PutAttributes(ctx, f.ID, a); err != nil {
		_ = e.store.RevokeFamily(context.WithoutCancel(ctx), f.ID, e.now(), "incomplete")
		return fmt.Errorf("session: login: attributes: %w", err)
	}
	return nil
}

// RefreshScoped is Refresh with the scope parameter of RFC 6749 section 6:
// the new access token carries scope, which must be within the session's;
// "" means the session's whole scope. A wider scope is refused with a
// *ScopeError before anything is written. The session's scope stays what
// it was: a later refresh may ask for all of it again.
func (e *Engine) RefreshScoped(ctx context.Context, refreshToken, clientID, scope string) (Grant, error) {
	return e.RefreshWith(ctx, RefreshRequest{Token: refreshToken, ClientID: clientID, Scope: scope})
}

// RefreshRequest is one refresh: the presented token and what came with it.
type RefreshRequest struct {
	Token    string // the refresh token presented
	ClientID string // the client_id presented (authenticated, for a confidential client), or ""
	// Scope narrows the new access token's scope (RefreshScoped); "" for
	// the session's whole scope.
	Scope string
	// KeyThumbprint is the thumbprint of the DPoP key the request proved
	// possession of (RefreshBound), or "".
	KeyThumbprint string
}

// RefreshWith is the refresh behind Refresh, RefreshScoped and
// RefreshBound, for a request that carries any of their parameters.
func (e *Engine) RefreshWith(ctx context.Context, req RefreshRequest) (Grant, error) {
	refreshToken, clientID, scope := req.Token, req.ClientID, req.Scope
	if refreshToken == "" {
		return Grant{}, &GrantError{Reason: ReasonUnknown}
	}
	info, err := e.store.LookupToken(ctx, token.HashRefreshToken(refreshToken))
	switch {
	case errors.Is(err, ErrNotFound):
		return Grant{}, &GrantError{Reason: ReasonUnknown}
	case err != nil:
		return Grant{}, fmt.Errorf("session: refresh: %w", err)
	}
	if info.Attributes.ConfidentialClient && clientID != info.Family.ClientID {
		return Grant{}, &GrantError{Reason: ReasonClientMismatch, SessionID: info.Family.ID}
	}
	narrowed, err := narrowScope(scope, info.Attributes.Scope)
	if err != nil {
		return Grant{}, err
	}
	return e.refresh(ctx, refreshToken, clientID, req.KeyThumbprint, mintAttrs(info.Attributes, info.SubjectClaims, narrowed))
}
