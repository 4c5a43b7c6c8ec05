package assertion_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/silentrefresh/silentrefresh/assertion"
	"github.com/silentrefresh/silentrefresh/store/sqlite"
)

const aud = "https://auth.example.test"

var now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type keys struct {
	rsa  *rsa.PrivateKey
	ec   *ecdsa.PrivateKey
	ed   ed25519.PrivateKey
	hmac []byte
}

func newKeys(t testing.TB) keys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, dk, _ := ed25519.GenerateKey(rand.Reader)
	return keys{rsa: rk, ec: ek, ed: dk, hmac: []byte("0123456789abcdef0123456789abcdef")}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwks is the public JWK set of k.
func (k keys) jwks() []byte {
	ecb, _ := k.ec.PublicKey.Bytes()
	set := map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "r1", "alg": "RS256", "use": "sig", "n": b64(k.rsa.N.Bytes()), "e": b64(big.NewInt(int64(k.rsa.E)).Bytes())},
		{"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(ecb[1:33]), "y": b64(ecb[33:])},
		{"kty": "OKP", "kid": "d1", "crv": "Ed25519", "x": b64(k.ed.Public().(ed25519.PublicKey))},
	}}
	b, _ := json.Marshal(set)
	return b
}

func replayStore(t testing.TB) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newValidator(t testing.TB, k keys, clock func() time.Time) *assertion.Validator {
	t.Helper()
	dir := t.TempDir()
	jf := filepath.Join(dir, "jwks.json")
	os.WriteFile(jf, k.jwks(), 0o600)
	sf := filepath.Join(dir, "secret")
	os.WriteFile(sf, append(k.hmac, '\n'), 0o600)
	app, err := assertion.ParseIssuer("app=" + jf)
	if err != nil {
		t.Fatal(err)
	}
	app.Claims = []string{"roles", "tenant"}
	small, err := assertion.ParseIssuer("small=hs256:" + sf)
	if err != nil {
		t.Fatal(err)
	}
	v, err := assertion.NewValidator(assertion.Config{
		Issuers:   []assertion.Issuer{app, small},
		Audiences: []string{aud, aud + "/oauth2/token"},
		Replay:    replayStore(t),
		Now:       clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sign signs claims with the method and key, with kid in the header.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func good() jwt.MapClaims {
	return jwt.MapClaims{"iss": "app", "sub": "user-42", "aud": aud, "exp": now.Add(2 * time.Minute).Unix(),
		"iat": now.Unix(), "jti": "j-" + rand.Text(), "roles": []any{"admin"}, "tenant": "acme", "email": "x@example.com"}
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for a, b := range c {
		out[a] = b
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestValidateAccepts(t *testing.T) {
	k := newKeys(t)
	v := newValidator(t, k, func() time.Time { return now })
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		raw  string
	}{
		{"RS256", sign(t, jwt.SigningMethodRS256, k.rsa, "r1", good())},
		{"ES256", sign(t, jwt.SigningMethodES256, k.ec, "e1", good())},
		{"EdDSA", sign(t, jwt.SigningMethodEdDSA, k.ed, "d1", good())},
		{"aud array with token endpoint", sign(t, jwt.SigningMethodEdDSA, k.ed, "d1", with(good(), "aud", []any{"other", aud + "/oauth2/token"}))},
		{"HS256 without kid", sign(t, jwt.SigningMethodHS256, k.hmac, "", with(good(), "iss", "small"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := v.Validate(ctx, tc.raw)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if a.Subject != "user-42" || a.JTI == "" || !a.ExpiresAt.Equal(now.Add(2*time.Minute)) {
				t.Errorf("assertion = %+v", a)
			}
			if a.SessionSubject() != a.Issuer.Name+"|user-42" {
				t.Errorf("session subject %q is not namespaced", a.SessionSubject())
			}
		})
	}
	a, _ := v.Validate(ctx, sign(t, jwt.SigningMethodEdDSA, k.ed, "d1", good()))
	if len(a.Claims) != 2 || a.Claims["tenant"] != "acme" || a.Claims["email"] != nil {
		t.Errorf("claims = %v, want only the allow-listed roles and tenant", a.Claims)
	}
}

// TestValidateRefusesEveryRule: each rule of RFC 7523 section 3 has its
// hostile assertion, refused with an *Error naming that rule.
func TestValidateRefusesEveryRule(t *testing.T) {
	k := newKeys(t)
	v := newValidator(t, k, func() time.Time { return now })
	ctx := context.Background()
	_, otherEd, _ := ed25519.GenerateKey(rand.Reader)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	ed := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "d1", c) }
	unsigned := func(c jwt.MapClaims) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}
	replayed := ed(good())
	if _, err := v.Validate(ctx, replayed); err != nil {
		t.Fatal(err)
	}
	hugeClaims := with(good(), "roles", []any{strings.Repeat("r", 5000)})
	for _, tc := range []struct {
		name string
		raw  string
		rule int
		want string
	}{
		{"no iss", ed(with(good(), "iss", nil)), 1, "no iss"},
		{"untrusted iss", ed(with(good(), "iss", "evil")), 1, `"evil" is not trusted`},
		{"iss of another case", ed(with(good(), "iss", "App")), 1, "not trusted"},
		{"no sub", ed(with(good(), "sub", nil)), 2, "no sub"},
		{"empty sub", ed(with(good(), "sub", "")), 2, "no sub"},
		{"no aud", ed(with(good(), "aud", nil)), 3, "no aud"},
		{"other aud", ed(with(good(), "aud", "https://elsewhere")), 3, "does not name this server"},
		{"aud number", ed(with(good(), "aud", 7)), 3, "neither a string"},
		{"no exp", ed(with(good(), "exp", nil)), 4, "no exp"},
		{"expired", ed(with(good(), "exp", now.Add(-time.Minute).Unix())), 4, "expired"},
		{"too far ahead", ed(with(good(), "exp", now.Add(10*time.Minute).Unix())), 4, "more than 5m0s ahead"},
		{"exp string", ed(with(good(), "exp", "tomorrow")), 4, "not a NumericDate"},
		{"not yet valid", ed(with(good(), "nbf", now.Add(time.Minute).Unix())), 5, "not valid before"},
		{"iat in the future", ed(with(good(), "iat", now.Add(2*time.Minute).Unix())), 6, "in the future"},
		{"iat long ago", ed(with(good(), "iat", now.Add(-time.Hour).Unix())), 6, "ago"},
		{"no jti", ed(with(good(), "jti", nil)), 7, "no jti"},
		{"long jti", ed(with(good(), "jti", strings.Repeat("j", 300))), 7, "longer than"},
		{"replayed", replayed, 7, "already used"},
		{"claims too large", ed(hugeClaims), 8, "over the limit"},
		{"unsigned", unsigned(good()), 9, "not signed with an accepted algorithm"},
		{"signed by another key", sign(t, jwt.SigningMethodEdDSA, otherEd, "d1", good()), 9, "does not verify"},
		{"unknown kid", sign(t, jwt.SigningMethodEdDSA, otherEd, "zz", good()), 9, `kid "zz"`},
		{"alg of another key", sign(t, jwt.SigningMethodRS256, otherRSA, "d1", good()), 9, `"RS256" is not "EdDSA"`},
		{"HS256 with the RSA public key", sign(t, jwt.SigningMethodHS256, k.rsa.PublicKey.N.Bytes(), "r1", good()), 9, `"HS256" is not "RS256"`},
		{"empty", "", 10, "empty"},
		{"garbage", "not a jwt", 10, "three parts"},
		{"bad base64", "a.b.c", 10, "not a valid JWT"},
		{"JWE", "a.b.c.d.e", 10, "three parts"},
		{"oversized", strings.Repeat("a", assertion.MaxSize+1), 10, "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Validate(ctx, tc.raw)
			var ae *assertion.Error
			if !errors.As(err, &ae) || !errors.Is(err, assertion.ErrInvalid) {
				t.Fatalf("Validate = %v, want an *assertion.Error", err)
			}
			if ae.Rule != tc.rule || !strings.Contains(ae.Description(), tc.want) {
				t.Fatalf("refused %q (rule %d), want rule %d naming %q", ae.Description(), ae.Rule, tc.rule, tc.want)
			}
			if !strings.Contains(ae.Description(), "RFC 7523 section 3, rule") {
				t.Errorf("description %q does not name the rule", ae.Description())
			}
		})
	}
}

func TestRefusedAssertionRecordsNoJTI(t *testing.T) {
	k := newKeys(t)
	clk := now
	v := newValidator(t, k, func() time.Time { return clk })
	c := with(good(), "nbf", now.Add(time.Minute).Unix())
	raw := sign(t, jwt.SigningMethodEdDSA, k.ed, "d1", c)
	if _, err := v.Validate(context.Background(), raw); err == nil {
		t.Fatal("accepted before nbf")
	}
	clk = now.Add(time.Minute)
	if _, err := v.Validate(context.Background(), raw); err != nil {
		t.Fatalf("after nbf: %v (the refusal recorded the jti)", err)
	}
}

func TestRemoteKeySet(t *testing.T) {
	k := newKeys(t)
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Write(k.jwks())
	}))
	defer srv.Close()
	iss, err := assertion.ParseIssuer("app=" + srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := iss.Keys.Key(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := iss.Keys.Key(ctx, "made-up"); !errors.Is(err, assertion.ErrUnknownKey) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches for one known and 20 unknown kids within the interval, want 1", n)
	}
}

