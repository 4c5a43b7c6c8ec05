package server

import (
	"cmp"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/silentrefresh/silentrefresh/bearer"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/user"
)

// loginRequest is the body of POST /api/auth/login.
type loginRequest struct {
	Username *string `json:"username"`
	Password *string `json:"password"`
	// Cookie asks for the refresh token as an HttpOnly cookie instead of in
	// the body (cookie mode).
	Cookie bool `json:"cookie"`
}

// refreshRequest is the body of POST /api/auth/refresh and logout.
type refreshRequest struct {
	RefreshToken *string `json:"refreshToken"`
}

// tokenReply is the JSON API's answer to a login or refresh.
type tokenReply struct {
	AccessToken      string `json:"accessToken"`
	RefreshToken     string `json:"refreshToken,omitempty"` // absent in cookie mode
	TokenType        string `json:"tokenType"`
	ExpiresIn        int64  `json:"expiresIn"`
	RefreshExpiresIn int64  `json:"refreshExpiresIn"`
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if e := decodeJSON(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	if e := cmp.Or(requiredField("username", req.Username), requiredField("password", req.Password)); e != nil {
		writeError(w, e)
		return
	}
	s.openJSONSession(w, r, req.Cookie, func(pr proof) (session.Grant, error) {
		return s.login(r, *req.Username, *req.Password, caller{}, "", pr)
	})
}

// requiredField refuses a JSON body whose string field name is absent or
// empty.
func requiredField(name string, v *string) *apiError {
	if v == nil || *v == "" {
		return badRequest("invalid_request", "field %q is required", name)
	}
	return nil
}

// openJSONSession answers a JSON API request that opens a session (a login
// or an assertion exchange): in cookie mode the origin check first, then
// as grantSession.
func (s *Server) openJSONSession(w http.ResponseWriter, r *http.Request, cookie bool, open func(pr proof) (session.Grant, error)) {
	if cookie {
		if e := s.checkOrigin(r); e != nil {
			writeError(w, e)
			return
		}
	}
	s.grantSession(w, r, open, func(w http.ResponseWriter, g session.Grant) { s.writeGrant(w, g, cookie) })
}

// grantSession answers a request that opens a session: it checks the DPoP
// proof of the request, if any, calls open with it (the zero proof for a
// bearer session; open records it once the credential held), and writes
// the grant, or the error as fail does.
func (s *Server) grantSession(w http.ResponseWriter, r *http.Request, open func(pr proof) (session.Grant, error), write func(http.ResponseWriter, session.Grant)) {
	pr, err := s.loginProof(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	g, err := open(pr)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	write(w, g)
}

// login authenticates and opens a session with the given scope, bound to
// the key of the DPoP proof pr, which it records once the password
// matched, unless pr is the zero proof. Its errors are *apiError for the
// client's mistakes and others for internalError.
func (s *Server) login(r *http.Request, username, password string, cl caller, scope string, pr proof) (session.Grant, error) {
	if err := user.ValidUsername(username); err != nil {
		return session.Grant{}, badRequest("invalid_request", "%v", err)
	}
	// Before the limits: an oversized password is a malformed request,
	// not a guess, and is never hashed.
	if len(password) > user.MaxPasswordLen {
		return session.Grant{}, badRequest("invalid_request", "password is longer than %d bytes", user.MaxPasswordLen)
	}
	id, err := s.authenticate(r, username, password, cl.ID)
	if err != nil {
		return session.Grant{}, err
	}
	g, err := s.openSession(r, id, cl, scope, pr)
	if err != nil {
		return session.Grant{}, err
	}
	if len(g.Evicted) > 0 {
		s.log.Info("session cap: least recently used sessions revoked", "sub", id.Subject, "sids", g.Evicted)
	}
	if id.LiveClaims {
		// A built-in user (UserTable): close the race with an operator
		// disabling or deleting it.
		if err := s.afterLogin(r.Context(), id.Subject, g); err != nil {
			return session.Grant{}, err
		}
	}
	s.log.Info("login", "sub", id.Subject, "sid", g.Family.ID, "dpop", pr.jkt != "")
	return g, nil
}

// fail answers err: an *apiError as it is, anything else as internalError.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, ae)
		return
	}
	s.internalError(w, r, err)
}

