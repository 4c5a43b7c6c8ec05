package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/silentrefresh/silentrefresh/claims"
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
	// KeyThumbprint binds the session to the DPoP key of that RFC 7638
	// thumbprint (see LoginBound); "" for a bearer session.
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

// RefreshRequest is a refresh with all it may carry.
type RefreshRequest struct {
	Token    string // the refresh token presented
	ClientID string // the client_id, once authenticated if it is confidential; "" for none
	Scope    string // the scope asked for (RefreshScoped); "" for the session's
	// KeyThumbprint is the DPoP key the request proved (RefreshBound);
	// "" for none.
	KeyThumbprint string
}

// RefreshWith is Refresh with a scope (RefreshScoped) and a DPoP proof
// (RefreshBound) together. It reads the store once: the session's
// attributes come with the chain of Store.Exchange.
func (e *Engine) RefreshWith(ctx context.Context, req RefreshRequest) (Grant, error) {
	if req.Token == "" {
		return Grant{}, &GrantError{Reason: ReasonUnknown}
	}
	return e.refresh(ctx, req)
}
