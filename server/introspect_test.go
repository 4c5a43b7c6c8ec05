package server_test

import (
	"net/url"
	"testing"
	"time"
)

func TestIntrospection(t *testing.T) {
	e := newEnv(t)
	addClients(t, e)
	auth := []string{"Authorization", "Basic " + basic("backend", backendSecret)}
	introspect := func(tok string, header ...string) response {
		t.Helper()
		return e.postForm("/oauth2/introspect", url.Values{"token": {tok}}, header...)
	}
	r := e.postForm("/oauth2/token", passwordForm("scope", "read write"), auth...)
	if r.status != 200 {
		t.Fatal(r.raw)
	}
	access, rt := r.body["access_token"].(string), r.body["refresh_token"].(string)

	a := introspect(access, auth...)
	if a.status != 200 || a.body["active"] != true || a.body["sub"] != "sub-alice" || a.body["scope"] != "read write" ||
		a.body["client_id"] != "backend" || a.body["token_type"] != "Bearer" || a.body["exp"] == nil || a.body["sid"] == nil {
		t.Fatalf("access token: %d %s", a.status, a.raw)
	}
	ref := introspect(rt, auth...)
	if ref.status != 200 || ref.body["active"] != true || ref.body["sid"] != a.body["sid"] || ref.body["scope"] != "read write" {
		t.Fatalf("refresh token: %d %s", ref.status, ref.raw)
	}

	// Without client authentication: 401 with a Basic challenge.
	for _, h := range [][]string{nil, {"Authorization", "Basic " + basic("backend", "wrong-wrong-wrong-wrong-wrong-wrong")}} {
		r := introspect(access, h...)
		expectError(t, r, 401, "invalid_client")
		if r.header.Get("WWW-Authenticate") == "" {
			t.Error("no WWW-Authenticate")
		}
	}
	expectError(t, e.postForm("/oauth2/introspect", url.Values{"token": {access}, "client_id": {"spa"}}), 401, "invalid_client")
	expectError(t, e.postForm("/oauth2/introspect", url.Values{}, auth...), 400, "invalid_request")

	// Inactive: unknown, malformed, rotated, expired, revoked.
	inactive := func(what, tok string) {
		t.Helper()
		r := introspect(tok, auth...)
		if r.status != 200 || r.body["active"] != false || len(r.body) != 1 {
			t.Errorf("%s: %d %s, want exactly {\"active\":false}", what, r.status, r.raw)
		}
	}
	inactive("unknown", "never-issued")
	inactive("malformed", "a.b.c")
	rotated := e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, auth...)
	if rotated.status != 200 {
		t.Fatal(rotated.raw)
	}
	inactive("rotated refresh token", rt)
	e.clock.Advance(2 * time.Minute)
	inactive("expired access token", access)
	next := rotated.body["refresh_token"].(string)
	fresh := e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next}}, auth...)
	if fresh.status != 200 {
		t.Fatal(fresh.raw)
	}
	if r := e.postForm("/oauth2/revoke", url.Values{"token": {fresh.body["refresh_token"].(string)}}, auth...); r.status != 200 {
		t.Fatal(r.raw)
	}
	inactive("access token of a revoked session", fresh.body["access_token"].(string))
	inactive("refresh token of a revoked session", fresh.body["refresh_token"].(string))

	meta := e.get("/.well-known/oauth-authorization-server", "")
	if meta.body["introspection_endpoint"] != e.http.URL+"/oauth2/introspect" {
		t.Errorf("metadata: %s", meta.raw)
	}
}
