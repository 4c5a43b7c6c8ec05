// Package server is the HTTP face of silentrefresh: the seed's JSON API
// (login, refresh, heartbeat, logout), the standard OAuth2 endpoints
// (RFC 6749 token, RFC 7009 revocation, RFC 8414 metadata), JWKS, metrics
// and health. It mounts the middleware of package bearer on its own
// session-checked endpoints; other Go services mount that package, not
// this one, to accept its access tokens.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/silentrefresh/silentrefresh/assertion"
	"github.com/silentrefresh/silentrefresh/bearer"
	"github.com/silentrefresh/silentrefresh/dpop"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// Config configures a Server. Store is required; every other field has a
// useful zero value.
type Config struct {
	// Store keeps sessions, signing keys and users.
	Store store.Store
	// Issuer is the server's public base URL, the "iss" of its tokens and
	// the base of the URLs in its metadata. Default "http://localhost".
	Issuer string
	// Audience is the "aud" of access tokens. Default: Issuer.
	Audience string

	// Lifetimes, as in session.Config; zero means the default.
	AccessTTL, RefreshTTL, SessionTTL, Grace time.Duration

	// AllowedOrigins are origins besides the server's own from which
	// cookie-mode requests are accepted, e.g. "https://app.example.com".
	AllowedOrigins []string

	// LoginLimit bounds failed logins per username, from any address.
	// Zero: 10 failures, then one per 6 s.
	LoginLimit LoginLimit
	// LoginLimitPerClient bounds failed logins per username from one
	// client address, tighter than LoginLimit, so that one noisy address
	// locks itself out long before it locks the user out for everyone.
	// Zero: half LoginLimit's burst (at least 1), then one per twice its
	// interval.
	LoginLimitPerClient LoginLimit
	// LoginLimitPerAddress bounds failed logins per client address, for
	// any username. Zero: ten times LoginLimit's burst, then sixty times
	// its rate (100, then 10 per second, by default).
	LoginLimitPerAddress LoginLimit
	// TrustedProxies are the reverse proxies whose Forwarded and
	// X-Forwarded-For headers say who the client is (see clientAddr);
	// the headers of any other peer are ignored. Nil trusts none.
	TrustedProxies []netip.Prefix

	// PasswordHashes bounds the password hashes computed at once; a login
	// that cannot have one in time is answered 503 temporarily_unavailable
	// with Retry-After before any hashing. Zero: one less than
	// runtime.GOMAXPROCS(0), at least 1, which leaves a core to health
	// checks and refreshes during a login flood at the cost of some login
	// throughput.
	PasswordHashes int
	// PasswordHashWait is the longest a login waits for a hash slot.
	// Zero: 1s.
	PasswordHashWait time.Duration

	// MaxSessionsPerUser caps the live sessions of one user: a login past
	// it revokes the user's least recently refreshed session. Zero means
	// 100; a negative value means no cap.
	MaxSessionsPerUser int

	// AdminToken, when not empty, enables AdminHandler: the admin API and
	// /metrics, for requests bearing this token, which must be at least
	// MinAdminTokenLen bytes. /metrics then leaves the public handler.
	AdminToken string
	// PasswordParams hash the passwords set through the admin API; the
	// zero value means user.DefaultParams.
	PasswordParams user.Params

	// RequireDPoP refuses logins without a DPoP proof (RFC 9449). By
	// default a login with a proof opens a session bound to the proof's
	// key, and one without opens a bearer session.
	RequireDPoP bool
	// DPoPNonce makes every DPoP proof carry a nonce the server issued
	// (RFC 9449 section 8), sent in the DPoP-Nonce header; a proof without
	// the current nonce is answered use_dpop_nonce. Off by default.
	DPoPNonce bool
	// DPoPReplayEntries is the capacity of the DPoP replay cache, the
	// proofs remembered inside their 60s window; past it, DPoP requests
	// are answered 503 until entries expire. Only proofs that came with a
	// valid credential take an entry. Zero: dpop.DefaultReplayEntries.
	DPoPReplayEntries int

	// RequestTimeout bounds the database work of one request, so that an
	// unreachable database yields a 503 rather than a hang. Zero: 5s.
	RequestTimeout time.Duration

	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives one line per request and the security events; nil
	// discards. Tokens are never logged.
	Logger *slog.Logger
	// Registry receives the server's metrics and is served at /metrics. Nil
	// means a new registry with the Go and process collectors.
	Registry *prometheus.Registry
	// Assets, when set, is served for paths no API route matches: the
	// browser client and demo page.
	Assets http.Handler

	// Authenticator checks logins (the JSON API's and the password
	// grant's); nil means UserTable over Store, the built-in users.
	Authenticator Authenticator
	// TrustedIssuers may sign JWT bearer assertions (RFC 7523) that
	// POST /oauth2/token and POST /api/auth/exchange turn into sessions;
	// none turns the grant off.
	TrustedIssuers []assertion.Issuer
	// RegisteredClientsOnly refuses token requests from a client_id that
	// is not registered (and requests without one); by default unregistered
	// clients are public clients that need no registration.
	RegisteredClientsOnly bool
}

