package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net/url"
	"testing"
	"time"
)

// opaqueSigner hides the concrete key type, as a hardware-backed
// crypto.Signer does: the Signer must go through Sign and its ASN.1 form.
type opaqueSigner struct{ k crypto.Signer }

func (o opaqueSigner) Public() crypto.PublicKey { return o.k.Public() }
func (o opaqueSigner) Sign(r io.Reader, d []byte, op crypto.SignerOpts) ([]byte, error) {
	return o.k.Sign(r, d, op)
}

func TestSignerProofsVerify(t *testing.T) {
	es, ed := mustKey(t, AlgES256), mustKey(t, AlgEdDSA)
	for name, key := range map[string]crypto.Signer{
		"ES256": es, "EdDSA": ed, "opaque ES256": opaqueSigner{es}, "opaque EdDSA": opaqueSigner{ed},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := NewSigner(key)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := Thumbprint(key.Public())
			if s.Thumbprint() != want {
				t.Fatalf("Thumbprint = %s, want %s", s.Thumbprint(), want)
			}
			v := newTestVerifier(t, nil)
			u, _ := url.Parse("https://auth.example.com/api/me?x=1#frag")
			for i := range 3 {
				raw, err := s.Proof("GET", HTU(u), AccessTokenHash(tok), "n\"once", t0)
				if err != nil {
					t.Fatal(err)
				}
				p, err := v.Verify(context.Background(), []string{raw},
					Request{Method: "GET", URL: "https://auth.example.com/api/me", AccessToken: tok})
				if err != nil {
					t.Fatalf("proof %d: %v", i, err)
				}
				if p.Thumbprint != want || p.Nonce != "n\"once" || p.URL != "https://auth.example.com/api/me" {
					t.Fatalf("proof %d = %+v", i, p)
				}
			}
		})
	}
}

func TestNewSignerRefusesOtherKeys(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSigner(k); err == nil {
		t.Fatal("P-384 key accepted")
	}
	if _, err := GenerateKey("RS256"); err == nil {
		t.Fatal("GenerateKey(RS256) succeeded")
	}
}

// TestThumbprintRFC7638 checks the thumbprint against RFC 8037 appendix
// A.3, whose Ed25519 key has the thumbprint
// kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k.
func TestThumbprintRFC7638(t *testing.T) {
	x, _ := b64.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	got, err := Thumbprint(ed25519.PublicKey(x))
	if err != nil || got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Fatalf("Thumbprint = %q, %v", got, err)
	}
}

func BenchmarkSign(b *testing.B) {
	for _, alg := range []string{AlgES256, AlgEdDSA} {
		b.Run(alg, func(b *testing.B) {
			s, _ := NewSigner(mustKey(b, alg))
			ath := AccessTokenHash(tok)
			for b.Loop() {
				if _, err := s.Proof("GET", "https://auth.example.com/api/me", ath, "", t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, alg := range []string{AlgES256, AlgEdDSA} {
		b.Run(alg, func(b *testing.B) {
			s, _ := NewSigner(mustKey(b, alg))
			v, _ := NewVerifier(Config{Now: func() time.Time { return t0 }, Replay: NewMemoryReplay(1 << 24)})
			ath := AccessTokenHash(tok)
			req := Request{Method: "GET", URL: "https://auth.example.com/api/me", AccessToken: tok}
			proofs := make([]string, 0, 1<<12)
			for range cap(proofs) {
				p, _ := s.Proof("GET", req.URL, ath, "", t0)
				proofs = append(proofs, p)
			}
			i := 0
			for b.Loop() {
				if i == len(proofs) {
					b.StopTimer()
					v, _ = NewVerifier(Config{Now: func() time.Time { return t0 }})
					i = 0
					b.StartTimer()
				}
				if _, err := v.Verify(context.Background(), []string{proofs[i]}, req); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
