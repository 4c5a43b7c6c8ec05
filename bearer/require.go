package bearer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/silentrefresh/silentrefresh/dpop"
	"github.com/silentrefresh/silentrefresh/token"
)

// SessionChecker tells whether the session an access token belongs to is
// still live. The silentrefresh server satisfies it with one lookup in its
// store; a resource server without the store could satisfy it with an
// introspection call. Implementations must be safe for concurrent use.
type SessionChecker interface {
	// CheckSession returns nil when the session with this ID is live, and
	// an error when it was revoked, has expired or cannot be checked.
	CheckSession(ctx context.Context, sessionID string) error
}

// SessionCheckFunc adapts a function to a SessionChecker.
type SessionCheckFunc func(ctx context.Context, sessionID string) error

// CheckSession calls f.
func (f SessionCheckFunc) CheckSession(ctx context.Context, sessionID string) error {
	return f(ctx, sessionID)
}

// ErrSessionEnded is wrapped by the error Require hands to its error
// handler when the SessionChecker refused the token's session; the
// checker's own error is joined to it.
var ErrSessionEnded = errors.New("bearer: the session has ended")

// Option configures Require. The zero configuration verifies the token
// only, reports no results and answers every refusal with Refuse.
type Option func(*config)

type config struct {
	sessions SessionChecker
	observe  func(result string)
	refuse   func(w http.ResponseWriter, r *http.Request, err error)
	dpop     *dpop.Verifier // nil: the DPoP scheme is refused
	dpopBase string
}

// WithSessionCheck makes Require call c with the token's "sid" on every
// request and refuse the token when it returns an error, so that a logout
// or a detected reuse is seen at once rather than when the access token
// expires. A nil c checks nothing.
func WithSessionCheck(c SessionChecker) Option {
	return func(cfg *config) { cfg.sessions = c }
}

// WithObserver makes Require call observe with one of the Result
// constants for every request, e.g. to count them in a metric. observe
// must be safe for concurrent use.
func WithObserver(observe func(result string)) Option {
	return func(cfg *config) { cfg.observe = observe }
}

// WithErrorHandler makes Require answer a refused request with h instead
// of Refuse; a nil h restores Refuse. err says why the request was refused: it wraps ErrNoToken,
// token.ErrInvalidToken, token.ErrTokenExpired or ErrSessionEnded (joined
// to the SessionChecker's error), or is an error of Parse. A handler that
// wants the standard answer for some errors calls Refuse for them.
func WithErrorHandler(h func(w http.ResponseWriter, r *http.Request, err error)) Option {
	return func(cfg *config) { cfg.refuse = h }
}

type claimsKey struct{}

// ClaimsFrom returns the verified access-token claims that Require put in
// the request context, and false in a context Require did not make.
func ClaimsFrom(ctx context.Context) (token.Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(token.Claims)
	return c, ok
}

// Require returns middleware that admits only requests with an access
// token that v verifies (and, with WithSessionCheck, whose session is
// live), and puts its claims in the request context (see ClaimsFrom).
// Other requests are answered by the error handler, by default Refuse:
// 401 with `WWW-Authenticate: Bearer error="invalid_token"` and a JSON
// body.
func Require(v *token.Verifier, opts ...Option) func(http.Handler) http.Handler {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.refuse == nil {
		cfg.refuse = func(w http.ResponseWriter, _ *http.Request, err error) { Refuse(w, err) }
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			claims, result, err := verify(r, v, &cfg)
			if cfg.observe != nil {
				cfg.observe(result)
			}
			if err != nil {
				cfg.refuse(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
		})
	}
}

// verify checks the request's token and its session, and returns the
// result word for the observer.
func verify(r *http.Request, v *token.Verifier, cfg *config) (token.Claims, string, error) {
	scheme, raw, err := splitAuthorization(r.Header.Get("Authorization"))
	if err == nil && scheme == "DPoP" && cfg.dpop == nil {
		err = errors.New(`bearer: authorization scheme must be "Bearer"`)
	}
	if err != nil {
		return token.Claims{}, ResultInvalid, err
	}
	claims, err := v.Verify(r.Context(), raw)
	if err != nil {
		if scheme == "DPoP" {
			// The challenge of a DPoP-scheme request is a DPoP one
			// (RFC 9449 section 7.1); the error still wraps the token's.
			desc := "the access token is invalid"
			if errors.Is(err, token.ErrTokenExpired) {
				desc = "the access token has expired"
			}
			err = dpopError(cfg, "invalid_token", desc, err)
		}
		if errors.Is(err, token.ErrTokenExpired) {
			return token.Claims{}, ResultExpired, err
		}
		return token.Claims{}, ResultInvalid, err
	}
	var proof dpop.Proof
	switch {
	case scheme == "DPoP":
		p, result, err := checkDPoP(r, cfg, raw, claims)
		if err != nil {
			return token.Claims{}, result, err
		}
		proof = p
	case claims.KeyThumbprint != "":
		// RFC 9449 section 7.2: a DPoP-bound token is never a bearer token.
		return token.Claims{}, ResultBoundAsBearer, dpopError(cfg, "invalid_token",
			"the access token is DPoP-bound: send it with the DPoP scheme and a proof", ErrBoundToken)
	}
	if sessions := cfg.sessions; sessions != nil {
		if err := sessions.CheckSession(r.Context(), claims.SessionID); err != nil {
			err = errors.Join(ErrSessionEnded, err)
			if scheme == "DPoP" {
				err = dpopError(cfg, "invalid_token", "the session has ended", err)
			}
			return token.Claims{}, ResultSessionEnded, err
		}
	}
	if scheme == "DPoP" {
		if result, err := recordDPoP(r, cfg, proof); err != nil {
			return token.Claims{}, result, err
		}
	}
	return claims, ResultValid, nil
}

// refusal is the JSON body of a refusal (RFC 6749 section 5.2 fields).
type refusal struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

// Refuse answers a request Require refused because of err with 401, per
// RFC 6750 section 3: `WWW-Authenticate: Bearer error="invalid_token"`
// with a description of what was wrong, and the same in a JSON body
// {"error":"invalid_token","error_description":...}. The description
// names the case (no token, expired, session ended, invalid, malformed
// header) and never echoes the token. A *DPoPError is answered with a DPoP
// challenge instead (RFC 9449 section 7.1), and a full DPoP replay cache
// (dpop.ErrReplayCacheFull) with 503 and Retry-After.
func Refuse(w http.ResponseWriter, err error) {
	var de *DPoPError
	switch {
	case errors.Is(err, dpop.ErrReplayCacheFull):
		refuseBusy(w)
		return
	case errors.As(err, &de):
		refuseDPoP(w, de)
		return
	}
	desc := "the access token is invalid"
	challenge := ""
	switch {
	case errors.Is(err, ErrNoToken):
		challenge = "no bearer token"
		desc = "an Authorization: Bearer header is required"
	case errors.Is(err, token.ErrTokenExpired):
		desc = "the access token has expired"
	case errors.Is(err, ErrSessionEnded):
		desc = "the session has ended"
	case errors.Is(err, token.ErrInvalidToken):
		desc = "the access token is invalid"
	default:
		desc = "malformed Authorization header"
	}
	if challenge == "" {
		challenge = desc
	}
	h := w.Header()
	h.Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+challenge+`"`)
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(refusal{Code: "invalid_token", Description: desc})
}
