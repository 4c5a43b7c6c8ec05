package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/bearer"
	"github.com/silentrefresh/silentrefresh/internal/clock"
	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// env is a real server over a real SQLite file, behind httptest.
type env struct {
	t      testing.TB
	srv    *server.Server
	http   *httptest.Server
	store  *sqlite.Store
	clock  *clock.Fake // the real time until advanced
	dbPath string
}

const (
	testUser     = "alice"
	testPassword = "correct horse battery staple"
)

func newEnv(t testing.TB, mutate ...func(*server.Config)) *env {
	t.Helper()
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "srv.db")
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, err := user.HashPasswordParams(testPassword, user.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, user.User{ID: "sub-alice", Username: testUser, PasswordHash: hash, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nil)
	clk := &clock.Fake{}
	cfg := server.Config{
		Store:     st,
		Issuer:    "http://" + hs.Listener.Addr().String(),
		AccessTTL: time.Minute,
		Grace:     10 * time.Second,
		Now:       clk.Now,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv
	hs.Start()
	t.Cleanup(hs.Close)
	return &env{t: t, srv: srv, http: hs, store: st, clock: clk, dbPath: dbPath}
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (e *env) do(method, path, contentType string, body io.Reader, header ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: %d with a body that is not a JSON object: %q", method, path, res.StatusCode, raw)
		}
	}
	return r
}

func (e *env) postJSON(path string, v any, header ...string) response {
	e.t.Helper()
	b, _ := json.Marshal(v)
	return e.do("POST", path, "application/json", bytes.NewReader(b), header...)
}

func (e *env) postForm(path string, form url.Values, header ...string) response {
	e.t.Helper()
	return e.do("POST", path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), header...)
}

func (e *env) get(path, bearer string) response {
	e.t.Helper()
	if bearer == "" {
		return e.do("GET", path, "", nil)
	}
	return e.do("GET", path, "", nil, "Authorization", "Bearer "+bearer)
}

func (e *env) login() (access, refresh string) {
	e.t.Helper()
	r := e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": testPassword})
	if r.status != 200 {
		e.t.Fatalf("login: %d %s", r.status, r.raw)
	}
	return r.body["accessToken"].(string), r.body["refreshToken"].(string)
}

func (e *env) refresh(rt string) response {
	e.t.Helper()
	return e.postJSON("/api/auth/refresh", map[string]string{"refreshToken": rt})
}

// metric returns the value of one sample on /metrics.
func (e *env) metric(name string) string {
	e.t.Helper()
	res, err := http.Get(e.http.URL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

func expectError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status || r.body["error"] != code {
		t.Fatalf("got %d %s, want %d with error %q", r.status, r.raw, status, code)
	}
}

func TestJSONAPIFlow(t *testing.T) {
	e := newEnv(t)
	r := e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": testPassword})
	if r.status != 200 || r.body["tokenType"] != "Bearer" || r.body["expiresIn"].(float64) != 60 ||
		r.body["refreshExpiresIn"].(float64) < 600000 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("login: %d %v %v", r.status, r.header, r.body)
	}
	access, refresh := r.body["accessToken"].(string), r.body["refreshToken"].(string)

	hb := e.get("/api/heartbeat", access)
	if hb.status != 200 || hb.body["active"] != true || hb.body["expiresIn"].(float64) <= 0 {
		t.Fatalf("heartbeat: %d %s", hb.status, hb.raw)
	}
	me := e.get("/api/me", access)
	if me.status != 200 || me.body["sub"] != "sub-alice" {
		t.Fatalf("me: %d %s", me.status, me.raw)
	}

	r2 := e.refresh(refresh)
	if r2.status != 200 || r2.body["refreshToken"] == refresh || r2.body["accessToken"] == access {
		t.Fatalf("refresh: %d %s", r2.status, r2.raw)
	}
	// A normal rotation does not revoke the access token already issued.
	if e.get("/api/me", access).status != 200 {
		t.Fatal("rotation revoked the previous access token")
	}

	e.clock.Advance(61 * time.Second)
	exp := e.get("/api/heartbeat", access)
	if exp.status != 401 || !strings.Contains(exp.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("expired heartbeat: %d %v", exp.status, exp.header)
	}

	newRefresh := r2.body["refreshToken"].(string)
	newAccess := e.refresh(newRefresh).body["accessToken"].(string)
	if res := e.postJSON("/api/auth/logout", nil, "Authorization", "Bearer "+newAccess); res.status != 204 {
		t.Fatalf("logout with bearer: %d %s", res.status, res.raw)
	}
	// Revocation is seen at once by session-checked endpoints.
	if hb := e.get("/api/heartbeat", newAccess); hb.status != 401 || hb.body["error_description"] != "the session has ended" {
		t.Fatalf("heartbeat after logout: %d %s", hb.status, hb.raw)
	}
	expectError(t, e.refresh(newRefresh), 401, "invalid_grant")
	// Logout is idempotent.
	if res := e.postJSON("/api/auth/logout", map[string]string{"refreshToken": newRefresh}); res.status != 204 {
		t.Fatalf("second logout: %d", res.status)
	}
}

