package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/dpop"
	"github.com/silentrefresh/silentrefresh/server"
)

// prover signs the proofs of one client key against an env.
type prover struct {
	e *env
	s *dpop.Signer
}

func newProver(e *env, alg string) *prover {
	e.t.Helper()
	k, err := dpop.GenerateKey(alg)
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := dpop.NewSigner(k)
	if err != nil {
		e.t.Fatal(err)
	}
	return &prover{e: e, s: s}
}

// proof returns a fresh proof for method and path, with ath when
// accessToken is set and nonce when it is set.
func (p *prover) proof(method, path, accessToken, nonce string) string {
	p.e.t.Helper()
	ath := ""
	if accessToken != "" {
		ath = dpop.AccessTokenHash(accessToken)
	}
	raw, err := p.s.Proof(method, p.e.http.URL+path, ath, nonce, p.e.clock.Now())
	if err != nil {
		p.e.t.Fatal(err)
	}
	return raw
}

func (p *prover) login() response {
	p.e.t.Helper()
	return p.e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": testPassword},
		"DPoP", p.proof("POST", "/api/auth/login", "", ""))
}

func (p *prover) refresh(rt string) response {
	p.e.t.Helper()
	return p.e.postJSON("/api/auth/refresh", map[string]string{"refreshToken": rt},
		"DPoP", p.proof("POST", "/api/auth/refresh", "", ""))
}

// cnfOf returns the cnf.jkt of an access token, read without verifying.
func cnfOf(t *testing.T, access string) string {
	t.Helper()
	_, claims, _ := strings.Cut(access, ".")
	claims, _, _ = strings.Cut(claims, ".")
	var c struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	decodeSegment(t, claims, &c)
	return c.Cnf.JKT
}

func TestDPoPLoginBindsTheSession(t *testing.T) {
	e := newEnv(t)
	p := newProver(e, dpop.AlgES256)
	r := p.login()
	if r.status != 200 || r.body["tokenType"] != "DPoP" {
		t.Fatalf("login with proof: %d %s", r.status, r.raw)
	}
	access, rt := r.body["accessToken"].(string), r.body["refreshToken"].(string)
	if got := cnfOf(t, access); got != p.s.Thumbprint() {
		t.Fatalf("access token cnf.jkt = %q, want %q", got, p.s.Thumbprint())
	}
	r = p.refresh(rt)
	if r.status != 200 || r.body["tokenType"] != "DPoP" || cnfOf(t, r.body["accessToken"].(string)) != p.s.Thumbprint() {
		t.Fatalf("refresh with proof: %d %s", r.status, r.raw)
	}
	rt2 := r.body["refreshToken"].(string)
	// The grace replay needs the key as well, and gets the same successor.
	if r := p.refresh(rt); r.status != 200 || r.body["refreshToken"] != rt2 {
		t.Fatalf("grace replay with proof: %d %s", r.status, r.raw)
	}

	// The token copied out and sent without a proof ends the session.
	r = e.refresh(rt2)
	if r.status != 401 || r.body["error"] != "invalid_grant" || r.body["error_description"] != "dpop_proof_missing" {
		t.Fatalf("bound token without proof: %d %s", r.status, r.raw)
	}
	if r := p.refresh(rt2); r.status != 401 || r.body["error_description"] != "revoked" {
		t.Fatalf("owner after theft: %d %s, want invalid_grant revoked", r.status, r.raw)
	}
	if got := e.metric(`silentrefresh_refresh_total{outcome="dpop_proof_missing"}`); got != "1" {
		t.Fatalf("dpop_proof_missing refreshes counted %q, want 1", got)
	}
	if got := e.metric(`silentrefresh_theft_signals_total{reason="dpop_proof_missing"}`); got != "1" {
		t.Fatalf("dpop_proof_missing theft signals counted %q, want 1", got)
	}
}

