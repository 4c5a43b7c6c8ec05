package client_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/server"
)

// The answer to a refresh is lost after the server rotated: the client
// presents the same token again inside the grace window, gets the same
// successor, and the session survives.
func TestRealServerLostRefreshAnswer(t *testing.T) {
	rs := newRealServer(t, server.Config{AccessTTL: time.Minute, Grace: 10 * time.Second})
	c := rs.login(t, client.Config{})
	for round := range 3 {
		rs.clock.Advance(time.Minute)
		rs.drop.Store(1)
		status, body, err := get(bounded(t), c, rs.URL+"/api/me")
		if err != nil || status != http.StatusOK {
			t.Fatalf("round %d: %d %q %v", round, status, body, err)
		}
	}
	if n := rs.refreshes.Load(); n != 6 {
		t.Errorf("refresh requests = %d, want 6 (each lost once, then replayed)", n)
	}
	if s := c.Stats(); s.Refreshes != 3 || s.Reauths != 0 {
		t.Errorf("client stats %+v", s)
	}
}

// The server drops its signing key (early invalidation of every access
// token): the client loses no request and refreshes once; x/oauth2, given
// the same session, fails its requests.
func TestRealServerEarlyInvalidation(t *testing.T) {
	const n = 100
	rs := newRealServer(t, server.Config{AccessTTL: 30 * time.Minute})
	c := rs.login(t, client.Config{})
	tok, err := client.JSONAPI(rs.URL).Login(t.Context(), "alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: "x", Endpoint: oauth2.Endpoint{TokenURL: rs.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	theirs := conf.Client(t.Context(), &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry})

	if err := rs.dropSigningKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	run := func(get func() (int, error)) (failed int64) {
		var (
			wg sync.WaitGroup
			f  atomic.Int64
		)
		for range n {
			wg.Go(func() {
				if status, err := get(); err != nil || status != http.StatusOK {
					f.Add(1)
				}
			})
		}
		wg.Wait()
		return f.Load()
	}
	before := rs.refreshes.Load()
	ours := run(func() (int, error) {
		s, _, err := get(bounded(t), c, rs.URL+"/api/me")
		return s, err
	})
	if r := rs.refreshes.Load() - before; ours != 0 || r != 1 {
		t.Errorf("client: %d of %d requests failed, %d refreshes; want 0 and 1", ours, n, r)
	}
	theirsFailed := run(func() (int, error) {
		resp, err := theirs.Get(rs.URL + "/api/me")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	})
	t.Logf("after the signing key was dropped, %d requests each: client failed %d, x/oauth2 failed %d", n, ours, theirsFailed)
}

// Many requests at expiry against the real server: one refresh, no failure.
func TestRealServerStorm(t *testing.T) {
	const n = 200
	rs := newRealServer(t, server.Config{AccessTTL: time.Minute})
	c := rs.login(t, client.Config{Base: &http.Transport{MaxIdleConnsPerHost: 32, MaxConnsPerHost: 32}})
	rs.clock.Advance(time.Minute)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if status, _, err := get(bounded(t), c, rs.URL+"/api/me"); err != nil || status != 200 {
				t.Errorf("%d %v", status, err)
			}
		})
	}
	wg.Wait()
	if r := rs.refreshes.Load(); r != 1 {
		t.Errorf("refreshes = %d, want 1; client %+v", r, c.Stats())
	}
}

