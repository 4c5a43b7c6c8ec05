package token

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzVerify checks that no input but a token the issuer minted verifies,
// and that Verify never panics. The seeds, which run under plain go test,
// are real tokens and tampered ones.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	valid := map[string]bool{}
	seed := func(c Claims) string {
		raw := fx.mint(f, c)
		valid[raw] = true
		f.Add(raw)
		return raw
	}
	c := fx.claims()
	good := seed(c)
	c.Scope, c.ClientID, c.SessionID = "", "", ""
	seed(c)
	c.Audience = []string{"x", testAudience}
	seed(c)

	parts := strings.Split(good, ".")
	enc := base64.RawURLEncoding
	h, claims := fx.header(), fx.rawClaims()
	for _, s := range []string{
		"", ".", "..", "...", "a.b.c", good + ".", "." + good, good[:len(good)-1],
		parts[0] + "." + parts[1] + ".",
		parts[0] + ".." + parts[2],
		strings.ToUpper(good),
		strings.Replace(good, parts[1], parts[1][1:], 1),
		parts[1] + "." + parts[0] + "." + parts[2],
		enc.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+fx.key.ID+`"}`)) + "." + parts[1] + ".",
		enc.EncodeToString([]byte(`{"alg":"HS256","typ":"at+jwt","kid":"`+fx.key.ID+`"}`)) + "." + parts[1] + "." + parts[2],
		enc.EncodeToString([]byte(`{"alg":"EdDSA","typ":"at+jwt","kid":"`+fx.key.ID+`","kid":"x"}`)) + "." + parts[1] + "." + parts[2],
		enc.EncodeToString([]byte(`{"alg":"EdDSA","typ":"at+jwt","kid":"`+fx.key.ID+`"}`)) + "." + parts[1] + "." + parts[2],
		enc.EncodeToString([]byte(`null`)) + "." + enc.EncodeToString([]byte(`null`)) + "." + parts[2],
		enc.EncodeToString([]byte(`{"alg":"EdDSA"}`)) + "." + enc.EncodeToString([]byte(`{"exp":1e400}`)) + ".",
		parts[0] + "." + enc.EncodeToString([]byte(`{"exp":-1e308,"aud":[1,2],"iss":{}}`)) + "." + parts[2],
		forge(f, h, map[string]any{"exp": 1e18, "iss": testIssuer, "aud": testAudience}, func([]byte) []byte { return make([]byte, 64) }),
		forge(f, h, claims, func([]byte) []byte { return []byte("sig") }),
	} {
		f.Add(s)
	}
	for i := range len(good) {
		b := []byte(good)
		b[i] ^= 0x01
		f.Add(string(b))
	}

	f.Fuzz(func(t *testing.T, raw string) {
		c, err := fx.v.Verify(context.Background(), raw)
		if err == nil {
			if !valid[raw] {
				t.Fatalf("Verify accepted an input that was never minted: %q -> %+v", raw, c)
			}
			return
		}
		if valid[raw] {
			t.Fatalf("Verify refused a minted token: %v", err)
		}
		if !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("error %v does not wrap ErrInvalidToken", err)
		}
		if c.Subject != "" || !c.ExpiresAt.Equal(time.Time{}) {
			t.Fatalf("claims returned with an error: %+v", c)
		}
	})
}
