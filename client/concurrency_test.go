package client_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/client/clienttest"
)

// realHTTP starts a Provider on 127.0.0.1 with a manual clock and returns a
// Client for the session of "alice" on it.
func realHTTP(t *testing.T, pcfg clienttest.Config, cfg client.Config) (*clienttest.Server, *client.Client, *clienttest.Clock) {
	t.Helper()
	clock := clienttest.NewClock(epoch)
	pcfg.Now = clock.Now
	srv := clienttest.NewServer(pcfg)
	t.Cleanup(srv.Close)
	if cfg.Refresher == nil {
		cfg.Refresher = client.JSONAPI(srv.URL, client.WithHTTPClient(srv.Client()))
	}
	if cfg.Store == nil {
		cfg.Store = client.NewMemoryStore(srv.Issue("alice"))
	}
	if cfg.Base == nil {
		tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
		t.Cleanup(tr.CloseIdleConnections)
		cfg.Base = tr
	}
	cfg.Now = clock.Now
	if cfg.Jitter == 0 {
		cfg.Jitter = -1
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c, clock
}

// Many requests find the token expired at once: one refresh, every request
// waits for it and succeeds.
func TestStormAtExpiry(t *testing.T) {
	const n = 1000
	waiting := newCounter(n)
	srv, c, clock := realHTTP(t, clienttest.Config{AccessTTL: time.Minute}, client.Config{
		Hooks: client.Hooks{WaitStart: waiting.inc},
	})
	clock.Advance(time.Minute) // every request now holds an expired token
	release := srv.Hold()

	var (
		wg       sync.WaitGroup
		failures atomic.Int64
	)
	for range n {
		wg.Go(func() {
			status, _, err := get(t.Context(), c, srv.URL+"/api/me")
			if err != nil || status != http.StatusOK {
				failures.Add(1)
				t.Errorf("status %d, err %v", status, err)
			}
		})
	}
	waiting.await(t) // all n wait on the one refresh held at the server
	release()
	wg.Wait()

	st := srv.Stats()
	if st.RefreshRequests != 1 || st.Rotations != 1 {
		t.Errorf("server saw %d refresh requests, %d rotations; want 1, 1", st.RefreshRequests, st.Rotations)
	}
	if st.Authorized != n || failures.Load() != 0 {
		t.Errorf("authorized %d of %d, %d failures", st.Authorized, n, failures.Load())
	}
	if cs := c.Stats(); cs.Refreshes != 1 || cs.Waits != n {
		t.Errorf("client stats %+v; want 1 refresh, %d waits", cs, n)
	}
}

// The server stops accepting access tokens before their expiry (key
// rotation): every request still succeeds, after exactly one refresh.
func TestEarlyInvalidation(t *testing.T) {
	const n = 300
	srv, c, _ := realHTTP(t, clienttest.Config{}, client.Config{})
	if status, _, err := get(t.Context(), c, srv.URL+"/api/me"); err != nil || status != 200 {
		t.Fatalf("warm-up: %d %v", status, err)
	}
	srv.InvalidateAccessTokens()

	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			status, _, err := get(t.Context(), c, srv.URL+"/api/me")
			if err != nil || status != http.StatusOK {
				t.Errorf("status %d, err %v", status, err)
			}
		})
	}
	wg.Wait()
	if st := srv.Stats(); st.Rotations != 1 {
		t.Errorf("rotations = %d, want 1", st.Rotations)
	}
	if cs := c.Stats(); cs.Refreshes != 1 || cs.Replays == 0 {
		t.Errorf("client stats %+v; want 1 refresh and some replays", cs)
	}
}

// The same early invalidation through golang.org/x/oauth2: it does not
// refresh on 401, so requests fail until the token's own expiry.
func TestEarlyInvalidationComparedWithOAuth2(t *testing.T) {
	const n = 100
	srv, ours, _ := realHTTP(t, clienttest.Config{}, client.Config{})
	tok := srv.Issue("bob")
	conf := &oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, srv.Client())
	theirs := conf.Client(ctx, &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(10 * time.Minute)})

	srv.InvalidateAccessTokens()
	count := func(get func() (int, error)) (failed int) {
		var (
			wg sync.WaitGroup
			mu sync.Mutex
		)
		for range n {
			wg.Go(func() {
				status, err := get()
				if err != nil || status != http.StatusOK {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return failed
	}
	oursFailed := count(func() (int, error) {
		s, _, err := get(t.Context(), ours, srv.URL+"/api/me")
		return s, err
	})
	theirsFailed := count(func() (int, error) {
		resp, err := theirs.Get(srv.URL + "/api/me")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	})
	t.Logf("after early invalidation, %d requests each: client failed %d, x/oauth2 failed %d", n, oursFailed, theirsFailed)
	if oursFailed != 0 {
		t.Errorf("client: %d failed requests", oursFailed)
	}
	if theirsFailed == 0 {
		t.Errorf("x/oauth2 unexpectedly recovered; the comparison no longer shows anything")
	}
}

// A request that was sent before a refresh and rejected after it is replayed
// with the new token without a second refresh (the generation check).
func TestStaleRejectionReplaysWithoutRefresh(t *testing.T) {
	p := clienttest.New(clienttest.Config{})
	arrived, unblock := make(chan struct{}), make(chan struct{})
	var once sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() {
			close(arrived)
			<-unblock
		})
		p.ServeHTTP(w, r)
	})
	mux.Handle("/", p)
	srv := httptestServer(t, mux)
	c, err := client.New(client.Config{
		Refresher: client.JSONAPI(srv.URL, client.WithHTTPClient(srv.Client())),
		Store:     client.NewMemoryStore(p.Issue("alice")),
	})
	if err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	go func() {
		status, _, err := get(t.Context(), c, srv.URL+"/slow")
		if err == nil && status != 200 {
			err = errors.New(http.StatusText(status))
		}
		slow <- err
	}()
	<-arrived // the slow request is at the server with the first token
	p.InvalidateAccessTokens()
	if status, _, err := get(t.Context(), c, srv.URL+"/api/me"); err != nil || status != 200 {
		t.Fatalf("fast request: %d %v", status, err)
	}
	close(unblock)
	if err := <-slow; err != nil {
		t.Fatalf("slow request: %v", err)
	}
	if st := p.Stats(); st.Rotations != 1 {
		t.Errorf("rotations = %d, want 1", st.Rotations)
	}
	if cs := c.Stats(); cs.Replays != 2 {
		t.Errorf("replays = %d, want 2 (one per rejected request)", cs.Replays)
	}
}

