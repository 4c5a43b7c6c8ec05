package token

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// uncached returns a verifier like f.v without a cache.
func (f *fixture) uncached(t testing.TB) *Verifier {
	t.Helper()
	v, err := NewVerifier(f.keys, VerifierConfig{Issuer: testIssuer, Audience: testAudience, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// cached reports whether raw is in v's cache.
func cached(v *Verifier, raw string) bool {
	sum := sha256.Sum256([]byte(raw))
	e := v.cache.slot(&sum).Load()
	return e != nil && e.sum == sum
}

func TestVerifyCacheHitReturnsTheClaims(t *testing.T) {
	f := newFixture(t)
	raw := f.mint(t, f.claims())
	first, err := f.v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if !cached(f.v, raw) {
		t.Fatal("a verified token is not cached")
	}
	second, err := f.v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if second.SessionID != first.SessionID || second.Subject != first.Subject || !second.ExpiresAt.Equal(first.ExpiresAt) {
		t.Errorf("hit = %+v, miss = %+v", second, first)
	}
	second.Audience[0] = "changed by a caller"
	third, _ := f.v.Verify(context.Background(), raw)
	if third.Audience[0] != testAudience {
		t.Errorf("a caller's change to the claims reached the cache: aud %q", third.Audience[0])
	}
}

// TestVerifyCacheExpiry: a cached token is refused at its exp, as the
// parser would refuse it, and its entry is dropped.
func TestVerifyCacheExpiry(t *testing.T) {
	for _, leeway := range []time.Duration{0, 5 * time.Second} {
		f := newFixture(t)
		v := f.verifier(t, leeway)
		c := f.claims()
		c.ExpiresAt = f.clock.Now().Add(time.Minute)
		raw := f.mint(t, c)
		if _, err := v.Verify(context.Background(), raw); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute + leeway - time.Nanosecond)
		if _, err := v.Verify(context.Background(), raw); err != nil {
			t.Fatalf("leeway %v: refused before exp+leeway: %v", leeway, err)
		}
		f.clock.Advance(time.Nanosecond)
		if _, err := v.Verify(context.Background(), raw); !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("leeway %v: at exp+leeway: %v, want ErrTokenExpired", leeway, err)
		}
		if cached(v, raw) {
			t.Errorf("leeway %v: an expired token is still cached", leeway)
		}
	}
}

// TestVerifyCacheForgeries: tokens that differ from a cached one — a
// changed claim with the old signature, a changed signature, the same
// claims signed by another key under the same kid — are never hits, even
// in a cache of one slot, where every token meets the cached one.
func TestVerifyCacheForgeries(t *testing.T) {
	f := newFixture(t)
	v, err := NewVerifier(f.keys, VerifierConfig{Issuer: testIssuer, Audience: testAudience, Now: f.clock.Now, CacheSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	raw := f.mint(t, f.claims())
	if _, err := f.v.Verify(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(raw, ".")
	attacker, err := GenerateKey(f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	h, c := f.header(), f.rawClaims()
	c["sid"], c["sub"] = "sid-2", "user-2"
	flip := func(s string, i int) string {
		b := []byte(s)
		b[i] = base64URLAlphabet[(strings.IndexByte(base64URLAlphabet, b[i])+1)%64]
		return string(b)
	}
	for name, forged := range map[string]string{
		"other claims, old signature": strings.Join([]string{parts[0], strings.Split(forge(t, h, c, ed25519Signer(attacker.PrivateKey)), ".")[1], parts[2]}, "."),
		"signature changed":           parts[0] + "." + parts[1] + "." + flip(parts[2], 3),
		"same claims, attacker's key": forge(t, f.header(), f.rawClaims(), ed25519Signer(attacker.PrivateKey)),
		"trailing byte":               raw + "A",
	} {
		if !cached(f.v, raw) {
			t.Fatal("the genuine token left the cache")
		}
		if cl, err := f.v.Verify(context.Background(), forged); err == nil {
			t.Errorf("%s: accepted, claims %+v", name, cl)
		}
	}
	if _, err := f.v.Verify(context.Background(), raw); err != nil {
		t.Errorf("the genuine token after the forgeries: %v", err)
	}
	if !cached(f.v, raw) {
		t.Error("the genuine token is not cached")
	}
}

// TestVerifyCacheKeyDropped: a cached token whose key is dropped is
// refused at the next Verify after the key set forgets the key.
func TestVerifyCacheKeyDropped(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	raw := f.mint(t, f.claims())
	for range 2 {
		if _, err := f.v.Verify(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.ks.DeleteSigningKey(ctx, f.key.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Verify(ctx, raw); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("cached token after its key was dropped: %v, want unknown kid", err)
	}
}

// TestVerifyCacheNotBefore: a token with a future nbf is refused whether
// cached or not; an entry is a hit only once nbf has come.
func TestVerifyCacheNotBefore(t *testing.T) {
	f := newFixture(t)
	h, c := f.header(), f.rawClaims()
	nbf := f.clock.Now().Add(time.Minute)
	c["nbf"] = nbf.Unix()
	raw := forge(t, h, c, ed25519Signer(f.key.PrivateKey))
	if _, err := f.v.Verify(context.Background(), raw); err == nil {
		t.Fatal("accepted before nbf")
	}
	f.clock.Advance(nbf.Sub(f.clock.Now()))
	if _, err := f.v.Verify(context.Background(), raw); err != nil {
		t.Fatalf("refused at nbf: %v", err)
	}
	if !cached(f.v, raw) {
		t.Fatal("not cached")
	}
}

// TestVerifyCacheConcurrent: many goroutines verifying tokens that share
// slots (a cache of 1 for 16 tokens) each get their own token's claims.
func TestVerifyCacheConcurrent(t *testing.T) {
	f := newFixture(t)
	v, err := NewVerifier(f.keys, VerifierConfig{Issuer: testIssuer, Audience: testAudience, Now: f.clock.Now, CacheSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	raws := make([]string, 16)
	for i := range raws {
		c := f.claims()
		c.SessionID = "sid-" + string(rune('a'+i))
		raws[i] = f.mint(t, c)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 200 {
				i := (g + n) % len(raws)
				c, err := v.Verify(context.Background(), raws[i])
				if err != nil {
					t.Error(err)
					return
				}
				if want := "sid-" + string(rune('a'+i)); c.SessionID != want {
					t.Errorf("token %d verified as session %s", i, c.SessionID)
					return
				}
			}
		})
	}
	wg.Wait()
}
