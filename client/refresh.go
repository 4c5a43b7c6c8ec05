package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/silentrefresh/silentrefresh/internal/clock"
)

// result is what one refresh (exchange) produced.
type result struct {
	outcome  Outcome
	tok      Tokens
	obtained time.Time // when tok was obtained (the request's send time)
	attempts int
	err      error
}

// exchange gets the tokens that follow from: from the shared Store if
// another Client already refreshed, else from the Refresher. It holds the
// Store's lock, if any, throughout, and saves what it got before releasing
// it.
func (c *Client) exchange(ctx context.Context, from *state) result {
	base := from.tok
	if c.locker != nil {
		unlock, err := c.locker.Lock(ctx)
		if err != nil {
			return result{outcome: OutcomeFailed, err: &RefreshError{Err: err}}
		}
		defer unlock()
		if c.cur.Load().gen != from.gen {
			// SetTokens or Logout replaced the session while this refresh
			// waited for the lock: refreshing the old one now would save
			// its tokens over the new ones.
			return result{outcome: OutcomeAdopted}
		}
		t, err := c.cfg.Store.Load(ctx)
		now := c.now()
		switch {
		case err != nil:
			// Carry on with the tokens in memory: they are the newest this
			// Client knows, and the server's grace covers a collision.
			c.log.WarnContext(ctx, "token store unreadable; refreshing from memory", "error", err)
		case t.IsZero():
			return c.ended(ctx, 0, fmt.Errorf("%w: the session was ended by another client sharing its store", ErrReauthRequired), false)
		case !same(t, base) && !same(t, c.lastStored()):
			// Another Client sharing the Store refreshed (or logged in)
			// since this one last read it. (Tokens this Client saved, or
			// older ones it failed to overwrite, are not adopted.)
			c.setStored(t)
			if c.newState(t, 0, now).usable(now) {
				return result{outcome: OutcomeAdopted, tok: t, obtained: now}
			}
			base = t
		}
	}
	if base.RefreshToken == "" {
		return c.ended(ctx, 0, fmt.Errorf("%w: no refresh token", ErrReauthRequired), true)
	}
	g, sent, attempts, err := c.retrying(ctx, base.RefreshToken)
	if errors.Is(err, ErrInvalidGrant) {
		return c.ended(ctx, attempts, fmt.Errorf("%w: %w", ErrReauthRequired, err), true)
	}
	if err != nil {
		return result{outcome: OutcomeFailed, attempts: attempts, err: &RefreshError{Attempts: attempts, Err: err}}
	}
	t := g.tokens(sent, base.RefreshToken)
	if err := c.cfg.Store.Save(ctx, t); err != nil {
		// The server has rotated the refresh token: the new one must be
		// used even if it could not be saved.
		c.log.ErrorContext(ctx, "saving refreshed tokens failed; keeping them in memory", "error", err)
	} else {
		c.setStored(t)
	}
	return result{outcome: OutcomeRefreshed, tok: t, obtained: sent, attempts: attempts}
}

// ended is the result of a refresh that found the session over; clear
// removes the tokens from the Store.
func (c *Client) ended(ctx context.Context, attempts int, err error, clear bool) result {
	if clear {
		if cerr := c.cfg.Store.Clear(ctx); cerr != nil {
			c.log.ErrorContext(ctx, "clearing the token store failed", "error", cerr)
		} else {
			c.setStored(Tokens{})
		}
	}
	return result{outcome: OutcomeReauthRequired, attempts: attempts, err: err}
}

// retrying calls the Refresher until it succeeds, the error is permanent,
// or the retries run out. It returns the grant, when its request was sent,
// and how many requests were made.
func (c *Client) retrying(ctx context.Context, refreshToken string) (Grant, time.Time, int, error) {
	maxRetries := c.cfg.MaxRetries
	switch {
	case maxRetries == 0:
		maxRetries = 3
	case maxRetries < 0:
		maxRetries = 0
	}
	attemptTimeout := c.cfg.AttemptTimeout
	if attemptTimeout <= 0 {
		attemptTimeout = 5 * time.Second
	}
	var (
		retries     int
		lostRetried bool
	)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		sent := c.now()
		g, err := c.cfg.Refresher.Refresh(actx, refreshToken)
		cancel()
		if err == nil && g.AccessToken == "" {
			err = errors.New("client: token endpoint answered without an access token")
		}
		if err == nil {
			return g, sent, attempt, nil
		}
		if errors.Is(err, ErrInvalidGrant) || ctx.Err() != nil {
			return Grant{}, sent, attempt, err
		}
		var (
			delay time.Duration
			ne    *NetworkError
			re    *RetrieveError
		)
		switch {
		case errors.As(err, &ne) && ne.Sent:
			// The server may have rotated the token and the answer was
			// lost. Presenting the same token again at once is safe within
			// the server's grace window, and gets the same successor.
			if lostRetried {
				return Grant{}, sent, attempt, err
			}
			lostRetried = true
		case errors.As(err, &ne):
			if retries >= maxRetries {
				return Grant{}, sent, attempt, err
			}
			delay = c.backoff(retries)
			retries++
		case errors.As(err, &re) && re.Temporary():
			if retries >= maxRetries {
				return Grant{}, sent, attempt, err
			}
			delay = max(c.backoff(retries), re.RetryAfter)
			retries++
		default:
			return Grant{}, sent, attempt, err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
			return Grant{}, sent, attempt, err // the server asked for a longer pause than is left
		}
		if delay > 0 {
			c.log.DebugContext(ctx, "retrying token refresh", "after", delay, "error", err)
			if clock.Sleep(ctx, delay) != nil {
				return Grant{}, sent, attempt, err
			}
		}
	}
}

// backoff is the delay before retry n (0-based): exponential, capped, with
// jitter in its upper half.
func (c *Client) backoff(n int) time.Duration {
	base := c.cfg.Backoff
	if base <= 0 {
		base = 200 * time.Millisecond
	}
	maxd := c.cfg.MaxBackoff
	if maxd <= 0 {
		maxd = 5 * time.Second
	}
	d := base
	for range n {
		if d >= maxd/2 {
			d = maxd
			break
		}
		d *= 2
	}
	d = min(d, maxd)
	return d/2 + rand.N(d/2+1)
}

// same reports whether a and b are the same tokens.
func same(a, b Tokens) bool {
	return a.AccessToken == b.AccessToken && a.RefreshToken == b.RefreshToken && a.Expiry.Equal(b.Expiry)
}

func (c *Client) lastStored() Tokens {
	c.storedMu.Lock()
	defer c.storedMu.Unlock()
	return c.stored
}

func (c *Client) setStored(t Tokens) {
	c.storedMu.Lock()
	defer c.storedMu.Unlock()
	c.stored = t
}
