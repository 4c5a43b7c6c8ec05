package token

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenSize is the largest access token Verify reads, in bytes.
const MaxTokenSize = 8 << 10

// MaxLeeway is the largest clock skew a Verifier may tolerate.
const MaxLeeway = 30 * time.Second

// ErrInvalidToken is wrapped by every error of Verify.
var ErrInvalidToken = errors.New("token: invalid access token")

// ErrTokenExpired is wrapped by the error of Verify for a token that is
// valid but for its expiry, the one case where refreshing helps. It wraps
// ErrInvalidToken.
var ErrTokenExpired = fmt.Errorf("%w: expired", ErrInvalidToken)

// verifyError is an error of Verify: what was wrong, the sentinel it
// matches, and, when a KeySet failed, that error.
type verifyError struct {
	sentinel error // ErrInvalidToken or ErrTokenExpired
	reason   string
	cause    error // may be nil
}

func (e *verifyError) Error() string { return "token: invalid access token: " + e.reason }

func (e *verifyError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.sentinel}
	}
	return []error{e.sentinel, e.cause}
}

func invalid(format string, args ...any) error {
	return &verifyError{sentinel: ErrInvalidToken, reason: fmt.Sprintf(format, args...)}
}

// VerifierConfig says what a Verifier accepts.
type VerifierConfig struct {
	Issuer   string        // required "iss"
	Audience string        // required member of "aud"
	Leeway   time.Duration // clock skew tolerated on exp and nbf: 0 to MaxLeeway
	Now      func() time.Time

	// CacheSize is how many verified tokens Verify remembers, by the
	// SHA-256 of their text, so that a token presented again costs a hash
	// and a key lookup instead of a signature check; it is rounded up to
	// a power of two, at most MaxVerifyCache. A remembered token is
	// accepted only until its exp and only while the key set still holds
	// the key that verified it. 0 remembers nothing.
	CacheSize int
}

// Verifier checks access tokens. It is safe for concurrent use.
type Verifier struct {
	keys   KeySet
	leeway time.Duration
	now    func() time.Time
	parser *jwt.Parser  // configured once; ParseWithClaims does not modify it
	cache  *verifyCache // nil without VerifierConfig.CacheSize
}

