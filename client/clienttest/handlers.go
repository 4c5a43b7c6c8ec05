package clienttest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/silentrefresh/silentrefresh/internal/clock"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/token"
)

// ServeHTTP serves:
//
//	POST /api/auth/login      {"username","password"}
//	POST /api/auth/refresh    {"refreshToken"}
//	POST /api/auth/logout     {"refreshToken"}
//	POST /oauth2/token        grant_type=password|refresh_token
//	POST /oauth2/revoke       token=...
//	GET  /api/heartbeat       Bearer
//	any other path            Bearer: a protected resource that echoes the request
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/auth/login":
		p.jsonLogin(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/api/auth/refresh":
		p.jsonRefresh(w, r)
	case r.Method == http.MethodPost && (r.URL.Path == "/api/auth/logout" || r.URL.Path == "/oauth2/revoke"):
		p.logout(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/oauth2/token":
		p.oauth2Token(w, r)
	case r.URL.Path == "/api/heartbeat":
		p.resource(w, r, true)
	default:
		p.resource(w, r, false)
	}
}

type jsonGrant struct {
	AccessToken      string  `json:"accessToken"`
	RefreshToken     string  `json:"refreshToken"`
	TokenType        string  `json:"tokenType"`
	ExpiresIn        float64 `json:"expiresIn"`
	RefreshExpiresIn float64 `json:"refreshExpiresIn"`
}

// grant is what a login or refresh answers. Lifetimes are sent in seconds,
// with a fraction when the configured lifetime has one.
type grant struct {
	access, refresh       string
	accessTTL, refreshTTL time.Duration
}

func (g grant) expiresIn() float64        { return g.accessTTL.Seconds() }
func (g grant) refreshExpiresIn() float64 { return g.refreshTTL.Seconds() }

func (p *Provider) jsonLogin(w http.ResponseWriter, r *http.Request) {
	var in struct{ Username, Password string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	if !p.delay(r.Context()) {
		return
	}
	g, ok := p.login(in.Username, in.Password)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_credentials"})
		return
	}
	writeJSON(w, http.StatusOK, jsonGrant{g.access, g.refresh, "Bearer", g.expiresIn(), g.refreshExpiresIn()})
}

