package bearer_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/bearer"
	"github.com/silentrefresh/silentrefresh/dpop"
	"github.com/silentrefresh/silentrefresh/token"
)

// dpopFixture is a Require with WithDPoP over a real issuer, and a client
// key whose thumbprint the tokens it mints are bound to.
type dpopFixture struct {
	k      *keys
	signer *dpop.Signer
	other  *dpop.Signer
	obs    results
	h      http.Handler
	errs   []error
}

func newDPoPFixture(t *testing.T, nonces *dpop.Nonces) *dpopFixture {
	t.Helper()
	f := &dpopFixture{k: newKeys(t)}
	for _, s := range []**dpop.Signer{&f.signer, &f.other} {
		key, err := dpop.GenerateKey(dpop.AlgES256)
		if err != nil {
			t.Fatal(err)
		}
		if *s, err = dpop.NewSigner(key); err != nil {
			t.Fatal(err)
		}
	}
	v, err := dpop.NewVerifier(dpop.Config{Nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	f.h = bearer.Require(f.k.verifier, bearer.WithDPoP(v, "https://api.example.test"), bearer.WithObserver(f.obs.observe),
		bearer.WithErrorHandler(func(w http.ResponseWriter, _ *http.Request, err error) {
			f.errs = append(f.errs, err)
			bearer.Refuse(w, err)
		}))(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _ := bearer.ClaimsFrom(r.Context())
			io.WriteString(w, c.KeyThumbprint)
		}))
	return f
}

