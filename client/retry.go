package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/silentrefresh/silentrefresh/internal/clock"
)

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
		g, err := c.cfg.Refresher.Refresh(withProver(actx, c.prover), refreshToken)
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
