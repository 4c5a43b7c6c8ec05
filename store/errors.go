package store

import "errors"

// ErrUnavailable is wrapped by a Store's errors when the database cannot be
// reached (connection refused, timed out, shutting down). The server answers
// such errors with 503 and Retry-After instead of 500.
var ErrUnavailable = errors.New("store: database unavailable")
