package server

import (
	"errors"
	"net/http"
	"net/url"

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
}

// clientID returns the client_id of a token or revocation request, from
// the body or from HTTP Basic authentication (RFC 6749 section 2.3.1).
// Public clients need no registration, so a client_id is only recorded;
// a client secret cannot be checked and is refused.
func clientID(r *http.Request, form map[string]string) (string, *apiError) {
	id := form["client_id"]
	if user, pass, ok := r.BasicAuth(); ok {
		u, err1 := url.QueryUnescape(user)
		p, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return "", &apiError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "malformed client credentials"}
		}
		if id != "" && id != u {
			return "", badRequest("invalid_request", "client_id in the body and in the Authorization header differ")
		}
		id, pass = u, p
		if pass != "" {
			return "", &apiError{Status: http.StatusUnauthorized, Code: "invalid_client",
				Description: "confidential clients are not registered here; send client_id without a secret"}
		}
	}
	if form["client_secret"] != "" {
		return "", &apiError{Status: http.StatusUnauthorized, Code: "invalid_client",
			Description: "confidential clients are not registered here; send client_id without a secret"}
	}
	if len(id) > 255 {
		return "", badRequest("invalid_request", "client_id is longer than 255 bytes")
	}
	return id, nil
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	form, e := readForm(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	cid, e := clientID(r, form)
	if e != nil {
		if e.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="silentrefresh"`)
		}
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
		s.passwordGrant(w, r, username, password, cid)
	case "refresh_token":
		rt := form["refresh_token"]
		if rt == "" {
			writeError(w, badRequest("invalid_request", "the refresh_token grant needs refresh_token"))
			return
		}
		g, err := s.engine.Refresh(r.Context(), rt, cid)
		s.observeRefresh(r, g, err)
		var ge *session.GrantError
		switch {
		case errors.As(err, &ge):
			writeError(w, badRequest("invalid_grant", "%s", ge.Reason))
		case err != nil:
			s.internalError(w, r, err)
		default:
			s.writeOAuth2Grant(w, g)
		}
	case "":
		writeError(w, badRequest("invalid_request", "grant_type is required"))
	default:
		writeError(w, badRequest("unsupported_grant_type", "grant_type %q is not supported; use password or refresh_token", gt))
	}
}

// passwordGrant is RFC 6749 section 4.3. Wrong credentials are
// invalid_grant (section 5.2), not the JSON API's 401.
func (s *Server) passwordGrant(w http.ResponseWriter, r *http.Request, username, password, cid string) {
	g, err := s.login(r, username, password, cid)
	var ae *apiError
	if errors.As(err, &ae) && ae.Code == "invalid_credentials" {
		err = badRequest("invalid_grant", "unknown username or wrong password")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeOAuth2Grant(w, g)
}

func (s *Server) writeOAuth2Grant(w http.ResponseWriter, g session.Grant) {
	now := g.IssuedAt
	writeJSON(w, http.StatusOK, oauth2Reply{
		AccessToken:      g.AccessToken,
		TokenType:        "Bearer",
		ExpiresIn:        secondsUntil(g.AccessExpiresAt, now),
		RefreshToken:     g.RefreshToken,
		RefreshExpiresIn: secondsUntil(g.RefreshExpiresAt, now),
	})
}

// handleRevoke is RFC 7009: revoking a refresh token or an access token
// ends the whole session it belongs to. Unknown and invalid tokens are
// answered 200 as well (section 2.2).
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	form, e := readForm(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	if _, e := clientID(r, form); e != nil {
		if e.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="silentrefresh"`)
		}
		writeError(w, e)
		return
	}
	tok := form["token"]
	if tok == "" {
		writeError(w, badRequest("invalid_request", "token is required"))
		return
	}
	// token_type_hint is only a hint (section 2.1): both kinds are tried,
	// whatever it says.
	if claims, err := s.verifier.Verify(r.Context(), tok); err == nil {
		if err := s.engine.RevokeSession(r.Context(), claims.SessionID, "revoked"); err != nil {
			s.internalError(w, r, err)
			return
		}
	} else if err := s.engine.Logout(r.Context(), tok); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.metrics.logouts.Inc()
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