// One waiter giving up (even the one whose request started the refresh)
// does not fail the others: the refresh runs detached.
func TestWaiterCancelDoesNotFailOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c, _ := inProcess(t, clienttest.Config{AccessTTL: time.Minute}, client.Config{})
		time.Sleep(time.Minute)
		release := p.Hold()

		ctx, cancel := context.WithCancel(t.Context())
		first := make(chan error, 1)
		go func() {
			_, _, err := get(ctx, c, idp+"/api/me")
			first <- err
		}()
		synctest.Wait() // the first request started the refresh and waits

		results := make(chan error, 10)
		for range 10 {
			go func() {
				status, _, err := get(t.Context(), c, idp+"/api/me")
				if err == nil && status != 200 {
					err = errors.New(http.StatusText(status))
				}
				results <- err
			}()
		}
		synctest.Wait()
		cancel()
		if err := <-first; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter got %v, want context.Canceled", err)
		}
		synctest.Wait()
		if len(results) != 0 {
			t.Fatalf("%d other waiters returned before the refresh ended", len(results))
		}
		release()
		for range 10 {
			if err := <-results; err != nil {
				t.Errorf("waiter failed: %v", err)
			}
		}
		if st := p.Stats(); st.Rotations != 1 {
			t.Errorf("rotations = %d, want 1", st.Rotations)
		}
	})
}

// invalid_grant reaches every waiter as ErrReauthRequired; the callback runs
// once; the store is cleared; later requests fail without a refresh.
func TestInvalidGrantReachesEveryWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			calls   atomic.Int64
			changes []client.Tokens
		)
		p, c, store := inProcess(t, clienttest.Config{AccessTTL: time.Minute}, client.Config{
			OnReauthRequired: func(err error) {
				calls.Add(1)
				if !errors.Is(err, client.ErrReauthRequired) || !errors.Is(err, client.ErrInvalidGrant) {
					t.Errorf("callback error %v", err)
				}
			},
			OnTokenChange: func(t client.Tokens) { changes = append(changes, t) },
		})
		time.Sleep(time.Minute)
		p.RevokeAll()
		release := p.Hold()
		const n = 50
		errs := make(chan error, n)
		for range n {
			go func() {
				_, _, err := get(t.Context(), c, idp+"/api/me")
				errs <- err
			}()
		}
		synctest.Wait()
		release()
		for range n {
			if err := <-errs; !errors.Is(err, client.ErrReauthRequired) {
				t.Errorf("waiter got %v, want ErrReauthRequired", err)
			}
		}
		if calls.Load() != 1 {
			t.Errorf("OnReauthRequired called %d times, want 1", calls.Load())
		}
		if len(changes) != 1 || !changes[0].IsZero() {
			t.Errorf("OnTokenChange calls %v, want one with zero Tokens", changes)
		}
		if tok, _ := store.Load(t.Context()); !tok.IsZero() {
			t.Errorf("store still holds %v", tok)
		}
		if _, _, err := get(t.Context(), c, idp+"/api/me"); !errors.Is(err, client.ErrReauthRequired) {
			t.Errorf("later request got %v", err)
		}
		if st := p.Stats(); st.RefreshRequests != 1 || calls.Load() != 1 {
			t.Errorf("refresh requests %d, callbacks %d; want 1, 1", st.RefreshRequests, calls.Load())
		}
	})
}

// Concurrent requests, refreshes and SetTokens: nothing races, every
// request gets an answer.
func TestConcurrentSetTokens(t *testing.T) {
	srv, c, clock := realHTTP(t, clienttest.Config{AccessTTL: time.Minute}, client.Config{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 20 {
				status, _, err := get(t.Context(), c, srv.URL+"/api/me")
				if err != nil || status != 200 {
					t.Errorf("status %d, err %v", status, err)
				}
			}
		})
		if i%2 == 0 {
			wg.Go(func() {
				if err := c.SetTokens(t.Context(), srv.Issue("alice")); err != nil {
					t.Error(err)
				}
				if _, err := c.Refresh(t.Context()); err != nil {
					t.Error(err)
				}
			})
		}
	}
	clock.Advance(30 * time.Second)
	wg.Wait()
	if st := srv.Stats(); st.ReuseDetected != 0 {
		t.Errorf("reuse detected %d times", st.ReuseDetected)
	}
}
