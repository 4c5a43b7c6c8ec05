package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/silentrefresh/silentrefresh/assertion"
	"github.com/silentrefresh/silentrefresh/server"
	"github.com/silentrefresh/silentrefresh/token"
)

// app is an application backend that signs assertions with its own key.
type app struct {
	t   testing.TB
	key ed25519.PrivateKey
	aud string
	now func() time.Time
}

func newApp(t testing.TB) (*app, assertion.Issuer) {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	set, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "OKP", "crv": "Ed25519", "kid": "app-1", "x": base64.RawURLEncoding.EncodeToString(key.Public().(ed25519.PublicKey)),
	}}})
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, set, 0o600); err != nil {
		t.Fatal(err)
	}
	iss, err := assertion.ParseIssuer("app=" + path)
	if err != nil {
		t.Fatal(err)
	}
	iss.Claims = []string{"roles", "tenant"}
	return &app{t: t, key: key}, iss
}

// sign returns an assertion for sub, with the given changes to its claims
// (a nil value deletes a claim).
func (a *app) sign(sub string, changes ...any) string {
	a.t.Helper()
	now := a.now()
	c := jwt.MapClaims{"iss": "app", "sub": sub, "aud": a.aud, "exp": now.Add(2 * time.Minute).Unix(),
		"iat": now.Unix(), "jti": rand.Text(), "roles": []any{"admin", "editor"}, "tenant": "acme", "email": "not@copied"}
	for i := 0; i+1 < len(changes); i += 2 {
		if changes[i+1] == nil {
			delete(c, changes[i].(string))
		} else {
			c[changes[i].(string)] = changes[i+1]
		}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = "app-1"
	s, err := tok.SignedString(a.key)
	if err != nil {
		a.t.Fatal(err)
	}
	return s
}

func newExchangeEnv(t *testing.T, mutate ...func(*server.Config)) (*env, *app) {
	t.Helper()
	a, iss := newApp(t)
	e := newEnv(t, append([]func(*server.Config){func(c *server.Config) { c.TrustedIssuers = []assertion.Issuer{iss} }}, mutate...)...)
	a.aud, a.now = e.http.URL, e.clock.Now
	return e, a
}

// count returns the rows of a table, read from the database file.
func (e *env) count(table string) int {
	e.t.Helper()
	db, err := sql.Open("sqlite", "file:"+e.dbPath+"?mode=ro")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) claimsOf(access string) token.Claims {
	e.t.Helper()
	c, err := e.srv.Verifier().Verify(context.Background(), access)
	if err != nil {
		e.t.Fatalf("Verify: %v", err)
	}
	return c
}

func TestJWTBearerGrant(t *testing.T) {
	e, a := newExchangeEnv(t)
	r := e.postForm("/oauth2/token", url.Values{"grant_type": {server.GrantTypeJWTBearer}, "assertion": {a.sign("user-42")}, "scope": {"read write"}})
	if r.status != 200 || r.body["token_type"] != "Bearer" || r.body["refresh_token"] == nil || r.body["scope"] != "read write" {
		t.Fatalf("jwt-bearer: %d %s", r.status, r.raw)
	}
	c := e.claimsOf(r.body["access_token"].(string))
	if c.Subject != "app|user-42" || c.Scope != "read write" ||
		!reflect.DeepEqual(c.Extra, map[string]any{"roles": []any{"admin", "editor"}, "tenant": "acme"}) {
		t.Fatalf("claims = %+v", c)
	}
	// The session refreshes like any other and keeps its claims.
	e.clock.Advance(time.Second)
	rr := e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.body["refresh_token"].(string)}, "scope": {"read"}})
	if rr.status != 200 || rr.body["scope"] != "read" {
		t.Fatalf("refresh: %d %s", rr.status, rr.raw)
	}
	if c := e.claimsOf(rr.body["access_token"].(string)); c.Subject != "app|user-42" || c.Scope != "read" || c.Extra["tenant"] != "acme" {
		t.Fatalf("claims after refresh = %+v", c)
	}
	// Widening is invalid_scope and changes nothing.
	next := rr.body["refresh_token"].(string)
	expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next}, "scope": {"read admin"}}), 400, "invalid_scope")
	if r := e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next}}); r.status != 200 || r.body["scope"] != "read write" {
		t.Fatalf("refresh after a refused widening: %d %s", r.status, r.raw)
	}

	// The JSON API, in both modes.
	j := e.postJSON("/api/auth/exchange", map[string]any{"assertion": a.sign("user-7")})
	if j.status != 200 || j.body["refreshToken"] == nil || j.body["tokenType"] != "Bearer" {
		t.Fatalf("exchange: %d %s", j.status, j.raw)
	}
	if me := e.get("/api/me", j.body["accessToken"].(string)); me.status != 200 || me.body["sub"] != "app|user-7" {
		t.Fatalf("me: %d %s", me.status, me.raw)
	}
	origin := e.http.URL
	ck := e.postJSON("/api/auth/exchange", map[string]any{"assertion": a.sign("user-8"), "cookie": true}, "Origin", origin)
	if ck.status != 200 || ck.body["refreshToken"] != nil || !strings.Contains(ck.header.Get("Set-Cookie"), "__Host-srt=") {
		t.Fatalf("cookie exchange: %d %v %s", ck.status, ck.header, ck.raw)
	}
	cookie := strings.SplitN(ck.header.Get("Set-Cookie"), ";", 2)[0]
	if r := e.postJSON("/api/auth/refresh", map[string]any{}, "Cookie", cookie, "Origin", origin); r.status != 200 {
		t.Fatalf("cookie refresh of an exchanged session: %d %s", r.status, r.raw)
	}
	expectError(t, e.postJSON("/api/auth/exchange", map[string]any{"assertion": a.sign("user-9"), "cookie": true}, "Origin", "https://evil.example"), 403, "invalid_origin")

	meta := e.get("/.well-known/oauth-authorization-server", "")
	if !strings.Contains(string(meta.raw), server.GrantTypeJWTBearer) {
		t.Errorf("metadata does not list the jwt-bearer grant: %s", meta.raw)
	}
}

