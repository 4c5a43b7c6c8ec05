package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/user"
)

const adminToken = "s3cret-admin-token-of-some-length"

var cheapParams = user.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

// adminEnv is env with the admin listener on a server of its own.
type adminEnv struct {
	*env
	admin *httptest.Server
}

func newAdminEnv(t testing.TB, mutate ...func(*server.Config)) *adminEnv {
	t.Helper()
	e := newEnv(t, append([]func(*server.Config){func(c *server.Config) {
		c.AdminToken = adminToken
		c.PasswordParams = cheapParams
	}}, mutate...)...)
	hs := httptest.NewServer(e.srv.AdminHandler())
	t.Cleanup(hs.Close)
	return &adminEnv{env: e, admin: hs}
}

// call sends a request to the admin listener with the given Authorization
// header ("" for none) and returns the answer.
func (e *adminEnv) call(method, path, auth, body string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.admin.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	if len(raw) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: %d with a body that is not a JSON object: %q", method, path, res.StatusCode, raw)
		}
	}
	return r
}

// adm calls the admin API with the right token.
func (e *adminEnv) adm(method, path, body string) response {
	e.t.Helper()
	return e.call(method, path, "Bearer "+adminToken, body)
}

func TestAdminAuthentication(t *testing.T) {
	e := newAdminEnv(t)
	missing := e.call("GET", "/admin/users", "", "")
	expectError(t, missing, 401, "unauthorized")
	if !strings.HasPrefix(missing.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 without WWW-Authenticate: %v", missing.header)
	}
	// Every wrong credential gets the same answer, which names no part.
	var first string
	for _, auth := range []string{
		"Bearer wrong", "Bearer " + adminToken + "x", "Bearer " + adminToken[:len(adminToken)-1],
		"Basic " + adminToken, "Bearer", "bearer  ", strings.ToUpper("Bearer " + adminToken), adminToken,
	} {
		r := e.call("GET", "/admin/users", auth, "")
		expectError(t, r, 401, "unauthorized")
		if first == "" {
			first = string(r.raw)
		} else if string(r.raw) != first {
			t.Errorf("Authorization %q answered %s, another wrong one %s", auth, r.raw, first)
		}
	}
	if r := e.adm("GET", "/admin/users", ""); r.status != 200 {
		t.Fatalf("right token: %d %s", r.status, r.raw)
	}
	// The scheme is case-insensitive (RFC 7235).
	if r := e.call("GET", "/admin/users", "bearer "+adminToken, ""); r.status != 200 {
		t.Errorf("lower-case scheme: %d %s", r.status, r.raw)
	}
	// /metrics moved to the admin listener, behind the token.
	if r := e.call("GET", "/metrics", "", ""); r.status != 401 {
		t.Errorf("admin /metrics without token: %d", r.status)
	}
	m := e.adm("GET", "/metrics", "")
	if m.status != 200 || !bytes.Contains(m.raw, []byte(`silentrefresh_admin_auth_total{result="refused"} 8`)) {
		t.Errorf("admin /metrics: %d, refused count missing:\n%.2000s", m.status, m.raw)
	}
	if r := e.get("/metrics", ""); r.status != 404 {
		t.Errorf("public /metrics with an admin listener: %d, want 404", r.status)
	}
	// The admin API is not on the public listener.
	if r := e.do("GET", "/admin/users", "", nil, "Authorization", "Bearer "+adminToken); r.status != 404 {
		t.Errorf("public /admin/users: %d, want 404", r.status)
	}
}

func TestAdminTokenRequirements(t *testing.T) {
	e := newEnv(t)
	if e.srv.AdminHandler() != nil {
		t.Error("AdminHandler without an AdminToken is not nil")
	}
	if e.metric("silentrefresh_logout_total") == "" {
		t.Error("no public /metrics without an admin listener")
	}
	_, err := server.New(t.Context(), server.Config{Store: e.store, AdminToken: "short"})
	if err == nil || !strings.Contains(err.Error(), "at least") {
		t.Errorf("New with a 5-byte admin token: %v", err)
	}
}

