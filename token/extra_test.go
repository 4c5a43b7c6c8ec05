package token

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestExtraClaimsRoundTrip(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	extra := map[string]any{"roles": []any{"admin", "editor"}, "tenant": "acme"}
	c := f.claims()
	c.Extra = extra
	raw, err := f.iss.Mint(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.v.Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Extra, extra) || got.Scope != "read write" || got.Subject != "user-1" {
		t.Fatalf("claims = %+v", got)
	}
	plain, _ := f.iss.Mint(ctx, f.claims())
	if got, err := f.v.Verify(ctx, plain); err != nil || got.Extra != nil {
		t.Fatalf("token without extras: %+v, %v", got.Extra, err)
	}
}

func TestMintRefusesRegisteredExtra(t *testing.T) {
	f := newFixture(t)
	for _, k := range []string{"sub", "iss", "aud", "exp", "sid", "scope", "client_id", "cnf", "nbf", "jti", "iat"} {
		c := f.claims()
		c.Extra = map[string]any{k: "x"}
		_, err := f.iss.Mint(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("Mint with extra %q = %v, want a refusal naming it", k, err)
		}
	}
}

// TestCachedExtraClaimsAreCopies: a caller changing the extra claims of a
// token the cache answered changes nobody else's.
func TestCachedExtraClaimsAreCopies(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	v, err := NewVerifier(f.keys, VerifierConfig{Issuer: testIssuer, Audience: testAudience, Now: f.clock.Now, CacheSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	c := f.claims()
	c.Extra = map[string]any{"roles": []any{"admin"}}
	raw, _ := f.iss.Mint(ctx, c)
	first, err := v.Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	first.Extra["roles"].([]any)[0] = "root"
	first.Extra["tenant"] = "evil"
	again, err := v.Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Extra, map[string]any{"roles": []any{"admin"}}) {
		t.Fatalf("second verification sees %v", again.Extra)
	}
}
