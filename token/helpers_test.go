package token

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/internal/clock"
)

const (
	testIssuer   = "https://auth.example.test"
	testAudience = "api.example.test"
)

// fixture is an issuer and a verifier sharing one in-memory key store, on
// a fake clock.
type fixture struct {
	clock *clock.Fake
	ks    *memKeyStore
	key   Key
	iss   *Issuer
	keys  *StoreKeySet
	v     *Verifier
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{clock: newFakeClock(), ks: &memKeyStore{}}
	ctx := context.Background()
	if err := EnsureSigningKey(ctx, f.ks, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	keys, err := f.ks.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.key = keys[0]
	f.iss = NewIssuer(f.ks, testIssuer, []string{testAudience})
	f.keys = NewStoreKeySet(f.ks, WithClock(f.clock.Now))
	f.v = f.verifier(t, 0)
	return f
}

func (f *fixture) verifier(t testing.TB, leeway time.Duration) *Verifier {
	t.Helper()
	// Every test verifies through the cache of verified tokens: a token
	// verified once is a hit afterwards, and must be refused all the same
	// when its key goes or its time is up.
	v, err := NewVerifier(f.keys, VerifierConfig{
		Issuer: testIssuer, Audience: testAudience, Leeway: leeway, Now: f.clock.Now, CacheSize: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// newFakeClock returns the clock of the token tests, standing still.
func newFakeClock() *clock.Fake {
	return clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

// claims returns typical claims of a token issued now for ten minutes.
func (f *fixture) claims() Claims {
	now := f.clock.Now()
	return Claims{
		Subject:   "user-1",
		IssuedAt:  now,
		ExpiresAt: now.Add(10 * time.Minute),
		ClientID:  "web",
		SessionID: "sid-1",
		Scope:     "read write",
	}
}

func (f *fixture) mint(t testing.TB, c Claims) string {
	t.Helper()
	raw, err := f.iss.Mint(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// rawClaims returns the claims of a token as a generic JSON object, for
// tests that forge tokens.
func (f *fixture) rawClaims() map[string]any {
	now := f.clock.Now()
	return map[string]any{
		"iss": testIssuer,
		"sub": "user-1",
		"aud": []string{testAudience},
		"exp": now.Add(10 * time.Minute).Unix(),
		"iat": now.Unix(),
		"jti": "jti-1",
	}
}

func (f *fixture) header() map[string]any {
	return map[string]any{"alg": AlgEdDSA, "typ": TypeAccessToken, "kid": f.key.ID}
}

// forge returns header.claims.signature, with the signature made by sign
// over the signing input.
func forge(t testing.TB, header, claims map[string]any, sign func(input []byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	return input + "." + enc.EncodeToString(sign([]byte(input)))
}

func ed25519Signer(priv ed25519.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte { return ed25519.Sign(priv, in) }
}

// segments splits a token into its three decoded parts.
func segments(t testing.TB, raw string) (header, claims map[string]any, sig []byte) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.Strict().DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err := json.Unmarshal(dec(parts[0]), &header); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(dec(parts[1]), &claims); err != nil {
		t.Fatal(err)
	}
	return header, claims, dec(parts[2])
}