func TestDPoPTokenEndpoint(t *testing.T) {
	e := newEnv(t)
	p, thief := newProver(e, dpop.AlgEdDSA), newProver(e, dpop.AlgES256)
	r := e.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword}},
		"DPoP", p.proof("POST", "/oauth2/token", "", ""))
	if r.status != 200 || r.body["token_type"] != "DPoP" || cnfOf(t, r.body["access_token"].(string)) != p.s.Thumbprint() {
		t.Fatalf("password grant with proof: %d %s", r.status, r.raw)
	}
	rt := r.body["refresh_token"].(string)
	refresh := func(pr *prover, rt string) response {
		h := []string{}
		if pr != nil {
			h = append(h, "DPoP", pr.proof("POST", "/oauth2/token", "", ""))
		}
		return e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, h...)
	}
	r = refresh(p, rt)
	if r.status != 200 || r.body["token_type"] != "DPoP" {
		t.Fatalf("refresh with proof: %d %s", r.status, r.raw)
	}
	rt2 := r.body["refresh_token"].(string)
	// A valid proof of another key: stolen token, session revoked.
	r = refresh(thief, rt2)
	if r.status != 400 || r.body["error"] != "invalid_grant" || r.body["error_description"] != "dpop_key_mismatch" {
		t.Fatalf("refresh with another key: %d %s", r.status, r.raw)
	}
	expectError(t, refresh(p, rt2), 400, "invalid_grant")

	// A bearer login still works and answers Bearer.
	r = e.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword}})
	if r.status != 200 || r.body["token_type"] != "Bearer" || cnfOf(t, r.body["access_token"].(string)) != "" {
		t.Fatalf("bearer password grant: %d %s", r.status, r.raw)
	}
}

// TestDPoPBadProofChangesNothing: a proof that fails a check is a 400
// invalid_dpop_proof and leaves the session as it was: the same token then
// refreshes with a good proof.
func TestDPoPBadProofChangesNothing(t *testing.T) {
	e := newEnv(t)
	p := newProver(e, dpop.AlgES256)
	r := p.login()
	rt := r.body["refreshToken"].(string)
	bad := map[string]string{
		"proof for another endpoint": p.proof("POST", "/oauth2/token", "", ""),
		"proof for another method":   p.proof("GET", "/api/auth/refresh", "", ""),
		"not a JWT":                  "not-a-jwt",
	}
	for name, proof := range bad {
		r := e.postJSON("/api/auth/refresh", map[string]string{"refreshToken": rt}, "DPoP", proof)
		if r.status != 400 || r.body["error"] != "invalid_dpop_proof" || r.body["error_description"] == "" {
			t.Fatalf("%s: %d %s, want 400 invalid_dpop_proof", name, r.status, r.raw)
		}
	}
	good := p.proof("POST", "/api/auth/refresh", "", "")
	if r := e.postJSON("/api/auth/refresh", map[string]string{"refreshToken": rt}, "DPoP", good); r.status != 200 {
		t.Fatalf("good proof after bad ones: %d %s", r.status, r.raw)
	}
	// The same proof again is a replay.
	r = e.postJSON("/api/auth/refresh", map[string]string{"refreshToken": rt}, "DPoP", good)
	if r.status != 400 || r.body["error"] != "invalid_dpop_proof" || !strings.Contains(r.body["error_description"].(string), "jti") {
		t.Fatalf("replayed proof: %d %s", r.status, r.raw)
	}
	// An old proof is refused.
	old := p.proof("POST", "/api/auth/refresh", "", "")
	e.clock.Advance(2 * time.Minute)
	expectError(t, e.postJSON("/api/auth/refresh", map[string]string{"refreshToken": rt}, "DPoP", old), 400, "invalid_dpop_proof")
	if got := e.metric(`silentrefresh_dpop_total{result="invalid"}`); got != "5" {
		t.Fatalf("invalid proofs counted %q, want 5", got)
	}
}

func TestRequireDPoP(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.RequireDPoP = true })
	r := e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": testPassword})
	expectError(t, r, 400, "invalid_dpop_proof")
	expectError(t, e.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword}}),
		400, "invalid_dpop_proof")
	if r := newProver(e, dpop.AlgEdDSA).login(); r.status != 200 || r.body["tokenType"] != "DPoP" {
		t.Fatalf("login with proof: %d %s", r.status, r.raw)
	}
}

func TestDPoPNonce(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.DPoPNonce = true })
	p := newProver(e, dpop.AlgES256)
	r := p.login()
	expectError(t, r, 400, "use_dpop_nonce")
	nonce := r.header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce answer without a DPoP-Nonce header")
	}
	r = e.postJSON("/api/auth/login", map[string]string{"username": testUser, "password": testPassword},
		"DPoP", p.proof("POST", "/api/auth/login", "", nonce))
	if r.status != 200 || r.header.Get("DPoP-Nonce") == "" {
		t.Fatalf("login with the nonce: %d %v %s", r.status, r.header, r.raw)
	}
	if got := e.metric(`silentrefresh_dpop_total{result="use_nonce"}`); got != "1" {
		t.Fatalf("use_nonce counted %q, want 1", got)
	}
}

