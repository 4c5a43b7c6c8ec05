package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/server"
)

// The rule for "the session is over" (docs/API.md), the same table as the
// browser client's: a refresh ends the session if and only if the token
// endpoint answers error=invalid_grant with a 4xx status, or there is no
// refresh token to present. Any other 4xx is a permanent failure: the
// waiting requests get it as a *RetrieveError, the tokens are kept, nothing
// is retried. 429, 5xx and network errors are temporary and retried. A 401
// to a protected request only triggers the refresh.
//
// Each row runs against the real server; the canned rows put an RFC 6749
// error body in front of it for the first refresh requests.
func TestSessionOverRule(t *testing.T) {
	oauthErr := func(status int, code string) cannedReply {
		return cannedReply{
			status: status,
			header: http.Header{"Content-Type": {"application/json"}},
			body:   fmt.Sprintf(`{"error":%q,"error_description":"canned"}`, code),
		}
	}
	const (
		expired  = "expired"  // the access token expired: requests wait for the refresh
		rejected = "rejected" // the signing key was dropped: requests get 401 first
	)
	type want int
	const (
		over      want = iota // the session ends
		permanent             // the requests fail, the session is kept
		refreshed             // the refresh succeeds, after retries
	)
	tests := []struct {
		name    string
		api     string // "json" or "oauth2"
		trigger string
		setup   func(t *testing.T, rs *realServer, tok client.Tokens) client.Tokens
		secret  string        // the OAuth2 refresher sends this client secret
		failDep int           // dials that fail before the refresh request is written
		want    want          //
		code    string        // permanent: the *RetrieveError's ErrorCode
		status  int           // permanent: its StatusCode
		failure string        // permanent: "" a *RetrieveError, "network" a sent *NetworkError, "reply" any other error
		tries   int           // refresh requests that reach the proxy
		gap     time.Duration // refreshed: the least pause before the retry
	}{
		// The session is over.
		{name: "json api: revoked, 401 invalid_grant", api: "json", trigger: expired, setup: revoke, want: over, tries: 1},
		{name: "oauth2: revoked, 400 invalid_grant", api: "oauth2", trigger: expired, setup: revoke, want: over, tries: 1},
		{name: "canned 400 invalid_grant", api: "oauth2", trigger: expired, setup: canned(oauthErr(400, "invalid_grant")), want: over, tries: 1},
		{name: "canned 401 invalid_grant", api: "json", trigger: expired, setup: canned(oauthErr(401, "invalid_grant")), want: over, tries: 1},
		{name: "canned 403 invalid_grant", api: "json", trigger: expired, setup: canned(oauthErr(403, "invalid_grant")), want: over, tries: 1},
		{name: "no refresh token", api: "json", trigger: expired, setup: dropRefreshToken, want: over, tries: 0},
		{name: "401 to a request, then invalid_grant", api: "json", trigger: rejected, setup: canned(oauthErr(401, "invalid_grant")), want: over, tries: 1},

		// Permanent failures: no logout, no retry.
		{name: "canned 400 invalid_request", api: "oauth2", trigger: expired, setup: canned(oauthErr(400, "invalid_request")), want: permanent, code: "invalid_request", status: 400, tries: 1},
		{name: "canned 401 invalid_client", api: "oauth2", trigger: expired, setup: canned(oauthErr(401, "invalid_client")), want: permanent, code: "invalid_client", status: 401, tries: 1},
		{name: "canned 400 unauthorized_client", api: "oauth2", trigger: expired, setup: canned(oauthErr(400, "unauthorized_client")), want: permanent, code: "unauthorized_client", status: 400, tries: 1},
		{name: "canned 400 unsupported_grant_type", api: "oauth2", trigger: expired, setup: canned(oauthErr(400, "unsupported_grant_type")), want: permanent, code: "unsupported_grant_type", status: 400, tries: 1},
		{name: "canned 400 invalid_scope", api: "oauth2", trigger: expired, setup: canned(oauthErr(400, "invalid_scope")), want: permanent, code: "invalid_scope", status: 400, tries: 1},
		{name: "canned 401 invalid_request (json api)", api: "json", trigger: expired, setup: canned(oauthErr(401, "invalid_request")), want: permanent, code: "invalid_request", status: 401, tries: 1},
		{name: "canned 404 without a JSON error", api: "json", trigger: expired, setup: canned(cannedReply{status: 404, body: "<html>not found</html>"}), want: permanent, status: 404, tries: 1},
		{name: "canned 401 with an empty body", api: "json", trigger: expired, setup: canned(cannedReply{status: 401}), want: permanent, status: 401, tries: 1},
		{name: "real 401 invalid_client (a secret the server refuses)", api: "oauth2", secret: "not-registered", trigger: expired, want: permanent, code: "invalid_client", status: 401, tries: 1},
		{name: "401 to a request, then invalid_request", api: "json", trigger: rejected, setup: canned(oauthErr(400, "invalid_request")), want: permanent, code: "invalid_request", status: 400, tries: 1},
		{name: "canned 200 that is not a token reply", api: "json", trigger: expired, setup: canned(cannedReply{status: 200, body: "<html>welcome</html>"}), want: permanent, failure: "reply", tries: 1},
		{name: "canned 200 without an access token", api: "oauth2", trigger: expired, setup: canned(cannedReply{status: 200, header: http.Header{"Content-Type": {"application/json"}}, body: `{"token_type":"Bearer"}`}), want: permanent, failure: "reply", tries: 1},

		// Temporary failures that do not clear up: given up, tokens kept.
		{name: "canned 503 four times: 3 retries, then given up", api: "json", trigger: expired, setup: canned(cannedReply{status: 503}, cannedReply{status: 503}, cannedReply{status: 503}, cannedReply{status: 503}), want: permanent, status: 503, tries: 4},
		{name: "canned 429 asking for more than the refresh's budget", api: "oauth2", trigger: expired, setup: canned(cannedReply{status: 429, header: http.Header{"Retry-After": {"120"}}}), want: permanent, status: 429, tries: 1},
		{name: "sent, answer lost twice: given up", api: "json", trigger: expired, setup: dropAnswers(2), want: permanent, failure: "network", tries: 2},

		// Temporary failures: retried.
		{name: "canned 429 with Retry-After", api: "json", trigger: expired, setup: canned(cannedReply{status: 429, header: http.Header{"Retry-After": {"1"}}}), want: refreshed, tries: 2, gap: time.Second},
		{name: "canned 503 with Retry-After", api: "oauth2", trigger: expired, setup: canned(cannedReply{status: 503, header: http.Header{"Retry-After": {"1"}}}), want: refreshed, tries: 2, gap: time.Second},
		{name: "canned 500, 502", api: "oauth2", trigger: expired, setup: canned(cannedReply{status: 500}, cannedReply{status: 502}), want: refreshed, tries: 3},
		{name: "canned 500 that says invalid_grant", api: "json", trigger: expired, setup: canned(oauthErr(500, "invalid_grant")), want: refreshed, tries: 2},
		{name: "network: dial fails twice", api: "json", trigger: expired, failDep: 2, want: refreshed, tries: 1},
		{name: "sent, answer lost: retried once at once", api: "json", trigger: expired, setup: dropAnswers(1), want: refreshed, tries: 2},
		{name: "401 to a request, refresh answers 503", api: "json", trigger: rejected, setup: canned(cannedReply{status: 503}), want: refreshed, tries: 2},
		{name: "401 to a request, refresh succeeds", api: "oauth2", trigger: rejected, want: refreshed, tries: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const waiters = 8
			rs := newRealServer(t, server.Config{AccessTTL: time.Minute, Grace: 10 * time.Second})
			ctx := bounded(t)

			// All waiters join the one refresh: its request is held until
			// every one of them waits.
			var (
				waiting   atomic.Int64
				allIn     = make(chan struct{})
				dialFails atomic.Int64
			)
			dialFails.Store(int64(tt.failDep))
			dialer := &net.Dialer{}
			tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if dialFails.Add(-1) >= 0 {
					return nil, errors.New("dial refused by the test")
				}
				return dialer.DialContext(ctx, network, addr)
			}}
			t.Cleanup(tr.CloseIdleConnections)
			hc := &http.Client{Transport: holdUntil(allIn, tr)}

			var login, r loginRefresher
			switch tt.api {
			case "json":
				login, r = client.JSONAPI(rs.URL), client.JSONAPI(rs.URL, client.WithHTTPClient(hc))
			default:
				opts := []client.OAuth2Option{client.WithHTTPClient(hc)}
				if tt.secret != "" {
					opts = append(opts, client.WithClientSecret(tt.secret))
				}
				login, r = client.OAuth2(rs.URL+"/oauth2/token", "cli"), client.OAuth2(rs.URL+"/oauth2/token", "cli", opts...)
			}
			tok, err := login.Login(ctx, "alice", "correct horse")
			if err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tok = tt.setup(t, rs, tok)
			}
			store := client.NewMemoryStore(tok)
			var (
				endedMu sync.Mutex
				ended   []error
			)
			c, err := client.New(client.Config{
				Refresher:  r,
				Store:      store,
				Now:        rs.clock.Now,
				Jitter:     -1,
				Backoff:    10 * time.Millisecond,
				MaxBackoff: 20 * time.Millisecond,
				OnReauthRequired: func(err error) {
					endedMu.Lock()
					defer endedMu.Unlock()
					ended = append(ended, err)
				},
				Hooks: client.Hooks{WaitStart: func() {
					if waiting.Add(1) == waiters {
						close(allIn)
					}
				}},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })

			switch tt.trigger {
			case expired:
				rs.clock.Advance(time.Minute)
			case rejected:
				if err := rs.dropSigningKey(ctx); err != nil {
					t.Fatal(err)
				}
			}
			before := rs.refreshes.Load()
			errs := make([]error, waiters)
			var wg sync.WaitGroup
			for i := range waiters {
				wg.Go(func() {
					status, body, err := get(ctx, c, rs.URL+"/api/me")
					if err == nil && status != http.StatusOK {
						err = fmt.Errorf("status %d: %s", status, body)
					}
					errs[i] = err
				})
			}
			wg.Wait()
			if tries := rs.refreshes.Load() - before; tries != int64(tt.tries) {
				t.Errorf("refresh requests = %d, want %d", tries, tt.tries)
			}
			stored, err := store.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			endedMu.Lock()
			nEnded := len(ended)
			endedMu.Unlock()

			switch tt.want {
			case over:
				for i, err := range errs {
					if !errors.Is(err, client.ErrReauthRequired) {
						t.Errorf("request %d: %v, want ErrReauthRequired", i, err)
					}
				}
				if !stored.IsZero() {
					t.Errorf("store still holds %v", stored)
				}
				if nEnded != 1 {
					t.Errorf("OnReauthRequired called %d times, want once", nEnded)
				}
			case permanent:
				for i, err := range errs {
					var (
						re *client.RetrieveError
						ne *client.NetworkError
					)
					switch {
					case errors.Is(err, client.ErrReauthRequired) || errors.Is(err, client.ErrInvalidGrant):
						t.Errorf("request %d: %v ends the session", i, err)
					case tt.failure == "reply":
						if err == nil {
							t.Errorf("request %d succeeded", i)
						}
					case tt.failure == "network":
						if !errors.As(err, &ne) || !ne.Sent {
							t.Errorf("request %d: %v, want a *NetworkError of a sent request", i, err)
						}
					case !errors.As(err, &re):
						t.Errorf("request %d: %v, want a *RetrieveError", i, err)
					case re.ErrorCode != tt.code || re.StatusCode != tt.status:
						t.Errorf("request %d: %d %q, want %d %q", i, re.StatusCode, re.ErrorCode, tt.status, tt.code)
					}
				}
				if stored.IsZero() || stored.RefreshToken != tok.RefreshToken {
					t.Errorf("store holds %v, want the tokens kept", stored)
				}
				if nEnded != 0 {
					t.Errorf("OnReauthRequired called %d times", nEnded)
				}
				if s := c.Stats(); s.Failures != 1 || s.Reauths != 0 {
					t.Errorf("stats %+v, want one failed refresh", s)
				}
			case refreshed:
				for i, err := range errs {
					if err != nil {
						t.Errorf("request %d: %v", i, err)
					}
				}
				if stored.RefreshToken == "" || stored.RefreshToken == tok.RefreshToken {
					t.Errorf("store holds %v, want the rotated tokens", stored)
				}
				if nEnded != 0 {
					t.Errorf("OnReauthRequired called %d times", nEnded)
				}
				if s := c.Stats(); s.Refreshes != 1 || s.Reauths != 0 || s.Failures != 0 {
					t.Errorf("stats %+v, want one refresh", s)
				}
				if tt.gap > 0 {
					at := rs.arrived()
					if len(at) < 2 {
						t.Fatalf("%d refresh requests arrived", len(at))
					}
					if gap := at[len(at)-1].Sub(at[len(at)-2]); gap < tt.gap {
						t.Errorf("retried after %v, want at least %v (Retry-After)", gap, tt.gap)
					}
				}
			}
			if tt.want == permanent {
				// The session lives on: once the endpoint answers again, a
				// refresh with the kept tokens succeeds.
				if tt.secret != "" {
					return
				}
				if _, err := c.Refresh(ctx); err != nil {
					t.Errorf("refresh after the permanent failure: %v", err)
				}
			}
		})
	}
}

