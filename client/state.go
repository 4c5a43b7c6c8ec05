package client

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
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

	// near is set once requests must read the clock: from nearLead before
	// refreshAt on, by a timer of the real clock, so that requests before
	// it read no clock at all. With an injected Config.Now (which no timer
	// follows) it is set from the start.
	near atomic.Bool
	// timer sets near; nil when near was set at once or is never set.
	// Written before the state is published, stopped when it is replaced.
	timer *time.Timer
}

// nearLead is how long before refreshAt requests start reading the clock.
// It only needs to exceed how late a timer's function may run.
const nearLead = time.Second

// due reports whether a request at this moment must take the slow path:
// refreshAt has come.
func (c *Client) due(st *state) bool {
	return st.near.Load() && !c.now().Before(st.refreshAt)
}

// publish makes st the current state, arming its timer; c.mu is held, or
// c is not shared yet.
func (c *Client) publish(st *state) {
	if old := c.cur.Load(); old != nil && old.timer != nil {
		old.timer.Stop()
	}
	switch {
	case c.cfg.Now != nil:
		st.near.Store(true)
	case st.refreshAt.Equal(never):
		// No expiry: only a 401 refreshes.
	default:
		// (Until saturates for the zero refreshAt of no tokens: compare,
		// do not subtract first.)
		if d := time.Until(st.refreshAt); d > nearLead {
			st.timer = time.AfterFunc(d-nearLead, func() { st.near.Store(true) })
		} else {
			st.near.Store(true)
		}
	}
	c.cur.Store(st)
}

// rescheduled returns a copy of s whose background refresh starts at t.
func (s *state) rescheduled(t time.Time) *state {
	return &state{tok: s.tok, gen: s.gen, header: s.header, refreshAt: t, expireAt: s.expireAt, err: s.err, flight: s.flight}
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