func TestAdminUsers(t *testing.T) {
	e := newAdminEnv(t)
	access, refresh := e.login()
	_, refresh2 := e.login()

	r := e.adm("POST", "/admin/users", `{"username":"bob","password":"bob pw"}`)
	if r.status != 201 || r.body["user"].(map[string]any)["username"] != "bob" {
		t.Fatalf("add bob: %d %s", r.status, r.raw)
	}
	if r := e.postJSON("/api/auth/login", map[string]string{"username": "bob", "password": "bob pw"}); r.status != 200 {
		t.Fatalf("bob's login: %d %s", r.status, r.raw)
	}
	expectError(t, e.adm("POST", "/admin/users", `{"username":"bob","password":"other"}`), 409, "conflict")

	r = e.adm("GET", "/admin/users", "")
	users := r.body["users"].([]any)
	if r.status != 200 || len(users) != 2 || users[0].(map[string]any)["username"] != testUser {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	if bytes.Contains(r.raw, []byte("argon2")) {
		t.Error("the user list shows password hashes")
	}
	if r := e.adm("GET", "/admin/users/alice", ""); r.status != 200 || r.body["user"].(map[string]any)["id"] != "sub-alice" {
		t.Errorf("get alice: %d %s", r.status, r.raw)
	}

	r = e.adm("GET", "/admin/users/alice/sessions", "")
	if r.status != 200 || len(r.body["sessions"].([]any)) != 2 {
		t.Fatalf("alice's sessions: %d %s", r.status, r.raw)
	}

	r = e.adm("POST", "/admin/users/alice/disable", "")
	if r.status != 200 || r.body["revokedSessions"] != 2.0 || r.body["changed"] != true {
		t.Fatalf("disable: %d %s", r.status, r.raw)
	}
	expectError(t, e.refresh(refresh), 401, "invalid_grant")
	if r := e.refresh(refresh2); r.body["error_description"] != "revoked" {
		t.Errorf("refresh after disable: %s, want revoked", r.raw)
	}
	if r := e.get("/api/me", access); r.status != 401 {
		t.Errorf("/api/me after disable: %d", r.status)
	}
	expectError(t, e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": testPassword}), 401, "invalid_credentials")
	if r := e.adm("GET", "/admin/users/alice", ""); r.body["user"].(map[string]any)["disabled"] != true {
		t.Errorf("alice after disable: %s", r.raw)
	}

	if r := e.adm("POST", "/admin/users/alice/enable", "{}"); r.status != 200 || r.body["changed"] != true {
		t.Fatalf("enable: %d %s", r.status, r.raw)
	}
	_, refresh3 := e.login()
	r = e.adm("POST", "/admin/users/alice/password", `{"password":"a new one"}`)
	if r.status != 200 || r.body["revokedSessions"] != 1.0 {
		t.Fatalf("password: %d %s", r.status, r.raw)
	}
	expectError(t, e.refresh(refresh3), 401, "invalid_grant")
	expectError(t, e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": testPassword}), 401, "invalid_credentials")
	r = e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": "a new one"})
	if r.status != 200 {
		t.Fatalf("login with the new password: %d %s", r.status, r.raw)
	}
	refresh4 := r.body["refreshToken"].(string)

	r = e.adm("DELETE", "/admin/users/alice/sessions", "")
	if r.status != 200 || r.body["revokedSessions"] != 1.0 {
		t.Fatalf("revoke alice's sessions: %d %s", r.status, r.raw)
	}
	expectError(t, e.refresh(refresh4), 401, "invalid_grant")

	r = e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": "a new one"})
	refresh5 := r.body["refreshToken"].(string)
	if r := e.adm("DELETE", "/admin/users/alice", ""); r.status != 200 || r.body["revokedSessions"] != 1.0 {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	expectError(t, e.refresh(refresh5), 401, "invalid_grant")
	expectError(t, e.adm("GET", "/admin/users/alice", ""), 404, "not_found")
	expectError(t, e.adm("DELETE", "/admin/users/alice", ""), 404, "not_found")
}

func TestAdminSessions(t *testing.T) {
	e := newAdminEnv(t)
	access, refresh := e.login()
	sid := e.get("/api/me", access).body["sid"].(string)
	r := e.adm("GET", "/admin/sessions/"+sid, "")
	s := r.body["session"].(map[string]any)
	if r.status != 200 || s["sub"] != "sub-alice" || s["revoked"] != false {
		t.Fatalf("get session: %d %s", r.status, r.raw)
	}
	r = e.adm("DELETE", "/admin/sessions/"+sid, "")
	if r.status != 200 || r.body["changed"] != true {
		t.Fatalf("revoke session: %d %s", r.status, r.raw)
	}
	expectError(t, e.refresh(refresh), 401, "invalid_grant")
	if r := e.get("/api/me", access); r.status != 401 {
		t.Errorf("/api/me after the admin revoked the session: %d", r.status)
	}
	r = e.adm("GET", "/admin/sessions/"+sid, "")
	if s := r.body["session"].(map[string]any); s["revoked"] != true || s["revokeReason"] != "admin" {
		t.Errorf("revoked session: %s", r.raw)
	}
	if r := e.adm("DELETE", "/admin/sessions/"+sid, ""); r.status != 200 || r.body["changed"] != false {
		t.Errorf("revoking again: %d %s", r.status, r.raw)
	}
}

// adminState is what the bad-input test compares before and after.
func (e *adminEnv) adminState() string {
	e.t.Helper()
	var b strings.Builder
	us, err := e.store.Users(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, u := range us {
		ss, err := e.store.Sessions(e.t.Context(), u.ID, time.Now())
		if err != nil {
			e.t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s %s %v %d;", u.ID, u.Username, u.PasswordHash, u.DisabledAt, len(ss))
	}
	keys, err := e.store.SigningKeys(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, k := range keys {
		fmt.Fprintf(&b, "key %s;", k.ID)
	}
	return b.String()
}

func TestAdminBadInput(t *testing.T) {
	e := newAdminEnv(t)
	e.login()
	long := strings.Repeat("p", 2000)
	tests := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/admin/users", ``, 400, "invalid_request"},
		{"POST", "/admin/users", `{`, 400, "invalid_request"},
		{"POST", "/admin/users", `[]`, 400, "invalid_request"},
		{"POST", "/admin/users", `{"username":"carol"}`, 400, "invalid_request"},
		{"POST", "/admin/users", `{"password":"x"}`, 400, "invalid_request"},
		{"POST", "/admin/users", `{"username":"a b","password":"x"}`, 400, "invalid_request"},
		{"POST", "/admin/users", `{"username":"carol","password":"` + long + `"}`, 400, "invalid_request"},
		{"POST", "/admin/users", `{"username":"carol","pasword":"x"}`, 400, "invalid_request"},
		{"POST", "/admin/users", `{"username":"carol","password":"x"} {}`, 400, "invalid_request"},
		{"POST", "/admin/users", `{"username":7,"password":"x"}`, 400, "invalid_request"},
		{"POST", "/admin/users", `{"username":"alice","password":"x"}`, 409, "conflict"},
		{"PUT", "/admin/users", `{}`, 405, "method_not_allowed"},
		{"GET", "/admin/users/nobody", ``, 404, "not_found"},
		{"GET", "/admin/users/a%20b", ``, 400, "invalid_request"},
		{"GET", "/admin/users/" + strings.Repeat("x", 65), ``, 400, "invalid_request"},
		{"DELETE", "/admin/users/nobody", ``, 404, "not_found"},
		{"POST", "/admin/users/nobody/disable", ``, 404, "not_found"},
		{"POST", "/admin/users/alice/disable", `{"now":true}`, 400, "invalid_request"},
		{"POST", "/admin/users/alice/disable", `{`, 400, "invalid_request"},
		{"GET", "/admin/users/alice/disable", ``, 405, "method_not_allowed"},
		{"POST", "/admin/users/nobody/enable", ``, 404, "not_found"},
		{"POST", "/admin/users/alice/password", ``, 400, "invalid_request"},
		{"POST", "/admin/users/alice/password", `{"password":""}`, 400, "invalid_request"},
		{"POST", "/admin/users/alice/password", `{"password":"` + long + `"}`, 400, "invalid_request"},
		{"POST", "/admin/users/alice/password", `{"password":null}`, 400, "invalid_request"},
		{"POST", "/admin/users/nobody/password", `{"password":"x"}`, 404, "not_found"},
		{"GET", "/admin/users/nobody/sessions", ``, 404, "not_found"},
		{"DELETE", "/admin/users/nobody/sessions", ``, 404, "not_found"},
		{"GET", "/admin/sessions/short", ``, 400, "invalid_request"},
		{"DELETE", "/admin/sessions/short", ``, 400, "invalid_request"},
		{"DELETE", "/admin/sessions/AAAAAAAAAAAAAAAAAAAAA%21", ``, 400, "invalid_request"},
		{"DELETE", "/admin/sessions/AAAAAAAAAAAAAAAAAAAAAB", ``, 400, "invalid_request"}, // non-zero padding bits
		{"GET", "/admin/sessions/AAAAAAAAAAAAAAAAAAAAAA", ``, 404, "not_found"},
		{"DELETE", "/admin/sessions/AAAAAAAAAAAAAAAAAAAAAA", ``, 404, "not_found"},
		{"GET", "/admin/sessions", ``, 404, "not_found"},
		{"GET", "/admin/nothing", ``, 404, "not_found"},
		{"POST", "/admin/users", strings.Repeat(" ", 2<<20), 413, "invalid_request"},
		{"POST", "/admin/keys/rotate", `{"now":true}`, 400, "invalid_request"},
		{"GET", "/admin/keys/rotate", ``, 405, "method_not_allowed"},
		{"POST", "/admin/keys/retire", `{"keys":["x"]}`, 400, "invalid_request"},
		{"POST", "/admin/keys/retire", `{"force":"yes"}`, 400, "invalid_request"},
		{"POST", "/admin/keys/retire", `{"force":true,"keys":[""]}`, 400, "invalid_request"},
		{"POST", "/admin/keys/retire", `{"force":true,"keys":["no-such-key"]}`, 404, "not_found"},
		{"POST", "/admin/keys/retire", `{"force":true,"kees":[]}`, 400, "invalid_request"},
		{"DELETE", "/admin/keys", ``, 405, "method_not_allowed"},
	}
	before := e.adminState()
	for _, tc := range tests {
		r := e.adm(tc.method, tc.path, tc.body)
		if r.status != tc.status || r.body["error"] != tc.code || r.body["error_description"] == nil && tc.status != 405 {
			t.Errorf("%s %s %.40q: %d %s, want %d %s", tc.method, tc.path, tc.body, r.status, r.raw, tc.status, tc.code)
		}
		if after := e.adminState(); after != before {
			t.Fatalf("%s %s %.40q changed the stored state:\n%s\nwas\n%s", tc.method, tc.path, tc.body, after, before)
		}
	}
}

// FuzzAdminEndpoints sends arbitrary bodies and path segments to the admin
// API: the answer is always JSON and never a 5xx.
func FuzzAdminEndpoints(f *testing.F) {
	for _, s := range []string{`{"username":"bob","password":"x"}`, `{"password":"y"}`, `{`, `[]`, `null`, `{}`,
		`{"username":null}`, `{"password":1e999}`, "\xff", `{"a":{"b":[[[[]]]]}}`, `{"username":"a","password":"b","x":1}`} {
		f.Add(s, "alice", uint8(0))
	}
	e := newAdminEnv(f)
	routes := []struct{ method, path string }{
		{"POST", "/admin/users"}, {"GET", "/admin/users/%s"}, {"POST", "/admin/users/%s/password"},
		{"POST", "/admin/users/%s/enable"}, {"GET", "/admin/users/%s/sessions"}, {"GET", "/admin/sessions/%s"},
		{"DELETE", "/admin/sessions/%s"}, {"POST", "/admin/keys/retire"},
	}
	h := e.srv.AdminHandler()
	f.Fuzz(func(t *testing.T, body, segment string, which uint8) {
		rt := routes[int(which)%len(routes)]
		path := rt.path
		if strings.Contains(path, "%s") {
			path = strings.Replace(path, "%s", urlSegment(segment), 1)
		}
		req := httptest.NewRequest(rt.method, "/", strings.NewReader(body))
		req.URL.RawPath, req.URL.Path = path, mustUnescape(path)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", rt.method, path, body, rec.Code, rec.Body)
		}
		if !bytes.HasPrefix(rec.Body.Bytes(), []byte("{")) || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%s %s %q: %d with a non-JSON body %q", rt.method, path, body, rec.Code, rec.Body)
		}
	})
}

// urlSegment escapes s as one path segment.
func urlSegment(s string) string { return url.PathEscape(s) }

func mustUnescape(p string) string {
	u, err := url.PathUnescape(p)
	if err != nil {
		return p
	}
	return u
}

func TestAdminKeys(t *testing.T) {
	e := newAdminEnv(t)
	access, _ := e.login()
	r := e.adm("GET", "/admin/keys", "")
	keys := r.body["keys"].([]any)
	if r.status != 200 || len(keys) != 1 || keys[0].(map[string]any)["stage"] != "signing" {
		t.Fatalf("keys: %d %s", r.status, r.raw)
	}
	first := keys[0].(map[string]any)["id"].(string)

	r = e.adm("POST", "/admin/keys/rotate", "")
	if r.status != 200 {
		t.Fatalf("rotate: %d %s", r.status, r.raw)
	}
	next := r.body["new"].(map[string]any)
	retired := r.body["retired"].([]any)
	if next["stage"] != "signing" || next["id"] == first || len(retired) != 1 || retired[0].(map[string]any)["stage"] != "retired" {
		t.Fatalf("rotate: %s", r.raw)
	}
	// This server signs with the new key at once; the old token verifies.
	_, refresh := e.login()
	r2 := e.refresh(refresh)
	if kid := jwtKID(t, r2.body["accessToken"].(string)); kid != next["id"] {
		t.Errorf("after rotate the server signs with %s, want %s", kid, next["id"])
	}
	if r := e.get("/api/me", access); r.status != 200 {
		t.Errorf("a token of the retired key: %d", r.status)
	}

	// The signing key cannot be forced out; the retired one can.
	expectError(t, e.adm("POST", "/admin/keys/retire", `{"force":true,"keys":["`+next["id"].(string)+`"]}`), 409, "conflict")
	if r := e.adm("POST", "/admin/keys/retire", "{}"); r.status != 200 || len(r.body["retired"].([]any)) != 0 {
		t.Errorf("retire right after rotate: %d %s", r.status, r.raw)
	}
	r = e.adm("POST", "/admin/keys/retire", `{"force":true}`)
	if r.status != 200 || len(r.body["retired"].([]any)) != 1 || r.body["retired"].([]any)[0].(map[string]any)["id"] != first {
		t.Fatalf("forced retire: %d %s", r.status, r.raw)
	}
	// The server's verifier forgot the key: its tokens are refused.
	if r := e.get("/api/me", access); r.status != 401 {
		t.Errorf("a token of the deleted key: %d, want 401", r.status)
	}
}

// jwtKID is the kid of a JWT's header.
func jwtKID(t *testing.T, jwt string) string {
	t.Helper()
	h, _, _ := strings.Cut(jwt, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct{ Kid string }
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

// TestAdminOddUsernames: a username may hold any printable character but
// a space, so the path takes it percent-encoded. ("." and "..", which
// HTTP paths cannot carry as a segment, are left to the CLI.)
func TestAdminOddUsernames(t *testing.T) {
	e := newAdminEnv(t)
	for _, name := range []string{"a/b", "x%y", "ü?#", "a..b", ".x"} {
		body, _ := json.Marshal(map[string]string{"username": name, "password": "pw"})
		if r := e.adm("POST", "/admin/users", string(body)); r.status != 201 {
			t.Fatalf("add %q: %d %s", name, r.status, r.raw)
		}
		r := e.adm("GET", "/admin/users/"+url.PathEscape(name), "")
		if r.status != 200 || r.body["user"].(map[string]any)["username"] != name {
			t.Errorf("get %q: %d %s", name, r.status, r.raw)
		}
		if r := e.adm("POST", "/admin/users/"+url.PathEscape(name)+"/disable", ""); r.status != 200 || r.body["changed"] != true {
			t.Errorf("disable %q: %d %s", name, r.status, r.raw)
		}
	}
}

// TestAdminGuessLimit: wrong admin tokens from one address are limited,
// even when sent all at once; while over the limit the right token is
// refused too, so that guessing learns nothing; the right token never uses
// up the limit.
func TestAdminGuessLimit(t *testing.T) {
	e := newAdminEnv(t)
	for range 20 {
		if r := e.adm("GET", "/admin/users", ""); r.status != 200 {
			t.Fatalf("right token: %d", r.status)
		}
	}
	const n = 40
	start := time.Now()
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			codes <- e.call("GET", "/admin/users", fmt.Sprintf("Bearer guess-%d", i), "").status
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	// The bucket holds 10 and refills one a second.
	most := 10 + int(time.Since(start)/time.Second) + 1
	if count[401] < 10 || count[401] > most || count[401]+count[429] != n {
		t.Errorf("%d concurrent wrong tokens: %v, want 10 (to %d) refused with 401 and the rest 429", n, count, most)
	}
	r := e.adm("GET", "/admin/users", "")
	if r.status != 429 || r.header.Get("Retry-After") == "" || r.body["error"] != "rate_limited" {
		t.Errorf("right token while over the limit: %d %v %s", r.status, r.header, r.raw)
	}
	e.clock.Advance(3 * time.Second)
	if r := e.adm("GET", "/admin/users", ""); r.status != 200 {
		t.Errorf("right token after the wait: %d %s", r.status, r.raw)
	}
}
