// Package client keeps a Go program's tokens fresh without it noticing.
//
// A [Client] is an [http.RoundTripper]: it sets the access token on every
// request, refreshes it in the background shortly before it expires, and
// when a server rejects it early (key rotation, revocation) it refreshes
// once and sends the request again. However many requests need a new token
// at the same moment, one refresh runs, and every one of them goes out with
// its result. When the session is over every waiting request gets one
// [ErrReauthRequired] and Config.OnReauthRequired runs once.
//
// The hot path reads the current token with one atomic load and takes no
// lock. Refresh tokens rotate: the Client saves each new one in its [Store]
// before using it, and a [FileStore] shares one session between processes
// with an OS file lock, so a refresh token is never presented twice.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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

	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// RefreshWindow is how long before expiry a background refresh starts.
	// Zero means a fifth of the token's lifetime, at least 5s and at most
	// 5m. It is never more than half the lifetime.
	RefreshWindow time.Duration
	// Jitter widens the window by a random fraction up to this much, so a
	// fleet of clients does not refresh in step. Zero means 0.25; negative
	// means none.
	Jitter float64
	// ExpiryMargin is how long before Expiry a token counts as expired and
	// requests wait for a new one instead of sending it. Zero means a tenth
	// of the lifetime, at most 10s; negative means none.
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

// Client keeps one session's tokens fresh and authorizes requests with
// them. It is an [http.RoundTripper]; use [Client.HTTPClient] for an
// [http.Client]. A Client is safe for concurrent use.
type Client struct {
	cfg    Config
	base   http.RoundTripper
	now    func() time.Time
	locker Locker // cfg.Store as a Locker, or nil
	log    *slog.Logger
	hc     *http.Client

	// cur is the current token: read on every request without a lock,
	// replaced only under mu.
	cur atomic.Pointer[state]
	// flying mirrors fl != nil, so requests inside the refresh window can
	// see that a background refresh already runs without taking mu.
	flying atomic.Bool

	mu sync.Mutex // guards fl and the replacement of cur
	fl *flight    // the refresh in progress, or nil

	storedMu sync.Mutex // guards stored
	// stored is what this Client last read from or wrote to the Store.
	stored Tokens

	active  atomic.Bool // a request was made since the last heartbeat
	closed  chan struct{}
	closeMu sync.Once
	hbDone  chan struct{}

	flights atomic.Uint64 // refreshes started, for flight.seq

	refreshes, adoptions, reauths, failures, attempts atomic.Uint64
	replays, waits, waitNanos, heartbeats             atomic.Uint64
}

// state is one immutable snapshot of the tokens.
type state struct {
	tok Tokens
	// gen counts token changes; a 401 triggers a refresh only when the
	// request carried the current generation.
	gen    uint64
	header string // "Bearer " + tok.AccessToken
	// refreshAt is when a background refresh should start; requests before
	// it take the fast path. The zero time for no tokens.
	refreshAt time.Time
	// expireAt is when requests stop sending the token and wait instead.
	expireAt time.Time
	// err is set when there are no tokens: what requests get.
	err error
	// flight is the sequence number of the refresh that produced this
	// state; 0 for tokens from the Store or SetTokens.
	flight uint64
}

func (s *state) usable(now time.Time) bool { return s.err == nil && now.Before(s.expireAt) }

// never is a time after every expiry.
var never = time.Unix(1<<40, 0)

type flight struct {
	seq  uint64        // numbers flights in the order they started
	done chan struct{} // closed when st and err are set
	st   *state
	err  error
}

