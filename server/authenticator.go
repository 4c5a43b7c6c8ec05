package server

import (
	"context"
	"fmt"
	"net/http"

	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/user"
)

// ErrInvalidCredentials is what an Authenticator returns (or wraps) for a
// login it refuses: the server answers 401 invalid_credentials (invalid_grant
// at the token endpoint) and counts the failure against the login limits.
var ErrInvalidCredentials = user.ErrInvalidCredentials

// Authenticator turns a login request into the identity a session opens
// for. An application that embeds the server and keeps its users elsewhere
// (its own database, LDAP) sets Config.Authenticator; the default is
// UserTable, the built-in users. Implementations must be safe for
// concurrent use.
type Authenticator interface {
	// Authenticate checks the credentials of req. A refusal returns an
	// error wrapping ErrInvalidCredentials; any other error is the
	// server's (500, or 503 when it wraps store.ErrUnavailable).
	Authenticate(ctx context.Context, req LoginRequest) (Identity, error)
}

// LoginRequest is a login as the client sent it.
type LoginRequest struct {
	Username string
	Password string
	// ClientID is the OAuth2 client_id, "" on the JSON API.
	ClientID string
	// HTTP is the request, for its remote address and headers; its body
	// has been read.
	HTTP *http.Request
}

// Identity is who a login is for.
type Identity struct {
	// Subject is the session's subject, the "sub" of its access tokens:
	// stable and unique among every login the server accepts.
	Subject string
	// Claims go into every access token of the session (see package
	// claims for the names that are reserved and the size bound).
	Claims claims.Set
	// LiveClaims makes the session read the built-in user claims of
	// Subject at every refresh instead of keeping Claims; UserTable sets
	// it.
	LiveClaims bool
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, req LoginRequest) (Identity, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, req LoginRequest) (Identity, error) {
	return f(ctx, req)
}

// UserStore is what UserTable reads: the built-in users and their claims.
type UserStore interface {
	user.Store
	user.ClaimStore
}

// UserTable is the Authenticator of the built-in users (`silentrefresh user
// add`), with argon2id passwords and per-user claims (`silentrefresh user
// claims`), which reach a session's tokens at its next refresh.
type UserTable struct {
	Store UserStore
}

// Authenticate checks the username and password against the user table.
func (u UserTable) Authenticate(ctx context.Context, req LoginRequest) (Identity, error) {
	if err := user.ValidUsername(req.Username); err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
	}
	usr, err := user.Authenticate(ctx, u.Store, req.Username, req.Password)
	if err != nil {
		return Identity{}, err
	}
	c, err := u.Store.UserClaims(ctx, usr.ID)
	if err != nil {
		return Identity{}, fmt.Errorf("server: claims of %q: %w", req.Username, err)
	}
	return Identity{Subject: usr.ID, Claims: c, LiveClaims: true}, nil
}