func TestJWTBearerRawSubject(t *testing.T) {
	a, iss := newApp(t)
	iss.RawSubject = true
	e := newEnv(t, func(c *server.Config) { c.TrustedIssuers = []assertion.Issuer{iss} })
	a.aud, a.now = e.http.URL, e.clock.Now
	r := e.postJSON("/api/auth/exchange", map[string]any{"assertion": a.sign("user-42")})
	if r.status != 200 || e.claimsOf(r.body["accessToken"].(string)).Subject != "user-42" {
		t.Fatalf("raw subject: %d %s", r.status, r.raw)
	}
}

// TestJWTBearerRefusals: every rule of RFC 7523 section 3 broken is
// invalid_grant naming the rule, and nothing is stored.
func TestJWTBearerRefusals(t *testing.T) {
	e, a := newExchangeEnv(t)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	forged := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "app", "sub": "x", "aud": a.aud,
			"exp": e.clock.Now().Add(time.Minute).Unix(), "jti": "f"})
		tok.Header["kid"] = "app-1"
		s, _ := tok.SignedString(otherKey)
		return s
	}
	unsigned := func() string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": "app", "sub": "x", "aud": a.aud,
			"exp": e.clock.Now().Add(time.Minute).Unix(), "jti": "u"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}
	replayed := a.sign("user-1")
	if r := e.postJSON("/api/auth/exchange", map[string]any{"assertion": replayed}); r.status != 200 {
		t.Fatal(r.raw)
	}
	families, jtis := e.count("families"), e.count("assertion_jtis")
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"malformed", "not.a.jwt", "rule 10"},
		{"unsigned", unsigned(), "rule 9"},
		{"untrusted key", forged(), "rule 9"},
		{"untrusted issuer", a.sign("x", "iss", "evil"), "rule 1"},
		{"no sub", a.sign("x", "sub", nil), "rule 2"},
		{"another audience", a.sign("x", "aud", "https://other.example"), "rule 3"},
		{"expired", a.sign("x", "exp", e.clock.Now().Add(-time.Minute).Unix()), "rule 4"},
		{"too far ahead", a.sign("x", "exp", e.clock.Now().Add(time.Hour).Unix()), "rule 4"},
		{"not yet valid", a.sign("x", "nbf", e.clock.Now().Add(time.Hour).Unix()), "rule 5"},
		{"issued in the future", a.sign("x", "iat", e.clock.Now().Add(time.Hour).Unix()), "rule 6"},
		{"no jti", a.sign("x", "jti", nil), "rule 7"},
		{"replayed", replayed, "rule 7"},
		{"claims too large", a.sign("x", "roles", []any{strings.Repeat("r", 5000)}), "rule 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.postForm("/oauth2/token", url.Values{"grant_type": {server.GrantTypeJWTBearer}, "assertion": {tc.raw}})
			expectError(t, r, 400, "invalid_grant")
			if d, _ := r.body["error_description"].(string); !strings.Contains(d, tc.want) || !strings.Contains(d, "RFC 7523") {
				t.Errorf("error_description %q does not name %s", d, tc.want)
			}
			j := e.postJSON("/api/auth/exchange", map[string]any{"assertion": tc.raw})
			expectError(t, j, 401, "invalid_grant")
		})
	}
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"no assertion", `{}`, 400, "invalid_request"},
		{"assertion not a string", `{"assertion":1}`, 400, "invalid_request"},
		{"bad scope", `{"assertion":"a.b.c","scope":"a\"b"}`, 400, "invalid_scope"},
	} {
		r := e.do("POST", "/api/auth/exchange", "application/json", strings.NewReader(tc.body))
		expectError(t, r, tc.status, tc.code)
	}
	expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {server.GrantTypeJWTBearer}}), 400, "invalid_request")
	if got := e.metric(`silentrefresh_assertion_total{outcome="rule_7"}`); got != "4" {
		t.Errorf("rule_7 refusals counted %s, want 4 (no jti and replayed, on both endpoints)", got)
	}
	if f, j := e.count("families"), e.count("assertion_jtis"); f != families || j != jtis {
		t.Fatalf("refused assertions changed the store: families %d→%d, jtis %d→%d", families, f, jtis, j)
	}
}

