package client_test

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/client/clienttest"
)

// Temporary failures are retried with exponential backoff and Retry-After;
// permanent ones are not; a failed refresh keeps the session.
func TestRetries(t *testing.T) {
	tests := []struct {
		name         string
		n, status    int
		retryAfter   time.Duration
		cfg          client.Config
		wantErr      bool
		wantAttempts uint64
		// bounds of the time the request took (fake time: exact arithmetic)
		minTook, maxTook time.Duration
	}{
		{name: "two 503s", n: 2, status: 503, wantAttempts: 3,
			minTook: 100*time.Millisecond + 200*time.Millisecond, maxTook: 200*time.Millisecond + 400*time.Millisecond},
		{name: "429 with Retry-After", n: 1, status: 429, retryAfter: 3 * time.Second, wantAttempts: 2,
			minTook: 3 * time.Second, maxTook: 3 * time.Second},
		{name: "retries exhausted", n: 4, status: 503, wantErr: true, wantAttempts: 4,
			minTook: 100*time.Millisecond + 200*time.Millisecond + 400*time.Millisecond, maxTook: 1400 * time.Millisecond},
		{name: "no retries", n: 1, status: 502, cfg: client.Config{MaxRetries: -1}, wantErr: true, wantAttempts: 1},
		{name: "Retry-After beyond the refresh timeout", n: 1, status: 429, retryAfter: time.Minute, wantErr: true, wantAttempts: 1},
		{name: "permanent error", n: 1, status: 400, wantErr: true, wantAttempts: 1},
		{name: "capped backoff", n: 3, status: 500, cfg: client.Config{Backoff: time.Second, MaxBackoff: 2 * time.Second}, wantAttempts: 4,
			minTook: 500*time.Millisecond + 1*time.Second + 1*time.Second, maxTook: 1*time.Second + 2*time.Second + 2*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, c, _ := inProcess(t, clienttest.Config{AccessTTL: time.Minute}, tt.cfg)
				time.Sleep(time.Minute) // the token has expired
				p.FailNext(tt.n, tt.status, tt.retryAfter)
				start := time.Now()
				status, _, err := get(t.Context(), c, idp+"/api/me")
				took := time.Since(start)
				if tt.wantErr {
					var re *client.RefreshError
					var ge *client.RetrieveError
					if !errors.As(err, &re) || !errors.As(err, &ge) || ge.StatusCode != tt.status {
						t.Fatalf("got %d, %v; want a RefreshError wrapping the %d", status, err, tt.status)
					}
					if errors.Is(err, client.ErrReauthRequired) {
						t.Fatalf("a temporary failure ended the session: %v", err)
					}
				} else if err != nil || status != 200 {
					t.Fatalf("got %d, %v", status, err)
				}
				if got := c.Stats().Attempts; got != tt.wantAttempts {
					t.Errorf("attempts = %d, want %d", got, tt.wantAttempts)
				}
				if took < tt.minTook || took > tt.maxTook {
					t.Errorf("took %v, want within [%v, %v]", took, tt.minTook, tt.maxTook)
				}
				if tt.wantErr {
					// The session survives: once the server is back, it works.
					if status, _, err := get(t.Context(), c, idp+"/api/me"); err != nil || status != 200 {
						t.Errorf("after recovery: %d %v", status, err)
					}
				}
			})
		})
	}
}

// A refresh whose answer is lost after the server rotated is retried once
// with the same refresh token; the server's grace answers the same
// successor, and nothing is revoked.
func TestLostRefreshAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c, _ := inProcess(t, clienttest.Config{AccessTTL: time.Minute}, client.Config{})
		time.Sleep(time.Minute)
		p.DropNext(1)
		if status, _, err := get(t.Context(), c, idp+"/api/me"); err != nil || status != 200 {
			t.Fatalf("got %d %v", status, err)
		}
		st := p.Stats()
		if st.Rotations != 1 || st.GraceReplays != 1 || st.ReuseDetected != 0 {
			t.Errorf("server stats %+v; want 1 rotation, 1 grace replay, no reuse", st)
		}
		// The chain continues from the replayed successor.
		time.Sleep(time.Minute)
		if status, _, err := get(t.Context(), c, idp+"/api/me"); err != nil || status != 200 {
			t.Fatalf("next refresh: %d %v", status, err)
		}
		if st := p.Stats(); st.Rotations != 2 || st.InvalidGrants != 0 {
			t.Errorf("server stats %+v", st)
		}
	})
}