func TestRefreshErrorsNameTheReason(t *testing.T) {
	e := newEnv(t)
	_, rt := e.login()
	first := e.refresh(rt)
	second := e.refresh(first.body["refreshToken"].(string))
	if second.status != 200 {
		t.Fatal(second.raw)
	}
	r := e.refresh(rt) // inside grace, successor consumed: the family is revoked
	if r.status != 401 || r.body["error"] != "invalid_grant" || r.body["error_description"] != "superseded" {
		t.Fatalf("superseded: %d %s", r.status, r.raw)
	}
	if r := e.refresh(second.body["refreshToken"].(string)); r.body["error_description"] != "revoked" {
		t.Fatalf("after superseded: %d %s", r.status, r.raw)
	}
	_, rt = e.login()
	first = e.refresh(rt)
	e.clock.Advance(11 * time.Second)
	r = e.refresh(rt)
	if r.status != 401 || r.body["error_description"] != "reused" {
		t.Fatalf("reused: %d %s", r.status, r.raw)
	}
	if r := e.refresh(first.body["refreshToken"].(string)); r.body["error_description"] != "revoked" {
		t.Fatalf("after reuse: %d %s", r.status, r.raw)
	}
	if r := e.refresh("never-issued"); r.body["error_description"] != "unknown" {
		t.Fatalf("unknown: %d %s", r.status, r.raw)
	}
	if got := e.metric(`silentrefresh_refresh_total{outcome="reused"}`); got != "1" {
		t.Fatalf("reused metric = %q, want 1", got)
	}
	if got := e.metric(`silentrefresh_refresh_total{outcome="rotated"}`); got != "3" {
		t.Fatalf("rotated metric = %q, want 3", got)
	}
}

// TestConcurrentSameTokenRefresh: 64 callers present one refresh token at
// once (two tabs, a retry storm): one successor for all, session alive.
func TestConcurrentSameTokenRefresh(t *testing.T) {
	e := newEnv(t)
	_, rt := e.login()
	const n = 64
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		got   = make([]response, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			b, _ := json.Marshal(map[string]string{"refreshToken": rt})
			res, err := http.Post(e.http.URL+"/api/auth/refresh", "application/json", bytes.NewReader(b))
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			got[i].status = res.StatusCode
			json.NewDecoder(res.Body).Decode(&got[i].body)
		})
	}
	close(start)
	wg.Wait()
	successor := got[0].body["refreshToken"]
	for i, r := range got {
		if r.status != 200 || r.body["refreshToken"] != successor {
			t.Fatalf("caller %d: %d %v; want 200 with the one successor", i, r.status, r.body)
		}
	}
	if e.metric(`silentrefresh_refresh_total{outcome="rotated"}`) != "1" ||
		e.metric(`silentrefresh_refresh_total{outcome="grace_replay"}`) != "63" {
		t.Fatalf("rotated %s, replayed %s; want 1 and 63",
			e.metric(`silentrefresh_refresh_total{outcome="rotated"}`), e.metric(`silentrefresh_refresh_total{outcome="grace_replay"}`))
	}
	next := e.refresh(successor.(string))
	if next.status != 200 || e.get("/api/heartbeat", next.body["accessToken"].(string)).status != 200 {
		t.Fatalf("session not alive after the storm: %d %s", next.status, next.raw)
	}
}

