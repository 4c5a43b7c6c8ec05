package session

import (
	"context"
	"time"
)

// Revoke reasons written by the engine and by operators, besides "logout"
// and the refusal reasons.
const (
	// RevokeSessionCap: a login of the same user went past
	// Config.MaxSessionsPerUser and this was the least recently used
	// session.
	RevokeSessionCap = "session_cap"
	// RevokeAdmin: an operator revoked the session.
	RevokeAdmin = "admin"
	// RevokeUserDisabled, RevokeUserDeleted, RevokePasswordChanged: an
	// operator disabled or deleted the user, or set a new password.
	RevokeUserDisabled    = "user_disabled"
	RevokeUserDeleted     = "user_deleted"
	RevokePasswordChanged = "password_changed"
)

// Info is a live session as listed for its user or an operator: the family
// and its newest refresh token.
type Info struct {
	Family
	// LastRefreshedAt is when the newest refresh token was issued: the
	// last refresh, or the login if there was none. It is the "last used"
	// of a session.
	LastRefreshedAt time.Time
	// IdleExpiresAt is the idle expiry of the newest refresh token: the
	// session ends then unless it is refreshed before. Never after
	// Family.ExpiresAt.
	IdleExpiresAt time.Time
}

// SubjectStore is the part of a Store that keeps the sessions of one
// subject (user) together: listing them, revoking them all, and capping
// how many are live. A family is live at an instant when it is not
// revoked and the instant is before both its absolute expiry and the idle
// expiry of its newest token.
type SubjectStore interface {
	// CreateFamilyCapped stores a new family together with its first
	// refresh token and, in the same transaction, revokes (at f.CreatedAt,
	// with reason) the least recently refreshed live families of f.Subject
	// so that at most max are live, the new one included. It returns the
	// IDs it revoked. Calls for one subject are serialised with one another
	// and with RevokeSubject, in one process or several, so that concurrent
	// logins cannot exceed the cap and a login cannot slip past a
	// revocation of every session. A max of zero or less caps nothing: the
	// family is only stored. A family or token that fails its Check, a
	// taken family ID or a stored token hash is refused, and nothing is
	// written.
	CreateFamilyCapped(ctx context.Context, f Family, first RefreshToken, max int, reason string) (revoked []string, err error)

	// Sessions returns the families of subject that are live at now, most
	// recently refreshed first.
	Sessions(ctx context.Context, subject string, now time.Time) ([]Info, error)

	// RevokeSubject revokes, at the given instant with reason, every family
	// of subject that is not revoked yet, and returns how many it revoked.
	// An unknown subject revokes nothing and is not an error.
	RevokeSubject(ctx context.Context, subject string, at time.Time, reason string) (int64, error)

	// DeleteSpentTokens removes consumed refresh tokens whose idle expiry
	// is before the given instant, in bounded batches, and returns how many
	// it removed. Such a token can only ever be refused as expired, so
	// removing it changes no answer but that one (to unknown).
	DeleteSpentTokens(ctx context.Context, before time.Time) (int64, error)
}
