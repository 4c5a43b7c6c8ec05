package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/store/postgres/pgtest"
)

// balancer is an http.RoundTripper that sends each request to a random
// replica, like a load balancer without affinity in front of them.
type balancer struct {
	base  http.RoundTripper
	hosts []string
}

func newBalancer(srvs []*server) *balancer {
	b := &balancer{base: newHTTPClient().Transport}
	for _, s := range srvs {
		b.hosts = append(b.hosts, s.addr)
	}
	return b
}

func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	u := *req.URL
	u.Host = b.hosts[rand.IntN(len(b.hosts))]
	r.URL, r.Host = &u, ""
	return b.base.RoundTrip(r)
}

// publicURL is what clients address; the balancer picks the replica.
const publicURL = "http://silentrefresh.e2e.test"

// TestReplicasGoClient: sessions driven by the Go client (package client)
// through a balancer that sends every request — API calls and refreshes —
// to a random one of three replicas, with 1 s access tokens. Each client is
// shared by two goroutines, so refreshes are single-flight per client and
// waiting requests go out with the new token. No request may fail, and
// every family must be one linear chain.
func TestReplicasGoClient(t *testing.T) {
	dsn := pgtest.NewDSN(t)
	srvs := pgReplicas(t, dsn, 3, "--access-ttl", "1s")
	lb := newBalancer(srvs)
	refresher := client.JSONAPI(publicURL, client.WithHTTPClient(&http.Client{Transport: lb, Timeout: 10 * time.Second}))

	const sessions = 12
	clients := make([]*client.Client, sessions)
	for i := range clients {
		tok, err := refresher.Login(t.Context(), username, password)
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		c, err := client.New(client.Config{Refresher: refresher, Store: client.NewMemoryStore(tok), Base: lb})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		clients[i] = c
	}

	d := loadDuration(t) / 3
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var (
		ok       atomic.Int64
		mu       sync.Mutex // guards failures
		failures []string
		wg       sync.WaitGroup
	)
	for _, c := range clients {
		hc := c.HTTPClient()
		for range 2 {
			wg.Go(func() {
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					err := getOK(ctx, hc, publicURL+"/api/me")
					switch {
					case err == nil:
						ok.Add(1)
					case ctx.Err() == nil:
						mu.Lock()
						failures = append(failures, err.Error())
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()

	var refreshes, replays, waits uint64
	for _, c := range clients {
		st := c.Stats()
		refreshes, replays, waits = refreshes+st.Refreshes, replays+st.Replays, waits+st.Waits
	}
	t.Logf("%d clients × 2 goroutines for %v: %d requests answered 200, %d refreshes, %d requests replayed after a 401, %d waited for a refresh",
		sessions, d, ok.Load(), refreshes, replays, waits)
	if len(failures) > 0 {
		t.Errorf("%d failed requests, first: %s", len(failures), failures[0])
	}
	if refreshes < sessions {
		t.Errorf("only %d refreshes: the access tokens did not expire during the test", refreshes)
	}
	ids := allFamilies(t, dsn)
	if len(ids) != sessions {
		t.Errorf("%d families, want %d", len(ids), sessions)
	}
	checkChains(t, openDB(t, dsn), ids)
}

// getOK sends a GET and wants 200.
func getOK(ctx context.Context, hc *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d %s", u, resp.StatusCode, body)
	}
	return nil
}
