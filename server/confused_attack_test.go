package server_test

import (
	"net/url"
	"strings"
	"testing"
)

// TestConfusedTokens: each kind of token presented where another is
// expected, a scope widened on refresh, a proof for another request and
// malformed numbers are 4xx answers naming the problem, and change nothing:
// the refresh token still refreshes afterwards.
func TestConfusedTokens(t *testing.T) {
	e := newEnv(t)
	addClients(t, e)
	r := e.postForm("/oauth2/token", passwordForm("client_id", "spa", "scope", "read"))
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	at, rt := r.body["access_token"].(string), r.body["refresh_token"].(string)

	expectError(t, e.refresh(at), 401, "invalid_grant")
	if r := e.get("/api/me", rt); r.status != 401 {
		t.Fatalf("refresh token as bearer: %d %s", r.status, r.raw)
	}
	expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
		"client_id": {"spa"}, "scope": {"read write"}}), 400, "invalid_scope")
	expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
		"client_id": {"other"}}), 400, "invalid_grant")
	expectError(t, e.postForm("/oauth2/introspect", url.Values{"token": {rt}, "client_id": {"spa"}}), 401, "invalid_client")
	expectError(t, e.postForm("/oauth2/introspect", url.Values{"token": {rt}}), 401, "invalid_client")
	p := newProver(e, "ES256")
	expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"spa"}},
		"DPoP", p.proof("POST", "/api/auth/refresh", "", "")), 400, "invalid_dpop_proof")
	expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"spa"}},
		"DPoP", p.proof("GET", "/oauth2/token", "", "")), 400, "invalid_dpop_proof")
	for _, body := range []string{
		`{"refreshToken": 1e999}`, `{"refreshToken": "` + rt + `", "all": 1e999}`, `{"refreshToken": "` + rt + `", "all": "true"}`,
		`{"refreshToken": "` + rt + `"} {}`, `{"refreshToken": ["` + rt + `"]}`,
	} {
		paths := []string{"/api/auth/logout"}
		if !strings.Contains(body, "all") {
			paths = append(paths, "/api/auth/refresh")
		}
		for _, path := range paths {
			r := e.do("POST", path, "application/json", strings.NewReader(body))
			if r.status != 400 || r.body["error"] != "invalid_request" {
				t.Fatalf("%s %s: %d %s", path, body, r.status, r.raw)
			}
		}
	}
	for _, q := range []string{"?all=yes", "?all=true&all=true"} {
		expectError(t, e.do("POST", "/api/auth/logout"+q, "application/json", strings.NewReader(`{"refreshToken":"`+rt+`"}`)), 400, "invalid_request")
	}
	for _, path := range []string{"/api/sessions/..%2F..%2Fadmin", "/api/sessions/%00", "/api/sessions/" + strings.Repeat("A", 23)} {
		r := e.do("DELETE", path, "", nil, "Authorization", "Bearer "+at)
		if r.status/100 != 4 || r.body["error"] == nil {
			t.Fatalf("DELETE %s: %d %s", path, r.status, r.raw)
		}
	}
	r = e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"spa"}})
	if r.status != 200 {
		t.Fatalf("the refresh token after the refusals: %d %s", r.status, r.raw)
	}
}
