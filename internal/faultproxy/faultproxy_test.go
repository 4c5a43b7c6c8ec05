package faultproxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/internal/faultproxy"
	"github.com/silentrefresh/silentrefresh/internal/loadgen"
	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// rig is a real server on a SQLite file with a Proxy in front of it.
type rig struct {
	srv      *httptest.Server // the server itself
	proxy    *faultproxy.Proxy
	proxyURL string
	users    []string // usernames, password "pw"
}

func newRig(t *testing.T, users int, cfg faultproxy.Config) *rig {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sr.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &rig{}
	hash, err := user.HashPasswordParams("pw", user.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	for i := range users {
		name := fmt.Sprintf("u%d", i)
		if err := st.CreateUser(ctx, user.User{ID: token.NewID(), Username: name, PasswordHash: hash, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		r.users = append(r.users, name)
	}
	hs := httptest.NewUnstartedServer(nil)
	srv, err := server.New(ctx, server.Config{Store: st, Issuer: "http://" + hs.Listener.Addr().String(), Grace: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv
	hs.Start()
	t.Cleanup(hs.Close)
	r.srv = hs
	cfg.Target, _ = url.Parse(hs.URL)
	p, err := faultproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ps := httptest.NewServer(p)
	t.Cleanup(ps.Close)
	r.proxy, r.proxyURL = p, ps.URL
	return r
}

// outcomes reads the server's refresh counters.
func (r *rig) outcomes(t *testing.T) map[string]int {
	t.Helper()
	resp, err := http.Get(r.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	counts, err := loadgen.ParseRefreshOutcomes(resp.Body)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	out := map[string]int{}
	for k, v := range counts {
		out[k] = int(v)
	}
	return out
}

// login logs user in through the proxy.
func (r *rig) login(t *testing.T, name string) client.Tokens {
	t.Helper()
	tok, err := client.JSONAPI(r.proxyURL).Login(t.Context(), name, "pw")
	if err != nil {
		t.Fatalf("login through the proxy: %v", err)
	}
	return tok
}

// An armed proxy lets the server rotate the token and loses the answer: the
// server counted the rotation, the client got no answer. The client's retry
// with the same token gets through and, inside grace, the same successor.
func TestDropAfterCommit(t *testing.T) {
	tests := []struct {
		name    string
		refresh func(base, rt string) (client.Grant, error)
	}{
		{"json api", func(base, rt string) (client.Grant, error) {
			return client.JSONAPI(base).Refresh(context.Background(), rt)
		}},
		{"oauth2", func(base, rt string) (client.Grant, error) {
			return client.OAuth2(base+"/oauth2/token", "").Refresh(context.Background(), rt)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 1, faultproxy.Config{})
			tok := r.login(t, r.users[0])
			r.proxy.DropNext(1)

			_, err := tt.refresh(r.proxyURL, tok.RefreshToken)
			var ne *client.NetworkError
			if !errors.As(err, &ne) || !ne.Sent {
				t.Fatalf("refresh through the armed proxy: %v, want a NetworkError after the request was sent", err)
			}
			if got := r.outcomes(t); got["rotated"] != 1 {
				t.Fatalf("server outcomes %v: want the rotation committed before the answer was lost", got)
			}
			if s := r.proxy.Stats(); s.Dropped != 1 || s.Matched != 1 {
				t.Errorf("stats %+v, want 1 matched and dropped", s)
			}

			// The retry passes the proxy (one loss per request) and the
			// server answers the same successor from grace.
			g1, err := tt.refresh(r.proxyURL, tok.RefreshToken)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			g2, err := tt.refresh(r.srv.URL, tok.RefreshToken)
			if err != nil {
				t.Fatalf("second retry, straight to the server: %v", err)
			}
			if g1.RefreshToken == "" || g1.RefreshToken != g2.RefreshToken {
				t.Errorf("retries got different successors")
			}
			if got := r.outcomes(t); got["rotated"] != 1 || got["grace_replay"] != 2 || got["reused"] != 0 {
				t.Errorf("server outcomes %v, want 1 rotated, 2 grace replays, no reuse", got)
			}
			if s := r.proxy.Stats(); s.Dropped != 1 || s.Repeats != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// Everything else passes through untouched, armed or not: logins, the
// bearer-protected API, failed refreshes (nothing was committed, so nothing
// is dropped), and bodies too large to inspect.
func TestPassesOtherTraffic(t *testing.T) {
	r := newRig(t, 1, faultproxy.Config{})
	r.proxy.DropAll(true)
	tok := r.login(t, r.users[0])

	req, _ := http.NewRequest(http.MethodGet, r.proxyURL+"/api/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"sub"`) {
		t.Fatalf("GET /api/me through the proxy: %d %s", resp.StatusCode, body)
	}

	_, err = client.JSONAPI(r.proxyURL).Refresh(t.Context(), "not-a-token")
	var re *client.RetrieveError
	if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized || !errors.Is(err, client.ErrInvalidGrant) {
		t.Fatalf("refresh with an unknown token: %v, want the server's 401 invalid_grant", err)
	}

	big := strings.NewReader(`{"refreshToken":"` + strings.Repeat("x", faultproxy.MaxBody) + `"}`)
	resp, err = http.Post(r.proxyURL+"/api/auth/refresh", "application/json", big)
	if err != nil {
		t.Fatalf("large body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 4 {
		t.Errorf("large body: status %d, want the server's 4xx", resp.StatusCode)
	}

	resp, err = http.Get(r.proxyURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: %d", resp.StatusCode)
	}
	if s := r.proxy.Stats(); s.Dropped != 0 || s.Matched != 1 || s.Forwarded != 5 {
		t.Errorf("stats %+v, want 5 forwarded, 1 matched (the small refresh), none dropped", s)
	}
	if got := r.outcomes(t); got["rotated"] != 0 {
		t.Errorf("server outcomes %v", got)
	}
}

// With DropRepeats, the retry is lost too; without it the retry passes.
func TestDropRepeats(t *testing.T) {
	for _, repeats := range []bool{false, true} {
		t.Run(fmt.Sprint("DropRepeats=", repeats), func(t *testing.T) {
			r := newRig(t, 1, faultproxy.Config{DropRepeats: repeats})
			tok := r.login(t, r.users[0])
			r.proxy.DropAll(true)
			api := client.JSONAPI(r.proxyURL)
			if _, err := api.Refresh(t.Context(), tok.RefreshToken); err == nil {
				t.Fatal("first refresh was answered")
			}
			_, err := api.Refresh(t.Context(), tok.RefreshToken)
			if got := err != nil; got != repeats {
				t.Errorf("retry failed = %v (%v), want %v", got, err, repeats)
			}
		})
	}
}

// DropNext(n) under concurrent refreshes of distinct tokens drops exactly
// n answers, and Match and OnDrop see each of them.
func TestDropNextConcurrent(t *testing.T) {
	const sessions, drops = 16, 5
	var (
		mu      sync.Mutex
		onDrops int
	)
	r := newRig(t, sessions, faultproxy.Config{OnDrop: func(req *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		onDrops++
		if req.URL.Path != "/api/auth/refresh" {
			t.Errorf("OnDrop for %s", req.URL.Path)
		}
	}})
	toks := make([]client.Tokens, sessions)
	for i, name := range r.users {
		toks[i] = r.login(t, name)
	}
	r.proxy.DropNext(drops)
	var (
		wg     sync.WaitGroup
		failed sync.Map
	)
	for i := range toks {
		wg.Go(func() {
			if _, err := client.JSONAPI(r.proxyURL).Refresh(context.Background(), toks[i].RefreshToken); err != nil {
				failed.Store(i, err)
			}
		})
	}
	wg.Wait()
	n := 0
	failed.Range(func(_, v any) bool {
		n++
		var ne *client.NetworkError
		if !errors.As(v.(error), &ne) {
			t.Errorf("failure %v is not a lost answer", v)
		}
		return true
	})
	// OnDrop runs before the proxy cuts the connection, so every call has
	// happened by now; the client learnt of it through the socket, which
	// the race detector cannot see, hence the lock.
	mu.Lock()
	called := onDrops
	mu.Unlock()
	if n != drops || called != drops {
		t.Errorf("%d refreshes failed, OnDrop called %d times; want %d", n, called, drops)
	}
	if got := r.outcomes(t); got["rotated"] != sessions {
		t.Errorf("server outcomes %v, want %d rotations", got, sessions)
	}
	if s := r.proxy.Stats(); s.Dropped != drops {
		t.Errorf("stats %+v", s)
	}
}

// A target that does not answer gets a JSON 502.
func TestUnreachableTarget(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	target, _ := url.Parse(dead.URL)
	dead.Close()
	p, err := faultproxy.New(faultproxy.Config{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), `"bad_gateway"`) {
		t.Errorf("got %d %s", rec.Code, rec.Body.String())
	}
	if s := p.Stats(); s.Failed != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestNewNeedsTarget(t *testing.T) {
	for _, u := range []*url.URL{nil, {Path: "/x"}, {Scheme: "http"}} {
		if _, err := faultproxy.New(faultproxy.Config{Target: u}); err == nil {
			t.Errorf("New(%v) accepted", u)
		}
	}
}

func TestIsRefresh(t *testing.T) {
	tests := []struct {
		method, path, body string
		want               bool
	}{
		{"POST", "/api/auth/refresh", `{"refreshToken":"x"}`, true},
		{"POST", "/prefix/api/auth/refresh", `{}`, true},
		{"GET", "/api/auth/refresh", ``, false},
		{"POST", "/api/auth/login", `{"username":"a"}`, false},
		{"POST", "/oauth2/token", `grant_type=refresh_token&refresh_token=x`, true},
		{"POST", "/oauth2/token", `grant_type=password&username=a&password=b`, false},
		{"POST", "/oauth2/token", `%zz`, false},
		{"POST", "/oauth2/revoke", `token=x`, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
		if got := faultproxy.IsRefresh(r, []byte(tt.body)); got != tt.want {
			t.Errorf("IsRefresh(%s %s %q) = %v, want %v", tt.method, tt.path, tt.body, got, tt.want)
		}
	}
}
