package server

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/silentrefresh/silentrefresh/token"
)

// maxBearerLen bounds the Authorization header value that is parsed.
const maxBearerLen = 8 << 10

// ErrNoBearer is returned by ParseBearer when the request carries no
// Authorization header.
var ErrNoBearer = errors.New("server: no bearer token")

// ParseBearer extracts the token of an "Authorization: Bearer <token>"
// header value (RFC 6750 section 2.1). The scheme is case-insensitive; the
// token must be a non-empty b64token.
func ParseBearer(header string) (string, error) {
	if header == "" {
		return "", ErrNoBearer
	}
	if len(header) > maxBearerLen {
		return "", errors.New("server: authorization header is too long")
	}
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errors.New(`server: authorization scheme must be "Bearer"`)
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" {
		return "", errors.New("server: bearer token is empty")
	}
	body := strings.TrimRight(tok, "=")
	if body == "" {
		return "", errors.New("server: bearer token is empty")
	}
	for i := 0; i < len(body); i++ {
		if !isB64TokenChar(body[i]) {
			return "", errors.New("server: bearer token contains a character outside b64token")
		}
	}
	return tok, nil
}

// isB64TokenChar reports whether c may appear in an RFC 6750 b64token
// before its trailing '=' padding.
func isB64TokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/':
		return true
	}
	return false
}

type claimsKey struct{}

// ClaimsFrom returns the verified access-token claims that RequireBearer
// put in the request context.
func ClaimsFrom(ctx context.Context) (token.Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(token.Claims)
	return c, ok
}

// BearerOption configures RequireBearer.
type BearerOption func(*bearerConfig)

type bearerConfig struct {
	checkSession func(ctx context.Context, sessionID string) error
	observe      func(result string)
	unavailable  func(w http.ResponseWriter, err error) bool
}

// WithSessionCheck makes RequireBearer call check with the token's "sid"
// on every request and refuse the token when it returns an error, so that a
// logout or a detected reuse is seen at once rather than when the access
// token expires. Errors wrapping store.ErrUnavailable answer 503 instead.
func WithSessionCheck(check func(ctx context.Context, sessionID string) error) BearerOption {
	return func(c *bearerConfig) { c.checkSession = check }
}

// RequireBearer returns middleware that admits only requests with a valid
// access token, verified by v, and puts its claims in the request context
// (see ClaimsFrom). Other requests get 401 with
// `WWW-Authenticate: Bearer error="invalid_token"` and a JSON body.
func RequireBearer(v *token.Verifier, opts ...BearerOption) func(http.Handler) http.Handler {
	var cfg bearerConfig
	for _, o := range opts {
		o(&cfg)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			claims, err := verifyRequest(r, v, &cfg)
			if err != nil {
				if cfg.unavailable != nil && cfg.unavailable(w, err) {
					return
				}
				unauthorized(w, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
		})
	}
}

// errSessionEnded marks a token whose session was revoked or has expired.
var errSessionEnded = errors.New("the session has ended")

func verifyRequest(r *http.Request, v *token.Verifier, cfg *bearerConfig) (token.Claims, error) {
	observe := func(result string) {
		if cfg.observe != nil {
			cfg.observe(result)
		}
	}
	raw, err := ParseBearer(r.Header.Get("Authorization"))
	if err != nil {
		observe("invalid")
		return token.Claims{}, err
	}
	claims, err := v.Verify(r.Context(), raw)
	if err != nil {
		if errors.Is(err, token.ErrTokenExpired) {
			observe("expired")
		} else {
			observe("invalid")
		}
		return token.Claims{}, err
	}
	if cfg.checkSession != nil {
		if err := cfg.checkSession(r.Context(), claims.SessionID); err != nil {
			observe("session_ended")
			return token.Claims{}, errors.Join(errSessionEnded, err)
		}
	}
	observe("valid")
	return claims, nil
}

// unauthorized answers 401 per RFC 6750 section 3.
func unauthorized(w http.ResponseWriter, err error) {
	code, desc := "invalid_token", "the access token is invalid"
	switch {
	case errors.Is(err, ErrNoBearer):
		// RFC 6750 section 3.1: no error code when no credentials were sent.
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="no bearer token"`)
		writeJSON(w, http.StatusUnauthorized, &apiError{Code: code, Description: "an Authorization: Bearer header is required"})
		return
	case errors.Is(err, token.ErrTokenExpired):
		desc = "the access token has expired"
	case errors.Is(err, errSessionEnded):
		desc = "the session has ended"
	case errors.Is(err, token.ErrInvalidToken):
		desc = "the access token is invalid"
	default:
		desc = "malformed Authorization header"
	}
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
	writeJSON(w, http.StatusUnauthorized, &apiError{Code: code, Description: desc})
}
