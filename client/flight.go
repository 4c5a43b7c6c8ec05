package client

import (
	"context"
	"errors"
	"fmt"
	"time"
)

type flight struct {
	seq  uint64        // numbers flights in the order they started
	done chan struct{} // closed when st and err are set
	st   *state
	err  error
}

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
		if res.outcome == OutcomeRefreshed {
			// Adopted tokens keep 0: another process obtained them, from
			// a refresh that may have begun before whatever made the
			// server refuse the token they replace.
			st.flight = f.seq
		}
		c.publish(st)
		notify = true
	case res.outcome == OutcomeReauthRequired:
		st = &state{gen: from.gen + 1, err: err}
		c.publish(st)
		notify = true
	default:
		// Keep the session. While the token is valid, requests keep using
		// it; the next background attempt waits a little.
		if from.usable(now) {
			if at := now.Add(min(5*time.Second, from.expireAt.Sub(now)/2)); at.After(from.refreshAt) {
				c.publish(from.rescheduled(at))
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
