package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// replicas picks a random replica for every request, as a load balancer
// without affinity would.
type replicas struct {
	mu   sync.Mutex // guards urls
	urls []string
}

func newReplicas(servers ...*server) *replicas {
	r := &replicas{}
	for _, s := range servers {
		r.urls = append(r.urls, s.url)
	}
	return r
}

func (r *replicas) pick() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.urls[rand.IntN(len(r.urls))]
}

// load drives sessions against the replicas. Each session has two "tabs"
// that share its tokens without coordinating, like two browser tabs: they
// call the session-checked GET /api/me, refresh shortly before the access
// token expires (and after a 401), and may present the same refresh token
// at the same time through different replicas.
//
// A request that fails on the transport (a replica was killed) is retried
// on another replica, and a 503 after a pause: that is what a client behind
// a load balancer sees and does. Anything else is a failure: a 401 that a
// refresh does not cure, an invalid_grant for the current refresh token
// (a lost session), a 500.
type load struct {
	hc       *http.Client
	replicas *replicas
	sessions []*loadSession
	pace     time.Duration // between two requests of one tab

	requests    atomic.Int64 // answered 200
	refreshes   atomic.Int64 // refresh calls answered 200
	transport   atomic.Int64 // transport errors, retried
	unavailable atomic.Int64 // 503 answers, retried
	maxLatency  atomic.Int64 // ns, of any single HTTP exchange that got an answer
	last503     atomic.Int64 // unix ns of the latest 503 answer

	mu       sync.Mutex // guards failures
	failures []string
}

type loadSession struct {
	mu  sync.Mutex // guards tok
	tok tokens
}

func (s *loadSession) current() tokens {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok
}

// newLoad logs n sessions in through random replicas.
func newLoad(t *testing.T, r *replicas, n int, username, password string) *load {
	t.Helper()
	l := &load{hc: newHTTPClient(), replicas: r, pace: 50 * time.Millisecond}
	l.sessions = make([]*loadSession, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4) // argon2id is memory-hungry
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			tok, err := login(t.Context(), l.hc, r.pick(), username, password)
			if err != nil {
				t.Errorf("login: %v", err)
				return
			}
			l.sessions[i] = &loadSession{tok: tok}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return l
}

func (l *load) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, fmt.Sprintf(format, args...))
}

// run drives the load until ctx ends.
func (l *load) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range l.sessions {
		for range 2 {
			wg.Go(func() { l.tab(ctx, s) })
		}
	}
	wg.Wait()
}

