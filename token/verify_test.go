package token

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMintVerifyRoundTrip(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	in := f.claims()
	raw := f.mint(t, in)

	header, payload, _ := segments(t, raw)
	wantHeader := map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": f.key.ID}
	if len(header) != len(wantHeader) {
		t.Errorf("header = %v, want %v", header, wantHeader)
	}
	for k, v := range wantHeader {
		if header[k] != v {
			t.Errorf("header[%q] = %v, want %v", k, header[k], v)
		}
	}
	if first := strings.SplitN(raw, ".", 2)[0]; first != base64.RawURLEncoding.EncodeToString(
		[]byte(`{"alg":"EdDSA","typ":"at+jwt","kid":"`+f.key.ID+`"}`)) {
		t.Errorf("header segment is not the canonical header")
	}
	for _, k := range []string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid", "scope"} {
		if _, ok := payload[k]; !ok {
			t.Errorf("payload lacks %q: %v", k, payload)
		}
	}

	got, err := f.v.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := in
	want.Issuer = testIssuer
	want.Audience = []string{testAudience}
	want.ID = got.ID
	if len(got.ID) != 22 {
		t.Errorf("jti = %q, want 22 random characters", got.ID)
	}
	if got.Issuer != want.Issuer || got.Subject != want.Subject || !slices.Equal(got.Audience, want.Audience) ||
		!got.ExpiresAt.Equal(want.ExpiresAt) || !got.IssuedAt.Equal(want.IssuedAt) ||
		got.ClientID != want.ClientID || got.SessionID != want.SessionID || got.Scope != want.Scope {
		t.Errorf("Verify = %+v\nwant     %+v", got, want)
	}
	if got.ExpiresAt.Location() != time.UTC {
		t.Errorf("ExpiresAt in %v, want UTC", got.ExpiresAt.Location())
	}

	// A second token has a fresh jti.
	if other, _ := f.v.Verify(ctx, f.mint(t, in)); other.ID == got.ID {
		t.Errorf("two mints share jti %q", got.ID)
	}
}

func TestMintKeepsGivenClaimsAndOmitsEmpty(t *testing.T) {
	f := newFixture(t)
	c := Claims{
		Issuer:    "other-issuer",
		Audience:  []string{"a", "b"},
		Subject:   "s",
		ID:        "fixed-id",
		ExpiresAt: f.clock.Now().Add(time.Minute),
	}
	raw := f.mint(t, c)
	_, payload, _ := segments(t, raw)
	for _, k := range []string{"client_id", "sid", "scope"} {
		if _, ok := payload[k]; ok {
			t.Errorf("payload has empty %q: %v", k, payload)
		}
	}
	if payload["iss"] != "other-issuer" || payload["jti"] != "fixed-id" {
		t.Errorf("payload = %v", payload)
	}
	if aud, _ := payload["aud"].([]any); len(aud) != 2 {
		t.Errorf("aud = %v", payload["aud"])
	}
	if iat, _ := payload["iat"].(float64); iat == 0 {
		t.Errorf("iat not filled in: %v", payload)
	}
	// Issued for another issuer: our verifier refuses it.
	if _, err := f.v.Verify(context.Background(), raw); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Verify = %v, want ErrInvalidToken", err)
	}
}

