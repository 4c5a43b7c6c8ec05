package token

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestIssuerPicksUpKeyRotatedElsewhere: a key added to the store by another
// replica signs here too once the cached key is IssuerMaxAge old, without a
// Reload; while the store is down the cached key keeps signing.
func TestIssuerPicksUpKeyRotatedElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		ks := &memKeyStore{}
		if err := EnsureSigningKey(ctx, ks, time.Now()); err != nil {
			t.Fatal(err)
		}
		iss := NewIssuer(ks, testIssuer, []string{testAudience})
		first, err := iss.KeyID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		k, err := GenerateKey(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := ks.AddSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if got, _ := iss.KeyID(ctx); got != first {
			t.Fatalf("key changed before the cache aged: %s", got)
		}
		time.Sleep(IssuerMaxAge)
		if got, _ := iss.KeyID(ctx); got != k.ID {
			t.Fatalf("after IssuerMaxAge the issuer signs with %s, want the new key %s", got, k.ID)
		}

		ks.mu.Lock()
		ks.fail = errors.New("store down")
		ks.mu.Unlock()
		time.Sleep(IssuerMaxAge)
		if got, err := iss.KeyID(ctx); err != nil || got != k.ID {
			t.Fatalf("with the store down: %s, %v; want the cached key", got, err)
		}
		if _, err := iss.Mint(ctx, Claims{Subject: "s", ExpiresAt: time.Now().Add(time.Minute)}); err != nil {
			t.Fatalf("Mint with the store down: %v", err)
		}
	})
}