// Server serves the HTTP API. Create one with New.
type Server struct {
	cfg      Config
	store    store.Store
	engine   *session.Engine
	issuer   *token.Issuer
	keys     *token.StoreKeySet
	verifier *token.Verifier
	dpop     *dpop.Verifier
	// requireBearer guards the protected endpoints: bearer.Require with
	// the session check and DPoP.
	requireBearer func(http.Handler) http.Handler
	metrics       *metrics
	log           *slog.Logger
	mux           *http.ServeMux
	limits        *loginLimiter
	hashes        *hashGate
	refusals      *refusalLog
	userTag       func(username string) string
	handler       http.Handler
	// assertions validates JWT bearer assertions; nil without
	// Config.TrustedIssuers.
	assertions     *assertion.Validator
	assertionTotal *prometheus.CounterVec
	// adminHandler serves the admin listener; nil without AdminToken.
	adminHandler http.Handler

	// clientRefusals aggregates the failed client authentications.
	clientRefusals *refusalLog
}

// New returns a Server over cfg.Store. On first start it creates the
// signing key and the rotation secret in the store.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: Config.Store is required")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "http://localhost"
	}
	cfg.Issuer = strings.TrimRight(cfg.Issuer, "/")
	if cfg.Audience == "" {
		cfg.Audience = cfg.Issuer
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.Registry == nil {
		cfg.Registry = newRegistry()
	}
	if err := loginDefaults(&cfg); err != nil {
		return nil, err
	}
	if cfg.Authenticator == nil {
		cfg.Authenticator = UserTable{Store: cfg.Store}
	}
	if cfg.AdminToken != "" && len(cfg.AdminToken) < MinAdminTokenLen {
		return nil, fmt.Errorf("server: the admin token is %d bytes, want at least %d", len(cfg.AdminToken), MinAdminTokenLen)
	}
	if err := token.EnsureSigningKey(ctx, cfg.Store, cfg.Now()); err != nil {
		return nil, fmt.Errorf("server: signing key: %w", err)
	}
	issuer := token.NewIssuer(cfg.Store, cfg.Issuer, []string{cfg.Audience})
	if err := issuer.Reload(ctx); err != nil {
		return nil, fmt.Errorf("server: load signing key: %w", err)
	}
	engine, err := session.NewEngine(ctx, cfg.Store, issuer, session.Config{
		AccessTTL:  cfg.AccessTTL,
		RefreshTTL: cfg.RefreshTTL,
		SessionTTL: cfg.SessionTTL,
		Grace:      cfg.Grace,
		Now:        cfg.Now,

		MaxSessionsPerUser: cfg.MaxSessionsPerUser,
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	keys := token.NewStoreKeySet(cfg.Store, token.WithClock(cfg.Now))
	verifier, err := token.NewVerifier(keys, token.VerifierConfig{
		Issuer:   cfg.Issuer,
		Audience: cfg.Audience,
		Now:      cfg.Now, // the server is its own clock: no leeway
		// Ed25519 verification once per token, not per request; the
		// session check still reads the store on every request.
		CacheSize: 8192,
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	dv, err := newDPoPVerifier(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s := &Server{
		dpop:     dv,
		cfg:      cfg,
		store:    cfg.Store,
		engine:   engine,
		issuer:   issuer,
		keys:     keys,
		verifier: verifier,
		metrics:  newMetrics(cfg.Registry),
		log:      cfg.Logger,
		limits:   newLoginLimiter(cfg.LoginLimit, cfg.LoginLimitPerClient, cfg.LoginLimitPerAddress, cfg.Now),
		hashes:   newHashGate(cfg.PasswordHashes, cfg.PasswordHashWait),
		refusals: &refusalLog{log: cfg.Logger, every: refusalLogInterval},
		userTag:  newUserTagger(),
	}
	s.clientRefusals = &refusalLog{log: cfg.Logger, every: refusalLogInterval,
		msg: "client authentication failed", limit: "reason", user: "client_id"}
	s.assertionTotal = newAssertionMetric(cfg.Registry)
	if s.assertions, err = newAssertionValidator(cfg); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.routes()
	if cfg.AdminToken != "" {
		s.adminHandler = s.adminRoutes()
	}
	return s, nil
}

// Engine returns the session engine behind the server.
func (s *Server) Engine() *session.Engine { return s.engine }

// Verifier returns the verifier the server checks its own access tokens
// with.
func (s *Server) Verifier() *token.Verifier { return s.verifier }

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// KeyPolicy is the rotation policy of the server's signing keys: its
// access-token lifetime and the largest leeway a verifier may allow. Pass
// it to token.Keys, token.Rotate and token.Retire when working on the
// server's store from another process.
func (s *Server) KeyPolicy() token.RotationPolicy {
	return token.RotationPolicy{AccessTTL: s.engine.Config().AccessTTL}
}

// RotateSigningKey adds a new signing key and returns it and the retired
// keys, which go on verifying the tokens they signed until their
// RemovableAt; RetireSigningKeys deletes them then. In this order no token
// is ever minted that does not verify: the verifier learns the new key,
// then the issuer signs with it, and the old keys go later.
func (s *Server) RotateSigningKey(ctx context.Context) (token.Rotation, error) {
	rot, err := token.Rotate(ctx, s.store, s.cfg.Now(), s.KeyPolicy())
	if err != nil {
		return token.Rotation{}, fmt.Errorf("server: %w", err)
	}
	if err := s.keys.Reload(ctx); err != nil {
		return rot, fmt.Errorf("server: rotate key: %w", err)
	}
	if err := s.issuer.Reload(ctx); err != nil {
		return rot, fmt.Errorf("server: rotate key: %w", err)
	}
	s.log.Info("signing key rotated", "kid", rot.New.ID, "retired", len(rot.Retired))
	return rot, nil
}

// RetireSigningKeys deletes the retired keys that no unexpired token can
// need any more (token.Retire) and returns them.
func (s *Server) RetireSigningKeys(ctx context.Context) ([]token.KeyInfo, error) {
	gone, err := token.Retire(ctx, s.store, s.cfg.Now(), s.KeyPolicy())
	return gone, s.afterRetire(ctx, gone, err, false)
}

// ForceRetireSigningKeys deletes the retired keys named by ids, or every
// retired key when ids is empty, at once (token.ForceRetire): the access
// tokens they signed are refused from now on, although they have not
// expired, and clients recover by refreshing. It is the answer to a
// leaked key; rotate first if the leaked key is the signing one.
func (s *Server) ForceRetireSigningKeys(ctx context.Context, ids ...string) ([]token.KeyInfo, error) {
	gone, err := token.ForceRetire(ctx, s.store, ids...)
	return gone, s.afterRetire(ctx, gone, err, true)
}

// afterRetire makes this server's verifier forget the deleted keys and
// logs them.
func (s *Server) afterRetire(ctx context.Context, gone []token.KeyInfo, err error, forced bool) error {
	if len(gone) > 0 {
		if rerr := s.keys.Reload(ctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
		for _, k := range gone {
			s.log.Info("signing key retired", "kid", k.ID, "forced", forced)
		}
	}
	if err != nil {
		return fmt.Errorf("server: retire keys: %w", err)
	}
	return nil
}

// CollectExpired deletes sessions past their absolute expiry and consumed
// refresh tokens past their idle expiry, once now and then every interval
// until ctx ends.
func (s *Server) CollectExpired(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.store.DeleteExpired(ctx, s.cfg.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("deleting expired sessions failed", "err", err)
		case n > 0:
			s.log.Info("deleted expired sessions", "count", n)
		}
		s.collectSpentTokens(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) routes() {
	mux := http.NewServeMux()
	s.mux = mux
	requireBearer := bearer.Require(s.verifier,
		bearer.WithSessionCheck(s),
		bearer.WithDPoP(s.dpop, s.cfg.Issuer),
		bearer.WithObserver(func(r string) { s.metrics.bearer.WithLabelValues(r).Inc() }),
		bearer.WithErrorHandler(func(w http.ResponseWriter, _ *http.Request, err error) {
			if !s.answerUnavailable(w, err) {
				bearer.Refuse(w, err)
			}
		}))

	// Each path is registered without a method so that a wrong method gets
	// a JSON 405 with Allow rather than the mux's plain-text one.
	handle := func(method, path, route string, h http.Handler) {
		obs := s.metrics.latency.WithLabelValues(route)
		mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
				w.Header().Set("Allow", method)
				writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
					Description: fmt.Sprintf("%s needs %s, not %s", path, method, r.Method)})
				return
			}
			start := time.Now()
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
			defer cancel()
			h.ServeHTTP(w, r.WithContext(ctx))
			obs.Observe(time.Since(start).Seconds())
		}))
	}
	s.requireBearer = requireBearer
	handle("POST", "/api/auth/login", "login", http.HandlerFunc(s.handleLogin))
	handle("POST", "/api/auth/refresh", "refresh", http.HandlerFunc(s.handleRefresh))
	handle("POST", "/api/auth/logout", "logout", http.HandlerFunc(s.handleLogout))
	handle("GET", "/api/heartbeat", "heartbeat", requireBearer(http.HandlerFunc(s.handleHeartbeat)))
	handle("GET", "/api/me", "me", requireBearer(http.HandlerFunc(s.handleMe)))
	handle("POST", "/oauth2/token", "token", http.HandlerFunc(s.handleToken))
	handle("POST", "/oauth2/revoke", "revoke", http.HandlerFunc(s.handleRevoke))
	handle("POST", "/oauth2/introspect", "introspect", http.HandlerFunc(s.handleIntrospect))
	handle("POST", "/api/auth/exchange", "exchange", http.HandlerFunc(s.handleExchange))
	handle("GET", "/.well-known/jwks.json", "jwks", http.HandlerFunc(s.handleJWKS))
	handle("GET", "/.well-known/oauth-authorization-server", "metadata", http.HandlerFunc(s.handleMetadata))
	if s.cfg.AdminToken == "" { // else it is on the admin listener
		handle("GET", "/metrics", "metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))
	}
	s.userSessionRoutes(handle, requireBearer)
	handle("GET", "/healthz", "healthz", http.HandlerFunc(s.handleHealth))
	for _, p := range []string{"/api/", "/oauth2/", "/.well-known/"} {
		mux.HandleFunc(p, s.handleNotFound)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Assets != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			s.cfg.Assets.ServeHTTP(w, r)
			return
		}
		s.handleNotFound(w, r)
	})
	s.handler = s.logRequests(s.recoverPanics(s.cors(mux)))
}

