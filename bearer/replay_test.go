package bearer_test

import (
	"net/http"
	"net/http/httptest"
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
