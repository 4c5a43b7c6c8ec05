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
