package server_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/claims"
	"github.com/silentrefresh/silentrefresh/registry"
	"github.com/silentrefresh/silentrefresh/server"
)

const backendSecret = "s3cret-s3cret-s3cret-s3cret-s3cret-42"

// addClients registers a confidential "backend" (scopes read, write), a
// public "spa" and returns nothing; they live in the env's database.
func addClients(t testing.TB, e *env) {
	t.Helper()
	h, err := registry.HashSecret(backendSecret)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []registry.Client{
		{ID: "backend", SecretHash: h, Scopes: []string{"read", "write"}, CreatedAt: time.Now()},
		{ID: "spa", CreatedAt: time.Now()},
	} {
		if err := e.store.AddClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
}

func passwordForm(extra ...string) url.Values {
	f := url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword}}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	return f
}

func TestConfidentialClientAuthentication(t *testing.T) {
	e := newEnv(t)
	addClients(t, e)
	// HTTP Basic and client_secret_post both work.
	r := e.postForm("/oauth2/token", passwordForm("scope", "read"), "Authorization", "Basic "+basic("backend", backendSecret))
	if r.status != 200 {
		t.Fatalf("basic: %d %s", r.status, r.raw)
	}
	if c := e.claimsOf(r.body["access_token"].(string)); c.ClientID != "backend" || c.Scope != "read" {
		t.Fatalf("claims = %+v", c)
	}
	r2 := e.postForm("/oauth2/token", passwordForm("client_id", "backend", "client_secret", backendSecret))
	if r2.status != 200 {
		t.Fatalf("client_secret_post: %d %s", r2.status, r2.raw)
	}
	// Its refresh must authenticate too.
	rt := r2.body["refresh_token"].(string)
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"backend"}}
	families := e.count("refresh_tokens")
	for _, tc := range []struct {
		name   string
		form   url.Values
		header []string
		status int
		code   string
		desc   string
	}{
		{"no secret", refresh, nil, 401, "invalid_client", "must authenticate"},
		{"wrong secret basic", passwordForm(), []string{"Authorization", "Basic " + basic("backend", "wrong-wrong-wrong-wrong-wrong-wrong")}, 401, "invalid_client", "authentication failed"},
		{"wrong secret post", passwordForm("client_id", "backend", "client_secret", "x"), nil, 401, "invalid_client", "authentication failed"},
		{"both methods", passwordForm("client_secret", backendSecret), []string{"Authorization", "Basic " + basic("backend", backendSecret)}, 400, "invalid_request", "use one method"},
		{"secret of a public client", passwordForm("client_id", "spa", "client_secret", backendSecret), nil, 401, "invalid_client", "public"},
		{"secret of an unregistered client", passwordForm("client_id", "stranger", "client_secret", backendSecret), nil, 401, "invalid_client", "not registered"},
		{"secret without client_id", passwordForm("client_secret", backendSecret), nil, 401, "invalid_client", "without client_id"},
		{"bearer instead of basic", passwordForm(), []string{"Authorization", "Bearer abc"}, 401, "invalid_client", "Basic"},
		{"scope outside the client's", passwordForm("scope", "admin"), []string{"Authorization", "Basic " + basic("backend", backendSecret)}, 400, "invalid_scope", "may not ask"},
		{"malformed scope", passwordForm("scope", "a\\b"), nil, 400, "invalid_scope", "RFC 6749"},
		{"client_id too long", passwordForm("client_id", strings.Repeat("c", 300)), nil, 400, "invalid_request", "client_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.postForm("/oauth2/token", tc.form, tc.header...)
			expectError(t, r, tc.status, tc.code)
			if d, _ := r.body["error_description"].(string); !strings.Contains(d, tc.desc) {
				t.Errorf("error_description %q lacks %q", d, tc.desc)
			}
			if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	// A stolen refresh token of a confidential client is useless without
	// its secret: not on the token endpoint without client_id, not as
	// another client, not on the JSON API.
	for _, r := range []response{
		e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}),
		e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"someapp"}}),
		e.refresh(rt),
	} {
		if r.body["error"] != "invalid_grant" || r.body["error_description"] != "client_mismatch" {
			t.Errorf("refresh of a confidential client's token without its secret: %d %s", r.status, r.raw)
		}
	}
	if n := e.count("refresh_tokens"); n != families {
		t.Fatalf("refused client requests changed the store: %d → %d tokens", families, n)
	}
	refresh.Set("client_secret", backendSecret)
	if r := e.postForm("/oauth2/token", refresh); r.status != 200 {
		t.Fatalf("authenticated refresh: %d %s", r.status, r.raw)
	}
	// Unregistered public clients still need no registration.
	if r := e.postForm("/oauth2/token", passwordForm("client_id", "someapp")); r.status != 200 {
		t.Fatalf("unregistered public client: %d %s", r.status, r.raw)
	}
	if r := e.postForm("/oauth2/token", passwordForm("client_id", "spa", "scope", "anything")); r.status != 200 {
		t.Fatalf("registered public client: %d %s", r.status, r.raw)
	}
}

func TestRegisteredClientsOnly(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.RegisteredClientsOnly = true })
	addClients(t, e)
	for _, f := range []url.Values{passwordForm(), passwordForm("client_id", "stranger")} {
		r := e.postForm("/oauth2/token", f)
		expectError(t, r, 401, "invalid_client")
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
		}
	}
	if r := e.postForm("/oauth2/token", passwordForm("client_id", "spa")); r.status != 200 {
		t.Fatalf("registered public client: %d %s", r.status, r.raw)
	}
}

// TestUserClaimsReachTokensAtNextRefresh: per-user claims go into every
// access token, and a change to them shows at the next refresh.
func TestUserClaimsReachTokensAtNextRefresh(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u, err := e.store.UserByName(ctx, testUser)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetUserClaims(ctx, u.ID, claims.Set{"roles": []any{"editor"}, "tenant": "acme"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	access, rt := e.login()
	if c := e.claimsOf(access); c.Extra["tenant"] != "acme" || len(c.Extra["roles"].([]any)) != 1 {
		t.Fatalf("login claims = %v", c.Extra)
	}
	if err := e.store.SetUserClaims(ctx, u.ID, claims.Set{"roles": []any{"admin", "editor"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	r := e.refresh(rt)
	if r.status != 200 {
		t.Fatal(r.raw)
	}
	c := e.claimsOf(r.body["accessToken"].(string))
	if _, ok := c.Extra["tenant"]; ok || len(c.Extra["roles"].([]any)) != 2 {
		t.Fatalf("claims after the change = %v, want the new set", c.Extra)
	}
}