// TestJWTBearerReplayAcrossReplicas: two servers over one database accept
// an assertion once between them.
func TestJWTBearerReplayAcrossReplicas(t *testing.T) {
	e, a := newExchangeEnv(t)
	_, iss := newApp(t)
	iss.Keys = assertion.NewStaticKeySet(assertion.Key{ID: "app-1", Algorithm: "EdDSA", Public: a.key.Public()})
	second, err := server.New(context.Background(), server.Config{Store: e.store, Issuer: e.http.URL, Now: e.clock.Now,
		TrustedIssuers: []assertion.Issuer{iss}})
	if err != nil {
		t.Fatal(err)
	}
	raw := a.sign("user-1")
	if r := e.postJSON("/api/auth/exchange", map[string]any{"assertion": raw}); r.status != 200 {
		t.Fatal(r.raw)
	}
	rec := serveOnce(t, second, "/api/auth/exchange", `{"assertion":"`+raw+`"}`)
	if rec.Code != 401 || !strings.Contains(rec.Body.String(), "already used") {
		t.Fatalf("second replica: %d %s", rec.Code, rec.Body)
	}
}

func TestJWTBearerWithoutTrustedIssuers(t *testing.T) {
	e := newEnv(t)
	expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {server.GrantTypeJWTBearer}, "assertion": {"a.b.c"}}), 400, "unsupported_grant_type")
	expectError(t, e.postJSON("/api/auth/exchange", map[string]any{"assertion": "a.b.c"}), 400, "unsupported_grant_type")
}

// serveOnce posts a JSON body to srv without a listener.
func serveOnce(t *testing.T, srv http.Handler, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec
}

// TestJWTBearerConcurrentReplay: one assertion sent 16 times at once opens
// exactly one session.
func TestJWTBearerConcurrentReplay(t *testing.T) {
	e, a := newExchangeEnv(t)
	raw := a.sign("user-1")
	families := e.count("families")
	codes := make([]int, 16)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() {
			<-start
			res, err := http.Post(e.http.URL+"/api/auth/exchange", "application/json", strings.NewReader(`{"assertion":"`+raw+`"}`))
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			codes[i] = res.StatusCode
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 401:
		default:
			t.Errorf("status %d", c)
		}
	}
	if ok != 1 || e.count("families") != families+1 {
		t.Fatalf("%d exchanges succeeded and %d sessions opened, want 1 and 1", ok, e.count("families")-families)
	}
}
