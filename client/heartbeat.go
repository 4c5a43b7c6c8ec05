package client

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// heartbeat fetches Config.HeartbeatURL every interval while the Client is
// in use, until Close. The request goes through the Client, so an expired
// or rejected token is refreshed by the one single-flight path, and a
// revoked session ends here with ErrReauthRequired and OnReauthRequired.
func (c *Client) heartbeat() {
	defer close(c.hbDone)
	every := c.cfg.HeartbeatInterval
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-t.C:
		}
		if !c.active.Swap(false) || c.cur.Load().err != nil {
			continue // idle, or the session is already over
		}
		c.beat(every)
	}
}

func (c *Client) beat(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-c.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	c.heartbeats.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.HeartbeatURL, nil)
	if err != nil {
		c.log.Error("heartbeat: bad URL", "error", err)
		return
	}
	resp, err := c.roundTrip(req)
	switch {
	case errors.Is(err, ErrReauthRequired):
		// Reported by the refresh that found it.
	case err != nil:
		c.log.Warn("heartbeat failed", "error", err)
	default:
		if resp.StatusCode != http.StatusOK {
			c.log.Warn("heartbeat answered", "status", resp.StatusCode)
		}
		discard(resp)
	}
}
