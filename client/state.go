package client

import (
	"fmt"
	"math/rand/v2"
	"time"
)

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
	// flight is the sequence number of the refresh that got this state
	// from the server; 0 for tokens from the Store, SetTokens, or adopted
	// from another Client sharing the Store, whose refresh may be older
	// than a rejection this Client saw.
	flight uint64
}

func (s *state) usable(now time.Time) bool { return s.err == nil && now.Before(s.expireAt) }

var errNoTokens = fmt.Errorf("%w: no tokens", ErrReauthRequired)

// never is a time after every expiry.
var never = time.Unix(1<<40, 0)

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
