package session

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// MaxScopeLen bounds a scope parameter, in bytes.
const MaxScopeLen = 1024

// ErrInvalidScope is matched (errors.Is) by every *ScopeError.
var ErrInvalidScope = errors.New("session: invalid scope")

// ScopeError is the error of a scope that is malformed or wider than what
// was granted: the RFC 6749 invalid_scope answer.
type ScopeError struct {
	Reason string // what was wrong, for error_description
}

// Error says what was wrong with the scope.
func (e *ScopeError) Error() string { return "session: invalid scope: " + e.Reason }

// Is makes errors.Is(err, ErrInvalidScope) true.
func (e *ScopeError) Is(target error) bool { return target == ErrInvalidScope }

// ParseScope checks a scope parameter (RFC 6749 section 3.3: scope tokens
// of printable ASCII other than '"' and '\', separated by spaces) and
// returns it in canonical form: single spaces, each token once, in the
// order first given. An empty scope is "".
func ParseScope(s string) (string, error) {
	if len(s) > MaxScopeLen {
		return "", &ScopeError{Reason: fmt.Sprintf("scope is longer than %d bytes", MaxScopeLen)}
	}
	var out []string
	for _, tok := range strings.Split(s, " ") {
		if tok == "" {
			continue
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return "", &ScopeError{Reason: fmt.Sprintf("scope token %q contains a character outside RFC 6749 section 3.3", tok)}
			}
		}
		if !slices.Contains(out, tok) {
			out = append(out, tok)
		}
	}
	return strings.Join(out, " "), nil
}

// narrowScope returns the scope of a refresh that asks for requested out of
// granted: granted itself when requested is empty (RFC 6749 section 6), the
// requested tokens when each was granted, and a *ScopeError naming the
// first one that was not.
func narrowScope(requested, granted string) (string, error) {
	req, err := ParseScope(requested)
	if err != nil || req == "" {
		return granted, err
	}
	have := strings.Fields(granted)
	for _, tok := range strings.Fields(req) {
		if !slices.Contains(have, tok) {
			return "", &ScopeError{Reason: fmt.Sprintf("scope %q was not granted to this session; a refresh may narrow the scope, never widen it", tok)}
		}
	}
	return req, nil
}
