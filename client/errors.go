package client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ErrReauthRequired is returned (wrapped) by every request once the session
// is over: the refresh token was rejected with invalid_grant (expired,
// revoked, reused), the session was logged out, or no tokens were ever
// stored. Only a new login helps; see [Client.SetTokens].
var ErrReauthRequired = errors.New("client: reauthentication required")

// ErrInvalidGrant is matched (with errors.Is) by the error a [Refresher]
// returns when the server rejected the refresh token itself (RFC 6749
// "invalid_grant"). A custom Refresher wraps it to end the session.
var ErrInvalidGrant = errors.New("client: invalid_grant")

// RetrieveError is the error of a token endpoint that answered with a
// non-2xx status or an RFC 6749 error object.
type RetrieveError struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Header is the header of the answer.
	Header http.Header
	// Body is the start of the answer's body (at most 4 KiB).
	Body []byte
	// ErrorCode is RFC 6749's "error": "invalid_grant", "invalid_client", ...
	ErrorCode string
	// ErrorDescription is RFC 6749's "error_description". For the JSON API
	// it is the reason: "unknown", "revoked", "expired", "superseded", "reused".
	ErrorDescription string
	// ErrorURI is RFC 6749's "error_uri".
	ErrorURI string
	// RetryAfter is the delay the server asked for in Retry-After; zero
	// when it asked for none.
	RetryAfter time.Duration
}

// Error describes the answer; it never contains the body, which some
// servers fill with request data.
func (e *RetrieveError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "client: token endpoint answered %d", e.StatusCode)
	if e.ErrorCode != "" {
		fmt.Fprintf(&b, " %s", e.ErrorCode)
	}
	if e.ErrorDescription != "" {
		fmt.Fprintf(&b, ": %s", e.ErrorDescription)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalidGrant) true for a 4xx answer whose
// error is "invalid_grant", whatever the status (the JSON API answers 401,
// an RFC 6749 token endpoint 400). A 5xx that says invalid_grant is the
// server failing, not a verdict on the token: it is retried.
func (e *RetrieveError) Is(target error) bool {
	return target == ErrInvalidGrant && e.ErrorCode == "invalid_grant" && e.StatusCode/100 == 4
}

// Temporary reports whether trying again later may succeed: 429 and 5xx.
func (e *RetrieveError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// NetworkError is the error of a refresh request that got no HTTP answer.
type NetworkError struct {
	// Sent is true when the whole request was written before the failure:
	// the server may have rotated the token and the answer was lost.
	Sent bool
	// Err is the transport's error.
	Err error
}

// Error describes the failure.
func (e *NetworkError) Error() string {
	if e.Sent {
		return "client: refresh request sent but no answer: " + e.Err.Error()
	}
	return "client: refresh request not sent: " + e.Err.Error()
}

// Unwrap returns the transport's error.
func (e *NetworkError) Unwrap() error { return e.Err }

// RefreshError is the error requests get when the token had to be refreshed
// and the refresh failed for a reason other than the end of the session
// (the server unreachable, overloaded, or misconfigured). The session is
// kept: a later request tries again.
type RefreshError struct {
	// Attempts is how many refresh requests were made.
	Attempts int
	// Err is the last attempt's error.
	Err error
}

// Error describes the failure.
func (e *RefreshError) Error() string {
	return fmt.Sprintf("client: token refresh failed after %d attempt(s): %v", e.Attempts, e.Err)
}

// Unwrap returns the last attempt's error.
func (e *RefreshError) Unwrap() error { return e.Err }
