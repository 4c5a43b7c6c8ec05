package assertion

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/silentrefresh/silentrefresh/claims"
)

// Limits of a Validator.
const (
	// MaxLifetime is how far ahead of now an assertion's exp may be: an
	// assertion is a one-time hand-over, not a credential to keep.
	MaxLifetime = 5 * time.Minute
	// DefaultLeeway is the clock skew tolerated on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// MaxSize bounds an assertion, in bytes.
	MaxSize = 8 << 10
	// MaxJTILen bounds a jti.
	MaxJTILen = 255
	// MaxSubjectLen bounds a sub.
	MaxSubjectLen = 255
)

// Config configures a Validator.
type Config struct {
	// Issuers are the trusted issuers; at least one.
	Issuers []Issuer
	// Audiences identify this server; an assertion's aud must hold one of
	// them (rule 3): its issuer URL and its token endpoint URL.
	Audiences []string
	// Replay remembers accepted jti values; required.
	Replay ReplayStore
	// Leeway is the clock skew tolerated; zero means DefaultLeeway.
	Leeway time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Validator checks assertions. It is safe for concurrent use.
type Validator struct {
	issuers map[string]Issuer // never written after NewValidator
	cfg     Config
	parser  *jwt.Parser
}

// NewValidator returns a Validator for cfg.
func NewValidator(cfg Config) (*Validator, error) {
	if len(cfg.Issuers) == 0 {
		return nil, errors.New("assertion: no trusted issuers")
	}
	if len(cfg.Audiences) == 0 || slices.Contains(cfg.Audiences, "") {
		return nil, errors.New("assertion: the server's audience is required")
	}
	if cfg.Replay == nil {
		return nil, errors.New("assertion: a replay store is required")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Leeway < 0 || cfg.Leeway > 5*time.Minute {
		return nil, fmt.Errorf("assertion: leeway %v outside 0..5m", cfg.Leeway)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Validator{issuers: map[string]Issuer{}, cfg: cfg}
	for _, iss := range cfg.Issuers {
		if err := iss.check(); err != nil {
			return nil, err
		}
		if _, dup := v.issuers[iss.Name]; dup {
			return nil, fmt.Errorf("assertion: trusted issuer %q is given twice", iss.Name)
		}
		v.issuers[iss.Name] = iss
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "HS256"}),
		jwt.WithoutClaimsValidation(), // every claim is checked below, rule by rule
		jwt.WithStrictDecoding(),
	)
	return v, nil
}

// Assertion is an accepted assertion.
type Assertion struct {
	Issuer    Issuer
	Subject   string     // the assertion's sub
	JTI       string     // its jti
	ExpiresAt time.Time  // its exp
	Claims    claims.Set // the issuer's allow-listed claims it carried
}

// SessionSubject is the subject of the session the assertion opens.
func (a Assertion) SessionSubject() string { return a.Issuer.Subject(a.Subject) }

// Validate checks raw by every rule of RFC 7523 section 3 and records its
// jti, so that it is accepted once. A refusal is an *Error naming the rule;
// other errors (the replay store or a JWKS URL unreachable) are the
// server's. Nothing is recorded for a refused assertion.
func (v *Validator) Validate(ctx context.Context, raw string) (Assertion, error) {
	a, err := v.check(ctx, raw)
	if err != nil {
		return Assertion{}, err
	}
	switch err := v.cfg.Replay.UseJTI(ctx, a.Issuer.Name, a.JTI, a.ExpiresAt.Add(v.cfg.Leeway), v.cfg.Now()); {
	case errors.Is(err, ErrReplayed):
		return Assertion{}, refuse(7, "jti %q of issuer %q was already used: an assertion is accepted once", a.JTI, a.Issuer.Name)
	case err != nil:
		return Assertion{}, fmt.Errorf("assertion: record jti: %w", err)
	}
	return a, nil
}

// Check is Validate without recording the jti: for tests and tools.
func (v *Validator) Check(ctx context.Context, raw string) (Assertion, error) {
	return v.check(ctx, raw)
}

func (v *Validator) check(ctx context.Context, raw string) (Assertion, error) {
	if raw == "" {
		return Assertion{}, refuse(10, "the assertion is empty")
	}
	if len(raw) > MaxSize {
		return Assertion{}, refuse(10, "the assertion is %d bytes, over the limit of %d", len(raw), MaxSize)
	}
	if strings.Count(raw, ".") != 2 {
		return Assertion{}, refuse(10, "the assertion is not a compact JWS of three parts (a JWE or a malformed token)")
	}
	var (
		mc      jwt.MapClaims
		keyErr  *Error
		infraEr error
		iss     Issuer
		called  bool
	)
	_, err := v.parser.ParseWithClaims(raw, &mc, func(t *jwt.Token) (any, error) {
		called = true
		if _, ok := t.Header["crit"]; ok {
			keyErr = refuse(10, "the assertion has a crit header, which is not supported")
			return nil, keyErr
		}
		name, ok := mc["iss"].(string)
		if !ok || name == "" {
			keyErr = refuse(1, "the assertion has no iss")
			return nil, keyErr
		}
		iss, ok = v.issuers[name]
		if !ok {
			keyErr = refuse(1, "issuer %q is not trusted", name)
			return nil, keyErr
		}
		kid, _ := t.Header["kid"].(string)
		k, err := iss.Keys.Key(ctx, kid)
		if errors.Is(err, ErrUnknownKey) {
			keyErr = refuse(9, "no key of issuer %q has kid %q", name, kid)
			return nil, keyErr
		}
		if err != nil {
			infraEr = err
			return nil, err
		}
		if alg := t.Method.Alg(); alg != k.Algorithm {
			keyErr = refuse(9, "alg %q is not %q, the algorithm of the key of issuer %q", alg, k.Algorithm, name)
			return nil, keyErr
		}
		return k.Public, nil
	})
	switch {
	case infraEr != nil:
		return Assertion{}, fmt.Errorf("assertion: keys of issuer %q: %w", iss.Name, infraEr)
	case keyErr != nil:
		return Assertion{}, keyErr
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && !called:
		return Assertion{}, refuse(9, "the assertion is not signed with an accepted algorithm (alg none, HS384 and unknown ones are refused)")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return Assertion{}, refuse(9, "the signature does not verify with the key of issuer %q", iss.Name)
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrSignatureInvalid):
		return Assertion{}, refuse(9, "the assertion is not signed with an accepted algorithm (alg none, or unknown, is refused)")
	case err != nil:
		return Assertion{}, refuse(10, "the assertion is not a valid JWT: %s", jwtReason(err))
	}
	return v.claims(iss, mc)
}

