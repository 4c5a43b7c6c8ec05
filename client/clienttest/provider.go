// Package clienttest is a fake identity provider for testing code that uses
// package client: the JSON API and the OAuth2 token endpoint of a
// silentrefresh server. Its rotation rules are the server's: it runs the
// real session.Engine and token.Issuer over an in-memory store
// (store/memstore), so it can never disagree with the server on rotation,
// the grace window or reuse detection. What it adds are knobs a real server
// lacks: latency, failures, lost answers, holding refreshes, and
// invalidating access tokens early.
//
// A Provider is an http.Handler. Serve it with httptest.NewServer (or
// NewServer here) for real HTTP, or call it in-process through
// Provider.Transport, which needs no network and so runs inside a
// testing/synctest bubble.
package clienttest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/store/memstore"
	"github.com/silentrefresh/silentrefresh/token"
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
	Superseded       int // consumed tokens presented inside grace after their successor: family revoked
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
	cfg      Config
	engine   *session.Engine // the server's rotation rules
	verifier *token.Verifier // checks the access tokens engine mints
	gateMu   sync.Mutex      // guards gate
	gate     chan struct{}   // refreshes block while it is open; nil: not held

	mu       sync.Mutex // guards everything below
	users    map[string]string
	sessions []string                 // every session ID issued, for RevokeAll
	access   map[[32]byte]accessToken // by SHA-256 of the token
	epoch    int                      // access tokens of older epochs are rejected
	latency  time.Duration
	failures []failure
	drops    int
	stats    Stats
}

// accessToken is what the Provider remembers of an access token beyond its
// claims: its expiry to the nanosecond (a JWT's is in whole seconds, and
// tests use lifetimes below one) and the epoch of InvalidateAccessTokens.
type accessToken struct {
	expires time.Time
	epoch   int
}

type failure struct {
	status     int
	retryAfter time.Duration
}

// The issuer and audience of the Provider's access tokens.
const (
	issuerName = "https://idp.clienttest.invalid"
	audience   = "clienttest"
)

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
	ctx := context.Background()
	st := memstore.New()
	if err := token.EnsureSigningKey(ctx, st, cfg.Now()); err != nil {
		panic(fmt.Sprintf("clienttest: %v", err))
	}
	engine, err := session.NewEngine(ctx, st, token.NewIssuer(st, issuerName, []string{audience}), session.Config{
		AccessTTL:  cfg.AccessTTL,
		RefreshTTL: cfg.RefreshTTL,
		Grace:      cfg.Grace,
		Now:        cfg.Now,
	})
	if err != nil {
		panic(fmt.Sprintf("clienttest: %v", err))
	}
	verifier, err := token.NewVerifier(token.NewStoreKeySet(st), token.VerifierConfig{
		Issuer: issuerName, Audience: audience, Now: cfg.Now,
	})
	if err != nil {
		panic(fmt.Sprintf("clienttest: %v", err))
	}
	return &Provider{
		cfg:      cfg,
		engine:   engine,
		verifier: verifier,
		users:    map[string]string{},
		access:   map[[32]byte]accessToken{},
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
	g, err := p.engine.Login(context.Background(), subject, "")
	if err != nil {
		panic(fmt.Sprintf("clienttest: login: %v", err))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Logins++
	p.sessions = append(p.sessions, g.Family.ID)
	return client.Tokens{AccessToken: g.AccessToken, RefreshToken: g.RefreshToken, Expiry: p.rememberLocked(g)}
}

// rememberLocked records the access token of g and returns its expiry on
// the Provider's clock. p.mu must be held.
func (p *Provider) rememberLocked(g session.Grant) time.Time {
	exp := p.cfg.Now().Add(p.cfg.AccessTTL)
	p.access[sha256.Sum256([]byte(g.AccessToken))] = accessToken{expires: exp, epoch: p.epoch}
	return exp
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
	ids := append([]string(nil), p.sessions...)
	p.mu.Unlock()
	for _, id := range ids {
		if err := p.engine.RevokeSession(context.Background(), id, "admin"); err != nil {
			panic(fmt.Sprintf("clienttest: revoke: %v", err))
		}
	}
}