// mint returns an access token bound to jkt ("" for a bearer token).
func (f *dpopFixture) mint(t *testing.T, jkt string, exp time.Time) string {
	t.Helper()
	tok, err := f.k.issuer.Mint(t.Context(), token.Claims{Subject: "sub-1", SessionID: "sid", ExpiresAt: exp,
		IssuedAt: exp.Add(-time.Minute), KeyThumbprint: jkt})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *dpopFixture) proof(t *testing.T, s *dpop.Signer, method, url, tok, nonce string) string {
	t.Helper()
	p, err := s.Proof(method, url, dpop.AccessTokenHash(tok), nonce, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *dpopFixture) do(authorization string, proofs ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "https://api.example.test/orders?page=2", nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

const ordersURL = "https://api.example.test/orders"

func TestRequireDPoP(t *testing.T) {
	f := newDPoPFixture(t, nil)
	exp := time.Now().Add(time.Minute)
	bound := f.mint(t, f.signer.Thumbprint(), exp)
	plain := f.mint(t, "", exp)
	good := f.proof(t, f.signer, "GET", ordersURL, bound, "")

	if rec := f.do("DPoP "+bound, good); rec.Code != 200 || rec.Body.String() != f.signer.Thumbprint() || f.obs.last() != bearer.ResultValid {
		t.Fatalf("valid DPoP request: %d %q result %s", rec.Code, rec.Body, f.obs.last())
	}
	tests := []struct {
		name, authorization string
		proofs              []string
		result, code        string
		want                string // in the description
	}{
		{"replayed proof", "DPoP " + bound, []string{good}, bearer.ResultInvalidProof, dpop.CodeInvalidProof, "jti"},
		{"bound token as Bearer", "Bearer " + bound, nil, bearer.ResultBoundAsBearer, "invalid_token", "DPoP-bound"},
		{"bound token as Bearer with a proof", "Bearer " + bound, []string{f.proof(t, f.signer, "GET", ordersURL, bound, "")}, bearer.ResultBoundAsBearer, "invalid_token", "DPoP-bound"},
		{"no proof", "DPoP " + bound, nil, bearer.ResultInvalidProof, dpop.CodeInvalidProof, "DPoP header is required"},
		{"two proofs", "DPoP " + bound, []string{f.proof(t, f.signer, "GET", ordersURL, bound, ""), f.proof(t, f.signer, "GET", ordersURL, bound, "")}, bearer.ResultInvalidProof, dpop.CodeInvalidProof, "exactly one"},
		{"proof of another key", "DPoP " + bound, []string{f.proof(t, f.other, "GET", ordersURL, bound, "")}, bearer.ResultInvalidProof, dpop.CodeInvalidProof, "another key"},
		{"proof for another token", "DPoP " + bound, []string{f.proof(t, f.signer, "GET", ordersURL, plain, "")}, bearer.ResultInvalidProof, dpop.CodeInvalidProof, "ath"},
		{"proof for another URL", "DPoP " + bound, []string{f.proof(t, f.signer, "GET", "https://api.example.test/admin", bound, "")}, bearer.ResultInvalidProof, dpop.CodeInvalidProof, "htu"},
		{"proof for another method", "DPoP " + bound, []string{f.proof(t, f.signer, "POST", ordersURL, bound, "")}, bearer.ResultInvalidProof, dpop.CodeInvalidProof, "htm"},
		{"bearer token with the DPoP scheme", "DPoP " + plain, []string{f.proof(t, f.signer, "GET", ordersURL, plain, "")}, bearer.ResultBoundAsBearer, "invalid_token", "not DPoP-bound"},
		{"expired bound token", "DPoP " + f.mint(t, f.signer.Thumbprint(), time.Now().Add(-time.Minute)), nil, bearer.ResultExpired, "invalid_token", "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(tc.authorization, tc.proofs...)
			if rec.Code != 401 || f.obs.last() != tc.result {
				t.Fatalf("%d result %s, want 401 %s (%s)", rec.Code, f.obs.last(), tc.result, rec.Body)
			}
			ch := rec.Header().Get("WWW-Authenticate")
			if !strings.HasPrefix(ch, `DPoP error="`+tc.code+`"`) || !strings.Contains(ch, `algs="ES256 EdDSA"`) {
				t.Fatalf("WWW-Authenticate %q, want a DPoP %s challenge with algs", ch, tc.code)
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] != tc.code || !strings.Contains(body["error_description"], tc.want) {
				t.Fatalf("body %s, want error %s mentioning %q", rec.Body, tc.code, tc.want)
			}
		})
	}
	if err := f.errs[len(f.errs)-1]; !errors.Is(err, token.ErrTokenExpired) {
		t.Fatalf("expired bound token: the error %v does not wrap ErrTokenExpired", err)
	}
}

// TestBoundTokenRefusedWithoutDPoP: a resource server that does not
// support DPoP still refuses a bound token sent as Bearer, and the DPoP
// scheme.
func TestBoundTokenRefusedWithoutDPoP(t *testing.T) {
	k := newKeys(t)
	key, _ := dpop.GenerateKey(dpop.AlgEdDSA)
	s, _ := dpop.NewSigner(key)
	tok, err := k.issuer.Mint(t.Context(), token.Claims{Subject: "sub-1", ExpiresAt: time.Now().Add(time.Minute), KeyThumbprint: s.Thumbprint()})
	if err != nil {
		t.Fatal(err)
	}
	h := bearer.Require(k.verifier)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, scheme := range []string{"Bearer ", "DPoP "} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", scheme+tok)
		p, _ := s.Proof("GET", "http://example.com/", dpop.AccessTokenHash(tok), "", time.Now())
		req.Header.Set("DPoP", p)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 401 {
			t.Fatalf("%s bound token without WithDPoP: %d, want 401", scheme, rec.Code)
		}
	}
}

func TestRequireDPoPNonce(t *testing.T) {
	nonces, err := dpop.NewNonces([]byte(strings.Repeat("s", 32)), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := newDPoPFixture(t, nonces)
	bound := f.mint(t, f.signer.Thumbprint(), time.Now().Add(time.Minute))
	rec := f.do("DPoP "+bound, f.proof(t, f.signer, "GET", ordersURL, bound, ""))
	nonce := rec.Header().Get("DPoP-Nonce")
	if rec.Code != 401 || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `DPoP error="use_dpop_nonce"`) || nonce == "" {
		t.Fatalf("proof without nonce: %d %v", rec.Code, rec.Header())
	}
	if rec := f.do("DPoP "+bound, f.proof(t, f.signer, "GET", ordersURL, bound, nonce)); rec.Code != 200 {
		t.Fatalf("proof with the nonce: %d %s", rec.Code, rec.Body)
	}
}
