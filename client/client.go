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
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

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

	active    atomic.Bool   // a request was made since the last heartbeat
	closed    chan struct{} // closed by Close
	closeOnce sync.Once     // closes closed once
	hbDone    chan struct{} // closed when the heartbeat has stopped; nil without one

	flights atomic.Uint64 // refreshes started, for flight.seq

	refreshes, adoptions, reauths, failures, attempts atomic.Uint64
	replays, waits, waitNanos, heartbeats             atomic.Uint64
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
	c.publish(c.newState(t, 1, c.now()))
	if cfg.HeartbeatURL != "" {
		c.hbDone = make(chan struct{})
		go c.heartbeat()
	}
	return c, nil
}

// HTTPClient returns an http.Client that sends its requests through c.
func (c *Client) HTTPClient() *http.Client { return c.hc }

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
	if c.due(st) {
		var err error
		if st, err = c.slow(ctx, st, c.now()); err != nil {
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
	c.publish(st)
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
	c.closeOnce.Do(func() {
		close(c.closed)
		if c.hbDone != nil {
			<-c.hbDone
		}
	})
	return nil
}
