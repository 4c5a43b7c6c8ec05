package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/silentrefresh/silentrefresh/admin"
	"github.com/silentrefresh/silentrefresh/bearer"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/user"
)

// userSessionRoutes registers the endpoints through which a user sees and
// ends their own sessions.
func (s *Server) userSessionRoutes(handle func(method, path, route string, h http.Handler), requireBearer func(http.Handler) http.Handler) {
	handle("GET", "/api/sessions", "sessions", requireBearer(http.HandlerFunc(s.handleListSessions)))
	handle("DELETE", "/api/sessions/{id}", "session_delete", requireBearer(http.HandlerFunc(s.handleDeleteSession)))
}

// sessionReply is one session in the answer of GET /api/sessions.
type sessionReply struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"clientId"`
	CreatedAt time.Time `json:"createdAt"`
	// LastUsedAt is the session's last refresh, or its login.
	LastUsedAt time.Time `json:"lastUsedAt"`
	// ExpiresAt is when it ends unless refreshed before.
	ExpiresAt time.Time `json:"expiresAt"`
	// Current marks the session of the access token of the request.
	Current bool `json:"current"`
}

func (s *Server) handleListSessions(w http.ResponseWriter, r *http.Request) {
	c, _ := bearer.ClaimsFrom(r.Context())
	infos, err := s.engine.Sessions(r.Context(), c.Subject)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out := make([]sessionReply, 0, len(infos))
	for _, in := range infos {
		out = append(out, sessionReply{
			ID:         in.ID,
			ClientID:   in.ClientID,
			CreatedAt:  in.CreatedAt.UTC(),
			LastUsedAt: in.LastRefreshedAt.UTC(),
			ExpiresAt:  in.IdleExpiresAt.UTC(),
			Current:    in.ID == c.SessionID,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

// handleDeleteSession ends one of the user's own sessions. A session of
// someone else is answered exactly like one that does not exist.
func (s *Server) handleDeleteSession(w http.ResponseWriter, r *http.Request) {
	c, _ := bearer.ClaimsFrom(r.Context())
	id := r.PathValue("id")
	if err := admin.ValidSessionID(id); err != nil {
		writeError(w, badRequest("invalid_request", "%s", "the path does not end in a session ID (22 characters of unpadded base64url)"))
		return
	}
	f, err := s.store.Family(r.Context(), id)
	switch {
	case errors.Is(err, session.ErrNotFound) || (err == nil && f.Subject != c.Subject):
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Description: "you have no session with this ID"})
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	if err := s.engine.RevokeSession(r.Context(), id, "logout"); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.metrics.logouts.Inc()
	w.WriteHeader(http.StatusNoContent)
}

// logoutRequest is the body of POST /api/auth/logout.
type logoutRequest struct {
	RefreshToken *string `json:"refreshToken"`
	// All asks to end every session of the user, not only this one.
	All *bool `json:"all"`
}

// logoutAll reports whether a logout asks to end every session: "all" in
// the body, or ?all= in the query. Both given must agree.
func logoutAll(r *http.Request, body *bool) (bool, *apiError) {
	all := body != nil && *body
	if q, ok := r.URL.Query()["all"]; ok {
		if len(q) != 1 {
			return false, badRequest("invalid_request", `query parameter "all" is given more than once`)
		}
		v, err := strconv.ParseBool(q[0])
		if err != nil {
			return false, badRequest("invalid_request", `query parameter "all" must be true or false, not %q`, truncateString(q[0], 32))
		}
		if body != nil && *body != v {
			return false, badRequest("invalid_request", `"all" in the body and in the query disagree`)
		}
		all = v
	}
	return all, nil
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// logoutEverywhere ends every session of the user proven by the request:
// a refresh token that is still good (in the body or the cookie), or else
// a valid access token of a live session. Anything less is a 401, and
// revokes nothing.
func (s *Server) logoutEverywhere(w http.ResponseWriter, r *http.Request, body *string) {
	if body != nil || hasRefreshCookie(r) {
		rt, fromCookie, e := s.presentedRefreshToken(r, body)
		if e != nil {
			writeError(w, e)
			return
		}
		pr, err := s.tokenProof(w, r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		n, err := s.engine.LogoutEverywhere(r.Context(), rt, pr.jkt)
		var ge *session.GrantError
		switch {
		case errors.As(err, &ge):
			writeError(w, &apiError{Status: http.StatusUnauthorized, Code: "invalid_grant", Description: string(ge.Reason)})
			return
		case err != nil:
			s.internalError(w, r, err)
			return
		}
		// Recorded once the token proved good: an unknown token takes no
		// place in the replay cache.
		if err := s.recordProof(r.Context(), pr); err != nil {
			s.fail(w, r, err)
			return
		}
		if fromCookie {
			s.clearRefreshCookie(w)
		}
		s.loggedOutEverywhere(w, n)
		return
	}
	auth := r.Header.Get("Authorization")
	if scheme, _, _ := strings.Cut(auth, " "); !strings.EqualFold(scheme, "DPoP") {
		if _, err := bearer.Parse(auth); err != nil {
			writeError(w, badRequest("invalid_request", `logout needs {"refreshToken"} in the body or an Authorization: Bearer header`))
			return
		}
	}
	// requireBearer checks the session, and a DPoP-bound token's proof:
	// a copied bound token must not end every session of its user.
	s.requireBearer(http.HandlerFunc(s.logoutSubjectOfAccessToken)).ServeHTTP(w, r)
}

// logoutSubjectOfAccessToken revokes every session of the user of the
// access token that requireBearer admitted.
func (s *Server) logoutSubjectOfAccessToken(w http.ResponseWriter, r *http.Request) {
	claims, _ := bearer.ClaimsFrom(r.Context())
	n, err := s.engine.RevokeSubject(r.Context(), claims.Subject, "logout")
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.loggedOutEverywhere(w, n)
}

func (s *Server) loggedOutEverywhere(w http.ResponseWriter, n int64) {
	s.metrics.logouts.Inc()
	s.log.Info("logout everywhere", "revoked_sessions", n)
	w.WriteHeader(http.StatusNoContent)
}

// afterLogin closes the race of a login with an operator disabling or
// deleting the user: the store serialises the two per user, so once the
// session is stored, either the operator's change revoked it or this
// look-up sees the change. In the second case the new session is revoked
// and the login refused. subject must be a user of the store's user table
// (a login checked against it).
func (s *Server) afterLogin(ctx context.Context, subject string, g session.Grant) error {
	now, err := s.store.UserByID(ctx, subject)
	if err == nil && !now.Disabled() {
		return nil
	}
	if err != nil && !errors.Is(err, user.ErrNotFound) {
		return err
	}
	if err := s.engine.RevokeSession(ctx, g.Family.ID, session.RevokeUserDisabled); err != nil {
		return err
	}
	s.metrics.logins.WithLabelValues(loginInvalidCredentials).Inc()
	return &apiError{Status: http.StatusUnauthorized, Code: "invalid_credentials", Description: "unknown username or wrong password"}
}

// collectSpentTokens is the part of CollectExpired that deletes consumed
// refresh tokens past their idle expiry.
func (s *Server) collectSpentTokens(ctx context.Context) {
	n, err := s.store.DeleteSpentTokens(ctx, s.cfg.Now())
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.Warn("deleting spent refresh tokens failed", "err", err)
	case n > 0:
		s.log.Info("deleted spent refresh tokens", "count", n)
	}
}
