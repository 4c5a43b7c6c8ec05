package client

import (
	"crypto"
	"log/slog"
	"net/http"
	"time"
)

// Config configures a Client. Refresher and Store are required; every other
// zero value picks a sensible default.
type Config struct {
	// Refresher exchanges refresh tokens: [OAuth2] or [JSONAPI].
	Refresher Refresher
	// Store holds the tokens; the Client reads them once in New and after
	// taking a [Locker]'s lock, and saves every new pair.
	Store Store
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// DPoP, when set, is the private key the Client proves possession of
	// (RFC 9449): an ECDSA P-256 or Ed25519 crypto.Signer, from
	// GenerateDPoPKey or FileStore.DPoPKey. Every refresh and every
	// request carries a fresh proof signed with it, a session logged in
	// with Client.Login is bound to it, and the tokens it gets are useless
	// without it. Nil means bearer tokens.
	DPoP crypto.Signer

	// Now is the Client's clock, the one it schedules refreshes and
	// measures the expiry of refreshed tokens on; nil means time.Now. The
	// refreshers have none (their Login measures on time.Now), and the
	// Client's timers (backoff, heartbeat) and the durations in Hooks run
	// on the real clock, which testing/synctest replaces.
	Now func() time.Time

	// RefreshWindow is how long before expiry a background refresh starts.
	// Zero means a fifth of the token's lifetime, at least 5s and at most
	// 5m. It is never more than half the lifetime.
	RefreshWindow time.Duration
	// Jitter widens the window by a random fraction up to this much, so a
	// fleet of clients does not refresh in step. Zero means 0.25; negative
	// means none.
	Jitter float64
	// ExpiryMargin is how long before Expiry a token counts as stale:
	// requests wait for a new one instead of sending it. Zero means the
	// rule of docs/API.md, min(10s, lifetime/10), the lifetime being Expiry
	// minus the moment the token was obtained; negative means none.
	ExpiryMargin time.Duration

	// RefreshTimeout bounds one refresh, retries included. Zero means 30s.
	RefreshTimeout time.Duration
	// AttemptTimeout bounds one refresh request. Zero means 5s. Keep it well
	// below the server's grace window: a request that times out is retried
	// with the same refresh token.
	AttemptTimeout time.Duration
	// MaxRetries is how many times a refresh that failed for a temporary
	// reason (network, 429, 5xx) is retried. Zero means 3; negative, none.
	MaxRetries int
	// Backoff is the delay before the first retry, doubled for each one
	// after it, with jitter. Zero means 200ms.
	Backoff time.Duration
	// MaxBackoff caps the delay between retries, unless the server asks for
	// more with Retry-After. Zero means 5s.
	MaxBackoff time.Duration

	// HeartbeatURL, when set, is fetched with the access token every
	// HeartbeatInterval while the Client is in use, for example
	// "https://auth.example.com/api/heartbeat". An expired token there is
	// refreshed; a session revoked elsewhere ends here too, with
	// OnReauthRequired, before the user's next request fails.
	HeartbeatURL string
	// HeartbeatInterval is the heartbeat's period. Zero means 1m.
	HeartbeatInterval time.Duration

	// OnTokenChange, when set, is called with the new tokens after every
	// refresh, after SetTokens, and with zero Tokens when the session ends,
	// so an application can keep them anywhere. Calls do not overlap for
	// one Client; requests waiting for the refresh wait for the call too.
	OnTokenChange func(Tokens)
	// OnReauthRequired, when set, is called once when the session ends
	// (the refresh token was rejected), with the error that ended it. It is
	// not called by Logout.
	OnReauthRequired func(error)

	// Logger receives refresh events; nil means none. Tokens are never
	// logged.
	Logger *slog.Logger
	// Hooks observe the Client, for metrics.
	Hooks Hooks
}

// Hooks are optional callbacks for metrics. They run on the request's or
// the refresh's goroutine and must be quick and safe for concurrent use.
type Hooks struct {
	// Refresh is called when a refresh ends, whatever its outcome.
	Refresh func(RefreshEvent)
	// WaitStart is called when a request starts waiting for a refresh.
	WaitStart func()
	// WaitEnd is called when it stops, with how long it waited and the
	// error it got (nil when it got a token).
	WaitEnd func(waited time.Duration, err error)
	// Replay is called when a request rejected with 401 is sent again.
	Replay func()
}

// Outcome is how a refresh ended.
type Outcome string

// The outcomes of a refresh.
const (
	// OutcomeRefreshed: the server issued new tokens.
	OutcomeRefreshed Outcome = "refreshed"
	// OutcomeAdopted: another Client sharing the Store had already
	// refreshed; its tokens were taken without a request.
	OutcomeAdopted Outcome = "adopted"
	// OutcomeReauthRequired: the server rejected the refresh token; the
	// session is over.
	OutcomeReauthRequired Outcome = "reauth_required"
	// OutcomeFailed: the refresh failed for another reason; the session is
	// kept and a later request tries again.
	OutcomeFailed Outcome = "failed"
)

// Trigger is what started a refresh.
type Trigger string

// The triggers of a refresh.
const (
	TriggerProactive Trigger = "proactive" // the token is about to expire
	TriggerExpired   Trigger = "expired"   // a request found it expired
	TriggerRejected  Trigger = "rejected"  // a server answered 401
	TriggerExplicit  Trigger = "explicit"  // Client.Refresh
)

// RefreshEvent describes one refresh.
type RefreshEvent struct {
	Trigger  Trigger
	Outcome  Outcome
	Attempts int           // refresh requests made, retries included
	Duration time.Duration // from start to end, lock wait included
	Err      error         // nil when Outcome is refreshed or adopted
}

// Stats are a Client's counters since New.
type Stats struct {
	Refreshes  uint64        // refreshes that got new tokens from the server
	Adoptions  uint64        // refreshes that found new tokens in the Store
	Reauths    uint64        // refreshes that ended the session
	Failures   uint64        // refreshes that failed and kept the session
	Attempts   uint64        // refresh requests sent, retries included
	Replays    uint64        // requests sent again after a 401
	Waits      uint64        // requests that waited for a refresh
	WaitTime   time.Duration // total time requests spent waiting
	Heartbeats uint64        // heartbeat requests made
}