func TestParseJWKSRefusesBadKeys(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	for name, set := range map[string]string{
		"empty":       `{"keys":[]}`,
		"not json":    `{`,
		"private":     `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + b64(make([]byte, 32)) + `","d":"AA"}]}`,
		"oct":         `{"keys":[{"kty":"oct","k":"AAAA"}]}`,
		"small rsa":   `{"keys":[{"kty":"RSA","n":"` + b64(small.N.Bytes()) + `","e":"AQAB"}]}`,
		"bad curve":   `{"keys":[{"kty":"EC","crv":"P-192","x":"AA","y":"AA"}]}`,
		"bad point":   `{"keys":[{"kty":"EC","crv":"P-256","x":"` + b64(make([]byte, 32)) + `","y":"` + b64(make([]byte, 32)) + `"}]}`,
		"no kid in 2": `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + b64(make([]byte, 32)) + `"},{"kty":"OKP","crv":"Ed25519","kid":"b","x":"` + b64(make([]byte, 32)) + `"}]}`,
		"rsa with es": `{"keys":[{"kty":"RSA","alg":"ES256","n":"AA","e":"AQAB"}]}`,
		"unknown kty": `{"keys":[{"kty":"XYZ"}]}`,
	} {
		if _, err := assertion.ParseJWKS([]byte(set)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := assertion.HMACKeySet([]byte("short")); err == nil {
		t.Error("short HS256 secret accepted")
	}
	if _, err := assertion.ParseIssuer("noequals"); err == nil {
		t.Error("issuer without = accepted")
	}
	if _, err := assertion.ParseIssuer("app=http://keys.example.com/jwks.json"); err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("a plain-http JWKS URL on another host: %v", err)
	}
	for _, ok := range []string{"app=https://keys.example.com/jwks.json", "app=http://127.0.0.1:9/jwks.json", "app=http://localhost:9/jwks.json", "app=http://[::1]:9/jwks.json"} {
		if _, err := assertion.ParseIssuer(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// FuzzValidate feeds arbitrary strings to the parser: never a panic, and
// every refusal an *Error.
func FuzzValidate(f *testing.F) {
	k := newKeys(f)
	v := newValidator(f, k, func() time.Time { return now })
	for _, s := range []string{"", "a.b.c", "e30.e30.", "eyJhbGciOiJub25lIn0.e30.", sign(f, jwt.SigningMethodEdDSA, k.ed, "d1", good()),
		sign(f, jwt.SigningMethodHS256, k.hmac, "", with(good(), "iss", "small")), "....", "\xff.\xff.\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		_, err := v.Check(context.Background(), raw)
		if err != nil && !errors.Is(err, assertion.ErrInvalid) {
			t.Fatalf("Check(%q) = %v, not an *assertion.Error", raw, err)
		}
	})
}