// handleNotFound answers unknown API paths and wrong methods with JSON.
func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found",
		Description: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)})
}

// CheckSession returns nil when the session sid is live, and an error when
// it was revoked, has expired, is unknown or cannot be read: the
// per-request revocation check of session-checked endpoints, one
// primary-key lookup. It makes a Server a bearer.SessionChecker.
func (s *Server) CheckSession(ctx context.Context, sid string) error {
	_, err := s.engine.Session(ctx, sid)
	return err
}

// answerUnavailable answers 503 for errors that mean the database cannot be
// reached, and reports whether it did.
func (s *Server) answerUnavailable(w http.ResponseWriter, err error) bool {
	if !unavailable(err) {
		return false
	}
	s.log.Warn("database unavailable", "err", err)
	writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable",
		Description: "the session database is unreachable; retry shortly", RetryAfter: 1})
	return true
}

func unavailable(err error) bool {
	return errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// internalError answers an unexpected server-side error: 503 when the
// database is unreachable, 500 otherwise; the details go to the log only.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	if s.answerUnavailable(w, err) {
		return
	}
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, &apiError{Status: http.StatusInternalServerError, Code: "server_error",
		Description: "internal error"})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("health check failed", "err", err)
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "database": "unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "database": "ok"})
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	b, err := token.JWKS(r.Context(), s.store)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(b)
}

func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	iss := s.cfg.Issuer
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                iss,
		"token_endpoint":                        iss + "/oauth2/token",
		"revocation_endpoint":                   iss + "/oauth2/revoke",
		"jwks_uri":                              iss + "/.well-known/jwks.json",
		"grant_types_supported":                 s.grantTypes(),
		"token_endpoint_auth_methods_supported": clientAuthMethods,
		"revocation_endpoint_auth_methods_supported":    clientAuthMethods,
		"introspection_endpoint":                        iss + "/oauth2/introspect",
		"introspection_endpoint_auth_methods_supported": clientAuthMethods[1:],
		"access_token_signing_alg_values_supported":     []string{token.AlgEdDSA},
		"dpop_signing_alg_values_supported":             s.dpop.Algorithms(),
	})
}

// recoverPanics turns a panic into a 500 with a JSON body, logged without
// the request's headers.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				writeError(w, &apiError{Status: http.StatusInternalServerError, Code: "server_error", Description: "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// statusWriter records the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests logs method, path, status and duration at debug level. It
// never logs headers, query strings or bodies, where tokens travel.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration", time.Since(start), "remote", r.RemoteAddr)
	})
}
