package client

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"
)

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
	if c.due(st) {
		var err error
		if st, err = c.slow(req.Context(), st, c.now()); err != nil {
			closeBody(req)
			return nil, err
		}
	}
	r2 := req.Clone(req.Context())
	resp, err := c.sendAuthorized(req, r2, st)
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
// server dropped the signing key, or adopted from another process sharing
// the Store, whose refresh may have begun before the rejection — and then
// it may be as stale as st: that replay's 401 earns one more refresh and
// one last replay. So a request is
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
		if body != nil {
			r3.Body = body
		}
		c.replays.Add(1)
		if h := c.cfg.Hooks.Replay; h != nil {
			h()
		}
		resp, err = c.sendAuthorized(req, r3, next)
		if err != nil || resp.StatusCode != http.StatusUnauthorized || replay == 1 || next.flight > started {
			return resp, err
		}
		st = next
	}
}

// bearerRejected reports whether a 401 rejects the access token, so that a
// new one may help: no challenge, or a Bearer or DPoP challenge with no
// error or error="invalid_token". Other challenges (Basic,
// insufficient_scope, a DPoP proof refused) are passed through without a
// refresh.
func bearerRejected(h http.Header) bool {
	chs := h.Values("Www-Authenticate")
	if len(chs) == 0 {
		return true
	}
	for _, ch := range chs {
		scheme, params, _ := strings.Cut(strings.TrimSpace(ch), " ")
		if !strings.EqualFold(scheme, "Bearer") && !strings.EqualFold(scheme, "DPoP") {
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
