package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/internal/clock"
	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/user"
)

// realServer is the silentrefresh server on a SQLite file, behind a proxy
// that counts refresh requests, can lose their answers, and can answer
// them itself with canned error bodies before letting them through.
type realServer struct {
	*server.Server
	URL   string
	clock *clock.Fake

	refreshes atomic.Int64 // refresh requests that reached the proxy
	drop      atomic.Int64 // answers still to lose

	mu       sync.Mutex    // guards canned and arrivals
	canned   []cannedReply // answered, in order, instead of the server
	arrivals []time.Time   // when each refresh request reached the proxy (real time)
}

// cannedReply is an answer the proxy gives to one refresh request without
// passing it on.
type cannedReply struct {
	status int
	header http.Header
	body   string
}

// answer queues canned replies for the next refresh requests.
func (rs *realServer) answer(replies ...cannedReply) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.canned = append(rs.canned, replies...)
}

// arrived returns when the refresh requests so far reached the proxy.
func (rs *realServer) arrived() []time.Time {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]time.Time(nil), rs.arrivals...)
}

// nextCanned pops the next canned reply, if any, and records the arrival.
func (rs *realServer) nextCanned() (cannedReply, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.arrivals = append(rs.arrivals, time.Now())
	if len(rs.canned) == 0 {
		return cannedReply{}, false
	}
	r := rs.canned[0]
	rs.canned = rs.canned[1:]
	return r, true
}

func newRealServer(t *testing.T, cfg server.Config) *realServer {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "silentrefresh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// Cheap hashing parameters: these tests are about tokens, not passwords.
	hash, err := user.HashPasswordParams("correct horse", user.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	rs := &realServer{clock: clock.NewFake(time.Now())}
	if err := st.CreateUser(ctx, user.User{ID: "u-alice", Username: "alice", PasswordHash: hash, CreatedAt: rs.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	cfg.Store = st
	cfg.Now = rs.clock.Now
	hs := httptest.NewUnstartedServer(nil)
	if cfg.Issuer == "" {
		// DPoP proofs name the URL the client sent to: the proxy's.
		cfg.Issuer = "http://" + hs.Listener.Addr().String()
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rs.Server = srv
	hs.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/auth/refresh" && r.URL.Path != "/oauth2/token" {
			srv.ServeHTTP(w, r)
			return
		}
		rs.refreshes.Add(1)
		if c, ok := rs.nextCanned(); ok {
			for k, v := range c.header {
				w.Header()[k] = v
			}
			w.WriteHeader(c.status)
			_, _ = w.Write([]byte(c.body))
			return
		}
		if rs.drop.Add(-1) < 0 {
			rs.drop.Add(1)
			srv.ServeHTTP(w, r)
			return
		}
		// The server commits the rotation; its answer is lost on the way.
		srv.ServeHTTP(httptest.NewRecorder(), r)
		panic(http.ErrAbortHandler)
	})
	hs.Start()
	t.Cleanup(hs.Close)
	rs.URL = hs.URL
	return rs
}

// login opens a session for alice over the JSON API and returns a Client
// on it.
func (rs *realServer) login(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	return rs.loginWith(t, client.JSONAPI(rs.URL), cfg)
}

// loginWith opens a session for alice with r and returns a Client on it
// that refreshes with r.
func (rs *realServer) loginWith(t *testing.T, r loginRefresher, cfg client.Config) *client.Client {
	t.Helper()
	tok, err := r.Login(t.Context(), "alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Refresher = r
	cfg.Store = client.NewMemoryStore(tok)
	cfg.Now = rs.clock.Now
	cfg.Jitter = -1
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// bounded is t.Context() with a deadline, so that a hung server fails the
// test with a message instead of stalling it.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// gateTransport holds requests to one path until the gate opens, after
// they carry their token.
type gateTransport struct {
	path    string
	held    chan struct{} // receives once per held request
	gate    chan struct{}
	base    http.RoundTripper
	holding atomic.Bool
}

func (g *gateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == g.path && g.holding.CompareAndSwap(true, false) {
		g.held <- struct{}{}
		<-g.gate
	}
	return g.base.RoundTrip(r)
}

// dropSigningKey rotates the signing key and retires the old one by force:
// the access tokens it signed are refused from now on.
func (rs *realServer) dropSigningKey(ctx context.Context) error {
	if _, err := rs.RotateSigningKey(ctx); err != nil {
		return err
	}
	_, err := rs.ForceRetireSigningKeys(ctx)
	return err
}