// The same over real sockets: the server closes the connection after
// committing the rotation, and the client sees that the request was sent.
func TestLostRefreshAnswerRealHTTP(t *testing.T) {
	srv, c, clock := realHTTP(t, clienttest.Config{AccessTTL: time.Minute}, client.Config{})
	clock.Advance(time.Minute)
	srv.DropNext(1)
	if status, _, err := get(t.Context(), c, srv.URL+"/api/me"); err != nil || status != 200 {
		t.Fatalf("got %d %v", status, err)
	}
	if st := srv.Stats(); st.Rotations != 1 || st.GraceReplays != 1 || st.ReuseDetected != 0 {
		t.Errorf("server stats %+v", st)
	}
	if a := c.Stats().Attempts; a != 2 {
		t.Errorf("attempts = %d, want 2", a)
	}
}

// Two lost answers in a row: the client gives up rather than retry beyond
// the grace window; the error says the request was sent.
func TestLostRefreshAnswerTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c, _ := inProcess(t, clienttest.Config{AccessTTL: time.Minute}, client.Config{})
		time.Sleep(time.Minute)
		p.DropNext(2)
		_, _, err := get(t.Context(), c, idp+"/api/me")
		var ne *client.NetworkError
		if !errors.As(err, &ne) || !ne.Sent {
			t.Fatalf("got %v, want a NetworkError with Sent", err)
		}
		if a := c.Stats().Attempts; a != 2 {
			t.Errorf("attempts = %d, want 2", a)
		}
	})
}

// A refresh request that never left (connection refused) is retried with
// backoff and reported as not sent.
func TestRefreshNotSent(t *testing.T) {
	srv := httptestServer(t, http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	c, err := client.New(client.Config{
		Refresher:  client.JSONAPI(url),
		Store:      client.NewMemoryStore(client.Tokens{AccessToken: "a", RefreshToken: "r", Expiry: time.Now().Add(-time.Second)}),
		MaxRetries: 2,
		Backoff:    time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Token(t.Context())
	var ne *client.NetworkError
	if !errors.As(err, &ne) || ne.Sent {
		t.Fatalf("got %v, want a NetworkError not sent", err)
	}
	if a := c.Stats().Attempts; a != 3 {
		t.Errorf("attempts = %d, want 3", a)
	}
}

// Inside the refresh window requests do not wait: the refresh runs in the
// background and they go out with the still-valid token.
func TestProactiveRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c, _ := inProcess(t, clienttest.Config{AccessTTL: 10 * time.Minute}, client.Config{})
		p.SetLatency(2 * time.Second)
		before, _ := c.Token(t.Context())
		// 10m lifetime: window = 2m (a fifth), so refreshing starts at 8m.
		time.Sleep(8*time.Minute - time.Second)
		get(t.Context(), c, idp+"/api/me")
		if p.Stats().RefreshRequests != 0 {
			t.Fatal("refreshed before the window")
		}
		time.Sleep(time.Second)
		start := time.Now()
		for range 5 {
			if status, _, err := get(t.Context(), c, idp+"/api/me"); err != nil || status != 200 {
				t.Fatalf("got %d %v", status, err)
			}
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("requests in the window took %v; they should not wait", took)
		}
		time.Sleep(2 * time.Second) // the server's latency
		synctest.Wait()
		after, _ := c.Token(t.Context())
		if after.AccessToken == before.AccessToken {
			t.Error("token not refreshed")
		}
		if st, cs := p.Stats(), c.Stats(); st.Rotations != 1 || cs.Waits != 0 {
			t.Errorf("rotations %d, waits %d; want 1, 0", st.Rotations, cs.Waits)
		}
		if want := time.Now().Add(10*time.Minute - 2*time.Second); !after.Expiry.Equal(want) {
			t.Errorf("expiry %v, want %v (measured from the send time)", after.Expiry, want)
		}
	})
}

// The heartbeat runs only while the client is in use; a session revoked
// elsewhere ends at the next heartbeat, with one OnReauthRequired, before
// the next request.
func TestHeartbeatRevokedSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ended atomic.Int64
		p, c, _ := inProcess(t, clienttest.Config{AccessTTL: 10 * time.Minute}, client.Config{
			HeartbeatURL:      idp + "/api/heartbeat",
			HeartbeatInterval: time.Minute,
			OnReauthRequired:  func(error) { ended.Add(1) },
		})
		get(t.Context(), c, idp+"/api/me")
		time.Sleep(time.Minute + time.Second)
		if h := c.Stats().Heartbeats; h != 1 {
			t.Fatalf("heartbeats = %d after a busy minute, want 1", h)
		}
		time.Sleep(time.Minute) // idle: no heartbeat
		if h := c.Stats().Heartbeats; h != 1 {
			t.Fatalf("heartbeats = %d after an idle minute, want 1", h)
		}

		get(t.Context(), c, idp+"/api/me")
		p.RevokeAll() // a logout elsewhere
		time.Sleep(time.Minute)
		if h, e := c.Stats().Heartbeats, ended.Load(); h != 2 || e != 1 {
			t.Fatalf("heartbeats %d, OnReauthRequired calls %d; want 2, 1", h, e)
		}
		refreshes := p.Stats().RefreshRequests
		if _, _, err := get(t.Context(), c, idp+"/api/me"); !errors.Is(err, client.ErrReauthRequired) {
			t.Errorf("next request got %v, want ErrReauthRequired", err)
		}
		time.Sleep(time.Minute)
		if p.Stats().RefreshRequests != refreshes || ended.Load() != 1 {
			t.Error("the session was refreshed or ended again")
		}
	})
}

