// Package clienttest is a fake identity provider for testing code that uses
// package client: the JSON API and the OAuth2 token endpoint of a
// silentrefresh server, with the same rotation rules (rotation, a grace
// window, reuse detection), in memory, plus knobs a real server lacks:
// latency, failures, lost answers, holding refreshes, and invalidating
// access tokens early.
//
// A Provider is an http.Handler. Serve it with httptest.NewServer (or
// NewServer here) for real HTTP, or call it in-process through
// Provider.Transport, which needs no network and so runs inside a
// testing/synctest bubble.
package clienttest

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/session"
)

// Config configures a Provider. The zero Config is usable.
type Config struct {
	// AccessTTL is the access tokens' lifetime; zero means 10m.
	AccessTTL time.Duration
	// RefreshTTL is the refresh tokens' idle lifetime; zero means 24h.
	RefreshTTL time.Duration
	// Grace is how long a consumed refresh token may be presented again
	// and get the same successor; zero means 10s, negative means none.
	Grace time.Duration
	// Now is the provider's clock; nil means time.Now.
	Now func() time.Time
	// ClientSecret, when set, is required of OAuth2 clients (HTTP Basic or
	// the client_secret form field).
	ClientSecret string
}

// Reasons of an invalid_grant answer, as error_description: the
// session.Reason values, as strings.
const (
	ReasonUnknown    = string(session.ReasonUnknown)
	ReasonRevoked    = string(session.ReasonRevoked)
	ReasonExpired    = string(session.ReasonExpired)
	ReasonSuperseded = string(session.ReasonSuperseded)
	ReasonReused     = string(session.ReasonReused)
)

// Stats are a Provider's counters.
type Stats struct {
	Logins           int // successful logins (and Issue calls)
	RefreshRequests  int // requests to a refresh endpoint, failed ones included
	Rotations        int // refresh tokens exchanged for a new one
	GraceReplays     int // consumed tokens answered with their successor again, inside grace
	Superseded       int // consumed tokens refused inside grace: successor already used
	ReuseDetected    int // consumed tokens presented after grace: family revoked
	InvalidGrants    int // invalid_grant answers, for any reason
	InjectedFailures int // answers replaced by FailNext
	DroppedAnswers   int // answers lost on purpose by DropNext, after the rotation
	Authorized       int // resource and heartbeat requests accepted
	Unauthorized     int // resource and heartbeat requests answered 401
	Logouts          int // logout or revoke requests
}

// Provider is a fake identity provider. It is safe for concurrent use.
type Provider struct {
	cfg    Config
	secret []byte // rotation secret: successor = HMAC(secret, token)

	gateMu sync.Mutex    // guards gate
	gate   chan struct{} // refreshes block while it is open; nil: not held

	mu       sync.Mutex // guards everything below
	users    map[string]string
	families map[string]*family
	refresh  map[[32]byte]*refreshToken // by SHA-256 of the token
	access   map[[32]byte]*accessToken  // by SHA-256 of the token
	epoch    int                        // access tokens of older epochs are rejected
	latency  time.Duration
	failures []failure
	drops    int
	stats    Stats
}

type family struct {
	id, subject string
	revoked     bool
}

type refreshToken struct {
	fam        *family
	expires    time.Time
	consumedAt time.Time
	successor  [32]byte // hash of the successor, once consumed
}

type accessToken struct {
	fam     *family
	expires time.Time
	epoch   int
}

type failure struct {
	status     int
	retryAfter time.Duration
}

// New returns a Provider.
func New(cfg Config) *Provider {
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 10 * time.Minute
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 24 * time.Hour
	}
	if cfg.Grace == 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Provider{
		cfg:      cfg,
		secret:   []byte(rand.Text()),
		users:    map[string]string{},
		families: map[string]*family{},
		refresh:  map[[32]byte]*refreshToken{},
		access:   map[[32]byte]*accessToken{},
	}
}

// Server is a Provider served over real HTTP on 127.0.0.1.
type Server struct {
	*Provider
	*httptest.Server
}

// NewServer starts a Provider on an httptest.Server. Close it when done.
func NewServer(cfg Config) *Server {
	p := New(cfg)
	return &Server{Provider: p, Server: httptest.NewServer(p)}
}

// AddUser lets username log in with password.
func (p *Provider) AddUser(username, password string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users[username] = password
}

// Issue opens a session for subject without a login request and returns
// its tokens, their expiry measured on the Provider's clock.
func (p *Provider) Issue(subject string) client.Tokens {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Logins++
	fam := &family{id: rand.Text(), subject: subject}
	p.families[fam.id] = fam
	rt := rand.Text()
	p.refresh[sha256.Sum256([]byte(rt))] = &refreshToken{fam: fam, expires: p.cfg.Now().Add(p.cfg.RefreshTTL)}
	at, exp := p.mintLocked(fam)
	return client.Tokens{AccessToken: at, RefreshToken: rt, Expiry: exp}
}

func (p *Provider) mintLocked(fam *family) (string, time.Time) {
	at := rand.Text()
	exp := p.cfg.Now().Add(p.cfg.AccessTTL)
	p.access[sha256.Sum256([]byte(at))] = &accessToken{fam: fam, expires: exp, epoch: p.epoch}
	return at, exp
}