// revoke logs the session out at the server: its refresh token is refused.
func revoke(t *testing.T, rs *realServer, tok client.Tokens) client.Tokens {
	t.Helper()
	if err := client.JSONAPI(rs.URL).Revoke(t.Context(), tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	return tok
}

// dropRefreshToken keeps only the access token.
func dropRefreshToken(_ *testing.T, _ *realServer, tok client.Tokens) client.Tokens {
	tok.RefreshToken = ""
	return tok
}

// canned makes the proxy answer the next refresh requests with replies.
func canned(replies ...cannedReply) func(*testing.T, *realServer, client.Tokens) client.Tokens {
	return func(_ *testing.T, rs *realServer, tok client.Tokens) client.Tokens {
		rs.answer(replies...)
		return tok
	}
}

// dropAnswers makes the server commit the next n refreshes and lose their
// answers.
func dropAnswers(n int64) func(*testing.T, *realServer, client.Tokens) client.Tokens {
	return func(_ *testing.T, rs *realServer, tok client.Tokens) client.Tokens {
		rs.drop.Store(n)
		return tok
	}
}

// holdUntil holds the first request sent through next until open is
// closed; the rest pass at once.
func holdUntil(open <-chan struct{}, next http.RoundTripper) http.RoundTripper {
	var first atomic.Bool
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if first.CompareAndSwap(false, true) {
			select {
			case <-open:
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
		}
		return next.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
