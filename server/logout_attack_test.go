package server_test

import (
	"net/url"
	"testing"
)

// TestLogoutEverywhereNeedsTheDPoPKey: the tokens of a DPoP-bound session
// are useless without the key, so neither a copied access token sent as
// Bearer nor a copied refresh token without a proof may end every session
// of the user. The owner's other sessions stay live.
func TestLogoutEverywhereNeedsTheDPoPKey(t *testing.T) {
	e := newEnv(t)
	_, otherRT := e.login() // another device of the same user
	p := newProver(e, "ES256")
	r := p.login()
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	at, rt := r.body["accessToken"].(string), r.body["refreshToken"].(string)

	// The stolen access token as Bearer, no proof.
	r = e.do("POST", "/api/auth/logout?all=true", "", nil, "Authorization", "Bearer "+at)
	if r.status != 401 {
		t.Fatalf("bound access token as Bearer: %d %s, want 401", r.status, r.raw)
	}
	// The stolen refresh token without a proof, and with another key's.
	r = e.postJSON("/api/auth/logout", map[string]any{"refreshToken": rt, "all": true})
	expectError(t, r, 401, "invalid_grant")
	if r.body["error_description"] != "dpop_proof_missing" {
		t.Fatalf("no proof: %s", r.raw)
	}
	if got := e.refresh(otherRT); got.status != 200 {
		t.Fatalf("the owner's other session was ended: %d %s", got.status, got.raw)
	}

	// With the key it works.
	p2 := newProver(e, "ES256")
	r = p2.login()
	rt2 := r.body["refreshToken"].(string)
	_, other2 := e.login()
	r = e.postJSON("/api/auth/logout", map[string]any{"refreshToken": rt2, "all": true},
		"DPoP", newProver(e, "EdDSA").proof("POST", "/api/auth/logout", "", ""))
	expectError(t, r, 401, "invalid_grant")
	if r.body["error_description"] != "dpop_key_mismatch" {
		t.Fatalf("other key: %s", r.raw)
	}
	if got := e.refresh(other2); got.status != 200 {
		t.Fatalf("other key ended the owner's other session: %d %s", got.status, got.raw)
	}
	r = p2.login()
	rt3 := r.body["refreshToken"].(string)
	r = e.postJSON("/api/auth/logout", map[string]any{"refreshToken": rt3, "all": true},
		"DPoP", p2.proof("POST", "/api/auth/logout", "", ""))
	if r.status != 204 {
		t.Fatalf("with the key: %d %s", r.status, r.raw)
	}
}

// TestLogoutEverywhereNeedsTheClientSecret: a confidential client's
// refresh token is useless without its secret; the JSON API, which
// authenticates no client, must not let it end every session of the user.
func TestLogoutEverywhereNeedsTheClientSecret(t *testing.T) {
	e := newEnv(t)
	addClients(t, e)
	_, otherRT := e.login()
	r := e.postForm("/oauth2/token", passwordForm(), "Authorization", "Basic "+basic("backend", backendSecret))
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	rt := r.body["refresh_token"].(string)
	r = e.postJSON("/api/auth/logout", map[string]any{"refreshToken": rt, "all": true})
	expectError(t, r, 401, "invalid_grant")
	if got := e.refresh(otherRT); got.status != 200 {
		t.Fatalf("the owner's other session was ended: %d %s", got.status, got.raw)
	}
	// And the confidential session itself goes on, for its client.
	r = e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}},
		"Authorization", "Basic "+basic("backend", backendSecret))
	if r.status != 200 {
		t.Fatalf("the client's own refresh: %d %s", r.status, r.raw)
	}
}