// Stats returns the Provider's counters.
func (p *Provider) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// SetLatency delays every login and refresh answer by d.
func (p *Provider) SetLatency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
}

// FailNext makes the next n refresh requests fail with status (e.g. 503 or
// 429) without touching any token, with a Retry-After header when
// retryAfter is positive.
func (p *Provider) FailNext(n, status int, retryAfter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range n {
		p.failures = append(p.failures, failure{status: status, retryAfter: retryAfter})
	}
}

// DropNext makes the next n successful refreshes lose their answer: the
// rotation is committed, then the connection is closed without a response.
func (p *Provider) DropNext(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drops += n
}

// Hold makes refresh requests wait, before they are processed, until
// release is called (or their request is cancelled).
func (p *Provider) Hold() (release func()) {
	p.gateMu.Lock()
	defer p.gateMu.Unlock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
	g := p.gate
	var once sync.Once
	return func() {
		once.Do(func() {
			p.gateMu.Lock()
			if p.gate == g {
				p.gate = nil
			}
			p.gateMu.Unlock()
			close(g)
		})
	}
}

// InvalidateAccessTokens makes every access token issued so far fail with
// 401 before its expiry, as a signing-key rotation or a revocation list
// would. Tokens issued afterwards are accepted.
func (p *Provider) InvalidateAccessTokens() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.epoch++
}

// RevokeAll revokes every session, as a logout elsewhere or an
// administrator would: refreshes fail with invalid_grant (revoked) and the
// heartbeat and resources answer 401.
func (p *Provider) RevokeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.families {
		f.revoked = true
	}
}

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
	g, reason = p.exchangeLocked(rt)
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

// exchangeLocked applies the rotation rules to rt. p.mu must be held.
func (p *Provider) exchangeLocked(rt string) (grant, string) {
	now := p.cfg.Now()
	h := sha256.Sum256([]byte(rt))
	t, ok := p.refresh[h]
	if !ok {
		p.stats.InvalidGrants++
		return grant{}, ReasonUnknown
	}
	if t.fam.revoked {
		p.stats.InvalidGrants++
		return grant{}, ReasonRevoked
	}
	if !now.Before(t.expires) {
		p.stats.InvalidGrants++
		return grant{}, ReasonExpired
	}
	succ := p.successor(rt)
	sh := sha256.Sum256([]byte(succ))
	if !t.consumedAt.IsZero() {
		inGrace := p.cfg.Grace > 0 && now.Sub(t.consumedAt) <= p.cfg.Grace
		switch {
		case inGrace && p.refresh[sh].consumedAt.IsZero():
			p.stats.GraceReplays++
			at, _ := p.mintLocked(t.fam)
			return grant{access: at, refresh: succ, accessTTL: p.cfg.AccessTTL, refreshTTL: p.refresh[sh].expires.Sub(now)}, ""
		case inGrace:
			p.stats.Superseded++
			p.stats.InvalidGrants++
			return grant{}, ReasonSuperseded
		default:
			t.fam.revoked = true
			p.stats.ReuseDetected++
			p.stats.InvalidGrants++
			return grant{}, ReasonReused
		}
	}
	t.consumedAt = now
	t.successor = sh
	next := &refreshToken{fam: t.fam, expires: now.Add(p.cfg.RefreshTTL)}
	p.refresh[sh] = next
	p.stats.Rotations++
	at, _ := p.mintLocked(t.fam)
	return grant{access: at, refresh: succ, accessTTL: p.cfg.AccessTTL, refreshTTL: p.cfg.RefreshTTL}, ""
}

// successor derives the token that follows rt, so the same one can be
// answered again inside grace without storing any plaintext.
func (p *Provider) successor(rt string) string {
	m := hmac.New(sha256.New, p.secret)
	m.Write([]byte(rt))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
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
	if t, ok := p.refresh[sha256.Sum256([]byte(rt))]; ok {
		t.fam.revoked = true
	}
	p.mu.Unlock()
	if r.URL.Path == "/oauth2/revoke" {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// resource is a protected endpoint: it answers 401 unless the bearer token
// is known, unexpired, not invalidated, and its session not revoked.
func (p *Provider) resource(w http.ResponseWriter, r *http.Request, heartbeat bool) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	now := p.cfg.Now()
	var at *accessToken
	if ok {
		at = p.access[sha256.Sum256([]byte(raw))]
	}
	valid := at != nil && now.Before(at.expires) && at.epoch == p.epoch && !at.fam.revoked
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
		writeJSON(w, http.StatusOK, map[string]any{"active": true, "expiresIn": int64(at.expires.Sub(now).Seconds()), "sub": at.fam.subject})
		return
	}
	var body strings.Builder
	if r.Body != nil {
		_, _ = fmt.Fprint(&body, readAll(r))
	}
	writeJSON(w, http.StatusOK, map[string]string{"sub": at.fam.subject, "method": r.Method, "path": r.URL.Path, "body": body.String()})
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
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