// A heartbeat that finds the token expired refreshes it through the same
// single flight as requests.
func TestHeartbeatRefreshesExpiredToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 90s lifetime: margin 9s, so the token counts as expired at 81s.
		p, c, _ := inProcess(t, clienttest.Config{AccessTTL: 90 * time.Second}, client.Config{
			HeartbeatURL:      idp + "/api/heartbeat",
			HeartbeatInterval: time.Minute,
		})
		get(t.Context(), c, idp+"/api/me")
		time.Sleep(time.Minute + time.Second)
		get(t.Context(), c, idp+"/api/me") // still before the window: no refresh
		if r := p.Stats().Rotations; r != 0 {
			t.Fatalf("rotations = %d before the window", r)
		}
		time.Sleep(time.Minute) // the heartbeat at 2m finds the token expired
		if st, cs := p.Stats(), c.Stats(); st.Rotations != 1 || cs.Heartbeats != 2 || st.Unauthorized != 0 {
			t.Errorf("server %+v, client %+v; want 1 rotation by the 2nd heartbeat, no 401", st, cs)
		}
	})
}

// Expiry is measured on the local clock from expires_in, so a server whose
// clock is hours off changes nothing.
func TestClockSkew(t *testing.T) {
	for _, skew := range []time.Duration{-3 * time.Hour, 0, 3 * time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := clienttest.New(clienttest.Config{AccessTTL: 10 * time.Minute, Now: func() time.Time { return time.Now().Add(skew) }})
				p.AddUser("alice", "pw")
				api := client.JSONAPI(idp, client.WithHTTPClient(&http.Client{Transport: p.Transport()}))
				tok, err := api.Login(t.Context(), "alice", "pw")
				if err != nil {
					t.Fatal(err)
				}
				if want := time.Now().Add(10 * time.Minute); !tok.Expiry.Equal(want) {
					t.Fatalf("expiry %v, want %v on the local clock", tok.Expiry, want)
				}
				c, err := client.New(client.Config{Refresher: api, Store: client.NewMemoryStore(tok), Base: p.Transport(), Jitter: -1})
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(7 * time.Minute)
				get(t.Context(), c, idp+"/api/me")
				if r := p.Stats().RefreshRequests; r != 0 {
					t.Errorf("refreshed %d times 3 minutes before expiry", r)
				}
				time.Sleep(90 * time.Second) // inside the 2m window
				get(t.Context(), c, idp+"/api/me")
				synctest.Wait()
				if st := p.Stats(); st.Rotations != 1 || st.Unauthorized != 0 {
					t.Errorf("server %+v; want one proactive rotation, no 401", st)
				}
			})
		})
	}
}

// While the token is valid, a failing server does not fail requests: they
// keep the old token, and the background refresh pauses before trying again.
func TestFailingServerKeepsValidToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c, _ := inProcess(t, clienttest.Config{AccessTTL: 10 * time.Minute}, client.Config{})
		time.Sleep(8 * time.Minute) // inside the window
		p.FailNext(4, http.StatusServiceUnavailable, 0)
		if status, _, err := get(t.Context(), c, idp+"/api/me"); err != nil || status != 200 {
			t.Fatalf("got %d %v", status, err)
		}
		time.Sleep(2 * time.Second) // the background refresh fails (backoff at most 1.4s)
		if st, cs := p.Stats(), c.Stats(); st.RefreshRequests != 4 || cs.Failures != 1 {
			t.Fatalf("server %+v client %+v; want 4 refresh requests, 1 failure", st, cs)
		}
		if status, _, err := get(t.Context(), c, idp+"/api/me"); err != nil || status != 200 {
			t.Fatalf("got %d %v", status, err)
		}
		synctest.Wait()
		if r := p.Stats().RefreshRequests; r != 4 {
			t.Errorf("refresh requests = %d: retried at once instead of pausing", r)
		}
		time.Sleep(5 * time.Second)
		get(t.Context(), c, idp+"/api/me")
		synctest.Wait()
		if st := p.Stats(); st.Rotations != 1 || st.Unauthorized != 0 {
			t.Errorf("server %+v; want the refresh to succeed after the pause", st)
		}
	})
}
