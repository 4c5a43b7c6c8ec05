package token

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
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
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	a, err := NewRefreshToken(at)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewRefreshToken(at)
	if len(a) != 54 || a == b {
		t.Errorf("NewRefreshToken = %q, %q", a, b)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(a)
	if err != nil || len(raw) != 40 {
		t.Fatalf("refresh token %q is not 40 bytes of base64url: %v", a, err)
	}
	if got := int64(binary.BigEndian.Uint64(raw)); got != at.UnixMicro() {
		t.Errorf("prefix = %d, want the issue time %d", got, at.UnixMicro())
	}
	h := HashRefreshToken(a)
	sum := sha256.Sum256([]byte(a))
	if len(h) != 32 || !bytes.Equal(h[:8], raw[:8]) || !bytes.Equal(h[8:], sum[:24]) {
		t.Errorf("HashRefreshToken(%q) = %x, want the prefix and 24 bytes of SHA-256", a, h)
	}
	if id := NewID(); len(id) != 22 || id == NewID() {
		t.Errorf("NewID = %q", id)
	}

	tests := []struct {
		name string
		got  string
		want string
	}{
		// A token of the earlier format keeps its whole SHA-256.
		{"hash", hex.EncodeToString(HashRefreshToken("refresh-token-T")),
			"afdd6e32932f7bd45a6b672a62be002e4d9afaadc3f66dff5da29563deb27b06"},
		// base64url(BE unix micros || HMAC-SHA256), computed independently.
		{"successor", SuccessorToken([]byte("rotation-secret"), "refresh-token-T", at),
			"AAZhj5blykCuklMgrXKRWQPkp22KSqZ8rVu0WqzLcVqP58-rJ4curA"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	s := SuccessorToken([]byte("k"), a, at)
	if s != SuccessorToken([]byte("k"), a, at) || s == SuccessorToken([]byte("k2"), a, at) || s == SuccessorToken([]byte("k"), b, at) {
		t.Error("SuccessorToken is not a keyed function of the token")
	}
	if s == SuccessorToken([]byte("k"), a, at.Add(time.Microsecond)) {
		t.Error("SuccessorToken ignores the issue time")
	}
	if len(s) != 54 {
		t.Errorf("successor %q is not shaped like a refresh token", s)
	}
}

// TestHashRefreshTokenShapes: a string of the new length that is not
// base64url, or a token with one character changed, hashes to something
// else; the prefix is part of what is hashed, so a token whose prefix was
// altered matches nothing.
func TestHashRefreshTokenShapes(t *testing.T) {
	a, _ := NewRefreshToken(time.Now())
	seen := map[string]string{string(HashRefreshToken(a)): a}
	for _, v := range []string{
		strings.Repeat("!", 54), // right length, not base64url
		a[:53] + "x",            // last character changed
		"A" + a[1:],             // prefix changed
		a[:43],                  // cut to the old length
		a + "A",                 // one too long
		strings.ToUpper(a[:10]) + a[10:],
	} {
		if v == a {
			continue
		}
		h := string(HashRefreshToken(v))
		if len(h) != 32 {
			t.Errorf("HashRefreshToken(%q) is %d bytes", v, len(h))
		}
		if prev, dup := seen[h]; dup {
			t.Errorf("HashRefreshToken(%q) = HashRefreshToken(%q)", v, prev)
		}
		seen[h] = v
	}
}

// TestReplaySuccessor: the successor is derived again from its stored hash
// alone, for tokens of both formats, and not with another secret.
func TestReplaySuccessor(t *testing.T) {
	secret := []byte("rotation-secret")
	at := time.Date(2026, 12, 1, 10, 0, 0, 999, time.UTC)
	for _, tok := range []string{"refresh-token-T", "AAZhj5blykCuklMgrXKRWQPkp22KSqZ8rVu0WqzLcVqP58-rJ4curA"} {
		s := SuccessorToken(secret, tok, at)
		got, ok := ReplaySuccessor(secret, tok, HashRefreshToken(s))
		if !ok || got != s {
			t.Errorf("ReplaySuccessor(%q) = %q, %v; want %q", tok, got, ok, s)
		}
		if _, ok := ReplaySuccessor([]byte("another secret"), tok, HashRefreshToken(s)); ok {
			t.Errorf("ReplaySuccessor with another secret matched %q", s)
		}
		if _, ok := ReplaySuccessor(secret, tok+"x", HashRefreshToken(s)); ok {
			t.Errorf("ReplaySuccessor of another token matched %q", s)
		}
	}
	// A successor stored by the earlier format (the HMAC alone, hashed
	// whole) is still answered again during an upgrade.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("refresh-token-T"))
	legacy := base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	if legacy != "rpJTIK1ykVkD5KdtikqmfK1btFqsy3Faj-fPqyeHLqw" {
		t.Fatalf("legacy successor = %q", legacy)
	}
	if got, ok := ReplaySuccessor(secret, "refresh-token-T", HashRefreshToken(legacy)); !ok || got != legacy {
		t.Errorf("ReplaySuccessor of a legacy successor = %q, %v", got, ok)
	}
}
