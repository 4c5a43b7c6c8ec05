package dpop

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary DPoP header values to the Verifier: it must
// never panic, and whatever it accepts must really match the request and
// carry the key it names.
func FuzzVerify(f *testing.F) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	s, err := NewSigner(key)
	if err != nil {
		f.Fatal(err)
	}
	valid, _ := s.Proof("POST", tokenURL, AccessTokenHash(tok), "", t0)
	f.Add(valid)
	for _, seed := range []string{"", "a.b.c", "..", "e30.e30.", valid + ".", strings.ToUpper(valid),
		"eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7fX0.e30.AA"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := NewVerifier(Config{Now: func() time.Time { return t0 }})
		if err != nil {
			t.Fatal(err)
		}
		p, err := v.Verify(context.Background(), []string{raw}, resourceReq)
		if err != nil {
			return
		}
		if p.Method != "POST" || p.Thumbprint == "" || p.AccessTokenHash != AccessTokenHash(tok) {
			t.Fatalf("accepted a proof that does not match: %+v", p)
		}
		if want, _ := Thumbprint(p.Key); want != p.Thumbprint {
			t.Fatalf("thumbprint %s is not that of the key (%s)", p.Thumbprint, want)
		}
	})
}