func TestMetadataListsDPoPAlgorithms(t *testing.T) {
	e := newEnv(t)
	r := e.get("/.well-known/oauth-authorization-server", "")
	algs, _ := r.body["dpop_signing_alg_values_supported"].([]any)
	if len(algs) != 2 || algs[0] != "ES256" || algs[1] != "EdDSA" {
		t.Fatalf("dpop_signing_alg_values_supported = %v", r.body["dpop_signing_alg_values_supported"])
	}
}

func decodeSegment(t *testing.T, seg string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestDPoPProtectedEndpoints: the server's own protected endpoints take a
// bound access token with the DPoP scheme and a proof whose ath matches,
// and refuse it as Bearer, with the challenge of RFC 9449 section 7.1.
func TestDPoPProtectedEndpoints(t *testing.T) {
	e := newEnv(t)
	p, thief := newProver(e, dpop.AlgES256), newProver(e, dpop.AlgES256)
	access := p.login().body["accessToken"].(string)
	get := func(path, authorization, proof string) response {
		h := []string{"Authorization", authorization}
		if proof != "" {
			h = append(h, "DPoP", proof)
		}
		return e.do("GET", path, "", nil, h...)
	}
	for _, path := range []string{"/api/me", "/api/heartbeat"} {
		if r := get(path, "DPoP "+access, p.proof("GET", path, access, "")); r.status != 200 {
			t.Fatalf("%s with DPoP: %d %s", path, r.status, r.raw)
		}
		for name, r := range map[string]response{
			"as Bearer":             get(path, "Bearer "+access, ""),
			"without proof":         get(path, "DPoP "+access, ""),
			"thief's proof":         get(path, "DPoP "+access, thief.proof("GET", path, access, "")),
			"proof of another path": get(path, "DPoP "+access, p.proof("GET", "/api/other", access, "")),
		} {
			ch := r.header.Get("WWW-Authenticate")
			if r.status != 401 || !strings.HasPrefix(ch, "DPoP error=") || !strings.Contains(ch, `algs="ES256 EdDSA"`) {
				t.Fatalf("%s %s: %d %q %s", path, name, r.status, ch, r.raw)
			}
		}
	}
	if got := e.metric(`silentrefresh_bearer_total{result="bound_as_bearer"}`); got != "2" {
		t.Fatalf("bound_as_bearer counted %q, want 2", got)
	}

	// Logout with the access token needs the proof as well.
	if r := e.do("POST", "/api/auth/logout", "", nil, "Authorization", "Bearer "+access); r.status != 204 {
		t.Fatalf("logout with the bound token as Bearer: %d %s", r.status, r.raw)
	}
	if r := get("/api/me", "DPoP "+access, p.proof("GET", "/api/me", access, "")); r.status != 200 {
		t.Fatalf("a bound token sent as Bearer to logout ended the session: %d %s", r.status, r.raw)
	}
	expectError(t, e.do("POST", "/api/auth/logout", "", nil, "Authorization", "DPoP "+access,
		"DPoP", thief.proof("POST", "/api/auth/logout", access, "")), 401, "invalid_dpop_proof")
	if r := e.do("POST", "/api/auth/logout", "", nil, "Authorization", "DPoP "+access,
		"DPoP", p.proof("POST", "/api/auth/logout", access, "")); r.status != 204 {
		t.Fatalf("logout with DPoP: %d %s", r.status, r.raw)
	}
	if r := get("/api/me", "DPoP "+access, p.proof("GET", "/api/me", access, "")); r.status != 401 {
		t.Fatalf("after logout: %d %s", r.status, r.raw)
	}
}

// TestDPoPNoncesSharedByReplicas: two servers over one database (replicas
// behind one issuer URL) issue and accept the same nonces, with no state
// beyond the secret in the store.
func TestDPoPNoncesSharedByReplicas(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.DPoPNonce = true })
	replica, err := server.New(t.Context(), server.Config{Store: e.store, Issuer: e.http.URL, AccessTTL: time.Minute, DPoPNonce: true, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(replica)
	t.Cleanup(hs.Close)
	p := newProver(e, dpop.AlgEdDSA)
	nonce := p.login().header.Get("DPoP-Nonce") // from the first server's use_dpop_nonce answer
	if nonce == "" {
		t.Fatal("no nonce")
	}
	body, _ := json.Marshal(map[string]string{"username": testUser, "password": testPassword})
	req, _ := http.NewRequest("POST", hs.URL+"/api/auth/login", bytes.NewReader(body))
	req.Header.Set("DPoP", p.proof("POST", "/api/auth/login", "", nonce)) // htu: the shared issuer URL
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the replica refused the first server's nonce: %d", resp.StatusCode)
	}
}
