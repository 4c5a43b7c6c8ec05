package client

import (
	"context"
	"errors"
	"fmt"
	"time"
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
