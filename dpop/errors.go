package dpop

import (
	"errors"
	"fmt"
)

// The error codes of RFC 9449: the "error" of a token endpoint's answer
// and of a resource server's WWW-Authenticate challenge.
const (
	// CodeInvalidProof: the DPoP proof is missing, malformed or does not
	// match the request (sections 5 and 7.1).
	CodeInvalidProof = "invalid_dpop_proof"
	// CodeUseNonce: the proof must carry the nonce the server sends in the
	// DPoP-Nonce header (sections 8 and 9).
	CodeUseNonce = "use_dpop_nonce"
)

// ErrNoProof is returned by Verifier.Verify when the request carries no
// DPoP header at all. Whether that is an error is the caller's decision.
var ErrNoProof = errors.New("dpop: no DPoP proof")

// ErrReplayCacheFull is wrapped by the error of a proof that could not be
// checked for replay because the cache holds as many unexpired entries as
// it may. The proof may be fine; the server is overloaded and should
// answer 503.
var ErrReplayCacheFull = errors.New("dpop: replay cache full")

// Error is the error of a refused proof. Code is CodeInvalidProof or
// CodeUseNonce; Description says what was wrong without repeating the
// proof.
type Error struct {
	Code        string
	Description string
	// Err is the underlying error, when there is one (a failing
	// ReplayCache); nil otherwise.
	Err error
}

// Error returns the code and the description.
func (e *Error) Error() string { return "dpop: " + e.Code + ": " + e.Description }

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

func invalid(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidProof, Description: fmt.Sprintf(format, args...)}
}
