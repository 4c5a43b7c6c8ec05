package server_test

import (
	"net/url"
	"testing"

	"github.com/silentrefresh/silentrefresh/dpop"
	"github.com/silentrefresh/silentrefresh/server"
)

// TestDPoPWithScopeAndAssertions: an assertion exchanged with a DPoP proof
// opens a bound session; a stolen bound token presented without its key is
// a theft signal that revokes the session even when the thief asks for a
// scope the session never had, which alone would be a harmless
// invalid_scope.
func TestDPoPWithScopeAndAssertions(t *testing.T) {
	e, a := newExchangeEnv(t)
	p := newProver(e, dpop.AlgEdDSA)
	r := e.postForm("/oauth2/token", url.Values{"grant_type": {server.GrantTypeJWTBearer}, "assertion": {a.sign("user-1")}, "scope": {"read"}},
		"DPoP", p.proof("POST", "/oauth2/token", "", ""))
	if r.status != 200 || r.body["token_type"] != "DPoP" || cnfOf(t, r.body["access_token"].(string)) != p.s.Thumbprint() || r.body["scope"] != "read" {
		t.Fatalf("exchange with a proof: %d %s", r.status, r.raw)
	}
	rt := r.body["refresh_token"].(string)
	// The owner narrows nothing and widens nothing: fine with its key.
	ok := e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"read"}},
		"DPoP", p.proof("POST", "/oauth2/token", "", ""))
	if ok.status != 200 || ok.body["token_type"] != "DPoP" || ok.body["scope"] != "read" {
		t.Fatalf("bound refresh with scope: %d %s", ok.status, ok.raw)
	}
	next := ok.body["refresh_token"].(string)
	// The thief: no proof, a wider scope. Theft wins over scope.
	stolen := e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next}, "scope": {"read admin"}})
	if stolen.body["error"] != "invalid_grant" || stolen.body["error_description"] != "dpop_proof_missing" {
		t.Fatalf("stolen bound token with a wider scope: %d %s", stolen.status, stolen.raw)
	}
	again := e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next}},
		"DPoP", p.proof("POST", "/oauth2/token", "", ""))
	if again.body["error_description"] != "revoked" {
		t.Fatalf("after the theft signal the session must be revoked: %d %s", again.status, again.raw)
	}
}
