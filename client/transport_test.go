package client_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/client/clienttest"
)

// A 401 is answered by one refresh and one replay at most, and only for a
// bearer rejection.
func TestRejectionHandling(t *testing.T) {
	tests := []struct {
		name          string
		challenge     string
		wantHits      int
		wantRotations int
	}{
		{"invalid_token", `Bearer error="invalid_token"`, 2, 1},
		{"no challenge", "", 2, 1},
		{"bare bearer challenge", `Bearer realm="api"`, 2, 1},
		{"insufficient scope", `Bearer error="insufficient_scope"`, 1, 0},
		{"basic", `Basic realm="api"`, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := clienttest.New(clienttest.Config{})
			var hits atomic.Int64
			mux := http.NewServeMux()
			mux.HandleFunc("/always401", func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				if tt.challenge != "" {
					w.Header().Set("WWW-Authenticate", tt.challenge)
				}
				http.Error(w, "no", http.StatusUnauthorized)
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
			status, body, err := get(t.Context(), c, srv.URL+"/always401")
			if err != nil || status != http.StatusUnauthorized || !strings.Contains(body, "no") {
				t.Fatalf("got %d %q %v; want the server's 401", status, body, err)
			}
			if hits.Load() != int64(tt.wantHits) || p.Stats().Rotations != tt.wantRotations {
				t.Errorf("hits %d, rotations %d; want %d, %d", hits.Load(), p.Stats().Rotations, tt.wantHits, tt.wantRotations)
			}
		})
	}
}

// Bodies are replayed through GetBody; a body that cannot be replayed gets
// the 401 back untouched, and the next request a fresh token.
func TestReplayBodies(t *testing.T) {
	tests := []struct {
		name       string
		body       func() io.Reader
		wantStatus int
	}{
		{"replayable", func() io.Reader { return strings.NewReader("payload") }, http.StatusOK},
		{"not replayable", func() io.Reader { return io.NopCloser(strings.NewReader("payload")) }, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c, _ := realHTTP(t, clienttest.Config{}, client.Config{})
			srv.InvalidateAccessTokens()
			body := &closeRecorder{Reader: tt.body()}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/upload", body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantStatus == http.StatusOK {
				req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("payload")), nil }
			}
			status, got, err := do(c, req)
			if err != nil || status != tt.wantStatus {
				t.Fatalf("status %d, err %v; want %d", status, err, tt.wantStatus)
			}
			switch tt.wantStatus {
			case http.StatusOK:
				if e := decodeEcho(t, got); e.Body != "payload" {
					t.Errorf("replayed body %q", e.Body)
				}
			case http.StatusUnauthorized:
				if !strings.Contains(got, "invalid_token") {
					t.Errorf("401 body %q, want the server's", got)
				}
			}
			if !body.closed.Load() {
				t.Error("request body not closed")
			}
			// The next request finds a fresh token either way.
			if status, _, err := get(t.Context(), c, srv.URL+"/api/me"); err != nil || status != 200 {
				t.Errorf("next request: %d %v", status, err)
			}
			if r := srv.Stats().Rotations; r != 1 {
				t.Errorf("rotations = %d, want 1", r)
			}
		})
	}
}

type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }

// RoundTrip closes the request body on every path, the error paths included.
func TestRoundTripClosesBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c, _ := inProcess(t, clienttest.Config{}, client.Config{Store: client.NewMemoryStore(client.Tokens{})})
		body := &closeRecorder{Reader: strings.NewReader("x")}
		req, _ := http.NewRequest(http.MethodPost, idp+"/x", body)
		if _, err := c.RoundTrip(req); !errors.Is(err, client.ErrReauthRequired) {
			t.Fatalf("got %v, want ErrReauthRequired", err)
		}
		if !body.closed.Load() {
			t.Error("body not closed on the error path")
		}
	})
}
