package server_test

import (
	"net/url"
	"testing"
)

// TestRevokeNeedsTheConfidentialClient: RFC 7009 section 2.1 revokes a
// token only for the client it was issued to. A confidential client's
// refresh token, useless to a thief without the secret, must not let the
// thief end that session either: not at /oauth2/revoke without the
// client's credentials, not at the JSON API's logout, which authenticates
// no client.
func TestRevokeNeedsTheConfidentialClient(t *testing.T) {
	e := newEnv(t)
	addClients(t, e)
	r := e.postForm("/oauth2/token", passwordForm(), "Authorization", "Basic "+basic("backend", backendSecret))
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	rt := r.body["refresh_token"].(string)
	expectError(t, e.postForm("/oauth2/revoke", url.Values{"token": {rt}}), 401, "invalid_client")
	expectError(t, e.postForm("/oauth2/revoke", url.Values{"token": {rt}, "client_id": {"spa"}}), 401, "invalid_client")
	expectError(t, e.postJSON("/api/auth/logout", map[string]any{"refreshToken": rt}), 401, "invalid_grant")
	refresh := func() response {
		return e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}},
			"Authorization", "Basic "+basic("backend", backendSecret))
	}
	r = refresh()
	if r.status != 200 {
		t.Fatalf("the client's own refresh after the refusals: %d %s", r.status, r.raw)
	}
	rt = r.body["refresh_token"].(string)
	// The client itself revokes it.
	r = e.postForm("/oauth2/revoke", url.Values{"token": {rt}}, "Authorization", "Basic "+basic("backend", backendSecret))
	if r.status != 200 {
		t.Fatalf("revoke by its client: %d %s", r.status, r.raw)
	}
	expectError(t, refresh(), 400, "invalid_grant")
}

// TestRevokeByAccessTokenNeedsWhatItsSessionNeeds: a copied access token
// of a DPoP-bound session (useless without the key) or of a confidential
// client's session (revocable by that client alone) must not end the
// session at /oauth2/revoke, as it cannot at the JSON API's logout.
func TestRevokeByAccessTokenNeedsWhatItsSessionNeeds(t *testing.T) {
	e := newEnv(t)
	addClients(t, e)
	p := newProver(e, "ES256")
	r := p.login()
	at, rt := r.body["accessToken"].(string), r.body["refreshToken"].(string)
	if r := e.postForm("/oauth2/revoke", url.Values{"token": {at}}); r.status != 200 {
		t.Fatalf("revoke of a bound access token: %d %s", r.status, r.raw)
	}
	if r := p.refresh(rt); r.status != 200 {
		t.Fatalf("a bound access token without its proof ended the session: %d %s", r.status, r.raw)
	}

	r = e.postForm("/oauth2/token", passwordForm(), "Authorization", "Basic "+basic("backend", backendSecret))
	at, rt = r.body["access_token"].(string), r.body["refresh_token"].(string)
	expectError(t, e.postForm("/oauth2/revoke", url.Values{"token": {at}}), 401, "invalid_client")
	refresh := e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}},
		"Authorization", "Basic "+basic("backend", backendSecret))
	if refresh.status != 200 {
		t.Fatalf("a confidential client's access token ended its session without the secret: %d %s", refresh.status, refresh.raw)
	}
}
