package bearer_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/bearer"
	"github.com/silentrefresh/silentrefresh/dpop"
	"github.com/silentrefresh/silentrefresh/token"
)

// A full replay cache refuses proofs with 503 rather than forget one: the
// proof may be fine, the server is overloaded.
func TestRequireDPoPReplayCacheFull(t *testing.T) {
	k := newKeys(t)
	key, _ := dpop.GenerateKey(dpop.AlgEdDSA)
	s, _ := dpop.NewSigner(key)
	tok, err := k.issuer.Mint(t.Context(), token.Claims{Subject: "sub-1", ExpiresAt: time.Now().Add(time.Minute), KeyThumbprint: s.Thumbprint()})
	if err != nil {
		t.Fatal(err)
	}
	dv, err := dpop.NewVerifier(dpop.Config{Replay: dpop.NewMemoryReplay(1)})
	if err != nil {
		t.Fatal(err)
	}
	h := bearer.Require(k.verifier, bearer.WithDPoP(dv, ""))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for i, want := range []int{200, 503} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		p, _ := s.Proof("GET", "http://example.com/", dpop.AccessTokenHash(tok), "", time.Now())
		req.Header.Set("DPoP", p)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want || (want == 503 && rec.Header().Get("Retry-After") == "") {
			t.Fatalf("request %d: %d %v, want %d", i, rec.Code, rec.Header(), want)
		}
	}
}

// A thief holding a DPoP-bound access token but not its key can sign
// proofs with the token's ath under keys of its own, as many as it likes:
// they are refused for their key, and none of them takes a place in the
// replay cache, so the owner's request still goes through. The owner's
// proof is good once.
func TestRequireDPoPOtherKeysFillNoReplayCache(t *testing.T) {
	k := newKeys(t)
	owner, thief := newSigner(t), newSigner(t)
	tok, err := k.issuer.Mint(t.Context(), token.Claims{Subject: "sub-1", ExpiresAt: time.Now().Add(time.Minute), KeyThumbprint: owner.Thumbprint()})
	if err != nil {
		t.Fatal(err)
	}
	replay := dpop.NewMemoryReplay(1)
	dv, err := dpop.NewVerifier(dpop.Config{Replay: replay})
	if err != nil {
		t.Fatal(err)
	}
	h := bearer.Require(k.verifier, bearer.WithDPoP(dv, ""))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	send := func(proof string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set("DPoP", proof)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	proof := func(s *dpop.Signer) string {
		p, err := s.Proof("GET", "http://example.com/", dpop.AccessTokenHash(tok), "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for i := range 5 {
		if rec := send(proof(thief)); rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), dpop.CodeInvalidProof) {
			t.Fatalf("thief's proof %d: %d %v, want 401 invalid_dpop_proof", i, rec.Code, rec.Header())
		}
	}
	if n := replay.Len(); n != 0 {
		t.Fatalf("the thief's proofs took %d places in the replay cache, want 0", n)
	}
	p := proof(owner)
	if rec := send(p); rec.Code != 200 {
		t.Fatalf("owner after the thief: %d %s", rec.Code, rec.Body)
	}
	if rec := send(p); rec.Code != 401 || !strings.Contains(rec.Body.String(), "already used") {
		t.Fatalf("owner's proof again: %d %s, want 401 jti already used", rec.Code, rec.Body)
	}
}

func newSigner(t *testing.T) *dpop.Signer {
	t.Helper()
	key, err := dpop.GenerateKey(dpop.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dpop.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
