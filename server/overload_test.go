package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/silentrefresh/silentrefresh/store"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/user"
)

// newLoginServer is a server over a real SQLite file with the user alice.
func newLoginServer(t *testing.T, cfg Config, wrap ...func(store.Store) store.Store) *Server {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, err := user.HashPasswordParams("pw", user.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(t.Context(), user.User{ID: "u-alice", Username: "alice", PasswordHash: hash, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cfg.Store = st
	for _, w := range wrap {
		cfg.Store = w(cfg.Store)
	}
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func postLogin(s *Server, username, password string) *httptest.ResponseRecorder {
	b, _ := json.Marshal(map[string]string{"username": username, "password": password})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("POST", "/api/auth/login", bytes.NewReader(b)))
	return rec
}

// holdSlots takes every hash slot of s until the test ends.
func holdSlots(t *testing.T, s *Server) {
	t.Helper()
	for range cap(s.hashes.slots) {
		release, err := s.hashes.acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(release)
	}
}

func expectOverloaded(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	var body map[string]string
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != 503 || body["error"] != "temporarily_unavailable" || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("got %d %v %s; want 503 temporarily_unavailable with Retry-After: 1", rec.Code, rec.Header(), rec.Body)
	}
	if strings.Contains(body["error_description"], "database") {
		t.Fatalf("overload reported as a database failure: %q", body["error_description"])
	}
}

// TestLoginFloodIsRefusedBeforeHashing: with every hash slot taken and
// more waiting than could be served in time, a login (for a known user or
// an unknown one) is answered 503 at once, counted as overloaded, and does
// not spend the user's failed-login limit.
func TestLoginFloodIsRefusedBeforeHashing(t *testing.T) {
	s := newLoginServer(t, Config{PasswordHashes: 2, PasswordHashWait: time.Millisecond,
		LoginLimit: LoginLimit{Burst: 1, Every: time.Hour}})
	holdSlots(t, s)
	for range 3 {
		expectOverloaded(t, postLogin(s, "alice", "pw"))
		expectOverloaded(t, postLogin(s, "nobody", "pw"))
	}
	// The token endpoint's password grant alike.
	req := httptest.NewRequest("POST", "/oauth2/token", strings.NewReader("grant_type=password&username=alice&password=pw"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	expectOverloaded(t, rec)
	if n := testutil.ToFloat64(s.metrics.logins.WithLabelValues(loginOverloaded)); n != 7 {
		t.Fatalf("overloaded logins counted %v, want 7", n)
	}
	if n := testutil.ToFloat64(s.metrics.logins.WithLabelValues(loginError)); n != 0 {
		t.Fatalf("overload counted as %v errors", n)
	}
}

// TestLoginThatOutlivesItsRequestIsOverload: a login still waiting for a
// hash slot when its request's deadline passes is overload, not "the
// session database is unreachable".
func TestLoginThatOutlivesItsRequestIsOverload(t *testing.T) {
	s := newLoginServer(t, Config{PasswordHashes: 1, PasswordHashWait: time.Hour, RequestTimeout: 20 * time.Millisecond})
	holdSlots(t, s)
	expectOverloaded(t, postLogin(s, "alice", "pw"))
}

// countingStore is a real store that records how many user lookups, the
// first step of every password check, run at once.
type countingStore struct {
	store.Store
	now, peak atomic.Int64
}

func (c *countingStore) UserByName(ctx context.Context, name string) (user.User, error) {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
	return c.Store.UserByName(ctx, name)
}

// TestHashesInFlightAreBounded: many concurrent logins never check more
// than PasswordHashes passwords at once, and every one of them is answered
// 200 or 503 with Retry-After.
func TestHashesInFlightAreBounded(t *testing.T) {
	var counting *countingStore
	many := LoginLimit{Burst: 1000, Every: time.Millisecond}
	s := newLoginServer(t, Config{PasswordHashes: 2, PasswordHashWait: 5 * time.Millisecond,
		LoginLimit: many, LoginLimitPerClient: many, LoginLimitPerAddress: many},
		func(st store.Store) store.Store { counting = &countingStore{Store: st}; return counting })
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		start    = make(chan struct{})
	)
	for i := range 40 {
		wg.Go(func() {
			<-start
			name := "alice"
			if i%2 == 1 {
				name = "nobody" // the dummy hash of an unknown user counts too
			}
			rec := postLogin(s, name, "pw")
			if rec.Code == 503 && rec.Header().Get("Retry-After") != "1" {
				t.Errorf("503 without Retry-After: %v", rec.Header())
			}
			mu.Lock()
			statuses[rec.Code]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if statuses[200]+statuses[401] == 0 || statuses[200]+statuses[401]+statuses[503] != 40 {
		t.Fatalf("statuses %v: want some answered (200, 401), and 503 for the rest", statuses)
	}
	if p := counting.peak.Load(); p > 2 || p < 1 {
		t.Fatalf("%d password checks ran at once, bound 2", p)
	}
}

// TestRefusalLogCountsPerKeyAndInterval: a thousand refusals of three keys
// make three lines, each with its count, once the interval is over.
func TestRefusalLogCountsPerKeyAndInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf LogBuffer
		l := &refusalLog{log: slog.New(slog.NewTextHandler(&buf, nil)), every: 10 * time.Second}
		keys := []refusalKey{{limitUser, "tag1", "192.0.2.1"}, {limitClient, "tag1", "192.0.2.2"}, {limitAddress, "tag2", "192.0.2.3"}}
		for i := range 1000 {
			l.note(keys[i%3])
		}
		synctest.Wait()
		if buf.String() != "" {
			t.Fatalf("logged before the interval ended:\n%s", buf.String())
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 3 {
			t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
		}
		for i, want := range []string{"count=333", "count=334", "count=333"} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("line %d: no %s in\n%s", i, want, buf.String())
			}
		}
		// The next interval starts empty.
		buf.Reset()
		l.note(keys[0])
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := strings.Count(buf.String(), "\n"); got != 1 || !strings.Contains(buf.String(), "count=1 ") {
			t.Fatalf("next interval: %q", buf.String())
		}
	})
}

// TestPasswordHashesDefault: unset, the hash bound leaves one core to the
// other requests, and is never below one.
func TestPasswordHashesDefault(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, tc := range []struct{ procs, want int }{{1, 1}, {2, 1}, {3, 2}, {8, 7}} {
		runtime.GOMAXPROCS(tc.procs)
		cfg := Config{}
		if err := loginDefaults(&cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.PasswordHashes != tc.want {
			t.Errorf("GOMAXPROCS %d: PasswordHashes defaults to %d, want %d", tc.procs, cfg.PasswordHashes, tc.want)
		}
	}
	cfg := Config{PasswordHashes: 5}
	if err := loginDefaults(&cfg); err != nil || cfg.PasswordHashes != 5 {
		t.Errorf("PasswordHashes 5 became %d (%v)", cfg.PasswordHashes, err)
	}
}
