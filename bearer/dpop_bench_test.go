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
// are signed before each slice is timed; each is used once. The three take
// turns in short slices, the order rotating; it reports each one's time
// per request and its ratio to bearer.
//
//	go test -run '^$' -bench 'RequireDPoP' -count 6 ./bearer/
func BenchmarkRequireDPoP(b *testing.B) {
	const per = 20
	const url = "https://api.example.test/orders"
	k := newKeys(b)
	dv, err := dpop.NewVerifier(dpop.Config{Replay: dpop.NewMemoryReplay(1 << 22)})
	if err != nil {
		b.Fatal(err)
	}
	h := bearer.Require(k.verifier, bearer.WithDPoP(dv, "https://api.example.test"))(
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	type variant struct {
		signer *dpop.Signer // nil for bearer
		req    *http.Request
		ath    string
	}
	var variants []variant
	for _, alg := range []string{"", dpop.AlgES256, dpop.AlgEdDSA} {
		var v variant
		jkt := ""
		if alg != "" {
			key, err := dpop.GenerateKey(alg)
			if err != nil {
				b.Fatal(err)
			}
			if v.signer, err = dpop.NewSigner(key); err != nil {
				b.Fatal(err)
			}
			jkt = v.signer.Thumbprint()
		}
		tok, err := k.issuer.Mint(b.Context(), token.Claims{Subject: "sub-1", SessionID: "sid", IssuedAt: time.Now(),
			ExpiresAt: time.Now().Add(time.Hour), KeyThumbprint: jkt})
		if err != nil {
			b.Fatal(err)
		}
		v.req = httptest.NewRequest("GET", url, nil)
		if v.signer != nil {
			v.req.Header.Set("Authorization", "DPoP "+tok)
			v.ath = dpop.AccessTokenHash(tok)
		} else {
			v.req.Header.Set("Authorization", "Bearer "+tok)
		}
		variants = append(variants, v)
	}
	total := make([]time.Duration, len(variants))
	proofs := make([]string, per)
	rec := httptest.NewRecorder()
	round := 0
	for b.Loop() {
		for j := range variants {
			i := (j + round) % len(variants)
			v := variants[i]
			if v.signer != nil {
				for n := range proofs {
					if proofs[n], err = v.signer.Proof("GET", url, v.ath, "", time.Now()); err != nil {
						b.Fatal(err)
					}
				}
			}
			start := time.Now()
			for n := range per {
				if v.signer != nil {
					v.req.Header.Set("DPoP", proofs[n])
				}
				rec.Code = 0
				h.ServeHTTP(rec, v.req)
				if rec.Code != 0 {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
			total[i] += time.Since(start)
		}
		round++
	}
	names := []string{"bearer", "ES256", "EdDSA"}
	for i, n := range names {
		b.ReportMetric(float64(total[i].Nanoseconds())/float64(round*per), n+"-ns/op")
		if i > 0 {
			b.ReportMetric(float64(total[i])/float64(total[0]), n+"/bearer")
		}
	}
	b.ReportMetric(0, "ns/op")
}
