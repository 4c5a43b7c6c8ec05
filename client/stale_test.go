package client_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/server"
)

// The rule for "stale" (docs/API.md), the same table as the browser
// client's: a token is not sent at or after expiry − margin, where margin
// is min(10 s, lifetime/10), lifetime is expiry minus the moment the token
// was obtained, and Config.ExpiryMargin overrides it (negative: none).
// Against the real server: the token just before that instant goes out;
// at the instant a refresh comes first.
func TestStaleRule(t *testing.T) {
	tests := []struct {
		name   string
		ttl    time.Duration // the server's access-token lifetime
		margin time.Duration // Config.ExpiryMargin
		want   time.Duration // the margin the rule gives
	}{
		{"1h token: 10s cap", time.Hour, 0, 10 * time.Second},
		{"100s token: the cap exactly", 100 * time.Second, 0, 10 * time.Second},
		{"60s token: a tenth", time.Minute, 0, 6 * time.Second},
		{"10s token: a tenth", 10 * time.Second, 0, time.Second},
		{"override 30s", time.Hour, 30 * time.Second, 30 * time.Second},
		{"override under the default", time.Hour, 2 * time.Second, 2 * time.Second},
		{"negative: no margin", time.Hour, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := newRealServer(t, server.Config{AccessTTL: tt.ttl})
			rec := &headerRecorder{next: http.DefaultTransport}
			// RefreshWindow 1ns: the background refresh starts only at the
			// margin, so nothing refreshes before the instant under test.
			c := rs.login(t, client.Config{Base: rec, ExpiryMargin: tt.margin, RefreshWindow: time.Nanosecond})
			ctx := bounded(t)
			// A refresh obtains tokens on the Client's clock, so their
			// lifetime is exactly the server's.
			obtained := rs.clock.Now()
			tok, err := c.Refresh(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if life := tok.Expiry.Sub(obtained); life != tt.ttl {
				t.Fatalf("lifetime %v, want %v", life, tt.ttl)
			}
			stale := tok.Expiry.Add(-tt.want)
			// The background refresh starts at the margin, or 1ns before
			// expiry when there is none: just before that, nothing
			// refreshes and the token goes out.
			before := tok.Expiry.Add(-max(tt.want, time.Nanosecond) - time.Nanosecond)

			rs.clock.Advance(before.Sub(rs.clock.Now()))
			if _, _, err := get(ctx, c, rs.URL+"/healthz"); err != nil {
				t.Fatal(err)
			}
			if got := rec.last(); got != "Bearer "+tok.AccessToken {
				t.Errorf("just before expiry − %v: the token was not sent", tt.want)
			}
			if s := c.Stats(); s.Refreshes != 1 {
				t.Errorf("refreshed before expiry − margin: %+v", s)
			}

			rs.clock.Advance(stale.Sub(rs.clock.Now()))
			if _, _, err := get(ctx, c, rs.URL+"/healthz"); err != nil {
				t.Fatal(err)
			}
			if got := rec.last(); got == "Bearer "+tok.AccessToken {
				t.Errorf("at expiry − %v: the stale token was sent", tt.want)
			}
			if s := c.Stats(); s.Refreshes != 2 || s.Waits != 2 { // Refresh waited too
				t.Errorf("at expiry − margin the request did not wait for a refresh: %+v", s)
			}
		})
	}
}

// headerRecorder remembers the Authorization header of the last request.
type headerRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex // guards auth
	auth string
}

func (h *headerRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.auth = r.Header.Get("Authorization")
	h.mu.Unlock()
	return h.next.RoundTrip(r)
}

func (h *headerRecorder) last() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.auth
}
