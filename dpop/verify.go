package dpop

import (
	"bytes"
	"context"
	"crypto"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxProofSize is the largest DPoP header value a Verifier reads, in bytes.
const MaxProofSize = 8 << 10

// maxJTI bounds the jti a proof may carry, in bytes.
const maxJTI = 256

// Defaults of the zero Config.
const (
	DefaultMaxAge  = 60 * time.Second
	DefaultMaxSkew = 10 * time.Second
)

// TypeProof is the JWS "typ" header of a DPoP proof.
const TypeProof = "dpop+jwt"

// Config says what a Verifier accepts. Its zero value is usable.
type Config struct {
	// Algorithms are the JWS algorithms accepted, each pinned to its key
	// type: AlgES256 to EC P-256 keys, AlgEdDSA to OKP Ed25519 keys. Nil
	// means DefaultAlgorithms; others are an error.
	Algorithms []string
	// MaxAge is how long after its iat a proof is accepted. Zero means
	// 60s.
	MaxAge time.Duration
	// MaxSkew is how far ahead of the server's clock a proof's iat may be.
	// Zero means 10s.
	MaxSkew time.Duration
	// Replay remembers accepted proofs. Nil means a new MemoryReplay of
	// DefaultReplayEntries.
	Replay ReplayCache
	// Nonces, when set, makes every proof carry a nonce it issued; a proof
	// without one, or with a stale one, is refused with CodeUseNonce. Nil
	// means no nonces.
	Nonces *Nonces
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier checks DPoP proofs. It is safe for concurrent use. Create one
// with NewVerifier; the zero value is not usable.
type Verifier struct {
	algs    []string
	maxAge  time.Duration
	maxSkew time.Duration
	replay  ReplayCache
	nonces  *Nonces
	now     func() time.Time
}

// NewVerifier returns a Verifier configured by cfg.
func NewVerifier(cfg Config) (*Verifier, error) {
	v := &Verifier{
		algs:    cfg.Algorithms,
		maxAge:  cfg.MaxAge,
		maxSkew: cfg.MaxSkew,
		replay:  cfg.Replay,
		nonces:  cfg.Nonces,
		now:     cfg.Now,
	}
	if v.algs == nil {
		v.algs = DefaultAlgorithms
	}
	if len(v.algs) == 0 {
		return nil, errors.New("dpop: no algorithm accepted")
	}
	for _, a := range v.algs {
		if a != AlgES256 && a != AlgEdDSA {
			return nil, fmt.Errorf("dpop: algorithm %q is not supported; use %s or %s", a, AlgES256, AlgEdDSA)
		}
	}
	v.algs = slices.Clone(v.algs)
	if v.maxAge < 0 || v.maxSkew < 0 {
		return nil, errors.New("dpop: MaxAge and MaxSkew must be positive")
	}
	if v.maxAge == 0 {
		v.maxAge = DefaultMaxAge
	}
	if v.maxSkew == 0 {
		v.maxSkew = DefaultMaxSkew
	}
	if v.replay == nil {
		v.replay = NewMemoryReplay(0)
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Algorithms returns the algorithms the Verifier accepts, for the
// "algs" of a WWW-Authenticate challenge and the
// dpop_signing_alg_values_supported of server metadata.
func (v *Verifier) Algorithms() []string { return slices.Clone(v.algs) }

// Nonces returns the Verifier's nonces, or nil when it asks for none.
func (v *Verifier) Nonces() *Nonces { return v.nonces }

// Request is the request a proof was received with. The zero value matches
// no proof.
type Request struct {
	// Method is the request's HTTP method, compared with htm.
	Method string
	// URL is the absolute URL the request was sent to (see RequestURL),
	// compared with htu after both are normalised (NormalizeURL).
	URL string
	// AccessToken is the access token sent with the request to a
	// protected resource, whose hash the proof's ath must be; empty at the
	// token endpoint, where ath is not checked.
	AccessToken string
}

// Proof is a verified DPoP proof, as Verifier.Verify returns it.
type Proof struct {
	Algorithm       string           // the JWS alg: AlgES256 or AlgEdDSA
	Key             crypto.PublicKey // the jwk: *ecdsa.PublicKey or ed25519.PublicKey
	Thumbprint      string           // the RFC 7638 jkt of Key
	ID              string           // jti
	Method          string           // htm
	URL             string           // htu, as sent
	IssuedAt        time.Time        // iat
	AccessTokenHash string           // ath, or ""
	Nonce           string           // nonce, or ""
}

// header is the JOSE header of a proof.
type header struct {
	Typ  string          `json:"typ"`
	Alg  string          `json:"alg"`
	JWK  json.RawMessage `json:"jwk"`
	Crit json.RawMessage `json:"crit"`
}

// claims are the claims of a proof.
type claims struct {
	JTI   *string         `json:"jti"`
	HTM   *string         `json:"htm"`
	HTU   *string         `json:"htu"`
	IAT   json.RawMessage `json:"iat"`
	ATH   *string         `json:"ath"`
	Nonce *string         `json:"nonce"`
}

// Verify checks the DPoP proof of a request, given the values of its DPoP
// header (http.Header.Values("DPoP")), by every rule of RFC 9449 section
// 4.3: Check, then Record. It suits a request whose proof is its only
// credential; where the proof comes with a password or a token, check the
// proof with Check, the credential next, and Record the proof last, so
// that requests without a valid credential cannot fill the ReplayCache.
//
// No header at all returns ErrNoProof. A refused proof returns an *Error
// whose Code is CodeUseNonce for a missing or stale nonce and
// CodeInvalidProof otherwise; when the cache fails, the error wraps its
// error (ErrReplayCacheFull, or the store's).
func (v *Verifier) Verify(ctx context.Context, values []string, req Request) (Proof, error) {
	p, err := v.Check(ctx, values, req)
	if err != nil {
		return Proof{}, err
	}
	if err := v.Record(ctx, p); err != nil {
		return Proof{}, err
	}
	return p, nil
}

// Check checks a proof by every rule of Verify but the last, in this
// order: exactly one header, a well-formed JWS with the required claims,
// typ "dpop+jwt", an accepted asymmetric algorithm, a jwk of that
// algorithm's key type without private key material, a valid signature
// with it, htm and htu matching req, the server's nonce when it asks for
// one, iat within MaxAge before and MaxSkew after now, and ath matching
// req.AccessToken when that is set; and, when the ReplayCache is a
// ReplayLookup, a jti not recorded yet. It records nothing: the proof is
// good for one request only once Record accepts it. Its errors are those
// of Verify.
func (v *Verifier) Check(ctx context.Context, values []string, req Request) (Proof, error) {
	switch len(values) {
	case 0:
		return Proof{}, ErrNoProof
	case 1:
	default:
		return Proof{}, invalid("%d DPoP headers; exactly one is allowed", len(values))
	}
	raw := values[0]
	if strings.TrimSpace(raw) == "" {
		return Proof{}, invalid("the DPoP header is empty")
	}
	if len(raw) > MaxProofSize {
		return Proof{}, invalid("the proof is %d bytes, over the limit of %d", len(raw), MaxProofSize)
	}
	p, signed, sig, c, err := v.parse(raw)
	if err != nil {
		return Proof{}, err
	}
	if err := verifySignature(p.Algorithm, signed, sig, p.Key); err != nil {
		return Proof{}, err
	}
	if p.Method != req.Method {
		return Proof{}, invalid("htm %q does not match the request method %s", p.Method, req.Method)
	}
	want, err := NormalizeURL(req.URL)
	if err != nil {
		return Proof{}, fmt.Errorf("dpop: request URL %q: %v", req.URL, err)
	}
	got, err := NormalizeURL(p.URL)
	if err != nil {
		return Proof{}, invalid("htu: %v", err)
	}
	if got != want {
		return Proof{}, invalid("htu %q does not match the request URL %s", got, want)
	}
	if v.nonces != nil {
		if c.Nonce == nil || *c.Nonce == "" {
			return Proof{}, &Error{Code: CodeUseNonce, Description: "the proof must carry the server's nonce (DPoP-Nonce)"}
		}
		if !v.nonces.Valid(*c.Nonce) {
			return Proof{}, &Error{Code: CodeUseNonce, Description: "the proof's nonce is stale or was not issued by this server"}
		}
	}
	now := v.now()
	switch {
	case p.IssuedAt.Before(now.Add(-v.maxAge)):
		return Proof{}, invalid("iat is %s old, more than the %s accepted", now.Sub(p.IssuedAt).Truncate(time.Second), v.maxAge)
	case p.IssuedAt.After(now.Add(v.maxSkew)):
		return Proof{}, invalid("iat is %s in the future, more than the %s accepted", p.IssuedAt.Sub(now).Truncate(time.Second), v.maxSkew)
	}
	if req.AccessToken != "" {
		if c.ATH == nil {
			return Proof{}, invalid("the proof has no ath, which a request with an access token needs")
		}
		if subtle.ConstantTimeCompare([]byte(*c.ATH), []byte(AccessTokenHash(req.AccessToken))) != 1 {
			return Proof{}, invalid("ath does not match the access token")
		}
	}
	if l, ok := v.replay.(ReplayLookup); ok {
		seen, err := l.Recorded(ctx, ReplayKey(p.Thumbprint, p.ID), now)
		if err != nil {
			return Proof{}, &Error{Code: CodeInvalidProof, Description: "the proof could not be checked for replay", Err: err}
		}
		if seen {
			return Proof{}, errReplayed()
		}
	}
	return p, nil
}

func errReplayed() *Error { return invalid("jti was already used: a proof is good for one request") }

// Record records in the ReplayCache a proof that Check accepted, until it
// leaves the MaxAge window, and refuses it with CodeInvalidProof when it
// was recorded before: a proof is good for one request. When the cache
// fails, the error is an *Error that wraps the cache's error
// (ErrReplayCacheFull, or the store's).
func (v *Verifier) Record(ctx context.Context, p Proof) error {
	seen, err := v.replay.Seen(ctx, ReplayKey(p.Thumbprint, p.ID), v.now(), p.IssuedAt.Add(v.maxAge))
	if err != nil {
		return &Error{Code: CodeInvalidProof, Description: "the proof could not be checked for replay", Err: err}
	}
	if seen {
		return errReplayed()
	}
	return nil
}

// parse splits and decodes a proof and checks its header and the presence
// and types of its claims. It returns the proof, the signing input, the
// signature and the raw claims.
func (v *Verifier) parse(raw string) (Proof, string, []byte, claims, error) {
	var c claims
	h64, rest, ok1 := strings.Cut(raw, ".")
	c64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s64, ".") {
		return Proof{}, "", nil, c, invalid("the proof is not a JWS in compact serialization (three parts)")
	}
	hb, err := b64.DecodeString(h64)
	if err != nil {
		return Proof{}, "", nil, c, invalid("the proof's header is not base64url")
	}
	cb, err := b64.DecodeString(c64)
	if err != nil {
		return Proof{}, "", nil, c, invalid("the proof's claims are not base64url")
	}
	sig, err := b64.DecodeString(s64)
	if err != nil {
		return Proof{}, "", nil, c, invalid("the proof's signature is not base64url")
	}
	var h header
	if err := strictJSON(hb, &h); err != nil {
		return Proof{}, "", nil, c, invalid("the proof's header is not a JSON object: %v", err)
	}
	if err := strictJSON(cb, &c); err != nil {
		return Proof{}, "", nil, c, invalid("the proof's claims are not a JSON object: %v", err)
	}
	if h.Typ != TypeProof {
		return Proof{}, "", nil, c, invalid("typ %q is not %q", h.Typ, TypeProof)
	}
	if h.Crit != nil {
		return Proof{}, "", nil, c, invalid("the crit header is not supported")
	}
	switch {
	case h.Alg == "":
		return Proof{}, "", nil, c, invalid("the proof has no alg")
	case !slices.Contains(v.algs, h.Alg):
		return Proof{}, "", nil, c, invalid("alg %q is not accepted; use one of %s", h.Alg, strings.Join(v.algs, ", "))
	}
	if h.JWK == nil {
		return Proof{}, "", nil, c, invalid("the proof has no jwk header")
	}
	key, err := parseJWK(h.JWK, h.Alg)
	if err != nil {
		return Proof{}, "", nil, c, invalid("%v", err)
	}
	jkt, err := Thumbprint(key)
	if err != nil {
		return Proof{}, "", nil, c, invalid("%v", err)
	}
	var missing []string
	for name, ok := range map[string]bool{"jti": c.JTI != nil, "htm": c.HTM != nil, "htu": c.HTU != nil, "iat": c.IAT != nil && string(c.IAT) != "null"} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return Proof{}, "", nil, c, invalid("the proof lacks the claim(s) %s", strings.Join(missing, ", "))
	}
	if *c.JTI == "" || len(*c.JTI) > maxJTI {
		return Proof{}, "", nil, c, invalid("jti must be 1 to %d bytes", maxJTI)
	}
	var iat float64
	if c.IAT[0] == '"' || json.Unmarshal(c.IAT, &iat) != nil || math.IsNaN(iat) || iat < 0 || iat > 1<<40 {
		return Proof{}, "", nil, c, invalid("iat is not a NumericDate")
	}
	p := Proof{
		Algorithm:  h.Alg,
		Key:        key,
		Thumbprint: jkt,
		ID:         *c.JTI,
		Method:     *c.HTM,
		URL:        *c.HTU,
		IssuedAt:   time.Unix(int64(iat), 0).UTC(),
	}
	if c.ATH != nil {
		p.AccessTokenHash = *c.ATH
	}
	if c.Nonce != nil {
		p.Nonce = *c.Nonce
	}
	return p, raw[:len(h64)+1+len(c64)], sig, c, nil
}

// strictJSON decodes one JSON object into dst, refusing trailing data and
// members of the wrong type.
func strictJSON(b []byte, dst any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return errors.New("not an object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("member %q has the wrong type", te.Field)
		}
		return errors.New("malformed JSON")
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// verifySignature checks sig over signed with the algorithm alg, which
// parseJWK has already pinned to key's type.
func verifySignature(alg, signed string, sig []byte, key crypto.PublicKey) error {
	var m jwt.SigningMethod
	switch alg {
	case AlgES256:
		m = jwt.SigningMethodES256
	case AlgEdDSA:
		m = jwt.SigningMethodEdDSA
	default:
		return invalid("alg %q is not accepted", alg)
	}
	if err := m.Verify(signed, sig, key); err != nil {
		return invalid("the signature does not verify with the proof's jwk")
	}
	return nil
}