// New returns a Client for the session in cfg.Store. A Store without tokens
// is allowed: requests fail with ErrReauthRequired until SetTokens.
func New(cfg Config) (*Client, error) {
	if cfg.Refresher == nil {
		return nil, errors.New("client: Config.Refresher is required")
	}
	if cfg.Store == nil {
		return nil, errors.New("client: Config.Store is required")
	}
	c := &Client{
		cfg:    cfg,
		base:   cfg.Base,
		now:    cfg.Now,
		log:    cfg.Logger,
		closed: make(chan struct{}),
	}
	if c.base == nil {
		c.base = http.DefaultTransport
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.locker, _ = cfg.Store.(Locker)
	c.hc = &http.Client{Transport: c}
	t, err := cfg.Store.Load(context.Background())
	if err != nil {
		return nil, fmt.Errorf("client: load tokens: %w", err)
	}
	c.stored = t
	c.cur.Store(c.newState(t, 1, c.now()))
	if cfg.HeartbeatURL != "" {
		c.hbDone = make(chan struct{})
		go c.heartbeat()
	}
	return c, nil
}

var errNoTokens = fmt.Errorf("%w: no tokens", ErrReauthRequired)

// newState computes the refresh schedule of t. obtained is when t was
// obtained; for tokens read from a Store, whose lifetime is unknown, it is
// the moment they were read, so the lifetime counts from there.
func (c *Client) newState(t Tokens, gen uint64, obtained time.Time) *state {
	if t.IsZero() {
		return &state{gen: gen, err: errNoTokens}
	}
	st := &state{tok: t, gen: gen, header: "Bearer " + t.AccessToken}
	if t.AccessToken == "" {
		// Only a refresh token: expired from the start.
		st.refreshAt, st.expireAt = obtained, obtained
		return st
	}
	if t.Expiry.IsZero() {
		st.refreshAt, st.expireAt = never, never
		return st
	}
	life := t.Expiry.Sub(obtained)
	if life <= 0 {
		st.refreshAt, st.expireAt = obtained, obtained
		return st
	}
	margin := c.cfg.ExpiryMargin
	switch {
	case margin == 0:
		margin = min(life/10, 10*time.Second)
	case margin < 0:
		margin = 0
	}
	window := c.cfg.RefreshWindow
	if window <= 0 {
		window = min(max(life/5, 5*time.Second), 5*time.Minute)
	}
	window = max(min(window, life/2), margin)
	jitter := c.cfg.Jitter
	if jitter == 0 {
		jitter = 0.25
	}
	if jitter > 0 {
		window += time.Duration(float64(window) * jitter * rand.Float64())
	}
	st.expireAt = t.Expiry.Add(-margin)
	st.refreshAt = t.Expiry.Add(-window)
	return st
}

// HTTPClient returns an http.Client that sends its requests through c.
func (c *Client) HTTPClient() *http.Client { return c.hc }

// RoundTrip sends req with the current access token, refreshing it first
// if it has expired, and once more if the server answers 401. It follows
// the http.RoundTripper contract: req is not modified and its body is
// closed on every path.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	if c.hbDone != nil && !c.active.Load() {
		c.active.Store(true)
	}
	return c.roundTrip(req)
}

func (c *Client) roundTrip(req *http.Request) (*http.Response, error) {
	st := c.cur.Load()
	if now := c.now(); !now.Before(st.refreshAt) {
		var err error
		if st, err = c.slow(req.Context(), st, now); err != nil {
			closeBody(req)
			return nil, err
		}
	}
	r2 := req.Clone(req.Context())
	if r2.Header == nil {
		r2.Header = make(http.Header)
	}
	r2.Header.Set("Authorization", st.header)
	resp, err := c.base.RoundTrip(r2)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	return c.rejected(req, st, resp)
}

// slow is the path of a request made inside the refresh window or later.
func (c *Client) slow(ctx context.Context, st *state, now time.Time) (*state, error) {
	if st.err != nil {
		return nil, st.err
	}
	if st.usable(now) {
		if !c.flying.Load() {
			c.start(ctx, st, TriggerProactive)
		}
		return st, nil
	}
	return c.await(ctx, st, TriggerExpired)
}

// rejected handles a 401 to a request sent with st: it waits for a token
// newer than st and replays the request once with it. A 401 to that replay
// is final if its token came from a refresh that started after the
// rejection. But the token may come from a refresh that was already under
// way, or done, when the 401 came back — minted, say, just before the
// server dropped the signing key — and then it may be as stale as st: that
// replay's 401 earns one more refresh and one last replay. So a request is
// sent at most three times and never loops, and an endpoint that refuses
// every token costs one refresh per request.
func (c *Client) rejected(req *http.Request, st *state, resp *http.Response) (*http.Response, error) {
	for replay := 0; ; replay++ {
		if !bearerRejected(resp.Header) {
			return resp, nil
		}
		var body io.ReadCloser
		if req.Body != nil && req.Body != http.NoBody {
			var err error
			if req.GetBody != nil {
				body, err = req.GetBody()
			}
			if req.GetBody == nil || err != nil {
				// The request cannot be sent again: the caller gets the 401
				// untouched, and the next request a new token.
				c.start(req.Context(), st, TriggerRejected)
				return resp, nil
			}
		}
		started := c.flights.Load() // refreshes begun before the 401 came back
		discard(resp)
		ctx := req.Context()
		next, err := c.await(ctx, st, TriggerRejected)
		if err != nil {
			if body != nil {
				body.Close()
			}
			return nil, err
		}
		r3 := req.Clone(ctx)
		if r3.Header == nil {
			r3.Header = make(http.Header)
		}
		if body != nil {
			r3.Body = body
		}
		r3.Header.Set("Authorization", next.header)
		c.replays.Add(1)
		if h := c.cfg.Hooks.Replay; h != nil {
			h()
		}
		resp, err = c.base.RoundTrip(r3)
		if err != nil || resp.StatusCode != http.StatusUnauthorized || replay == 1 || next.flight > started {
			return resp, err
		}
		st = next
	}
}

