package token

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

func TestThumbprintRFC8037(t *testing.T) {
	// RFC 8037, appendix A.3.
	x, err := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Thumbprint(ed25519.PublicKey(x)), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Errorf("Thumbprint = %q, want %q", got, want)
	}
}

func TestGenerateKey(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, err := GenerateKey(now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateKey(now)
	if err != nil {
		t.Fatal(err)
	}
	if a.Algorithm != AlgEdDSA || !a.CreatedAt.Equal(now) || len(a.PrivateKey) != ed25519.PrivateKeySize {
		t.Errorf("GenerateKey = %+v", a)
	}
	if a.ID != Thumbprint(a.PrivateKey.Public().(ed25519.PublicKey)) {
		t.Errorf("kid %q is not the thumbprint", a.ID)
	}
	if a.ID == b.ID {
		t.Error("two keys share an ID")
	}
}

func TestEnsureSigningKey(t *testing.T) {
	ctx := context.Background()
	ks := &memKeyStore{}
	for range 2 {
		if err := EnsureSigningKey(ctx, ks, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if keys, _ := ks.SigningKeys(ctx); len(keys) != 1 {
		t.Errorf("%d keys, want 1", len(keys))
	}
	down := errors.New("down")
	ks.setFail(down)
	if err := EnsureSigningKey(ctx, ks, time.Now()); !errors.Is(err, down) {
		t.Errorf("EnsureSigningKey with failing store = %v", err)
	}
}

func TestRefreshTokenHelpers(t *testing.T) {
	a, err := NewRefreshToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewRefreshToken()
	if len(a) != 43 || a == b {
		t.Errorf("NewRefreshToken = %q, %q", a, b)
	}
	if raw, err := base64.RawURLEncoding.Strict().DecodeString(a); err != nil || len(raw) != 32 {
		t.Errorf("refresh token %q is not 32 bytes of base64url: %v", a, err)
	}
	if id := NewID(); len(id) != 22 || id == NewID() {
		t.Errorf("NewID = %q", id)
	}

	tests := []struct {
		name string
		got  string
		want string
	}{
		{"hash", hex.EncodeToString(HashRefreshToken("refresh-token-T")),
			"afdd6e32932f7bd45a6b672a62be002e4d9afaadc3f66dff5da29563deb27b06"},
		{"successor", SuccessorToken([]byte("rotation-secret"), "refresh-token-T"),
			"rpJTIK1ykVkD5KdtikqmfK1btFqsy3Faj-fPqyeHLqw"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	s := SuccessorToken([]byte("k"), a)
	if s != SuccessorToken([]byte("k"), a) || s == SuccessorToken([]byte("k2"), a) || s == SuccessorToken([]byte("k"), b) {
		t.Error("SuccessorToken is not a keyed function of the token")
	}
	if len(s) != 43 {
		t.Errorf("successor %q is not shaped like a refresh token", s)
	}
}
