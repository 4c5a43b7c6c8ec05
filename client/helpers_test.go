package client_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/client/clienttest"
)

// epoch is where manual clocks start.
var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// idp is the host name the in-process provider answers for.
const idp = "http://idp.test"

// inProcess returns a Provider and a Client wired to it without sockets, for
// tests inside a synctest bubble. cfg's Refresher, Store and Base are filled
// in when nil; the session belongs to "alice".
func inProcess(t *testing.T, pcfg clienttest.Config, cfg client.Config) (*clienttest.Provider, *client.Client, client.Store) {
	t.Helper()
	p := clienttest.New(pcfg)
	if cfg.Refresher == nil {
		cfg.Refresher = client.JSONAPI(idp, client.WithHTTPClient(&http.Client{Transport: p.Transport()}))
	}
	if cfg.Store == nil {
		cfg.Store = client.NewMemoryStore(p.Issue("alice"))
	}
	if cfg.Base == nil {
		cfg.Base = p.Transport()
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = -1
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c, cfg.Store
}

// get fetches url through c and returns the status and body.
func get(ctx context.Context, c *client.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	return do(c, req)
}

func do(c *client.Client, req *http.Request) (int, string, error) {
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// echo is the protected resource's answer.
type echo struct {
	Sub, Method, Path, Body string
}

func decodeEcho(t *testing.T, body string) echo {
	t.Helper()
	var e echo
	if err := json.NewDecoder(strings.NewReader(body)).Decode(&e); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return e
}

// counter counts hook calls and closes reached when the count hits n.
type counter struct {
	n       int64
	count   atomic.Int64
	reached chan struct{}
}

func newCounter(n int) *counter { return &counter{n: int64(n), reached: make(chan struct{})} }

func (c *counter) inc() {
	if c.count.Add(1) == c.n {
		close(c.reached)
	}
}

// await waits until the count is reached, failing the test after a generous
// real-time limit (a safety net against a hang, not a synchronisation).
func (c *counter) await(t *testing.T) {
	t.Helper()
	select {
	case <-c.reached:
	case <-time.After(30 * time.Second):
		t.Fatalf("count stuck at %d, want %d", c.count.Load(), c.n)
	}
}

func httptestServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}
