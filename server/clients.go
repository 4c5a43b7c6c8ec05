package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/silentrefresh/silentrefresh/registry"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/token"
)

// caller is the client of a token, revocation or introspection request.
type caller struct {
	// ID is the client_id, "" for a public client that sent none.
	ID string
	// Client is its registration; the zero Client for an unregistered
	// public client.
	Client registry.Client
	// Authenticated is true for a registered confidential client that
	// proved its secret.
	Authenticated bool
}

// invalidClient is the 401 of a failed client authentication (RFC 6749
// section 5.2); writeError adds WWW-Authenticate: Basic.
func invalidClient(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: fmt.Sprintf(format, args...)}
}

// writeClientError answers e, with the WWW-Authenticate challenge of RFC
// 6749 section 5.2 when it is a 401.
func writeClientError(w http.ResponseWriter, e *apiError) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="silentrefresh"`)
	}
	writeError(w, e)
}

// authenticateClient identifies the client of a request by HTTP Basic
// (RFC 6749 section 2.3.1: client_id and secret form-urlencoded) or by
// client_id and client_secret in the body (client_secret_post). A
// registered confidential client must send its secret, and a registered
// public client must send none; an unregistered client_id is a public
// client unless Config.RegisteredClientsOnly. Its errors are *apiError,
// or others for internalError.
func (s *Server) authenticateClient(r *http.Request, form map[string]string) (caller, error) {
	id, secret := form["client_id"], form["client_secret"]
	_, hasSecret := form["client_secret"]
	if u, p, ok := r.BasicAuth(); ok {
		bu, err1 := url.QueryUnescape(u)
		bp, err2 := url.QueryUnescape(p)
		if err1 != nil || err2 != nil {
			return caller{}, invalidClient("malformed client credentials in the Authorization header")
		}
		if hasSecret {
			return caller{}, badRequest("invalid_request", "client credentials are given both in the Authorization header and in the body; use one method")
		}
		if id != "" && id != bu {
			return caller{}, badRequest("invalid_request", "client_id in the body and in the Authorization header differ")
		}
		id, secret, hasSecret = bu, bp, bp != ""
	} else if r.Header.Get("Authorization") != "" {
		return caller{}, invalidClient("the Authorization header of a client must use the Basic scheme")
	}
	if id == "" {
		if hasSecret {
			return caller{}, invalidClient("client_secret without client_id")
		}
		if s.cfg.RegisteredClientsOnly {
			return caller{}, invalidClient("client authentication is required: this server accepts registered clients only")
		}
		return caller{}, nil
	}
	if err := registry.ValidID(id); err != nil {
		return caller{}, badRequest("invalid_request", "%v", err)
	}
	c, err := s.store.Client(r.Context(), id)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		if s.cfg.RegisteredClientsOnly {
			return caller{}, invalidClient("client %q is not registered", id)
		}
		if hasSecret {
			return caller{}, invalidClient("client %q is not registered, so it has no secret to check; a public client sends client_id alone", id)
		}
		return caller{ID: id}, nil
	case err != nil:
		return caller{}, err
	case c.Confidential() && !hasSecret:
		return caller{}, invalidClient("client %q is confidential and must authenticate (HTTP Basic or client_secret)", id)
	case c.Confidential() && !c.Verify(secret):
		s.clientRefusals.note(refusalKey{limit: "wrong_secret", user: id, remote: s.clientAddr(r)})
		return caller{}, invalidClient("client authentication failed for %q", id)
	case c.Confidential():
		return caller{ID: id, Client: c, Authenticated: true}, nil
	case hasSecret:
		return caller{}, invalidClient("client %q is registered as public and has no secret", id)
	}
	return caller{ID: id, Client: c}, nil
}

// checkScope refuses a scope parameter that is malformed or asks for more
// than a registered client may have.
func (c caller) checkScope(scope string) *apiError {
	canon, err := session.ParseScope(scope)
	if err != nil {
		return badRequest("invalid_scope", "%s", scopeReason(err))
	}
	if c.Client.ID != "" && !c.Client.Allows(canon) {
		return badRequest("invalid_scope", "client %q may not ask for scope %q (registered scopes: %q)", c.ID, canon, c.Client.Scopes)
	}
	return nil
}

func scopeReason(err error) string {
	var se *session.ScopeError
	if errors.As(err, &se) {
		return se.Reason
	}
	return err.Error()
}

// failClient answers an error of authenticateClient.
func (s *Server) failClient(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeClientError(w, ae)
		return
	}
	s.internalError(w, r, err)
}

// clientForm reads the form of a request to the token, introspection or
// revocation endpoint and authenticates its client. When either fails it
// has answered the request, and ok is false.
func (s *Server) clientForm(w http.ResponseWriter, r *http.Request) (form map[string]string, cl caller, ok bool) {
	form, e := readForm(w, r)
	if e != nil {
		writeError(w, e)
		return nil, caller{}, false
	}
	cl, err := s.authenticateClient(r, form)
	if err != nil {
		s.failClient(w, r, err)
		return nil, caller{}, false
	}
	return form, cl, true
}

// formToken is the token parameter of an introspection or revocation
// request (RFC 7662 section 2.1, RFC 7009 section 2.1).
func formToken(form map[string]string) (string, *apiError) {
	tok := form["token"]
	if tok == "" {
		return "", badRequest("invalid_request", "token is required")
	}
	return tok, nil
}

// clientAuthMethods are the token_endpoint_auth_methods of RFC 8414: "none"
// for public clients, then those of confidential clients.
var clientAuthMethods = []string{"none", "client_secret_basic", "client_secret_post"}

// refreshTokenClient returns the client_id of the confidential client
// whose session refreshToken belongs to, or "" when it is not one (a
// public session, or no such token). Only that client, authenticated, may
// revoke it (RFC 7009 section 2.1).
func (s *Server) refreshTokenClient(r *http.Request, refreshToken string) (string, error) {
	info, err := s.store.LookupToken(r.Context(), token.HashRefreshToken(refreshToken))
	switch {
	case errors.Is(err, session.ErrNotFound):
		return "", nil
	case err != nil:
		return "", err
	case info.Attributes.ConfidentialClient:
		return info.Family.ClientID, nil
	}
	return "", nil
}

// confidentialOwner returns clientID when it names a registered
// confidential client, else "": the owner an access token's revocation
// needs (RFC 7009 section 2.1).
func (s *Server) confidentialOwner(r *http.Request, clientID string) (string, error) {
	if clientID == "" || clientID == session.PublicClientID {
		return "", nil
	}
	c, err := s.store.Client(r.Context(), clientID)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return "", nil
	case err != nil:
		return "", err
	case c.Confidential():
		return clientID, nil
	}
	return "", nil
}
