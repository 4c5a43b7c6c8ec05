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

// BenchmarkRequireDPoP is the server's cost of DPoP per protected request:
// Require verifying a bearer token, and a DPoP-bound token with its proof
// (ES256, EdDSA: signature, htm, htu, iat, ath, jkt, replay cache). Proofs
// are signed before the timer runs; each is used once.
//
//	go test -run '^$' -bench 'RequireDPoP' -count 6 ./bearer/
func BenchmarkRequireDPoP(b *testing.B) {
	for _, v := range []struct{ name, alg string }{{"bearer", ""}, {"DPoP-ES256", dpop.AlgES256}, {"DPoP-EdDSA", dpop.AlgEdDSA}} {
		b.Run(v.name, func(b *testing.B) {
			k := newKeys(b)
			const url = "https://api.example.test/orders"
			var (
				signer *dpop.Signer
				jkt    string
			)
			if v.alg != "" {
				key, err := dpop.GenerateKey(v.alg)
				if err != nil {
					b.Fatal(err)
				}
				if signer, err = dpop.NewSigner(key); err != nil {
					b.Fatal(err)
				}
				jkt = signer.Thumbprint()
			}
			tok, err := k.issuer.Mint(b.Context(), token.Claims{Subject: "sub-1", SessionID: "sid", IssuedAt: time.Now(),
				ExpiresAt: time.Now().Add(time.Hour), KeyThumbprint: jkt})
			if err != nil {
				b.Fatal(err)
			}
			ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
			newHandler := func() http.Handler {
				dv, err := dpop.NewVerifier(dpop.Config{})
				if err != nil {
					b.Fatal(err)
				}
				return bearer.Require(k.verifier, bearer.WithDPoP(dv, "https://api.example.test"))(ok)
			}
			const pool = 2048
			var proofs []string
			if signer != nil {
				ath := dpop.AccessTokenHash(tok)
				for range pool {
					p, err := signer.Proof("GET", url, ath, "", time.Now())
					if err != nil {
						b.Fatal(err)
					}
					proofs = append(proofs, p)
				}
			}
			h := newHandler()
			req := httptest.NewRequest("GET", url, nil)
			scheme := "Bearer "
			if signer != nil {
				scheme = "DPoP "
			}
			req.Header.Set("Authorization", scheme+tok)
			rec := httptest.NewRecorder()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if signer != nil {
					if i == len(proofs) {
						b.StopTimer()
						h, i = newHandler(), 0 // a fresh replay cache for the same proofs
						b.StartTimer()
					}
					req.Header.Set("DPoP", proofs[i])
					i++
				}
				rec.Code = 0
				h.ServeHTTP(rec, req)
				if rec.Code != 0 && rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
