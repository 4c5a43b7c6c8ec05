package server

import (
	"errors"
	"net/http"

	"github.com/silentrefresh/silentrefresh/session"
)

// oauth2Reply is the RFC 6749 section 5.1 answer of the token endpoint.
type oauth2Reply struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	// RefreshExpiresIn is not in RFC 6749; several servers send it and
	// clients that know it can warn before the session runs out.
	RefreshExpiresIn int64 `json:"refresh_expires_in"`
	// Scope is the scope of the access token (RFC 6749 section 5.1).
	Scope string `json:"scope,omitempty"`
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	form, cl, ok := s.clientForm(w, r)
	if !ok {
		return
	}
	cid, scope := cl.ID, form["scope"]
	if e := cl.checkScope(scope); e != nil {
		writeError(w, e)
		return
	}
	switch gt := form["grant_type"]; gt {
	case "password":
		username, password := form["username"], form["password"]
		if username == "" || password == "" {
			writeError(w, badRequest("invalid_request", "the password grant needs username and password"))
			return
		}
		s.grantSession(w, r, func(pr proof) (session.Grant, error) {
			return s.passwordGrant(r, username, password, cl, scope, pr)
		}, s.writeOAuth2Grant)
	case "refresh_token":
		rt := form["refresh_token"]
		if rt == "" {
			writeError(w, badRequest("invalid_request", "the refresh_token grant needs refresh_token"))
			return
		}
		pr, err := s.tokenProof(w, r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		g, err := s.engine.RefreshWith(r.Context(), session.RefreshRequest{Token: rt, ClientID: cid, Scope: scope, KeyThumbprint: pr.jkt})
		s.observeRefresh(r, g, err)
		var (
			ge *session.GrantError
			se *session.ScopeError
		)
		switch {
		case errors.As(err, &ge):
			writeError(w, badRequest("invalid_grant", "%s", ge.Reason))
		case errors.As(err, &se):
			writeError(w, badRequest("invalid_scope", "%s", se.Reason))
		case err != nil:
			s.internalError(w, r, err)
		default:
			// Recorded once the token was exchanged: an unknown token
			// takes no place in the replay cache.
			if err := s.recordProof(r.Context(), pr); err != nil {
				s.fail(w, r, err)
				return
			}
			s.writeOAuth2Grant(w, g)
		}
	case GrantTypeJWTBearer:
		// RFC 7523 section 2.1.
		raw := form["assertion"]
		if raw == "" {
			writeError(w, badRequest("invalid_request", "the jwt-bearer grant needs assertion"))
			return
		}
		s.grantSession(w, r, func(pr proof) (session.Grant, error) {
			return s.exchange(r, raw, cl, scope, pr)
		}, s.writeOAuth2Grant)
	case "":
		writeError(w, badRequest("invalid_request", "grant_type is required"))
	default:
		writeError(w, badRequest("unsupported_grant_type", "grant_type %q is not supported; use password, refresh_token or %s", gt, GrantTypeJWTBearer))
	}
}

// passwordGrant is RFC 6749 section 4.3. Wrong credentials are
// invalid_grant (section 5.2), not the JSON API's 401.
func (s *Server) passwordGrant(r *http.Request, username, password string, cl caller, scope string, pr proof) (session.Grant, error) {
	g, err := s.login(r, username, password, cl, scope, pr)
	var ae *apiError
	if errors.As(err, &ae) && ae.Code == "invalid_credentials" {
		err = badRequest("invalid_grant", "unknown username or wrong password")
	}
	return g, err
}

// writeOAuth2Grant answers a grant on the token endpoint.
func (s *Server) writeOAuth2Grant(w http.ResponseWriter, g session.Grant) {
	now := g.IssuedAt
	writeJSON(w, http.StatusOK, oauth2Reply{
		AccessToken:      g.AccessToken,
		TokenType:        tokenType(g.KeyThumbprint),
		ExpiresIn:        secondsUntil(g.AccessExpiresAt, now),
		RefreshToken:     g.RefreshToken,
		RefreshExpiresIn: secondsUntil(g.RefreshExpiresAt, now),
		Scope:            g.Scope,
	})
}

// handleRevoke is RFC 7009: revoking a refresh token or an access token
// ends the whole session it belongs to. Unknown and invalid tokens are
// answered 200 as well (section 2.2).
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	form, cl, ok := s.clientForm(w, r)
	if !ok {
		return
	}
	tok, e := formToken(form)
	if e != nil {
		writeError(w, e)
		return
	}
	// token_type_hint is only a hint (section 2.1): both kinds are tried,
	// whatever it says, the access token first (it needs no database).
	claims, verr := s.verifier.Verify(r.Context(), tok)
	var owner string
	var err error
	if verr == nil {
		owner, err = s.confidentialOwner(r, claims.ClientID)
	} else {
		owner, err = s.refreshTokenClient(r, tok)
	}
	switch {
	case err != nil:
		s.internalError(w, r, err)
		return
	case owner != "" && !(cl.Authenticated && cl.ID == owner):
		writeClientError(w, invalidClient("the token was issued to a confidential client; only that client, authenticated, may revoke it"))
		return
	}
	if verr == nil {
		// A DPoP-bound access token comes with no proof here: as at the
		// JSON API's logout, it ends nothing.
		if claims.KeyThumbprint == "" {
			if err := s.engine.RevokeSession(r.Context(), claims.SessionID, "revoked"); err != nil {
				s.internalError(w, r, err)
				return
			}
		}
	} else if err := s.engine.Logout(r.Context(), tok); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.metrics.logouts.Inc()
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
