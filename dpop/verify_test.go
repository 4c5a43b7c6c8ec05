package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var t0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

const (
	tokenURL = "https://auth.example.com/oauth2/token"
	tok      = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2ln"
)

// proofParts is a proof before it is signed: every test case changes one
// thing of a valid one.
type proofParts struct {
	header map[string]any
	claims map[string]any
	signer crypto.Signer // signs; the header's jwk is of key unless replaced
	alg    string        // the method signing uses; header alg unless set
}

func jwkOf(t testing.TB, pub crypto.PublicKey) map[string]any {
	t.Helper()
	b, err := publicJWK(pub)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func validParts(t testing.TB, key crypto.Signer) proofParts {
	alg := AlgES256
	if _, ok := key.(ed25519.PrivateKey); ok {
		alg = AlgEdDSA
	}
	return proofParts{
		header: map[string]any{"typ": "dpop+jwt", "alg": alg, "jwk": jwkOf(t, key.Public())},
		claims: map[string]any{"jti": "id-1", "htm": "POST", "htu": tokenURL, "iat": t0.Unix(),
			"ath": AccessTokenHash(tok)},
		signer: key,
	}
}

func (p proofParts) sign(t testing.TB) string {
	t.Helper()
	hb, _ := json.Marshal(p.header)
	cb, _ := json.Marshal(p.claims)
	in := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	alg := p.alg
	if alg == "" {
		alg, _ = p.header["alg"].(string)
	}
	var sig []byte
	var err error
	switch k := p.signer.(type) {
	case *ecdsa.PrivateKey:
		sig, err = jwt.SigningMethodES256.Sign(in, k)
	case ed25519.PrivateKey:
		sig, err = jwt.SigningMethodEdDSA.Sign(in, k)
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = alg
	return in + "." + b64.EncodeToString(sig)
}

func mustKey(t testing.TB, alg string) crypto.Signer {
	t.Helper()
	k, err := GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestVerifier(t testing.TB, nonces *Nonces) *Verifier {
	t.Helper()
	v, err := NewVerifier(Config{Now: func() time.Time { return t0 }, Nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var resourceReq = Request{Method: "POST", URL: tokenURL, AccessToken: tok}

// TestVerifyRules refuses, for every rule of RFC 9449 section 4.3, a proof
// that differs from a valid one in exactly that way, and accepts the valid
// one, for both algorithms.
func TestVerifyRules(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA} {
		key := mustKey(t, alg)
		other := mustKey(t, alg)
		otherAlg := map[string]string{AlgES256: AlgEdDSA, AlgEdDSA: AlgES256}[alg]
		cases := []struct {
			name   string
			change func(p *proofParts)
			raw    func(valid string) []string // replaces the header values
			req    *Request
			code   string // "" means accepted
			want   string // in the description
		}{
			{name: "valid"},
			{name: "no ath needed at the token endpoint", change: func(p *proofParts) { delete(p.claims, "ath") },
				req: &Request{Method: "POST", URL: tokenURL}},
			{name: "htu normalised", change: func(p *proofParts) { p.claims["htu"] = "HTTPS://Auth.Example.COM:443/oauth2/./x/../%74oken?q=1#f" }},
			{name: "two headers", raw: func(v string) []string { return []string{v, v} }, code: CodeInvalidProof, want: "exactly one"},
			{name: "empty header", raw: func(string) []string { return []string{""} }, code: CodeInvalidProof, want: "empty"},
			{name: "not a JWS", raw: func(v string) []string { return []string{strings.Replace(v, ".", "", 1)} }, code: CodeInvalidProof, want: "three parts"},
			{name: "header not base64url", raw: func(v string) []string { return []string{"*" + v} }, code: CodeInvalidProof, want: "base64url"},
			{name: "too large", raw: func(v string) []string { return []string{v + strings.Repeat("A", MaxProofSize)} }, code: CodeInvalidProof, want: "over the limit"},
			{name: "no jti", change: func(p *proofParts) { delete(p.claims, "jti") }, code: CodeInvalidProof, want: "jti"},
			{name: "no htm", change: func(p *proofParts) { delete(p.claims, "htm") }, code: CodeInvalidProof, want: "htm"},
			{name: "no htu", change: func(p *proofParts) { delete(p.claims, "htu") }, code: CodeInvalidProof, want: "htu"},
			{name: "no iat", change: func(p *proofParts) { delete(p.claims, "iat") }, code: CodeInvalidProof, want: "iat"},
			{name: "iat a string", change: func(p *proofParts) { p.claims["iat"] = "1700000000" }, code: CodeInvalidProof, want: "NumericDate"},
			{name: "typ jwt", change: func(p *proofParts) { p.header["typ"] = "JWT" }, code: CodeInvalidProof, want: "typ"},
			{name: "no typ", change: func(p *proofParts) { delete(p.header, "typ") }, code: CodeInvalidProof, want: "typ"},
			{name: "alg none", change: func(p *proofParts) { p.header["alg"] = "none"; p.alg = alg }, code: CodeInvalidProof, want: "not accepted"},
			{name: "alg HS256", change: func(p *proofParts) { p.header["alg"] = "HS256"; p.alg = alg }, code: CodeInvalidProof, want: "not accepted"},
			{name: "alg RS256", change: func(p *proofParts) { p.header["alg"] = "RS256"; p.alg = alg }, code: CodeInvalidProof, want: "not accepted"},
			{name: "no alg", change: func(p *proofParts) { delete(p.header, "alg"); p.alg = alg }, code: CodeInvalidProof, want: "no alg"},
			{name: "alg of the other key type", change: func(p *proofParts) { p.header["alg"] = otherAlg; p.alg = alg }, code: CodeInvalidProof, want: "needs a jwk"},
			{name: "crit", change: func(p *proofParts) { p.header["crit"] = []string{"exp"} }, code: CodeInvalidProof, want: "crit"},
			{name: "no jwk", change: func(p *proofParts) { delete(p.header, "jwk") }, code: CodeInvalidProof, want: "no jwk"},
			{name: "jwk with private key", change: func(p *proofParts) {
				j := maps.Clone(p.header["jwk"].(map[string]any))
				j["d"] = b64.EncodeToString(make([]byte, 32))
				p.header["jwk"] = j
			}, code: CodeInvalidProof, want: "private key material"},
			{name: "jwk names another alg", change: func(p *proofParts) {
				j := maps.Clone(p.header["jwk"].(map[string]any))
				j["alg"] = otherAlg
				p.header["jwk"] = j
			}, code: CodeInvalidProof, want: "names alg"},
			{name: "jwk malformed x", change: func(p *proofParts) {
				j := maps.Clone(p.header["jwk"].(map[string]any))
				j["x"] = "AAAA"
				p.header["jwk"] = j
			}, code: CodeInvalidProof, want: "jwk"},
			{name: "jwk of another key", change: func(p *proofParts) { p.header["jwk"] = jwkOf(t, other.Public()) }, code: CodeInvalidProof, want: "signature"},
			{name: "signature tampered", raw: func(v string) []string {
				i := strings.LastIndexByte(v, '.')
				sig, _ := b64.DecodeString(v[i+1:])
				sig[5] ^= 1
				return []string{v[:i+1] + b64.EncodeToString(sig)}
			}, code: CodeInvalidProof, want: "signature"},
			{name: "claims tampered", raw: func(v string) []string {
				parts := strings.Split(v, ".")
				cb, _ := b64.DecodeString(parts[1])
				parts[1] = b64.EncodeToString([]byte(strings.Replace(string(cb), `"POST"`, `"GET"`, 1)))
				return []string{strings.Join(parts, ".")}
			}, req: &Request{Method: "GET", URL: tokenURL, AccessToken: tok}, code: CodeInvalidProof, want: "signature"},
			{name: "htm other method", change: func(p *proofParts) { p.claims["htm"] = "GET" }, code: CodeInvalidProof, want: "htm"},
			{name: "htm lower case", change: func(p *proofParts) { p.claims["htm"] = "post" }, code: CodeInvalidProof, want: "htm"},
			{name: "htu other path", change: func(p *proofParts) { p.claims["htu"] = "https://auth.example.com/api/auth/refresh" }, code: CodeInvalidProof, want: "htu"},
			{name: "htu other host", change: func(p *proofParts) { p.claims["htu"] = "https://evil.example.com/oauth2/token" }, code: CodeInvalidProof, want: "htu"},
			{name: "htu other scheme", change: func(p *proofParts) { p.claims["htu"] = "http://auth.example.com/oauth2/token" }, code: CodeInvalidProof, want: "htu"},
			{name: "htu other port", change: func(p *proofParts) { p.claims["htu"] = "https://auth.example.com:8443/oauth2/token" }, code: CodeInvalidProof, want: "htu"},
			{name: "htu relative", change: func(p *proofParts) { p.claims["htu"] = "/oauth2/token" }, code: CodeInvalidProof, want: "htu"},
			{name: "htu with user info", change: func(p *proofParts) { p.claims["htu"] = "https://u:p@auth.example.com/oauth2/token" }, code: CodeInvalidProof, want: "user information"},
			{name: "iat too old", change: func(p *proofParts) { p.claims["iat"] = t0.Add(-DefaultMaxAge - time.Second).Unix() }, code: CodeInvalidProof, want: "old"},
			{name: "iat in the future", change: func(p *proofParts) { p.claims["iat"] = t0.Add(DefaultMaxSkew + time.Second).Unix() }, code: CodeInvalidProof, want: "future"},
			{name: "no ath with an access token", change: func(p *proofParts) { delete(p.claims, "ath") }, code: CodeInvalidProof, want: "no ath"},
			{name: "ath of another token", change: func(p *proofParts) { p.claims["ath"] = AccessTokenHash(tok + "x") }, code: CodeInvalidProof, want: "ath"},
			{name: "jti empty", change: func(p *proofParts) { p.claims["jti"] = "" }, code: CodeInvalidProof, want: "jti"},
			{name: "jti too long", change: func(p *proofParts) { p.claims["jti"] = strings.Repeat("j", maxJTI+1) }, code: CodeInvalidProof, want: "jti"},
		}
		for _, c := range cases {
			t.Run(alg+"/"+c.name, func(t *testing.T) {
				p := validParts(t, key)
				if c.change != nil {
					c.change(&p)
				}
				values := []string{p.sign(t)}
				if c.raw != nil {
					values = c.raw(values[0])
				}
				req := resourceReq
				if c.req != nil {
					req = *c.req
				}
				got, err := newTestVerifier(t, nil).Verify(context.Background(), values, req)
				if c.code == "" {
					if err != nil {
						t.Fatalf("valid proof refused: %v", err)
					}
					want, _ := Thumbprint(key.Public())
					if got.Thumbprint != want || got.Algorithm != alg || got.ID != "id-1" {
						t.Fatalf("proof = %+v, want jkt %s alg %s", got, want, alg)
					}
					return
				}
				var de *Error
				if !errors.As(err, &de) {
					t.Fatalf("err = %v, want a *dpop.Error", err)
				}
				if de.Code != c.code || !strings.Contains(de.Description, c.want) {
					t.Fatalf("err = %v, want code %s mentioning %q", err, c.code, c.want)
				}
			})
		}
	}
}

func TestVerifyNoHeader(t *testing.T) {
	_, err := newTestVerifier(t, nil).Verify(context.Background(), nil, resourceReq)
	if !errors.Is(err, ErrNoProof) {
		t.Fatalf("err = %v, want ErrNoProof", err)
	}
}

func TestVerifyReplay(t *testing.T) {
	v := newTestVerifier(t, nil)
	p := validParts(t, mustKey(t, AlgES256))
	raw := p.sign(t)
	if _, err := v.Verify(context.Background(), []string{raw}, resourceReq); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(context.Background(), []string{raw}, resourceReq)
	var de *Error
	if !errors.As(err, &de) || de.Code != CodeInvalidProof || !strings.Contains(de.Description, "already used") {
		t.Fatalf("replayed proof: err = %v, want invalid_dpop_proof jti already used", err)
	}
	// The same jti from another key is another proof.
	q := validParts(t, mustKey(t, AlgES256))
	if _, err := v.Verify(context.Background(), []string{q.sign(t)}, resourceReq); err != nil {
		t.Fatalf("same jti, other key: %v", err)
	}
	// A refused proof is not recorded: fixing it is accepted.
	r := validParts(t, mustKey(t, AlgEdDSA))
	r.claims["jti"] = "id-2"
	r.claims["htm"] = "GET"
	if _, err := v.Verify(context.Background(), []string{r.sign(t)}, resourceReq); err == nil {
		t.Fatal("GET proof accepted for POST")
	}
	r.claims["htm"] = "POST"
	if _, err := v.Verify(context.Background(), []string{r.sign(t)}, resourceReq); err != nil {
		t.Fatalf("corrected proof: %v", err)
	}
}

func TestVerifyNonces(t *testing.T) {
	now := t0
	clock := func() time.Time { return now }
	nonces, err := NewNonces(make([]byte, 32), time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewNonces([]byte(strings.Repeat("k", 32)), time.Minute, clock)
	v, err := NewVerifier(Config{Now: clock, Nonces: nonces, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	key := mustKey(t, AlgES256)
	current := nonces.Current()
	jti := 0
	try := func(nonce any) error {
		p := validParts(t, key)
		jti++
		p.claims["jti"] = "n" + string(rune('a'+jti))
		p.claims["iat"] = now.Unix()
		if nonce != nil {
			p.claims["nonce"] = nonce
		}
		_, err := v.Verify(context.Background(), []string{p.sign(t)}, resourceReq)
		return err
	}
	wantCode := func(name string, err error, code string) {
		t.Helper()
		var de *Error
		if code == "" {
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return
		}
		if !errors.As(err, &de) || de.Code != code {
			t.Fatalf("%s: err = %v, want %s", name, err, code)
		}
	}
	wantCode("no nonce", try(nil), CodeUseNonce)
	wantCode("nonce of another server", try(other.Current()), CodeUseNonce)
	wantCode("garbage nonce", try("xyz"), CodeUseNonce)
	wantCode("nonce a number", try(12), CodeInvalidProof)
	wantCode("current nonce", try(current), "")
	now = now.Add(time.Minute)
	wantCode("previous period's nonce", try(current), "")
	now = now.Add(time.Minute)
	wantCode("nonce two periods old", try(current), CodeUseNonce)
	wantCode("new current nonce", try(nonces.Current()), "")
}

func TestMemoryReplayBounded(t *testing.T) {
	m := NewMemoryReplay(3)
	ctx := context.Background()
	exp := t0.Add(time.Minute)
	for i := range 3 {
		if seen, err := m.Seen(ctx, ReplayKey("k", string(rune('a'+i))), t0, exp); seen || err != nil {
			t.Fatalf("entry %d: seen %v err %v", i, seen, err)
		}
	}
	if seen, err := m.Seen(ctx, ReplayKey("k", "a"), t0, exp); !seen || err != nil {
		t.Fatalf("replay: seen %v err %v", seen, err)
	}
	if _, err := m.Seen(ctx, ReplayKey("k", "d"), t0, exp); !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("fourth entry inside the window: err = %v, want ErrReplayCacheFull", err)
	}
	// Once the window has passed, the entries go and new ones fit.
	later := exp.Add(time.Second)
	if seen, err := m.Seen(ctx, ReplayKey("k", "a"), later, later.Add(time.Minute)); seen || err != nil {
		t.Fatalf("after expiry: seen %v err %v", seen, err)
	}
	if m.Len() != 1 {
		t.Fatalf("Len = %d after expiry, want 1", m.Len())
	}
}

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://a.example/x":            "https://a.example/x",
		"HTTPS://A.Example:443":          "https://a.example/",
		"http://a.example:80/p?q#f":      "http://a.example/p",
		"http://a.example:8080/%7euser/": "http://a.example:8080/~user/",
		"http://a.example/a%2fb":         "http://a.example/a%2Fb",
		"http://a.example/a/./b/../c":    "http://a.example/a/c",
		"http://[::1]:443/":              "http://[::1]:443/",
		"https://[::1]:443/":             "https://[::1]/",
		"http://a.example:/x":            "http://a.example/x",
	} {
		got, err := NormalizeURL(in)
		if err != nil || got != want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "/x", "ftp://a/x", "https://u@a/x", "https:///x", "mailto:a@b", "http://a/%zz"} {
		if got, err := NormalizeURL(in); err == nil {
			t.Errorf("NormalizeURL(%q) = %q, want an error", in, got)
		}
	}
}

// Check records nothing: a proof checked any number of times, as a token
// endpoint checks one whose password turns out wrong, fills no cache slot,
// and is accepted once by Record and never again.
func TestCheckRecordsNothing(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryReplay(1)
	v, err := NewVerifier(Config{Now: func() time.Time { return t0 }, Replay: m})
	if err != nil {
		t.Fatal(err)
	}
	raw := validParts(t, mustKey(t, AlgEdDSA)).sign(t)
	var p Proof
	for range 3 {
		if p, err = v.Check(ctx, []string{raw}, resourceReq); err != nil {
			t.Fatal(err)
		}
	}
	if m.Len() != 0 {
		t.Fatalf("Check recorded %d proofs, want 0", m.Len())
	}
	if err := v.Record(ctx, p); err != nil {
		t.Fatalf("first Record: %v", err)
	}
	var de *Error
	if err := v.Record(ctx, p); !errors.As(err, &de) || de.Code != CodeInvalidProof || !strings.Contains(de.Description, "already used") {
		t.Fatalf("second Record: err = %v, want invalid_dpop_proof jti already used", err)
	}
	if _, err := v.Verify(ctx, []string{raw}, resourceReq); !errors.As(err, &de) || !strings.Contains(de.Description, "already used") {
		t.Fatalf("Verify of a recorded proof: err = %v, want jti already used", err)
	}
	// A MemoryReplay lets Check refuse a recorded proof before the
	// request's credential is looked at.
	if _, err := v.Check(ctx, []string{raw}, resourceReq); !errors.As(err, &de) || !strings.Contains(de.Description, "already used") {
		t.Fatalf("Check of a recorded proof: err = %v, want jti already used", err)
	}
	// The cache is full: Record says so, Check does not care.
	q := validParts(t, mustKey(t, AlgES256))
	pq, err := v.Check(ctx, []string{q.sign(t)}, resourceReq)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Record(ctx, pq); !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("Record into a full cache: err = %v, want ErrReplayCacheFull", err)
	}
}