// A logout elsewhere ends the session here at the next heartbeat, and the
// OAuth2 refresher sees the same end of session.
func TestRealServerRevokedSession(t *testing.T) {
	rs := newRealServer(t, server.Config{AccessTTL: time.Minute})
	ended := make(chan error, 1)
	c := rs.login(t, client.Config{
		HeartbeatURL:      rs.URL + "/api/heartbeat",
		HeartbeatInterval: 20 * time.Millisecond,
		OnReauthRequired:  func(err error) { ended <- err },
	})
	tok, err := c.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if status, _, err := get(bounded(t), c, rs.URL+"/api/me"); err != nil || status != 200 {
		t.Fatalf("%d %v", status, err)
	}
	if err := client.JSONAPI(rs.URL).Revoke(t.Context(), tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	// Keep the client in use with a request that does not look at the
	// session, so that only the heartbeat can find out.
	if status, _, err := get(bounded(t), c, rs.URL+"/healthz"); err != nil || status != 200 {
		t.Fatalf("healthz: %d %v", status, err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, client.ErrReauthRequired) || !errors.Is(err, client.ErrInvalidGrant) {
			t.Errorf("ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the heartbeat did not notice the logout")
	}
	if _, _, err := get(bounded(t), c, rs.URL+"/api/me"); !errors.Is(err, client.ErrReauthRequired) {
		t.Errorf("after logout: %v", err)
	}

	o := client.OAuth2(rs.URL+"/oauth2/token", "cli")
	tok, err = o.Login(t.Context(), "alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Refresh(context.Background(), tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	rs.clock.Advance(time.Minute) // past grace: presenting the old token again is reuse
	_, err = o.Refresh(t.Context(), tok.RefreshToken)
	var re *client.RetrieveError
	if !errors.Is(err, client.ErrInvalidGrant) || !errors.As(err, &re) || re.ErrorDescription == "" {
		t.Errorf("reuse: %v", err)
	}
}

// A request is in flight with the old token; meanwhile another refresh
// installs a new token, still signed with the old key, and then the server
// drops that key. The request's 401 is replayed with the current token,
// which is refused too: that refusal earns one refresh and one more
// replay, and the caller sees a 200.
func TestRealServerReplayedTokenStaleToo(t *testing.T) {
	rs := newRealServer(t, server.Config{AccessTTL: time.Minute, Grace: 10 * time.Second})
	gt := &gateTransport{path: "/api/me", held: make(chan struct{}), gate: make(chan struct{}), base: http.DefaultTransport}
	gt.holding.Store(true)
	c := rs.login(t, client.Config{Base: gt})

	r := acrossKeyDrop(t, rs, gt, c, c)
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("request across a key drop: %d %v, want 200 (stats %+v)", r.status, r.err, c.Stats())
	}
	if s := c.Stats(); s.Refreshes != 2 || s.Replays != 2 || s.Reauths != 0 {
		t.Fatalf("stats %+v; want 2 refreshes (the explicit one and one after the stale replay) and 2 replays", s)
	}
}

// A Client given only a refresh token (an app that persisted just that)
// refreshes before its first request instead of giving up.
func TestRealServerRefreshTokenOnly(t *testing.T) {
	rs := newRealServer(t, server.Config{AccessTTL: time.Minute})
	api := client.JSONAPI(rs.URL)
	tok, err := api.Login(t.Context(), "alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{
		Refresher: api,
		Store:     client.NewMemoryStore(client.Tokens{RefreshToken: tok.RefreshToken}),
		Now:       rs.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	status, body, err := get(bounded(t), c, rs.URL+"/api/me")
	if err != nil || status != http.StatusOK {
		t.Fatalf("first request with only a refresh token: %d %q %v", status, body, err)
	}
	if s := c.Stats(); s.Refreshes != 1 {
		t.Fatalf("stats %+v, want one refresh", s)
	}
}

// Two processes share one token file. A request of process B is in flight
// with the first token; meanwhile process A refreshes (its new token still
// signed with the old key) and then the server drops that key. B's 401
// makes it take A's token from the file, which is refused too: B cannot
// tell when A's refresh began, so that refusal must earn a refresh at the
// server, and B's caller sees a 200.
func TestRealServerAdoptedTokenStaleToo(t *testing.T) {
	rs := newRealServer(t, server.Config{AccessTTL: time.Minute, Grace: 10 * time.Second})
	ctx := bounded(t)
	api := client.JSONAPI(rs.URL)
	tok, err := api.Login(ctx, "alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := client.NewFileStore(path).Save(ctx, tok); err != nil {
		t.Fatal(err)
	}
	newProc := func(base http.RoundTripper) *client.Client {
		c, err := client.New(client.Config{Refresher: api, Store: client.NewFileStore(path), Base: base, Now: rs.clock.Now, Jitter: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	gt := &gateTransport{path: "/api/me", held: make(chan struct{}), gate: make(chan struct{}), base: http.DefaultTransport}
	gt.holding.Store(true)
	a, b := newProc(http.DefaultTransport), newProc(gt)

	r := acrossKeyDrop(t, rs, gt, b, a)
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("process B across a key drop: %d %v, want 200 (B %+v, A %+v)", r.status, r.err, b.Stats(), a.Stats())
	}
	if s := b.Stats(); s.Adoptions != 1 || s.Refreshes != 1 || s.Replays != 2 || s.Reauths != 0 {
		t.Errorf("B %+v; want the adoption, one refresh after the stale replay, 2 replays", s)
	}
}

// result is the outcome of one request.
type result struct {
	status int
	err    error
}

// acrossKeyDrop sends a request through sender, holds it on the wire (gt)
// with the token it carries, refreshes through refresher, drops the
// signing key, and then lets the request go on.
func acrossKeyDrop(t *testing.T, rs *realServer, gt *gateTransport, sender, refresher *client.Client) result {
	t.Helper()
	ctx := bounded(t)
	done := make(chan result, 1)
	go func() {
		status, _, err := get(ctx, sender, rs.URL+"/api/me")
		done <- result{status, err}
	}()
	<-gt.held
	if _, err := refresher.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rs.dropSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	close(gt.gate)
	return <-done
}
