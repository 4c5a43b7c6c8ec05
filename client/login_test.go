package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/server"
)

// refusing answers the first n requests with status and body, and passes
// the others to the real server behind it.
func refusing(t *testing.T, backend string, n int32, status int, body string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	var calls atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= n {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return front, &calls
}

const overloadedBody = `{"error":"temporarily_unavailable","error_description":"too many logins at once; retry shortly"}`

// A login refused as overloaded is tried again; one refused for another
// reason is not.
func TestLoginRetriesOnlyOverload(t *testing.T) {
	rs := newRealServer(t, server.Config{})
	type login func(ctx context.Context, base string) error
	apis := map[string]login{
		"jsonapi": func(ctx context.Context, base string) error {
			_, err := client.JSONAPI(base).Login(ctx, "alice", "correct horse")
			return err
		},
		"oauth2": func(ctx context.Context, base string) error {
			_, err := client.OAuth2(base+"/oauth2/token", "").Login(ctx, "alice", "correct horse")
			return err
		},
	}
	for name, do := range apis {
		t.Run(name+"/503 twice, then in", func(t *testing.T) {
			front, calls := refusing(t, rs.URL, 2, http.StatusServiceUnavailable, overloadedBody)
			if err := do(t.Context(), front.URL); err != nil {
				t.Fatalf("login: %v", err)
			}
			if n := calls.Load(); n != 3 {
				t.Errorf("%d attempts, want 3", n)
			}
		})
		t.Run(name+"/429 is not retried", func(t *testing.T) {
			front, calls := refusing(t, rs.URL, 1, http.StatusTooManyRequests,
				`{"error":"rate_limited","error_description":"too many failed logins; retry later"}`)
			var re *client.RetrieveError
			if err := do(t.Context(), front.URL); !errors.As(err, &re) || re.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("login: %v, want the 429", err)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("%d attempts, want 1", n)
			}
		})
		t.Run(name+"/always overloaded gives up", func(t *testing.T) {
			front, calls := refusing(t, rs.URL, 1000, http.StatusServiceUnavailable, overloadedBody)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			var re *client.RetrieveError
			if err := do(ctx, front.URL); !errors.As(err, &re) || re.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("login: %v, want the 503", err)
			}
			if n := calls.Load(); n < 2 || n > 20 {
				t.Errorf("%d attempts, want a few and a bound", n)
			}
		})
	}
}

// A crowd of logins against a server that hashes one password at a time
// and waits for a slot only briefly: every client, honouring Retry-After,
// gets in.
func TestLoginCrowdAgainstHashBound(t *testing.T) {
	rs := newRealServer(t, server.Config{PasswordHashes: 1, PasswordHashWait: time.Millisecond})
	const n = 24
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = client.JSONAPI(rs.URL).Login(t.Context(), "alice", "correct horse")
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("login %d: %v", i, err)
		}
	}
}
