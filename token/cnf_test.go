package token

import (
	"context"
	"errors"
	"testing"
)

// TestConfirmationClaim: a DPoP-bound token carries cnf.jkt (RFC 9449
// section 6.1) and verifies with it; a bearer token carries no cnf; a cnf
// without jkt is refused rather than read as a bearer token.
func TestConfirmationClaim(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.claims()
	c.KeyThumbprint = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	raw := f.mint(t, c)
	_, claims, _ := segments(t, raw)
	if cnf, _ := claims["cnf"].(map[string]any); cnf["jkt"] != c.KeyThumbprint {
		t.Fatalf("cnf = %v, want jkt %s", claims["cnf"], c.KeyThumbprint)
	}
	got, err := f.v.Verify(ctx, raw)
	if err != nil || got.KeyThumbprint != c.KeyThumbprint {
		t.Fatalf("Verify = %+v, %v", got, err)
	}

	_, plain, _ := segments(t, f.mint(t, f.claims()))
	if _, ok := plain["cnf"]; ok {
		t.Fatalf("bearer token carries cnf: %v", plain["cnf"])
	}

	forged := f.rawClaims()
	forged["cnf"] = map[string]any{"x5t#S256": "abc"}
	_, err = f.v.Verify(ctx, forge(t, f.header(), forged, ed25519Signer(f.key.PrivateKey)))
	if !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("cnf without jkt: err = %v, want ErrInvalidToken", err)
	}
}