func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	// Cookie mode may send no body at all: the cookie is the token.
	if r.ContentLength != 0 || !hasRefreshCookie(r) {
		if e := decodeJSON(w, r, &req); e != nil {
			writeError(w, e)
			return
		}
	}
	rt, fromCookie, e := s.presentedRefreshToken(r, req.RefreshToken)
	if e != nil {
		writeError(w, e)
		return
	}
	pr, err := s.tokenProof(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	g, err := s.engine.RefreshBound(r.Context(), rt, "", pr.jkt)
	s.observeRefresh(r, g, err)
	var ge *session.GrantError
	switch {
	case errors.As(err, &ge):
		if fromCookie {
			s.clearRefreshCookie(w)
		}
		writeError(w, &apiError{Status: http.StatusUnauthorized, Code: "invalid_grant", Description: string(ge.Reason)})
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	// Recorded once the token was exchanged: an unknown token takes no
	// place in the replay cache.
	if err := s.recordProof(r.Context(), pr); err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeGrant(w, g, fromCookie)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	var req logoutRequest
	if r.ContentLength != 0 {
		if e := decodeJSON(w, r, &req); e != nil {
			writeError(w, e)
			return
		}
	}
	if all, e := logoutAll(r, req.All); e != nil || all {
		if e != nil {
			writeError(w, e)
			return
		}
		s.logoutEverywhere(w, r, req.RefreshToken)
		return
	}
	if req.RefreshToken != nil || hasRefreshCookie(r) {
		rt, fromCookie, e := s.presentedRefreshToken(r, req.RefreshToken)
		if e != nil {
			writeError(w, e)
			return
		}
		if owner, err := s.refreshTokenClient(r, rt); err != nil {
			s.internalError(w, r, err)
			return
		} else if owner != "" {
			// This API authenticates no client: revoke at /oauth2/revoke.
			writeError(w, &apiError{Status: http.StatusUnauthorized, Code: "invalid_grant", Description: string(session.ReasonClientMismatch)})
			return
		}
		if err := s.engine.Logout(r.Context(), rt); err != nil {
			s.internalError(w, r, err)
			return
		}
		if fromCookie {
			s.clearRefreshCookie(w)
		}
		s.metrics.logouts.Inc()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "DPoP") {
		// A DPoP-bound access token logs out only with a proof of its key.
		s.requireBearer(http.HandlerFunc(s.logoutByAccessToken)).ServeHTTP(w, r)
		return
	}
	raw, err := bearer.Parse(r.Header.Get("Authorization"))
	if err != nil {
		writeError(w, badRequest("invalid_request", `logout needs {"refreshToken"} in the body or an Authorization: Bearer header`))
		return
	}
	// An expired or otherwise invalid access token has nothing to revoke
	// that this server can trust: logout stays idempotent and answers 204.
	// So has a DPoP-bound token sent without its proof.
	if claims, err := s.verifier.Verify(r.Context(), raw); err == nil && claims.KeyThumbprint == "" {
		if err := s.engine.RevokeSession(r.Context(), claims.SessionID, "logout"); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	s.metrics.logouts.Inc()
	w.WriteHeader(http.StatusNoContent)
}

// logoutByAccessToken revokes the session of the access token that
// requireBearer admitted.
func (s *Server) logoutByAccessToken(w http.ResponseWriter, r *http.Request) {
	c, _ := bearer.ClaimsFrom(r.Context())
	if err := s.engine.RevokeSession(r.Context(), c.SessionID, "logout"); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.metrics.logouts.Inc()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	c, _ := bearer.ClaimsFrom(r.Context())
	now := s.cfg.Now()
	writeJSON(w, http.StatusOK, map[string]any{
		"active":    true,
		"expiresIn": secondsUntil(c.ExpiresAt, now),
		"sub":       c.Subject,
		"sid":       c.SessionID,
	})
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	c, _ := bearer.ClaimsFrom(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{
		"sub":       c.Subject,
		"sid":       c.SessionID,
		"clientId":  c.ClientID,
		"expiresAt": c.ExpiresAt.UTC().Format(time.RFC3339),
		"expiresIn": secondsUntil(c.ExpiresAt, s.cfg.Now()),
	})
}

// writeGrant answers a login or refresh on the JSON API.
func (s *Server) writeGrant(w http.ResponseWriter, g session.Grant, cookie bool) {
	now := g.IssuedAt
	reply := tokenReply{
		AccessToken:      g.AccessToken,
		RefreshToken:     g.RefreshToken,
		TokenType:        tokenType(g.KeyThumbprint),
		ExpiresIn:        secondsUntil(g.AccessExpiresAt, now),
		RefreshExpiresIn: secondsUntil(g.RefreshExpiresAt, now),
	}
	if cookie {
		s.setRefreshCookie(w, g, now)
		reply.RefreshToken = ""
	}
	writeJSON(w, http.StatusOK, reply)
}

// secondsUntil is the whole seconds from now to t, at least 1 for a time
// still ahead, as expires_in (RFC 6749 section 5.1) is an integer.
func secondsUntil(t, now time.Time) int64 {
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return max(1, int64(d/time.Second))
}