func (l *load) tab(ctx context.Context, s *loadSession) {
	tick := time.NewTicker(l.pace)
	defer tick.Stop()
	for ctx.Err() == nil {
		tok := s.current()
		if time.Until(tok.Expiry) < 300*time.Millisecond {
			if _, err := l.refresh(ctx, s, tok); err != nil {
				if ctx.Err() == nil {
					l.fail("session %s: proactive refresh: %v", tok.SID, err)
				}
				return
			}
			tok = s.current()
		}
		if err := l.me(ctx, s, tok); err != nil {
			if ctx.Err() == nil {
				l.fail("session %s: GET /api/me: %v", tok.SID, err)
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// me calls GET /api/me, refreshing once on a 401.
func (l *load) me(ctx context.Context, s *loadSession, tok tokens) error {
	for attempt := 0; ; attempt++ {
		var at string
		err := l.retrying(ctx, func(base string) error {
			at = base
			return get(ctx, l.hc, base+"/api/me", tok.Access, nil)
		})
		var ae *apiError
		if err == nil {
			l.requests.Add(1)
			return nil
		}
		if attempt > 0 || !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
			return fmt.Errorf("%s (replica %s, token %s, expiry in %v)", err, at, describeToken(tok.Access),
				time.Until(tok.Expiry).Round(time.Millisecond))
		}
		// The access token expired in flight (whole-second "exp" and a
		// 1 s lifetime): refresh and try again, as a client does.
		if tok, err = l.refresh(ctx, s, tok); err != nil {
			return fmt.Errorf("refresh after 401: %w", err)
		}
	}
}

// refresh rotates the session's tokens, unless the other tab already did.
func (l *load) refresh(ctx context.Context, s *loadSession, seen tokens) (tokens, error) {
	var got tokens
	err := l.retrying(ctx, func(base string) error {
		if cur := s.current(); cur.Refresh != seen.Refresh {
			got = cur // the other tab rotated meanwhile
			return nil
		}
		var err error
		got, err = refresh(ctx, l.hc, base, seen.Refresh)
		return err
	})
	var ae *apiError
	if errors.As(err, &ae) && ae.Code == "invalid_grant" {
		if cur := s.current(); cur.Refresh != seen.Refresh {
			// Superseded by the other tab's newer rotation: use its tokens.
			return cur, nil
		}
		return tokens{}, err
	}
	if err != nil {
		return tokens{}, err
	}
	l.refreshes.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok.Refresh == seen.Refresh {
		s.tok = got
	}
	return s.tok, nil
}

// retrying calls f with a random replica until it gets an answer other than
// a transport error or a 503, or ctx ends.
func (l *load) retrying(ctx context.Context, f func(base string) error) error {
	for {
		start := time.Now()
		err := f(l.replicas.pick())
		var ae *apiError
		switch {
		case err == nil || errors.As(err, &ae) && ae.Status != http.StatusServiceUnavailable:
			l.observe(time.Since(start))
			return err
		case ae != nil: // 503
			l.observe(time.Since(start))
			l.unavailable.Add(1)
			l.last503.Store(time.Now().UnixNano())
			if ae.RetryAfter == "" || !strings.Contains(ae.Code, "unavailable") {
				l.fail("503 without Retry-After or error code: %v (Retry-After %q)", ae, ae.RetryAfter)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			l.transport.Add(1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond): // client back-off before retrying
		}
	}
}

func (l *load) observe(d time.Duration) {
	for {
		old := l.maxLatency.Load()
		if int64(d) <= old || l.maxLatency.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

// report logs the counters and fails the test on any failure.
func (l *load) report(t *testing.T, d time.Duration) {
	t.Helper()
	t.Logf("%d sessions × 2 tabs for %v: %d requests (%.0f/s), %d refreshes (%.0f/s), %d transport errors retried, %d 503s retried, slowest answer %v",
		len(l.sessions), d.Round(time.Millisecond), l.requests.Load(), float64(l.requests.Load())/d.Seconds(),
		l.refreshes.Load(), float64(l.refreshes.Load())/d.Seconds(), l.transport.Load(), l.unavailable.Load(),
		time.Duration(l.maxLatency.Load()).Round(time.Millisecond))
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) > 0 {
		sort.Strings(l.failures)
		n := min(len(l.failures), 20)
		t.Errorf("%d failed requests, first %d:\n%s", len(l.failures), n, strings.Join(l.failures[:n], "\n"))
	}
}

// refreshAll refreshes every session once more: none may have been lost.
func (l *load) refreshAll(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, s := range l.sessions {
		if _, err := l.refresh(ctx, s, s.current()); err != nil {
			t.Errorf("session %s: final refresh: %v", s.current().SID, err)
		}
	}
}

// sids returns the session IDs of the load.
func (l *load) sids() []string {
	var ids []string
	for _, s := range l.sessions {
		ids = append(ids, s.current().SID)
	}
	return ids
}

// describeToken shows the header and claims of an access token (not its
// signature) for failure messages.
func describeToken(access string) string {
	parts := strings.Split(access, ".")
	if len(parts) != 3 {
		return "malformed"
	}
	h, _ := base64.RawURLEncoding.DecodeString(parts[0])
	c, _ := base64.RawURLEncoding.DecodeString(parts[1])
	return string(h) + " " + string(c)
}
