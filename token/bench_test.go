package token

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
)

// BenchmarkVerify measures the Verifier on a real token, its key cached.
func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	f.v = f.uncached(b)
	raw := f.mint(b, f.claims())
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, raw); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519Verify is the floor under BenchmarkVerify: the bare
// signature check over the same signing input.
func BenchmarkEd25519Verify(b *testing.B) {
	f := newFixture(b)
	raw := f.mint(b, f.claims())
	i := strings.LastIndexByte(raw, '.')
	input := []byte(raw[:i])
	sig, err := base64.RawURLEncoding.DecodeString(raw[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	pub := f.key.PrivateKey.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, input, sig) {
			b.Fatal("bad signature")
		}
	}
}

// BenchmarkMint measures minting with a cached key.
func BenchmarkMint(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	c := f.claims()
	if _, err := f.iss.Mint(ctx, c); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.iss.Mint(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCached is Verify of a token verified before: a hash, a
// slot load and a key lookup instead of the parse and the signature check.
func BenchmarkVerifyCached(b *testing.B) {
	f := newFixture(b)
	raw := f.mint(b, f.claims())
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, raw); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}
