package assertion

import (
	"context"
	"errors"
	"time"
)

// ErrReplayed is returned by a ReplayStore for a jti it has seen before.
var ErrReplayed = errors.New("assertion: jti already used")

// ReplayStore remembers the jti of every accepted assertion until the
// assertion expires, in the database every replica shares, so that each
// assertion opens one session only.
type ReplayStore interface {
	// UseJTI records jti of issuer, to be remembered until expiresAt. A
	// pair recorded before and not yet forgotten returns ErrReplayed.
	// Records whose expiresAt is before now may be forgotten.
	UseJTI(ctx context.Context, issuer, jti string, expiresAt, now time.Time) error
}
