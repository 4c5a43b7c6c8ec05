package user

import (
	"context"
	"time"

	"github.com/silentrefresh/silentrefresh/claims"
)

// ClaimStore keeps the per-user claims of built-in users, which go into
// every access token of their sessions. Implementations must be safe for
// concurrent use.
type ClaimStore interface {
	// SetUserClaims replaces the claims of the user with the given ID
	// (nil or empty removes them). An unknown user returns ErrNotFound.
	// Callers validate the set (claims.Validate) first.
	SetUserClaims(ctx context.Context, userID string, c claims.Set, at time.Time) error
	// UserClaims returns the claims of the user with the given ID, nil
	// for a user without claims or an unknown one.
	UserClaims(ctx context.Context, userID string) (claims.Set, error)
}
