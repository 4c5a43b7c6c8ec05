package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/client"
	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// deployment is replicas of the real server on one SQLite file.
type deployment struct {
	urls  []string
	hs    []*httptest.Server
	hits  []*atomic.Int64 // GET /api/me answered by each replica
	creds []Credentials
}

func newDeployment(t *testing.T, replicas, users int, accessTTL time.Duration) *deployment {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sr.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, err := user.HashPasswordParams("pw", user.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{}
	for i := range users {
		name := fmt.Sprintf("user-%02d", i+1)
		if err := st.CreateUser(ctx, user.User{ID: token.NewID(), Username: name, PasswordHash: hash, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		d.creds = append(d.creds, Credentials{Username: name, Password: "pw"})
	}
	for range replicas {
		hs := httptest.NewUnstartedServer(nil)
		// Every replica has the same issuer, as behind a load balancer.
		srv, err := server.New(ctx, server.Config{Store: st, Issuer: "http://sr.test", AccessTTL: accessTTL, Grace: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		hits := new(atomic.Int64)
		hs.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == DefaultPath {
				hits.Add(1)
			}
			srv.ServeHTTP(w, r)
		})
		hs.Start()
		t.Cleanup(hs.Close)
		d.urls = append(d.urls, hs.URL)
		d.hs = append(d.hs, hs)
		d.hits = append(d.hits, hits)
	}
	return d
}

// Requests, logins and refreshes are spread over the replicas; nothing
// fails; the client's refreshes match the servers' rotations; the summary
// and the timeline account for every request.
func TestRunAcrossReplicas(t *testing.T) {
	d := newDeployment(t, 2, 4, time.Second)
	g, err := New(Config{URLs: d.urls, Users: d.creds, Workers: 3, Duration: 1500 * time.Millisecond, Think: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	var live bytes.Buffer
	watchCtx, stop := context.WithCancel(t.Context())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		g.Watch(watchCtx, &live, false)
	}()
	if err := g.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop()
	<-watched
	s := g.Summary(t.Context())
	if s.Requests == 0 || s.Failures != 0 || s.SessionsEnded != 0 {
		t.Fatalf("summary %+v; errors %+v", s, s.Errors)
	}
	if s.Refreshes == 0 {
		t.Errorf("no refresh in 1.5s with 1s access tokens: %+v", s)
	}
	if s.ServerRefreshes["rotated"] != s.Refreshes || s.ReuseDetections == nil || *s.ReuseDetections != 0 {
		t.Errorf("servers rotated %d, clients refreshed %d; reuse %v", s.ServerRefreshes["rotated"], s.Refreshes, s.ReuseDetections)
	}
	for i, h := range d.hits {
		if h.Load() < s.Requests/4 {
			t.Errorf("replica %d answered %d of %d requests", i, h.Load(), s.Requests)
		}
	}
	if s.LatencyP50MS <= 0 || s.LatencyP99MS < s.LatencyP50MS || s.LatencyMaxMS < s.LatencyP99MS {
		t.Errorf("latencies p50 %v p99 %v max %v", s.LatencyP50MS, s.LatencyP99MS, s.LatencyMaxMS)
	}
	tl := g.Timeline("t", "", 0)
	var ticks, refreshes int
	for _, r := range tl.Rows {
		ticks += len(r.Requests)
		for _, rf := range r.Refreshes {
			if rf.Kind == RefreshProactive || rf.Kind == RefreshReactive {
				refreshes++
			}
		}
	}
	if len(tl.Rows) != 4 || int64(ticks) != s.Requests || int64(refreshes) != s.Refreshes {
		t.Errorf("timeline: %d rows, %d ticks, %d refreshes; summary %d requests, %d refreshes", len(tl.Rows), ticks, refreshes, s.Requests, s.Refreshes)
	}
	if !strings.Contains(live.String(), "requests ") || strings.Contains(live.String(), "\x1b[") {
		t.Errorf("plain live view:\n%s", live.String())
	}
}

// Two Clients on one token file refresh once between them: the other
// adopts, no reuse is detected, nothing fails.
func TestSharedTokenFile(t *testing.T) {
	d := newDeployment(t, 1, 1, time.Second)
	g, err := New(Config{URLs: d.urls, Users: d.creds, Workers: 4, Duration: 2 * time.Second, Think: 2 * time.Millisecond,
		Processes: func(int) int { return 2 }, TokenDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(g.User(0).Clients()); n != 2 {
		t.Fatalf("%d clients, want 2", n)
	}
	if err := g.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := g.Summary(t.Context())
	us := g.User(0).Stats()
	if s.Failures != 0 || s.Refreshes == 0 || s.Adoptions == 0 || us.Adoptions != s.Adoptions {
		t.Errorf("summary %+v, user %+v", s, us)
	}
	if s.ReuseDetections == nil || *s.ReuseDetections != 0 || s.ServerRefreshes["rotated"] != s.Refreshes {
		t.Errorf("server outcomes %v, client refreshes %d", s.ServerRefreshes, s.Refreshes)
	}
}

// countingTransport closes reached after n requests.
type countingTransport struct {
	next    http.RoundTripper
	n       atomic.Int64
	at      int64
	reached chan struct{}
	once    sync.Once
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.n.Add(1) == c.at {
		c.once.Do(func() { close(c.reached) })
	}
	return c.next.RoundTrip(r)
}

// A session revoked during the run ends; its failures count as expected
// when ExpectEnd was called first, and as failures otherwise. The other
// sessions carry on.
func TestSessionsEnding(t *testing.T) {
	d := newDeployment(t, 1, 3, time.Minute)
	ct := &countingTransport{next: NewTransport(16), at: 6, reached: make(chan struct{})}
	g, err := New(Config{URLs: d.urls, Users: d.creds, Workers: 2, Duration: time.Minute, Think: 2 * time.Millisecond, Transport: ct})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	if g.User(0).LoginRefreshToken() == "" {
		t.Fatal("no login refresh token")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	<-ct.reached
	if !g.WaitInFlight(ctx, 30*time.Second) {
		t.Error("WaitInFlight gave up")
	}
	revoke := func(u *User) {
		tok, err := u.Clients()[0].Token(t.Context())
		if err != nil {
			t.Error(err)
			return
		}
		if err := client.JSONAPI(d.urls[0]).Revoke(t.Context(), tok.RefreshToken); err != nil {
			t.Error(err)
		}
	}
	g.User(0).ExpectEnd()
	revoke(g.User(0))
	revoke(g.User(1))
	// Both sessions end at their next request; user 2 carries on until the
	// run is stopped.
	<-g.User(0).ended
	<-g.User(1).ended
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s := g.Summary(t.Context())
	if s.SessionsEnded != 2 || s.UnexpectedSessionsEnded != 1 {
		t.Errorf("sessions ended %d (unexpected %d), want 2 (1)", s.SessionsEnded, s.UnexpectedSessionsEnded)
	}
	u0, u1, u2 := g.User(0).Stats(), g.User(1).Stats(), g.User(2).Stats()
	if u0.Failures != 0 || u0.ExpectedFailures == 0 || u1.Failures == 0 || u2.Failures != 0 || u2.Requests == 0 {
		t.Errorf("users: %+v %+v %+v", u0, u1, u2)
	}
	if s.Failures != u1.Failures || s.ExpectedFailures != u0.ExpectedFailures {
		t.Errorf("summary failures %d/%d, users %d/%d", s.Failures, s.ExpectedFailures, u1.Failures, u0.ExpectedFailures)
	}
	for i := range 2 {
		if _, err, ended := g.User(i).Ended(); !ended || !errors.Is(err, client.ErrReauthRequired) {
			t.Errorf("user %d: ended %v with %v", i, ended, err)
		}
	}
	if _, _, ended := g.User(2).Ended(); ended {
		t.Error("user 2 ended")
	}
	if len(s.Errors) == 0 || s.Errors[0].FirstUser != "user-02" {
		t.Errorf("errors %+v, want user-02's", s.Errors)
	}
	if !strings.Contains(u1.FirstError, "invalid_grant") || u1.FirstErrorAt <= 0 || u0.FirstError != "" || u2.FirstError != "" {
		t.Errorf("first errors %q %q %q, want user-02's invalid_grant only", u0.FirstError, u1.FirstError, u2.FirstError)
	}
	tl := g.Timeline("t", "", 0)
	if !tl.Rows[0].Ended || !tl.Rows[0].Expected || !tl.Rows[1].Ended || tl.Rows[1].Expected || tl.Rows[2].Ended {
		t.Errorf("timeline rows: %+v", tl.Rows)
	}
	if err := g.Logout(t.Context()); err != nil {
		t.Errorf("logout of the session left: %v", err)
	}
}

// The OAuth2 API works as the JSON API does.
func TestOAuth2API(t *testing.T) {
	d := newDeployment(t, 1, 2, time.Second)
	g, err := New(Config{URLs: d.urls, API: APIOAuth2, Users: d.creds, Workers: 2, Duration: time.Second, Think: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := g.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := g.Summary(t.Context())
	if s.Failures != 0 || s.Refreshes == 0 || s.API != APIOAuth2 {
		t.Errorf("summary %+v", s)
	}
}

func TestLoginFails(t *testing.T) {
	d := newDeployment(t, 1, 1, time.Minute)
	g, err := New(Config{URLs: d.urls, Users: []Credentials{{Username: "user-01", Password: "hunter2-secret"}}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = g.Login(t.Context())
	if err == nil || !strings.Contains(err.Error(), "user-01") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("login error %v: want the username, never the password", err)
	}
	if err := g.Run(t.Context()); err == nil {
		t.Error("Run without a login succeeded")
	}
}

func TestNewChecksConfig(t *testing.T) {
	ok := Config{URLs: []string{"http://127.0.0.1:1"}, Users: []Credentials{{"a", "b"}}, Duration: time.Second}
	tests := map[string]func(*Config){
		"no urls":      func(c *Config) { c.URLs = nil },
		"bad url":      func(c *Config) { c.URLs = []string{"127.0.0.1:8080"} },
		"no users":     func(c *Config) { c.Users = nil },
		"no duration":  func(c *Config) { c.Duration = 0 },
		"bad api":      func(c *Config) { c.API = "soap" },
		"bad auth url": func(c *Config) { c.AuthURL = "ftp://x" },
		"no token dir": func(c *Config) { c.Processes = func(int) int { return 2 } },
	}
	if _, err := New(ok); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for name, mod := range tests {
		cfg := ok
		mod(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReadCredentials(t *testing.T) {
	tests := []struct {
		in      string
		want    []Credentials
		wantErr bool
	}{
		{"alice:pw1\nbob:p:w:2\r\n", []Credentials{{"alice", "pw1"}, {"bob", "p:w:2"}}, false},
		{"# users\n\n  carol:pw \n", []Credentials{{"carol", "pw "}}, false},
		{"", nil, true},
		{"# only a comment\n", nil, true},
		{"nocolon\n", nil, true},
		{"alice:\n", nil, true},
		{":pw\n", nil, true},
	}
	for _, tt := range tests {
		got, err := ReadCredentials(strings.NewReader(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("ReadCredentials(%q) error %v", tt.in, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
			t.Errorf("ReadCredentials(%q) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("ReadCredentials(%q)[%d] = %#v, want %#v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
	if s := (Credentials{"alice", "secret"}).String(); strings.Contains(s, "secret") {
		t.Errorf("String shows the password: %q", s)
	}
}

func TestParseRefreshOutcomes(t *testing.T) {
	in := `# HELP silentrefresh_refresh_total Refresh-token exchanges by outcome.
# TYPE silentrefresh_refresh_total counter
silentrefresh_refresh_total{outcome="grace_replay"} 3
silentrefresh_refresh_total{outcome="reused"} 1
silentrefresh_refresh_total{outcome="rotated"} 1.5e+03
silentrefresh_refresh_total{instance="a",outcome="rotated"} 2
silentrefresh_login_total{outcome="success"} 9
`
	got, err := ParseRefreshOutcomes(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if got["grace_replay"] != 3 || got["reused"] != 1 || got["rotated"] != 1502 || len(got) != 3 {
		t.Errorf("got %v", got)
	}
	for _, bad := range []string{`silentrefresh_refresh_total{outcome="x" 3`, `silentrefresh_refresh_total{outcome="x"} y`, `silentrefresh_refresh_total{} 3`} {
		if _, err := ParseRefreshOutcomes(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// The terminal view redraws one line with a progress bar; notes go above
// it.
func TestProgressTerminal(t *testing.T) {
	g, err := New(Config{URLs: []string{"http://127.0.0.1:1"}, Users: []Credentials{{"a", "b"}}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	p := &Progress{g: g, w: &b, tty: true}
	g.progress.Store(p)
	start := time.Now().Add(-500 * time.Millisecond)
	g.started.Store(&start)
	g.requests.Add(1234)
	g.SetPhase("losing refresh answers")
	p.status(false)
	g.Notef("fault: %s", "signing key dropped")
	p.status(true)
	out := b.String()
	for _, want := range []string{"\r\x1b[2K", "1 234 req", "▕", "losing refresh answers", "fault: signing key dropped\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal view lacks %q: %q", want, out)
		}
	}
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("the final status line is not ended: %q", out)
	}
	if got := bar(0.5, 4); got != "▕██  ▏" {
		t.Errorf("bar(0.5, 4) = %q", got)
	}
}

// A replica that is down is skipped: logins, refreshes and requests go to
// the other one, and nothing fails. Its counters are missing from the
// summary, which says so.
func TestReplicaDown(t *testing.T) {
	d := newDeployment(t, 2, 3, time.Second)
	d.hs[1].Close()
	g, err := New(Config{URLs: d.urls, Users: d.creds, Workers: 2, Duration: 1500 * time.Millisecond, Think: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Login(t.Context()); err != nil {
		t.Fatalf("login with a replica down: %v", err)
	}
	if err := g.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := g.Summary(t.Context())
	if s.Failures != 0 || s.Refreshes == 0 || s.Failovers == 0 || s.RefreshFailures != 0 {
		t.Errorf("summary %+v; errors %+v", s, s.Errors)
	}
	if s.ReuseDetections == nil || !strings.Contains(s.ServerMetricsError, "1 of 2 replicas") {
		t.Errorf("server counters: reuse %v, error %q", s.ReuseDetections, s.ServerMetricsError)
	}
}

func TestCounterDelta(t *testing.T) {
	before := map[string]map[string]float64{
		"a": {"rotated": 10, "reused": 1},
		"b": {"rotated": 50},
		"c": {"rotated": 7},
	}
	after := map[string]map[string]float64{
		"a": {"rotated": 15, "reused": 1, "grace_replay": 2}, // grew
		"b": {"rotated": 3},                                  // restarted: counts from zero
		"d": {"rotated": 4},                                  // not read before
		// c not read after: left out
	}
	got := counterDelta(before, after)
	want := map[string]int64{"rotated": 5 + 3 + 4, "grace_replay": 2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counterDelta = %v, want %v", got, want)
	}
}