func TestMintErrors(t *testing.T) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		name   string
		ks     *memKeyStore
		issuer string
		aud    []string
		c      Claims
		want   error
	}{
		{"no key", &memKeyStore{}, "i", []string{"a"}, Claims{Subject: "s", ExpiresAt: exp}, ErrNoSigningKey},
		{"no subject", nil, "i", []string{"a"}, Claims{ExpiresAt: exp}, nil},
		{"no expiry", nil, "i", []string{"a"}, Claims{Subject: "s"}, nil},
		{"no issuer", nil, "", []string{"a"}, Claims{Subject: "s", ExpiresAt: exp}, nil},
		{"no audience", nil, "i", nil, Claims{Subject: "s", ExpiresAt: exp}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks := tt.ks
			if ks == nil {
				ks = &memKeyStore{}
				if err := EnsureSigningKey(ctx, ks, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			_, err := NewIssuer(ks, tt.issuer, tt.aud).Mint(ctx, tt.c)
			if err == nil {
				t.Fatal("Mint succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Mint = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestIssuerReloadSignsWithNewestKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.mint(t, f.claims())

	newer, err := GenerateKey(f.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ks.AddSigningKey(ctx, newer); err != nil {
		t.Fatal(err)
	}
	if kid, _ := f.iss.KeyID(ctx); kid != f.key.ID {
		t.Errorf("before Reload: kid %q, want the cached %q", kid, f.key.ID)
	}
	if err := f.iss.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	raw := f.mint(t, f.claims())
	if h, _, _ := segments(t, raw); h["kid"] != newer.ID {
		t.Errorf("kid = %v, want newest %q", h["kid"], newer.ID)
	}
	// The verifier learns the new kid on first sight.
	if _, err := f.v.Verify(ctx, raw); err != nil {
		t.Errorf("Verify with new key: %v", err)
	}

	// A failing store keeps the key in use.
	f.ks.setFail(errors.New("down"))
	if err := f.iss.Reload(ctx); err == nil {
		t.Error("Reload with failing store succeeded")
	}
	if kid, _ := f.iss.KeyID(ctx); kid != newer.ID {
		t.Errorf("after failed Reload: kid %q, want %q", kid, newer.ID)
	}
}

// TestIssuerConcurrentFirstMint mints from many goroutines at once on a
// fresh Issuer: the store is read once and every token verifies.
func TestIssuerConcurrentFirstMint(t *testing.T) {
	f := newFixture(t)
	f.ks.reads.Store(0)
	const n = 32
	tokens := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	done := make(chan int)
	for i := range n {
		go func() {
			<-start
			tokens[i], errs[i] = f.iss.Mint(context.Background(), f.claims())
			done <- i
		}()
	}
	close(start)
	for range n {
		<-done
	}
	if r := f.ks.reads.Load(); r != 1 {
		t.Errorf("store read %d times, want 1", r)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if _, err := f.v.Verify(context.Background(), tokens[i]); err != nil {
			t.Errorf("token %d: %v", i, err)
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	f := newFixture(t)
	other, err := GenerateKey(f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	pub := f.key.PrivateKey.Public().(ed25519.PublicKey)
	sign := ed25519Signer(f.key.PrivateKey)
	with := func(edit func(h, c map[string]any)) func() string {
		return func() string {
			h, c := f.header(), f.rawClaims()
			edit(h, c)
			return forge(t, h, c, sign)
		}
	}
	hmacWith := func(alg string, key []byte) func() string {
		return func() string {
			h := f.header()
			h["alg"] = alg
			return forge(t, h, f.rawClaims(), func(in []byte) []byte {
				hf := sha256.New
				if alg == "HS512" {
					hf = sha512.New
				}
				m := hmac.New(hf, key)
				m.Write(in)
				return m.Sum(nil)
			})
		}
	}
	valid := f.mint(t, f.claims())
	parts := strings.Split(valid, ".")

	tests := []struct {
		name  string
		token func() string
		want  error  // ErrInvalidToken unless set
		msg   string // part of the error message
	}{
		{"alg none", with(func(h, _ map[string]any) { h["alg"] = "none" }), nil, `alg "none"`},
		{"alg none, no signature", func() string {
			h := f.header()
			h["alg"] = "none"
			tok := forge(t, h, f.rawClaims(), func([]byte) []byte { return nil })
			return tok
		}, nil, `alg "none"`},
		{"alg None", with(func(h, _ map[string]any) { h["alg"] = "None" }), nil, "alg"},
		{"HS256 keyed with the public key", hmacWith("HS256", pub), nil, `alg "HS256"`},
		{"HS256 keyed with the JWK x", hmacWith("HS256", []byte(base64.RawURLEncoding.EncodeToString(pub))), nil, `alg "HS256"`},
		{"HS512 keyed with the public key", hmacWith("HS512", pub), nil, `alg "HS512"`},
		{"RS256", with(func(h, _ map[string]any) { h["alg"] = "RS256" }), nil, `alg "RS256"`},
		{"no alg", with(func(h, _ map[string]any) { delete(h, "alg") }), nil, "alg"},
		{"unknown kid", func() string {
			h := f.header()
			h["kid"] = other.ID
			return forge(t, h, f.rawClaims(), ed25519Signer(other.PrivateKey))
		}, ErrKeyNotFound, "unknown kid"},
		{"no kid", with(func(h, _ map[string]any) { delete(h, "kid") }), nil, "no kid"},
		{"kid not a string", with(func(h, _ map[string]any) { h["kid"] = 7 }), nil, "no kid"},
		{"our kid, another key's signature", func() string {
			return forge(t, f.header(), f.rawClaims(), ed25519Signer(other.PrivateKey))
		}, nil, "bad signature"},
		{"wrong issuer", with(func(_, c map[string]any) { c["iss"] = "https://evil.test" }), nil, "issuer"},
		{"no issuer", with(func(_, c map[string]any) { delete(c, "iss") }), nil, "iss"},
		{"wrong audience", with(func(_, c map[string]any) { c["aud"] = []string{"other"} }), nil, "audience"},
		{"audience as wrong string", with(func(_, c map[string]any) { c["aud"] = "other" }), nil, "audience"},
		{"no audience", with(func(_, c map[string]any) { delete(c, "aud") }), nil, "aud"},
		{"no exp", with(func(_, c map[string]any) { delete(c, "exp") }), nil, "exp"},
		{"exp not a number", with(func(_, c map[string]any) { c["exp"] = "tomorrow" }), nil, "malformed"},
		{"expired", with(func(_, c map[string]any) { c["exp"] = f.clock.Now().Add(-time.Second).Unix() }), ErrTokenExpired, "expired at"},
		{"expired and wrong issuer", with(func(_, c map[string]any) {
			c["exp"] = f.clock.Now().Add(-time.Hour).Unix()
			c["iss"] = "x"
		}), nil, "issuer"},
		{"not yet valid", with(func(_, c map[string]any) { c["nbf"] = f.clock.Now().Add(time.Minute).Unix() }), nil, "not valid yet"},
		{"typ missing", with(func(h, _ map[string]any) { delete(h, "typ") }), nil, "typ"},
		{"typ JWT", with(func(h, _ map[string]any) { h["typ"] = "JWT" }), nil, `typ "JWT"`},
		{"typ number", with(func(h, _ map[string]any) { h["typ"] = 1 }), nil, "typ"},
		{"crit header", with(func(h, _ map[string]any) { h["crit"] = []string{"exp"} }), nil, "crit"},
		{"oversized", func() string {
			c := f.claims()
			c.Scope = strings.Repeat("s", MaxTokenSize)
			return f.mint(t, c)
		}, nil, "over the limit"},
		{"one byte over", func() string { return valid + strings.Repeat("A", MaxTokenSize+1-len(valid)) }, nil, "over the limit"},
		{"empty", func() string { return "" }, nil, "empty"},
		{"one segment", func() string { return parts[0] }, nil, "malformed"},
		{"two segments", func() string { return parts[0] + "." + parts[1] }, nil, "malformed"},
		{"four segments", func() string { return valid + "." + parts[2] }, nil, "malformed"},
		{"header not base64", func() string { return "!!." + parts[1] + "." + parts[2] }, nil, "malformed"},
		{"header not JSON", func() string {
			return base64.RawURLEncoding.EncodeToString([]byte("{")) + "." + parts[1] + "." + parts[2]
		}, nil, "malformed"},
		{"claims not JSON", func() string {
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("[]")) + "." + parts[2]
		}, nil, "malformed"},
		{"padded signature", func() string { return valid + "==" }, nil, "malformed"},
		{"signature with non-zero trailing bits", func() string {
			// 64 bytes encode to 86 characters; the last carries 4
			// unused bits. Setting one must not be accepted.
			s := []byte(parts[2])
			last := strings.IndexByte(base64URLAlphabet, s[len(s)-1])
			s[len(s)-1] = base64URLAlphabet[last|1]
			return parts[0] + "." + parts[1] + "." + string(s)
		}, nil, ""},
		{"tampered claims", func() string {
			c := f.rawClaims()
			c["sub"] = "admin"
			forged := forge(t, f.header(), c, sign)
			return strings.Join([]string{parts[0], strings.Split(forged, ".")[1], parts[2]}, ".")
		}, nil, "bad signature"},
		{"tampered signature", func() string {
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			sig[0] ^= 1
			return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		}, nil, "bad signature"},
		{"short signature", func() string { return parts[0] + "." + parts[1] + "." + parts[2][:40] }, nil, "bad signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.token()
			_, err := f.v.Verify(context.Background(), raw)
			if err == nil {
				t.Fatal("Verify accepted the token")
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("error %v does not wrap ErrInvalidToken", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v does not wrap %v", err, tt.want)
			}
			if tt.want != ErrTokenExpired && errors.Is(err, ErrTokenExpired) {
				t.Errorf("error %v wraps ErrTokenExpired", err)
			}
			t.Logf("%v", err)
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
		})
	}
}

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func TestVerifyAccepts(t *testing.T) {
	f := newFixture(t)
	sign := ed25519Signer(f.key.PrivateKey)
	tests := []struct {
		name string
		edit func(h, c map[string]any)
	}{
		{"as forged", func(h, c map[string]any) {}},
		{"typ application/at+jwt", func(h, _ map[string]any) { h["typ"] = "application/at+jwt" }},
		{"typ in capitals", func(h, _ map[string]any) { h["typ"] = "AT+JWT" }},
		{"aud as a string", func(_, c map[string]any) { c["aud"] = testAudience }},
		{"aud among others", func(_, c map[string]any) { c["aud"] = []string{"x", testAudience} }},
		{"nbf passed", func(_, c map[string]any) { c["nbf"] = f.clock.Now().Unix() }},
		{"unknown claims", func(_, c map[string]any) { c["roles"] = []string{"a"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, c := f.header(), f.rawClaims()
			tt.edit(h, c)
			if _, err := f.v.Verify(context.Background(), forge(t, h, c, sign)); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		leeway  time.Duration
		expAgo  time.Duration // exp is this long before now
		expired bool
	}{
		{0, -time.Second, false},
		{0, 0, true}, // exp is the first instant the token is invalid
		{0, time.Second, true},
		{10 * time.Second, 5 * time.Second, false},
		{10 * time.Second, 9 * time.Second, false},
		{10 * time.Second, 11 * time.Second, true},
		{MaxLeeway, 29 * time.Second, false},
		{MaxLeeway, 31 * time.Second, true},
	}
	for _, tt := range tests {
		v := f.verifier(t, tt.leeway)
		c := f.claims()
		c.ExpiresAt = f.clock.Now().Add(-tt.expAgo)
		_, err := v.Verify(context.Background(), f.mint(t, c))
		if got := errors.Is(err, ErrTokenExpired); got != tt.expired || (err != nil && !got) {
			t.Errorf("leeway %v, exp %v ago: Verify = %v, want expired %v", tt.leeway, tt.expAgo, err, tt.expired)
		}
	}
}

func TestNewVerifierConfig(t *testing.T) {
	keys := NewStaticKeySet()
	ok := VerifierConfig{Issuer: "i", Audience: "a"}
	tests := []struct {
		name string
		keys KeySet
		edit func(*VerifierConfig)
		ok   bool
	}{
		{"defaults", keys, func(*VerifierConfig) {}, true},
		{"leeway 30s", keys, func(c *VerifierConfig) { c.Leeway = 30 * time.Second }, true},
		{"leeway 31s", keys, func(c *VerifierConfig) { c.Leeway = 31 * time.Second }, false},
		{"negative leeway", keys, func(c *VerifierConfig) { c.Leeway = -time.Nanosecond }, false},
		{"no issuer", keys, func(c *VerifierConfig) { c.Issuer = "" }, false},
		{"no audience", keys, func(c *VerifierConfig) { c.Audience = "" }, false},
		{"no keys", nil, func(*VerifierConfig) {}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			_, err := NewVerifier(tt.keys, cfg)
			if (err == nil) != tt.ok {
				t.Errorf("NewVerifier = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// TestVerifyPinsKeyAlgorithm checks that a token is verified only with the
// algorithm of the key its kid names.
func TestVerifyPinsKeyAlgorithm(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := NewStaticKeySet(PublicKey{ID: "k1", Algorithm: "ES256", Key: pub})
	v, err := NewVerifier(keys, VerifierConfig{Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"iss": testIssuer, "aud": testAudience, "exp": time.Now().Add(time.Hour).Unix()}
	for _, alg := range []string{AlgEdDSA, "ES256"} {
		raw := forge(t, map[string]any{"alg": alg, "typ": "at+jwt", "kid": "k1"}, claims, ed25519Signer(priv))
		if _, err := v.Verify(context.Background(), raw); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "alg") {
			t.Errorf("alg %s: Verify = %v, want a refusal naming the alg", alg, err)
		}
	}
}

func TestVerifyKeySetFailureIsWrapped(t *testing.T) {
	f := newFixture(t)
	raw := f.mint(t, f.claims())
	down := errors.New("store down")
	f.ks.setFail(down)
	_, err := f.v.Verify(context.Background(), raw)
	if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, down) {
		t.Errorf("Verify = %v, want ErrInvalidToken wrapping the store error", err)
	}
}

func TestKeyDeletedIsRefused(t *testing.T) {
	ctx := context.Background()
	t.Run("after Reload", func(t *testing.T) {
		f := newFixture(t)
		raw := f.mint(t, f.claims())
		if _, err := f.v.Verify(ctx, raw); err != nil {
			t.Fatal(err)
		}
		if err := f.ks.DeleteSigningKey(ctx, f.key.ID); err != nil {
			t.Fatal(err)
		}
		if err := f.keys.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := f.v.Verify(ctx, raw); !errors.Is(err, ErrKeyNotFound) {
			t.Errorf("Verify after delete = %v, want unknown kid", err)
		}
	})
	t.Run("on another replica, after max age", func(t *testing.T) {
		f := newFixture(t)
		raw := f.mint(t, f.claims())
		if _, err := f.v.Verify(ctx, raw); err != nil {
			t.Fatal(err)
		}
		if err := f.ks.DeleteSigningKey(ctx, f.key.ID); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(DefaultStoreMaxAge - time.Millisecond)
		if _, err := f.v.Verify(ctx, raw); err != nil {
			t.Errorf("Verify within max age = %v, want the cached key to verify", err)
		}
		f.clock.Advance(time.Millisecond)
		if _, err := f.v.Verify(ctx, raw); !errors.Is(err, ErrKeyNotFound) {
			t.Errorf("Verify after max age = %v, want unknown kid", err)
		}
	})
}