// TestLostResponseRetry: the answer to a refresh is lost on the network; the
// client retries with the same token and gets the same successor.
func TestLostResponseRetry(t *testing.T) {
	e := newEnv(t)
	_, rt := e.login()
	lost := e.refresh(rt) // the server committed; the client never saw this
	e.clock.Advance(3 * time.Second)
	retry := e.refresh(rt)
	if retry.status != 200 || retry.body["refreshToken"] != lost.body["refreshToken"] {
		t.Fatalf("retry: %d %s", retry.status, retry.raw)
	}
	if r := e.refresh(retry.body["refreshToken"].(string)); r.status != 200 {
		t.Fatalf("chain broken after the retry: %d %s", r.status, r.raw)
	}
}

func TestBadInputIsA4xxAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	access, rt := e.login()
	big := `{"username":"` + strings.Repeat("a", 1<<20) + `"}`
	cases := []struct {
		name, method, path, ctype, body string
		header                          []string
		status                          int
		code                            string
	}{
		{"login body over 1 MiB", "POST", "/api/auth/login", "application/json", big, nil, 413, "invalid_request"},
		{"refresh body over 1 MiB", "POST", "/api/auth/refresh", "application/json", big, nil, 413, "invalid_request"},
		{"token body over 1 MiB", "POST", "/oauth2/token", "application/x-www-form-urlencoded", "grant_type=password&username=" + strings.Repeat("a", 1<<20), nil, 413, "invalid_request"},
		{"malformed JSON", "POST", "/api/auth/login", "application/json", `{"username":`, nil, 400, "invalid_request"},
		{"not JSON", "POST", "/api/auth/refresh", "application/json", `refreshToken=x`, nil, 400, "invalid_request"},
		{"empty body", "POST", "/api/auth/refresh", "application/json", ``, nil, 400, "invalid_request"},
		{"array body", "POST", "/api/auth/refresh", "application/json", `[1]`, nil, 400, "invalid_request"},
		{"two objects", "POST", "/api/auth/refresh", "application/json", `{} {}`, nil, 400, "invalid_request"},
		{"wrong type", "POST", "/api/auth/refresh", "application/json", `{"refreshToken":42}`, nil, 400, "invalid_request"},
		{"wrong type password", "POST", "/api/auth/login", "application/json", `{"username":"alice","password":true}`, nil, 400, "invalid_request"},
		{"no refresh token to present", "POST", "/api/auth/refresh", "application/json", `{}`, nil, 401, "invalid_grant"},
		{"missing password", "POST", "/api/auth/login", "application/json", `{"username":"alice"}`, nil, 400, "invalid_request"},
		{"missing username", "POST", "/api/auth/login", "application/json", `{"password":"x"}`, nil, 400, "invalid_request"},
		{"unknown grant", "POST", "/oauth2/token", "application/x-www-form-urlencoded", "grant_type=client_credentials", nil, 400, "unsupported_grant_type"},
		{"no grant", "POST", "/oauth2/token", "application/x-www-form-urlencoded", "username=alice", nil, 400, "invalid_request"},
		{"token as JSON", "POST", "/oauth2/token", "application/json", `{"grant_type":"password"}`, nil, 400, "invalid_request"},
		{"duplicate parameter", "POST", "/oauth2/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=a&refresh_token=b", nil, 400, "invalid_request"},
		{"refresh grant without token", "POST", "/oauth2/token", "application/x-www-form-urlencoded", "grant_type=refresh_token", nil, 400, "invalid_request"},
		{"client secret", "POST", "/oauth2/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=x&client_id=a&client_secret=b", nil, 401, "invalid_client"},
		{"revoke without token", "POST", "/oauth2/revoke", "application/x-www-form-urlencoded", "token_type_hint=refresh_token", nil, 400, "invalid_request"},
		{"no bearer", "GET", "/api/me", "", "", nil, 401, "invalid_token"},
		{"basic not bearer", "GET", "/api/heartbeat", "", "", []string{"Authorization", "Basic YTpi"}, 401, "invalid_token"},
		{"empty bearer", "GET", "/api/heartbeat", "", "", []string{"Authorization", "Bearer "}, 401, "invalid_token"},
		{"garbage bearer", "GET", "/api/heartbeat", "", "", []string{"Authorization", "Bearer a.b.c"}, 401, "invalid_token"},
		{"refresh token as bearer", "GET", "/api/heartbeat", "", "", []string{"Authorization", "Bearer " + rt}, 401, "invalid_token"},
		{"bearer with bad chars", "GET", "/api/heartbeat", "", "", []string{"Authorization", "Bearer a\"b"}, 401, "invalid_token"},
		{"wrong method", "GET", "/api/auth/refresh", "", "", nil, 405, "method_not_allowed"},
		{"unknown path", "GET", "/api/nope", "", "", nil, 404, "not_found"},
		{"username too long", "POST", "/api/auth/login", "application/json", `{"username":"` + strings.Repeat("a", 100) + `","password":"x"}`, nil, 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.ctype, strings.NewReader(tc.body), tc.header...)
			expectError(t, r, tc.status, tc.code)
			if r.body["error_description"] == nil && tc.name != "no bearer" {
				t.Errorf("no error_description in %s", r.raw)
			}
			if tc.status == 401 && tc.code == "invalid_token" && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`) {
				t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	// Nothing above changed stored state: the session and its token work.
	if e.get("/api/me", access).status != 200 {
		t.Fatal("session damaged by bad input")
	}
	if r := e.refresh(rt); r.status != 200 || r.body["refreshToken"] == nil {
		t.Fatalf("refresh token damaged by bad input: %d %s", r.status, r.raw)
	}
}

func TestWrongPasswordAndUnknownUserLookAlike(t *testing.T) {
	e := newEnv(t)
	wrong := e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": "nope"})
	unknown := e.postJSON("/api/auth/login", map[string]string{"username": "mallory", "password": "nope"})
	if wrong.status != 401 || unknown.status != 401 || !bytes.Equal(wrong.raw, unknown.raw) {
		t.Fatalf("wrong password %d %s; unknown user %d %s", wrong.status, wrong.raw, unknown.status, unknown.raw)
	}
	if wrong.body["error"] != "invalid_credentials" {
		t.Fatal(wrong.raw)
	}
}

func TestFailedLoginsAreRateLimited(t *testing.T) {
	e := newEnv(t, func(c *server.Config) {
		c.LoginLimit = server.LoginLimit{Burst: 3, Every: time.Minute}
		c.LoginLimitPerClient = c.LoginLimit
	})
	for i := range 3 {
		if r := e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": "nope"}); r.status != 401 {
			t.Fatalf("attempt %d: %d", i, r.status)
		}
	}
	r := e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": testPassword})
	if r.status != 429 || r.header.Get("Retry-After") == "" || r.body["error"] != "rate_limited" {
		t.Fatalf("fourth attempt: %d %v %s", r.status, r.header, r.raw)
	}
	e.clock.Advance(time.Minute)
	if r := e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": testPassword}); r.status != 200 {
		t.Fatalf("after the wait: %d %s", r.status, r.raw)
	}
}

func TestOAuth2TokenEndpoint(t *testing.T) {
	e := newEnv(t)
	r := e.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword}, "client_id": {"cli"}})
	if r.status != 200 || r.body["token_type"] != "Bearer" || r.body["expires_in"].(float64) != 60 ||
		r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
		t.Fatalf("password grant: %d %v %s", r.status, r.header, r.raw)
	}
	me := e.get("/api/me", r.body["access_token"].(string))
	if me.body["clientId"] != "cli" {
		t.Fatalf("client_id not recorded in the token: %s", me.raw)
	}
	rt := r.body["refresh_token"].(string)
	expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"other"}}), 400, "invalid_grant")
	r2 := e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"cli"}})
	if r2.status != 200 || r2.body["refresh_token"] == rt {
		t.Fatalf("refresh grant: %d %s", r2.status, r2.raw)
	}
	expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {"bad"}}), 400, "invalid_grant")
	expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}}), 400, "invalid_grant")
}

func TestOAuth2Revoke(t *testing.T) {
	e := newEnv(t)
	if r := e.postForm("/oauth2/revoke", url.Values{"token": {"never-issued"}}); r.status != 200 {
		t.Fatalf("unknown token: %d %s", r.status, r.raw)
	}
	access, rt := e.login()
	if r := e.postForm("/oauth2/revoke", url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}}); r.status != 200 {
		t.Fatalf("revoke refresh: %d", r.status)
	}
	if e.get("/api/heartbeat", access).status != 401 {
		t.Fatal("revoking the refresh token left the session alive")
	}
	access2, rt2 := e.login()
	// A wrong hint is only a hint.
	if r := e.postForm("/oauth2/revoke", url.Values{"token": {access2}, "token_type_hint": {"refresh_token"}}); r.status != 200 {
		t.Fatalf("revoke access: %d", r.status)
	}
	expectError(t, e.refresh(rt2), 401, "invalid_grant")
}

func TestMetadataAndJWKSLetOtherServicesVerify(t *testing.T) {
	e := newEnv(t)
	md := e.get("/.well-known/oauth-authorization-server", "")
	if md.body["issuer"] != e.http.URL || md.body["token_endpoint"] != e.http.URL+"/oauth2/token" ||
		md.body["jwks_uri"] != e.http.URL+"/.well-known/jwks.json" {
		t.Fatalf("metadata: %s", md.raw)
	}
	// Another service: bearer.Require over the published JWKS.
	ctx := context.Background()
	keys := token.NewRemoteKeySet(ctx, md.body["jwks_uri"].(string), http.DefaultClient)
	v, err := token.NewVerifier(keys, token.VerifierConfig{Issuer: e.http.URL, Audience: e.http.URL, Leeway: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(bearer.Require(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := bearer.ClaimsFrom(r.Context())
		io.WriteString(w, c.Subject)
	})))
	defer api.Close()
	access, _ := e.login()
	req, _ := http.NewRequest("GET", api.URL, nil)
	req.Header.Set("Authorization", "Bearer "+access)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "sub-alice" {
		t.Fatalf("resource server: %d %q", res.StatusCode, b)
	}
}

func TestRotateSigningKeyDropOldInvalidatesAccessTokens(t *testing.T) {
	e := newEnv(t)
	access, rt := e.login()
	if _, err := e.srv.RotateSigningKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.ForceRetireSigningKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := e.get("/api/me", access); r.status != 401 {
		t.Fatalf("old token after the key was dropped: %d", r.status)
	}
	r := e.refresh(rt)
	if r.status != 200 || e.get("/api/me", r.body["accessToken"].(string)).status != 200 {
		t.Fatalf("new token after rotation: %d %s", r.status, r.raw)
	}
}

func TestCookieMode(t *testing.T) {
	e := newEnv(t)
	origin := e.http.URL
	login := e.postJSON("/api/auth/login", map[string]any{"username": testUser, "password": testPassword, "cookie": true}, "Origin", origin)
	if login.status != 200 || login.body["refreshToken"] != nil {
		t.Fatalf("cookie login: %d %s", login.status, login.raw)
	}
	setCookie := login.header.Get("Set-Cookie")
	for _, want := range []string{"__Host-srt=", "Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(setCookie, want) {
			t.Fatalf("Set-Cookie %q lacks %q", setCookie, want)
		}
	}
	cookie := strings.SplitN(setCookie, ";", 2)[0]

	expectError(t, e.postJSON("/api/auth/refresh", map[string]any{}, "Cookie", cookie), 403, "invalid_origin")
	expectError(t, e.postJSON("/api/auth/refresh", map[string]any{}, "Cookie", cookie, "Origin", "https://evil.example"), 403, "invalid_origin")
	expectError(t, e.postJSON("/api/auth/login", map[string]any{"username": testUser, "password": testPassword, "cookie": true}, "Origin", "https://evil.example"), 403, "invalid_origin")

	r := e.postJSON("/api/auth/refresh", map[string]any{}, "Cookie", cookie, "Origin", origin)
	if r.status != 200 || r.body["refreshToken"] != nil || !strings.Contains(r.header.Get("Set-Cookie"), "__Host-srt=") {
		t.Fatalf("cookie refresh: %d %v %s", r.status, r.header, r.raw)
	}
	next := strings.SplitN(r.header.Get("Set-Cookie"), ";", 2)[0]
	if next == cookie {
		t.Fatal("cookie not rotated")
	}
	out := e.postJSON("/api/auth/logout", map[string]any{}, "Cookie", next, "Origin", origin)
	if out.status != 204 || !strings.Contains(out.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("cookie logout: %d %v", out.status, out.header)
	}
	expectError(t, e.postJSON("/api/auth/refresh", map[string]any{}, "Cookie", next, "Origin", origin), 401, "invalid_grant")
}

func TestHealthAndMetrics(t *testing.T) {
	e := newEnv(t)
	if r := e.get("/healthz", ""); r.status != 200 || r.body["status"] != "ok" {
		t.Fatalf("healthz: %d %s", r.status, r.raw)
	}
	e.store.Close()
	if r := e.get("/healthz", ""); r.status != 503 || r.body["status"] != "unavailable" {
		t.Fatalf("healthz with the database closed: %d %s", r.status, r.raw)
	}
}

// TestDatabaseHoldsNoRefreshToken greps the SQLite files for every refresh
// token handed out.
func TestDatabaseHoldsNoRefreshToken(t *testing.T) {
	e := newEnv(t)
	var issued []string
	for range 3 {
		_, rt := e.login()
		issued = append(issued, rt)
		for range 3 {
			rt = e.refresh(rt).body["refreshToken"].(string)
			issued = append(issued, rt)
		}
	}
	var files []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(e.dbPath + suffix)
		if err == nil {
			files = append(files, b...)
		}
	}
	if len(files) == 0 {
		t.Fatal("no database file read")
	}
	for _, rt := range issued {
		if bytes.Contains(files, []byte(rt)) {
			t.Fatalf("refresh token %s… stored in plaintext", rt[:6])
		}
		// Nor its secret part in binary (the part behind the 8-byte
		// issue-time prefix), nor any 16 bytes of it.
		raw, err := base64.RawURLEncoding.DecodeString(rt)
		if err != nil || len(raw) != 40 {
			t.Fatalf("refresh token %s… is not 40 bytes of base64url: %v", rt[:6], err)
		}
		for i := 8; i+16 <= len(raw); i += 8 {
			if bytes.Contains(files, raw[i:i+16]) {
				t.Fatalf("refresh token %s…: secret bytes %d..%d stored", rt[:6], i, i+16)
			}
		}
	}
}

func TestCORSForAllowedOrigins(t *testing.T) {
	const app = "https://app.example.test"
	e := newEnv(t, func(c *server.Config) { c.AllowedOrigins = []string{app} })
	pre := e.do("OPTIONS", "/api/auth/refresh", "", nil,
		"Origin", app, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
	if pre.status != 204 || pre.header.Get("Access-Control-Allow-Origin") != app ||
		pre.header.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Fatalf("preflight: %d %v", pre.status, pre.header)
	}
	access, _ := e.login()
	me := e.do("GET", "/api/me", "", nil, "Origin", app, "Authorization", "Bearer "+access)
	if me.status != 200 || me.header.Get("Access-Control-Allow-Origin") != app {
		t.Fatalf("allowed origin: %d %v", me.status, me.header)
	}
	other := e.do("GET", "/api/me", "", nil, "Origin", "https://evil.example", "Authorization", "Bearer "+access)
	if other.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS granted to an origin not allowed: %v", other.header)
	}
	if pre := e.do("OPTIONS", "/api/me", "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "GET"); pre.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight granted to an origin not allowed: %d %v", pre.status, pre.header)
	}
}

func TestContractDetails(t *testing.T) {
	e := newEnv(t)
	// Over 1 MiB is 413 whatever the body holds.
	for _, path := range []string{"/api/auth/login", "/api/auth/refresh"} {
		expectError(t, e.do("POST", path, "application/json", strings.NewReader(strings.Repeat("a", 2<<20))), 413, "invalid_request")
	}
	// RFC 9068 requires client_id, also for logins that named no client.
	access, _ := e.login()
	if me := e.get("/api/me", access); me.body["clientId"] != "public" {
		t.Fatalf("client_id claim of a JSON API login: %s", me.raw)
	}
	// RFC 8414: no null values, no empty arrays.
	md := e.get("/.well-known/oauth-authorization-server", "")
	for k, v := range md.body {
		if arr, ok := v.([]any); v == nil || ok && len(arr) == 0 {
			t.Errorf("metadata %q is %v", k, v)
		}
	}
	// Cookie mode: a refresh with the cookie and no body at all.
	login := e.postJSON("/api/auth/login", map[string]any{"username": testUser, "password": testPassword, "cookie": true}, "Origin", e.http.URL)
	cookie := strings.SplitN(login.header.Get("Set-Cookie"), ";", 2)[0]
	if r := e.do("POST", "/api/auth/refresh", "", nil, "Cookie", cookie, "Origin", e.http.URL); r.status != 200 {
		t.Fatalf("bodiless cookie refresh: %d %s", r.status, r.raw)
	}
	// RFC 6749 section 5.2: a 401 invalid_client carries WWW-Authenticate.
	r := e.postForm("/oauth2/revoke", url.Values{"token": {"x"}}, "Authorization", "Basic "+basic("app", "secret"))
	if r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("revoke with a client secret: %d %v", r.status, r.header)
	}
}

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}
