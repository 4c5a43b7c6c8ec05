package server

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/silentrefresh/silentrefresh/session"
)

// refreshCookie carries the refresh token in cookie mode. The __Host-
// prefix makes the browser insist on Secure, Path=/ and no Domain, so no
// other host or path can set or read it.
const refreshCookie = "__Host-srt"

func hasRefreshCookie(r *http.Request) bool {
	c, err := r.Cookie(refreshCookie)
	return err == nil && c.Value != ""
}

// setRefreshCookie hands the grant's refresh token to the browser as a
// cookie script cannot read.
func (s *Server) setRefreshCookie(w http.ResponseWriter, g session.Grant, now time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name:     refreshCookie,
		Value:    g.RefreshToken,
		Path:     "/",
		MaxAge:   int(secondsUntil(g.RefreshExpiresAt, now)),
		HttpOnly: true,
		Secure:   true,
		SameSite: http.SameSiteStrictMode,
	})
}

func (s *Server) clearRefreshCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: refreshCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

// checkOrigin guards the endpoints a cookie authenticates against
// cross-site requests: the browser's Origin header must name this server
// or one of Config.AllowedOrigins, and Sec-Fetch-Site, when sent, must not
// say cross-site. SameSite=Strict already keeps the cookie off cross-site
// requests; this is the second lock on the door.
func (s *Server) checkOrigin(r *http.Request) *apiError {
	refuse := func(why string) *apiError {
		return &apiError{Status: http.StatusForbidden, Code: "invalid_origin", Description: why}
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" {
		return refuse("cross-site requests may not use the refresh cookie")
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return refuse("cookie mode needs an Origin header naming this site")
	}
	if s.originAllowed(r, origin) {
		return nil
	}
	return refuse("origin " + origin + " is not allowed")
}

func (s *Server) originAllowed(r *http.Request, origin string) bool {
	if slices.Contains(s.cfg.AllowedOrigins, origin) {
		return true
	}
	if iss, err := url.Parse(s.cfg.Issuer); err == nil && origin == iss.Scheme+"://"+iss.Host {
		return true
	}
	// The server's own origin as the browser sees it: same host as the
	// request, over the scheme the request came in on.
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && strings.EqualFold(u.Host, r.Host)
}

// presentedRefreshToken returns the refresh token of a JSON API request:
// the body's refreshToken, or in cookie mode the cookie, after the origin
// check that cookie authentication needs. A request with neither is 401
// invalid_grant "unknown".
func (s *Server) presentedRefreshToken(r *http.Request, body *string) (tok string, fromCookie bool, e *apiError) {
	if body != nil {
		if *body == "" {
			return "", false, badRequest("invalid_request", `field "refreshToken" must not be empty`)
		}
		return *body, false, nil
	}
	c, err := r.Cookie(refreshCookie)
	if err != nil || c.Value == "" {
		// Cookie mode with the cookie gone (expired, cleared, or never
		// set): there is no refresh token to present, which ends the
		// session as an unknown token does, rather than a malformed
		// request that the client would keep the session for.
		return "", false, &apiError{Status: http.StatusUnauthorized, Code: "invalid_grant", Description: string(session.ReasonUnknown)}
	}
	if e := s.checkOrigin(r); e != nil {
		return "", false, e
	}
	return c.Value, true, nil
}