// jwtReason is the part of a jwt error that names the problem without
// quoting the input.
func jwtReason(err error) string {
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120] + "…"
	}
	return msg
}

// claims applies rules 2 to 8 to a verified assertion of iss.
func (v *Validator) claims(iss Issuer, mc jwt.MapClaims) (Assertion, error) {
	now := v.cfg.Now()
	leeway := v.cfg.Leeway
	a := Assertion{Issuer: iss}

	sub, ok := mc["sub"].(string)
	switch {
	case !ok || sub == "":
		return Assertion{}, refuse(2, "the assertion has no sub")
	case len(sub) > MaxSubjectLen:
		return Assertion{}, refuse(2, "sub is longer than %d bytes", MaxSubjectLen)
	}
	a.Subject = sub

	aud, err := mc.GetAudience()
	if _, present := mc["aud"]; err != nil || (present && len(aud) == 0 && !isEmptyAud(mc["aud"])) {
		return Assertion{}, refuse(3, "aud is neither a string nor an array of strings")
	}
	if len(aud) == 0 {
		return Assertion{}, refuse(3, "the assertion has no aud")
	}
	if !slices.ContainsFunc(aud, func(s string) bool { return slices.Contains(v.cfg.Audiences, s) }) {
		return Assertion{}, refuse(3, "aud %q does not name this server (%s)", []string(aud), strings.Join(v.cfg.Audiences, " or "))
	}

	exp, err := mc.GetExpirationTime()
	switch {
	case err != nil:
		return Assertion{}, refuse(4, "exp is not a NumericDate")
	case exp == nil:
		return Assertion{}, refuse(4, "the assertion has no exp")
	case !now.Before(exp.Add(leeway)):
		return Assertion{}, refuse(4, "the assertion expired at %s (now %s)", exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case exp.After(now.Add(MaxLifetime + leeway)):
		return Assertion{}, refuse(4, "exp %s is more than %v ahead; sign assertions for at most %v", exp.UTC().Format(time.RFC3339), MaxLifetime, MaxLifetime)
	}
	a.ExpiresAt = exp.Time

	nbf, err := mc.GetNotBefore()
	switch {
	case err != nil:
		return Assertion{}, refuse(5, "nbf is not a NumericDate")
	case nbf != nil && now.Add(leeway).Before(nbf.Time):
		return Assertion{}, refuse(5, "the assertion is not valid before %s (now %s)", nbf.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}

	iat, err := mc.GetIssuedAt()
	switch {
	case err != nil:
		return Assertion{}, refuse(6, "iat is not a NumericDate")
	case iat != nil && iat.After(now.Add(leeway)):
		return Assertion{}, refuse(6, "iat %s is in the future (now %s)", iat.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case iat != nil && iat.Before(now.Add(-MaxLifetime-leeway)):
		return Assertion{}, refuse(6, "iat %s is more than %v ago; an assertion is exchanged as soon as it is signed", iat.UTC().Format(time.RFC3339), MaxLifetime)
	}

	jti, ok := mc["jti"].(string)
	switch {
	case !ok || jti == "":
		return Assertion{}, refuse(7, "the assertion has no jti; this server requires one to accept each assertion once")
	case len(jti) > MaxJTILen:
		return Assertion{}, refuse(7, "jti is longer than %d bytes", MaxJTILen)
	}
	a.JTI = jti

	a.Claims = claims.Pick(mc, iss.Claims)
	if err := claims.Validate(a.Claims); err != nil {
		return Assertion{}, refuse(8, "%s", strings.TrimPrefix(err.Error(), "claims: invalid: "))
	}
	return a, nil
}

// isEmptyAud reports an aud that is a string or array but empty.
func isEmptyAud(v any) bool {
	switch a := v.(type) {
	case string:
		return a == ""
	case []any:
		return len(a) == 0
	}
	return false
}