func (p *Provider) jsonRefresh(w http.ResponseWriter, r *http.Request) {
	var in struct {
		RefreshToken string `json:"refreshToken"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil || in.RefreshToken == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	g, reason, ok := p.refreshRequest(w, r, in.RefreshToken)
	if !ok {
		return
	}
	if reason != "" {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_grant", "error_description": reason})
		return
	}
	writeJSON(w, http.StatusOK, jsonGrant{g.access, g.refresh, "Bearer", g.expiresIn(), g.refreshExpiresIn()})
}

func (p *Provider) oauth2Token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	if p.cfg.ClientSecret != "" {
		_, secret, ok := r.BasicAuth()
		if !ok {
			secret = r.PostForm.Get("client_secret")
		}
		if subtle.ConstantTimeCompare([]byte(secret), []byte(p.cfg.ClientSecret)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
			return
		}
	}
	var (
		g      grant
		reason string
	)
	switch r.PostForm.Get("grant_type") {
	case "password":
		if !p.delay(r.Context()) {
			return
		}
		var ok bool
		if g, ok = p.login(r.PostForm.Get("username"), r.PostForm.Get("password")); !ok {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "invalid credentials"})
			return
		}
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		if rt == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "refresh_token missing"})
			return
		}
		var ok bool
		if g, reason, ok = p.refreshRequest(w, r, rt); !ok {
			return
		}
		if reason != "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": reason})
			return
		}
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  g.access,
		"token_type":    "Bearer",
		"expires_in":    g.expiresIn(),
		"refresh_token": g.refresh,
	})
}

// refreshRequest runs one refresh with the injected faults. ok is false
// when the answer was already written (or dropped).
func (p *Provider) refreshRequest(w http.ResponseWriter, r *http.Request, rt string) (g grant, reason string, ok bool) {
	p.mu.Lock()
	p.stats.RefreshRequests++
	p.mu.Unlock()
	p.gateMu.Lock()
	gate := p.gate
	p.gateMu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return grant{}, "", false
		}
	}
	if !p.delay(r.Context()) {
		return grant{}, "", false
	}
	p.mu.Lock()
	if len(p.failures) > 0 {
		f := p.failures[0]
		p.failures = p.failures[1:]
		p.stats.InjectedFailures++
		p.mu.Unlock()
		if f.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((f.retryAfter+time.Second-1)/time.Second)))
		}
		writeJSON(w, f.status, map[string]string{"error": "temporarily_unavailable"})
		return grant{}, "", false
	}
	p.mu.Unlock()
	g, reason, err := p.exchange(r.Context(), rt)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error", "error_description": err.Error()})
		return grant{}, "", false
	}
	p.mu.Lock()
	drop := reason == "" && p.drops > 0
	if drop {
		p.drops--
		p.stats.DroppedAnswers++
	}
	p.mu.Unlock()
	if drop {
		dropAnswer(w)
		return grant{}, "", false
	}
	return g, reason, true
}

// errDropped is what the in-process Transport returns for a dropped answer.
var errDropped = errors.New("clienttest: connection closed before the answer")

// dropAnswer closes the connection without an answer.
func dropAnswer(w http.ResponseWriter) {
	if d, ok := w.(*dropWriter); ok {
		d.dropped = true
		return
	}
	panic(http.ErrAbortHandler)
}

// exchange refreshes rt with the engine and counts the outcome. reason is
// the refusal's, "" for a grant.
func (p *Provider) exchange(ctx context.Context, rt string) (g grant, reason string, err error) {
	sg, err := p.engine.Refresh(ctx, rt, "")
	p.mu.Lock()
	defer p.mu.Unlock()
	var ge *session.GrantError
	switch {
	case errors.As(err, &ge):
		p.stats.InvalidGrants++
		switch ge.Reason {
		case session.ReasonSuperseded:
			p.stats.Superseded++
		case session.ReasonReused:
			p.stats.ReuseDetected++
		}
		return grant{}, string(ge.Reason), nil
	case err != nil:
		return grant{}, "", err
	}
	switch sg.Outcome {
	case session.OutcomeRotated:
		p.stats.Rotations++
	case session.OutcomeGraceReplay:
		p.stats.GraceReplays++
	}
	p.rememberLocked(sg)
	return grant{
		access:     sg.AccessToken,
		refresh:    sg.RefreshToken,
		accessTTL:  p.cfg.AccessTTL,
		refreshTTL: sg.RefreshExpiresAt.Sub(sg.IssuedAt),
	}, "", nil
}

func (p *Provider) login(username, password string) (grant, bool) {
	p.mu.Lock()
	want, ok := p.users[username]
	p.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(password)) != 1 {
		return grant{}, false
	}
	t := p.Issue(username)
	return grant{access: t.AccessToken, refresh: t.RefreshToken, accessTTL: p.cfg.AccessTTL, refreshTTL: p.cfg.RefreshTTL}, true
}

func (p *Provider) logout(w http.ResponseWriter, r *http.Request) {
	var rt string
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var in struct {
			RefreshToken string `json:"refreshToken"`
		}
		_ = json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in)
		rt = in.RefreshToken
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
		_ = r.ParseForm()
		rt = r.PostForm.Get("token")
	}
	p.mu.Lock()
	p.stats.Logouts++
	p.mu.Unlock()
	if err := p.engine.Logout(r.Context(), rt); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error", "error_description": err.Error()})
		return
	}
	if r.URL.Path == "/oauth2/revoke" {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// resource is a protected endpoint: it answers 401 unless the bearer token
// verifies, is unexpired and not invalidated, and its session is live.
func (p *Provider) resource(w http.ResponseWriter, r *http.Request, heartbeat bool) {
	claims, left, valid := p.authorize(r)
	p.mu.Lock()
	if valid {
		p.stats.Authorized++
	} else {
		p.stats.Unauthorized++
	}
	p.mu.Unlock()
	if !valid {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	if heartbeat {
		writeJSON(w, http.StatusOK, map[string]any{"active": true, "expiresIn": int64(left.Seconds()), "sub": claims.Subject})
		return
	}
	var body strings.Builder
	if r.Body != nil {
		_, _ = fmt.Fprint(&body, readAll(r))
	}
	writeJSON(w, http.StatusOK, map[string]string{"sub": claims.Subject, "method": r.Method, "path": r.URL.Path, "body": body.String()})
}

// authorize checks the bearer token of r as a resource server would (its
// signature and claims, and that its session is live) and against the
// Provider's own record (its exact expiry and InvalidateAccessTokens). left
// is how long the token has to live.
func (p *Provider) authorize(r *http.Request) (claims token.Claims, left time.Duration, ok bool) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return token.Claims{}, 0, false
	}
	claims, err := p.verifier.Verify(r.Context(), raw)
	if err != nil {
		return token.Claims{}, 0, false
	}
	p.mu.Lock()
	now := p.cfg.Now()
	at, known := p.access[sha256.Sum256([]byte(raw))]
	ok = known && now.Before(at.expires) && at.epoch == p.epoch
	p.mu.Unlock()
	if !ok {
		return token.Claims{}, 0, false
	}
	if _, err := p.engine.Session(r.Context(), claims.SessionID); err != nil {
		return token.Claims{}, 0, false
	}
	return claims, at.expires.Sub(now), true
}

func readAll(r *http.Request) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil || b.Len() > 1<<20 {
			return b.String()
		}
	}
}

// delay waits for the configured latency; false if the request ended.
func (p *Provider) delay(ctx context.Context) bool {
	p.mu.Lock()
	d := p.latency
	p.mu.Unlock()
	if d <= 0 {
		return true
	}
	return clock.Sleep(ctx, d) == nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