// bearerRejected reports whether a 401 rejects the bearer token, so that a
// new one may help: no challenge, or a Bearer challenge with no error or
// error="invalid_token". Other challenges (Basic, insufficient_scope) are
// passed through without a refresh.
func bearerRejected(h http.Header) bool {
	chs := h.Values("Www-Authenticate")
	if len(chs) == 0 {
		return true
	}
	for _, ch := range chs {
		scheme, params, _ := strings.Cut(strings.TrimSpace(ch), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			continue
		}
		i := strings.Index(params, "error=")
		if i < 0 {
			return true
		}
		v := strings.Trim(strings.SplitN(params[i+len("error="):], ",", 2)[0], `" `)
		return v == "invalid_token"
	}
	return false
}

// await waits for a token newer than seen (which is expired or was
// rejected): the result of the refresh in flight, or of a new one.
func (c *Client) await(ctx context.Context, seen *state, trig Trigger) (*state, error) {
	for range 3 {
		f, cur := c.start(ctx, seen, trig)
		if f == nil {
			// Already replaced by a refresh that ended meanwhile.
			if cur.err != nil {
				return nil, cur.err
			}
			if cur.usable(c.now()) {
				return cur, nil
			}
			seen, trig = cur, TriggerExpired
			continue
		}
		return c.wait(ctx, f)
	}
	return nil, &RefreshError{Err: errors.New("client: tokens keep expiring as they are replaced")}
}

func (c *Client) wait(ctx context.Context, f *flight) (*state, error) {
	if h := c.cfg.Hooks.WaitStart; h != nil {
		h()
	}
	start := time.Now()
	var (
		st  *state
		err error
	)
	select {
	case <-f.done:
		st, err = f.st, f.err
	case <-ctx.Done():
		err = fmt.Errorf("client: waiting for token refresh: %w", context.Cause(ctx))
	}
	d := time.Since(start)
	c.waits.Add(1)
	c.waitNanos.Add(uint64(d))
	if h := c.cfg.Hooks.WaitEnd; h != nil {
		h(d, err)
	}
	return st, err
}

// start returns the refresh in flight, starting one for seen if none is.
// If the current state is no longer seen (a refresh ended since), it returns
// no flight and the current state.
func (c *Client) start(ctx context.Context, seen *state, trig Trigger) (*flight, *state) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.cur.Load()
	if cur.gen != seen.gen {
		return nil, cur
	}
	if c.fl == nil {
		if cur.err != nil {
			return nil, cur
		}
		c.fl = &flight{seq: c.flights.Add(1), done: make(chan struct{})}
		c.flying.Store(true)
		go c.run(context.WithoutCancel(ctx), c.fl, cur, trig)
	}
	return c.fl, nil
}

// run is one refresh. It runs detached from the requests waiting for it,
// which each stop waiting when their own context ends.
func (c *Client) run(ctx context.Context, f *flight, from *state, trig Trigger) {
	ctx, cancel := context.WithTimeout(ctx, c.refreshTimeout())
	defer cancel()
	start := time.Now()
	res := c.exchange(ctx, from)

	now := c.now()
	var (
		st     *state
		err    = res.err
		notify bool // tokens changed: call OnTokenChange
	)
	c.mu.Lock()
	cur := c.cur.Load()
	switch {
	case cur.gen != from.gen:
		// SetTokens or Logout replaced the tokens meanwhile; they win.
		st, err = cur, cur.err
	case res.outcome == OutcomeRefreshed || res.outcome == OutcomeAdopted:
		st = c.newState(res.tok, from.gen+1, res.obtained)
		st.flight = f.seq
		c.cur.Store(st)
		notify = true
	case res.outcome == OutcomeReauthRequired:
		st = &state{gen: from.gen + 1, err: err}
		c.cur.Store(st)
		notify = true
	default:
		// Keep the session. While the token is valid, requests keep using
		// it; the next background attempt waits a little.
		if from.usable(now) {
			cooled := *from
			cooled.refreshAt = now.Add(min(5*time.Second, from.expireAt.Sub(now)/2))
			if cooled.refreshAt.After(from.refreshAt) {
				c.cur.Store(&cooled)
			}
		}
	}
	f.st, f.err = st, err
	c.fl = nil
	c.flying.Store(false)
	c.mu.Unlock()

	ev := RefreshEvent{Trigger: trig, Outcome: res.outcome, Attempts: res.attempts, Duration: time.Since(start), Err: res.err}
	c.attempts.Add(uint64(res.attempts))
	switch res.outcome {
	case OutcomeRefreshed:
		c.refreshes.Add(1)
		c.log.DebugContext(ctx, "token refreshed", "trigger", trig, "attempts", res.attempts, "duration", ev.Duration)
	case OutcomeAdopted:
		c.adoptions.Add(1)
		c.log.DebugContext(ctx, "token refreshed by another client", "trigger", trig)
	case OutcomeReauthRequired:
		c.reauths.Add(1)
		c.log.InfoContext(ctx, "session ended, reauthentication required", "trigger", trig, "error", res.err)
	default:
		c.failures.Add(1)
		c.log.WarnContext(ctx, "token refresh failed", "trigger", trig, "attempts", res.attempts, "error", res.err)
	}
	if notify && c.cfg.OnTokenChange != nil {
		c.cfg.OnTokenChange(st.tok)
	}
	if notify && res.outcome == OutcomeReauthRequired && c.cfg.OnReauthRequired != nil {
		c.cfg.OnReauthRequired(err)
	}
	if h := c.cfg.Hooks.Refresh; h != nil {
		h(ev)
	}
	close(f.done)
}

