package bearer

import (
	"errors"
	"strings"
)

// MaxHeaderLen bounds the Authorization header value that Parse reads, in
// bytes.
const MaxHeaderLen = 8 << 10

// ErrNoToken is returned by Parse when the request carries no
// Authorization header.
var ErrNoToken = errors.New("bearer: no bearer token")

// Parse extracts the token of an "Authorization: Bearer <token>" header
// value (RFC 6750 section 2.1). The scheme is case-insensitive; the token
// must be a non-empty b64token. An empty header returns ErrNoToken; any
// other malformed header returns an error saying what was wrong.
func Parse(header string) (string, error) {
	if header == "" {
		return "", ErrNoToken
	}
	if len(header) > MaxHeaderLen {
		return "", errors.New("bearer: authorization header is too long")
	}
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errors.New(`bearer: authorization scheme must be "Bearer"`)
	}
	tok = strings.TrimLeft(tok, " ")
	body := strings.TrimRight(tok, "=")
	if body == "" {
		return "", errors.New("bearer: bearer token is empty")
	}
	for i := 0; i < len(body); i++ {
		if !isB64TokenChar(body[i]) {
			return "", errors.New("bearer: bearer token contains a character outside b64token")
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