// NewVerifier returns a Verifier of tokens signed by keys in keys, issued
// by cfg.Issuer for cfg.Audience. cfg.Now nil means time.Now.
func NewVerifier(keys KeySet, cfg VerifierConfig) (*Verifier, error) {
	switch {
	case keys == nil:
		return nil, errors.New("token: verifier: no key set")
	case cfg.Issuer == "":
		return nil, errors.New("token: verifier: no issuer")
	case cfg.Audience == "":
		return nil, errors.New("token: verifier: no audience")
	case cfg.Leeway < 0 || cfg.Leeway > MaxLeeway:
		return nil, fmt.Errorf("token: verifier: leeway %v outside 0..%v", cfg.Leeway, MaxLeeway)
	case cfg.CacheSize < 0 || cfg.CacheSize > MaxVerifyCache:
		return nil, fmt.Errorf("token: verifier: cache size %d outside 0..%d", cfg.CacheSize, MaxVerifyCache)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Verifier{
		keys:   keys,
		leeway: cfg.Leeway,
		now:    now,
		cache:  newVerifyCache(cfg.CacheSize),
		parser: jwt.NewParser(
			// Only EdDSA can ever be accepted; the key function then
			// pins it to the algorithm of the key the kid names.
			jwt.WithValidMethods([]string{AlgEdDSA}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(now),
			jwt.WithStrictDecoding(),
		),
	}, nil
}

// jwtClaims is the parsed form of a token's claims.
type jwtClaims struct {
	jwt.RegisteredClaims
	ClientID  string `json:"client_id,omitempty"`
	SessionID string `json:"sid,omitempty"`
	Scope     string `json:"scope,omitempty"`
	Cnf       *cnf   `json:"cnf,omitempty"`
}

// Verify checks raw and returns its claims. It requires a JWS of at most
// MaxTokenSize bytes with typ "at+jwt" (or "application/at+jwt"), a kid the
// KeySet knows, the algorithm of that key (EdDSA; "none" and HMAC are never
// accepted), a valid signature, the configured issuer and audience, and an
// unexpired exp; nbf, if present, must have passed. Every error wraps
// ErrInvalidToken and says what was wrong; an expired token's error also
// wraps ErrTokenExpired. When the KeySet fails for another reason than an
// unknown kid (the store is down, say), the error wraps that error too.
func (v *Verifier) Verify(ctx context.Context, raw string) (Claims, error) {
	if len(raw) > MaxTokenSize {
		return Claims{}, invalid("%d bytes, over the limit of %d", len(raw), MaxTokenSize)
	}
	if raw == "" {
		return Claims{}, invalid("empty")
	}
	var sum [sha256.Size]byte
	if v.cache != nil {
		sum = sha256.Sum256([]byte(raw))
		if e, ok := v.cache.get(&sum, v.now(), v.leeway); ok {
			// The key that verified it must still be there: a dropped
			// key takes its tokens with it.
			pk, err := v.keys.PublicKey(ctx, e.kid)
			if err == nil && pk.Algorithm == AlgEdDSA && subtle.ConstantTimeCompare(pk.Key, e.key) == 1 {
				return e.claimsCopy(), nil
			}
		}
	}
	var (
		jc     jwtClaims
		keyErr error
		kid    string
		key    ed25519.PublicKey
	)
	tok, err := v.parser.ParseWithClaims(raw, &jc, func(t *jwt.Token) (any, error) {
		k, err := v.key(ctx, t)
		keyErr = err
		if err == nil {
			kid, _ = t.Header["kid"].(string)
			key = k
		}
		return k, err
	})
	if err != nil {
		if keyErr != nil {
			return Claims{}, keyErr
		}
		return Claims{}, v.explain(tok, &jc, err)
	}
	c := Claims{
		Issuer:    jc.Issuer,
		Subject:   jc.Subject,
		Audience:  []string(jc.Audience),
		ExpiresAt: jc.ExpiresAt.UTC(),
		ID:        jc.ID,
		ClientID:  jc.ClientID,
		SessionID: jc.SessionID,
		Scope:     jc.Scope,
	}
	if jc.Cnf != nil {
		if jc.Cnf.JKT == "" {
			return Claims{}, invalid("cnf claim without jkt")
		}
		c.KeyThumbprint = jc.Cnf.JKT
	}
	if jc.IssuedAt != nil {
		c.IssuedAt = jc.IssuedAt.UTC()
	}
	c.Extra = extraClaims(tok)
	if v.cache != nil {
		e := &cacheEntry{sum: sum, claims: c, kid: kid, key: key}
		if jc.NotBefore != nil {
			e.notBefore = jc.NotBefore.Time
		}
		e.claims.Audience = slices.Clone(c.Audience)
		e.claims.Extra = copyExtra(c.Extra)
		v.cache.put(e)
	}
	return c, nil
}

// key checks the header of t and returns the key that must verify it.
func (v *Verifier) key(ctx context.Context, t *jwt.Token) (ed25519.PublicKey, error) {
	typ, _ := t.Header["typ"].(string)
	if !strings.EqualFold(typ, TypeAccessToken) && !strings.EqualFold(typ, "application/"+TypeAccessToken) {
		return nil, invalid("typ %q is not %q", typ, TypeAccessToken)
	}
	if _, ok := t.Header["crit"]; ok {
		return nil, invalid("unsupported crit header")
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, invalid("no kid")
	}
	pk, err := v.keys.PublicKey(ctx, kid)
	if err != nil {
		if errors.Is(err, ErrKeyNotFound) {
			return nil, &verifyError{sentinel: ErrInvalidToken, reason: fmt.Sprintf("unknown kid %q", kid), cause: err}
		}
		return nil, &verifyError{sentinel: ErrInvalidToken, reason: fmt.Sprintf("key %q unavailable: %v", kid, err), cause: err}
	}
	if alg := t.Method.Alg(); alg != pk.Algorithm {
		return nil, invalid("alg %q is not %q, the algorithm of key %q", alg, pk.Algorithm, kid)
	}
	if len(pk.Key) != ed25519.PublicKeySize {
		return nil, invalid("key %q is not an Ed25519 public key", kid)
	}
	return pk.Key, nil
}

// explain turns an error of the jwt parser into one of ours.
func (v *Verifier) explain(tok *jwt.Token, jc *jwtClaims, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		// "token is malformed: could not base64 decode header: ..."
		// keeps its middle part, which names the segment at fault
		// without repeating any of the input.
		_, what, _ := strings.Cut(err.Error(), ": ")
		what, _, _ = strings.Cut(what, ": ")
		if what == "" {
			return invalid("malformed")
		}
		return invalid("malformed: %s", what)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if tok != nil && tok.Method != nil && tok.Method.Alg() != AlgEdDSA {
			return invalid("alg %q not accepted", tok.Method.Alg())
		}
		return invalid("bad signature")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return invalid("alg missing or unknown")
	case errors.Is(err, jwt.ErrTokenExpired) && !errors.Is(err, jwt.ErrTokenInvalidIssuer) &&
		!errors.Is(err, jwt.ErrTokenInvalidAudience) && !errors.Is(err, jwt.ErrTokenNotValidYet) &&
		!errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		reason := "expired"
		if jc.ExpiresAt != nil {
			reason = fmt.Sprintf("expired at %s (now %s, leeway %v)",
				jc.ExpiresAt.UTC().Format(time.RFC3339), v.now().UTC().Format(time.RFC3339), v.leeway)
		}
		return &verifyError{sentinel: ErrTokenExpired, reason: reason}
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		// The parser's message names each failed claim: "token has
		// invalid issuer, token is missing required claim: exp claim
		// is required", and so on.
		msg := err.Error()
		msg = strings.TrimPrefix(msg, jwt.ErrTokenInvalidClaims.Error()+": ")
		return invalid("%s", msg)
	default:
		return invalid("%v", err)
	}
}