func (c *Client) refreshTimeout() time.Duration {
	if c.cfg.RefreshTimeout > 0 {
		return c.cfg.RefreshTimeout
	}
	return 30 * time.Second
}

// Refresh refreshes the tokens now (joining a refresh already in flight)
// and returns the new ones.
func (c *Client) Refresh(ctx context.Context) (Tokens, error) {
	seen := c.cur.Load()
	if seen.err != nil {
		return Tokens{}, seen.err
	}
	f, cur := c.start(ctx, seen, TriggerExplicit)
	if f == nil {
		return cur.tok, cur.err
	}
	st, err := c.wait(ctx, f)
	if err != nil {
		return Tokens{}, err
	}
	return st.tok, nil
}

// Token returns tokens that are valid now, waiting for a refresh if the
// current ones have expired.
func (c *Client) Token(ctx context.Context) (Tokens, error) {
	st := c.cur.Load()
	if now := c.now(); !now.Before(st.refreshAt) {
		var err error
		if st, err = c.slow(ctx, st, now); err != nil {
			return Tokens{}, err
		}
	}
	return st.tok, nil
}

// SetTokens starts a new session with t (after a new login, say): it saves
// t in the Store and uses it from now on. A refresh in flight is discarded.
func (c *Client) SetTokens(ctx context.Context, t Tokens) error {
	if err := c.replace(ctx, t, c.cfg.Store.Save); err != nil {
		return err
	}
	return nil
}

// Logout ends the session: it revokes the refresh token at the server when
// the Refresher can, clears the Store, and makes requests fail with
// ErrReauthRequired. OnReauthRequired is not called. The local session is
// ended even when the revocation fails; its error is returned.
func (c *Client) Logout(ctx context.Context) error {
	st := c.cur.Load()
	var rerr error
	if r, ok := c.cfg.Refresher.(Revoker); ok && st.tok.RefreshToken != "" {
		if err := r.Revoke(ctx, st.tok.RefreshToken); err != nil {
			rerr = fmt.Errorf("client: logout: %w", err)
		}
	}
	err := c.replace(ctx, Tokens{}, func(ctx context.Context, _ Tokens) error { return c.cfg.Store.Clear(ctx) })
	return errors.Join(rerr, err)
}

func (c *Client) replace(ctx context.Context, t Tokens, persist func(context.Context, Tokens) error) error {
	if c.locker != nil {
		unlock, err := c.locker.Lock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
	}
	if err := persist(ctx, t); err != nil {
		return err
	}
	c.setStored(t)
	c.mu.Lock()
	st := c.newState(t, c.cur.Load().gen+1, c.now())
	if t.IsZero() {
		st.err = fmt.Errorf("%w: logged out", ErrReauthRequired)
	}
	c.cur.Store(st)
	c.mu.Unlock()
	if c.cfg.OnTokenChange != nil {
		c.cfg.OnTokenChange(t)
	}
	return nil
}

// Stats returns the Client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Refreshes:  c.refreshes.Load(),
		Adoptions:  c.adoptions.Load(),
		Reauths:    c.reauths.Load(),
		Failures:   c.failures.Load(),
		Attempts:   c.attempts.Load(),
		Replays:    c.replays.Load(),
		Waits:      c.waits.Load(),
		WaitTime:   time.Duration(c.waitNanos.Load()),
		Heartbeats: c.heartbeats.Load(),
	}
}

// Close stops the heartbeat. Requests may still be made; a refresh in
// flight completes.
func (c *Client) Close() error {
	c.closeMu.Do(func() {
		close(c.closed)
		if c.hbDone != nil {
			<-c.hbDone
		}
	})
	return nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// discard drains a little of a response body so its connection can be
// reused, and closes it.
func discard(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
}
