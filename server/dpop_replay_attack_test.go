package server_test

import (
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/dpop"
	"github.com/silentrefresh/silentrefresh/server"
)

// The DPoP replay cache holds only proofs that came with a valid
// credential: a flood of valid self-signed proofs with wrong passwords and
// unknown refresh tokens, from no account at all, fills none of it, and the
// legitimate client's next refresh goes through. A proof that was used
// once is still refused the second time.
func TestDPoPReplayCacheFloodWithoutCredentials(t *testing.T) {
	const entries = 4
	e := newEnv(t, noLoginLimits, func(c *server.Config) { c.DPoPReplayEntries = entries })
	owner := newProver(e, dpop.AlgES256)
	r := owner.login()
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	rt := r.body["refreshToken"].(string)

	attacker := newProver(e, dpop.AlgEdDSA)
	for i := range 3 * entries {
		tokenProof := attacker.proof("POST", "/oauth2/token", "", "")
		expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {"wrong"}},
			"DPoP", tokenProof), 400, "invalid_grant")
		expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"unknown-token"}},
			"DPoP", attacker.proof("POST", "/oauth2/token", "", "")), 400, "invalid_grant")
		expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {server.GrantTypeJWTBearer}, "assertion": {"not.an.assertion"}},
			"DPoP", attacker.proof("POST", "/oauth2/token", "", "")), 400, "unsupported_grant_type")
		expectError(t, e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": "wrong"},
			"DPoP", attacker.proof("POST", "/api/auth/login", "", "")), 401, "invalid_credentials")
		expectError(t, e.postJSON("/api/auth/refresh", map[string]string{"refreshToken": "unknown-token"},
			"DPoP", attacker.proof("POST", "/api/auth/refresh", "", "")), 401, "invalid_grant")
		expectError(t, e.postJSON("/api/auth/exchange", map[string]string{"assertion": "not.an.assertion"},
			"DPoP", attacker.proof("POST", "/api/auth/exchange", "", "")), 400, "unsupported_grant_type")
		expectError(t, e.postJSON("/api/auth/logout?all=true", map[string]string{"refreshToken": "unknown-token"},
			"DPoP", attacker.proof("POST", "/api/auth/logout", "", "")), 401, "invalid_grant")
		if i == 0 {
			// The same proof again, with the same wrong password, is
			// refused for the password, as the first time: it was never
			// accepted.
			expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {"wrong"}},
				"DPoP", tokenProof), 400, "invalid_grant")
		}
	}

	proof := owner.proof("POST", "/api/auth/refresh", "", "")
	r = e.postJSON("/api/auth/refresh", map[string]string{"refreshToken": rt}, "DPoP", proof)
	if r.status != 200 || r.body["tokenType"] != "DPoP" {
		t.Fatalf("owner's refresh after the flood: %d %s", r.status, r.raw)
	}
	rt2 := r.body["refreshToken"].(string)
	// The proof that worked once is refused the second time, even with
	// the good token of the grace replay, and the session lives on.
	expectError(t, e.postJSON("/api/auth/refresh", map[string]string{"refreshToken": rt}, "DPoP", proof), 400, dpop.CodeInvalidProof)
	if r := owner.refresh(rt2); r.status != 200 {
		t.Fatalf("owner's next refresh: %d %s", r.status, r.raw)
	}
}

// A login proof that opened a session does not open a second one, at
// either token endpoint, and a refresh proof of the token endpoint is
// good for one refresh.
func TestDPoPTokenEndpointProofIsGoodOnce(t *testing.T) {
	e := newEnv(t)
	p := newProver(e, dpop.AlgES256)
	login := p.proof("POST", "/api/auth/login", "", "")
	creds := map[string]string{"username": testUser, "password": testPassword}
	if r := e.postJSON("/api/auth/login", creds, "DPoP", login); r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	expectError(t, e.postJSON("/api/auth/login", creds, "DPoP", login), 400, dpop.CodeInvalidProof)

	password := url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword}}
	tp := p.proof("POST", "/oauth2/token", "", "")
	r := e.postForm("/oauth2/token", password, "DPoP", tp)
	if r.status != 200 {
		t.Fatalf("password grant: %d %s", r.status, r.raw)
	}
	expectError(t, e.postForm("/oauth2/token", password, "DPoP", tp), 400, dpop.CodeInvalidProof)

	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.body["refresh_token"].(string)}}
	rp := p.proof("POST", "/oauth2/token", "", "")
	r = e.postForm("/oauth2/token", refresh, "DPoP", rp)
	if r.status != 200 {
		t.Fatalf("refresh grant: %d %s", r.status, r.raw)
	}
	next := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.body["refresh_token"].(string)}}
	expectError(t, e.postForm("/oauth2/token", next, "DPoP", rp), 400, dpop.CodeInvalidProof)
	if r := e.postForm("/oauth2/token", next, "DPoP", p.proof("POST", "/oauth2/token", "", "")); r.status != 200 {
		t.Fatalf("refresh with a fresh proof: %d %s", r.status, r.raw)
	}
}

// One proof sent many times at once, with the same good token or
// password, is accepted exactly once: the others are refused for the
// proof, whether before the credential is checked or after, and the
// logins among them open no session.
func TestDPoPConcurrentUsesOfOneProof(t *testing.T) {
	e := newEnv(t, noLoginLimits)
	p := newProver(e, dpop.AlgES256)
	r := p.login()
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	rt := r.body["refreshToken"].(string)
	const n = 8
	for _, c := range []struct {
		path string
		body map[string]string
	}{
		{"/api/auth/refresh", map[string]string{"refreshToken": rt}},
		{"/api/auth/login", map[string]string{"username": testUser, "password": testPassword}},
	} {
		proof := p.proof("POST", c.path, "", "")
		statuses := make(chan response, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() { statuses <- e.postJSON(c.path, c.body, "DPoP", proof) })
		}
		wg.Wait()
		close(statuses)
		ok := 0
		for r := range statuses {
			switch {
			case r.status == 200:
				ok++
			case r.status != 400 || r.body["error"] != dpop.CodeInvalidProof:
				t.Fatalf("%s: %d %s, want 200 once and invalid_dpop_proof otherwise", c.path, r.status, r.raw)
			}
		}
		if ok != 1 {
			t.Fatalf("%s: %d of %d uses of one proof accepted, want 1", c.path, ok, n)
		}
	}
	sessions, err := e.store.Sessions(t.Context(), "sub-alice", e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 2 {
		t.Fatalf("%d sessions after two logins, want 2", len(sessions))
	}
}

// noLoginLimits lifts the login limits, which would refuse a flood of
// wrong passwords, or many logins at once, before the password is
// checked: not what these tests are about.
func noLoginLimits(c *server.Config) {
	lots := server.LoginLimit{Burst: 1000, Every: time.Millisecond}
	c.LoginLimit, c.LoginLimitPerClient, c.LoginLimitPerAddress = lots, lots, lots
}
