package admin

import (
	"time"

	"github.com/silentrefresh/silentrefresh/session"
	"github.com/silentrefresh/silentrefresh/token"
	"github.com/silentrefresh/silentrefresh/user"
)

// UserJSON is a user as the CLI's --json and the admin API show it. The
// password hash is never shown.
type UserJSON struct {
	ID         string     `json:"id"`
	Username   string     `json:"username"`
	CreatedAt  time.Time  `json:"createdAt"`
	Disabled   bool       `json:"disabled"`
	DisabledAt *time.Time `json:"disabledAt,omitempty"`
}

// UserView is the UserJSON of u.
func UserView(u user.User) UserJSON {
	v := UserJSON{ID: u.ID, Username: u.Username, CreatedAt: u.CreatedAt.UTC(), Disabled: u.Disabled()}
	if u.Disabled() {
		at := u.DisabledAt.UTC()
		v.DisabledAt = &at
	}
	return v
}

// SessionJSON is a live session as the CLI's --json and the admin API
// show it.
type SessionJSON struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"clientId"`
	CreatedAt time.Time `json:"createdAt"`
	// LastRefreshedAt is the last refresh, or the login.
	LastRefreshedAt time.Time `json:"lastRefreshedAt"`
	// ExpiresAt is when the session ends unless refreshed before: the idle
	// expiry of its newest refresh token.
	ExpiresAt time.Time `json:"expiresAt"`
	// AbsoluteExpiresAt is when it ends however often it is refreshed.
	AbsoluteExpiresAt time.Time `json:"absoluteExpiresAt"`
}

// SessionView is the SessionJSON of in.
func SessionView(in session.Info) SessionJSON {
	return SessionJSON{
		ID:                in.ID,
		ClientID:          in.ClientID,
		CreatedAt:         in.CreatedAt.UTC(),
		LastRefreshedAt:   in.LastRefreshedAt.UTC(),
		ExpiresAt:         in.IdleExpiresAt.UTC(),
		AbsoluteExpiresAt: in.ExpiresAt.UTC(),
	}
}

// FamilyJSON is one session, live or not, as the admin API shows it.
type FamilyJSON struct {
	ID           string     `json:"id"`
	Subject      string     `json:"sub"`
	ClientID     string     `json:"clientId"`
	CreatedAt    time.Time  `json:"createdAt"`
	ExpiresAt    time.Time  `json:"absoluteExpiresAt"`
	Revoked      bool       `json:"revoked"`
	RevokedAt    *time.Time `json:"revokedAt,omitempty"`
	RevokeReason string     `json:"revokeReason,omitempty"`
}

// FamilyView is the FamilyJSON of f.
func FamilyView(f session.Family) FamilyJSON {
	v := FamilyJSON{ID: f.ID, Subject: f.Subject, ClientID: f.ClientID, CreatedAt: f.CreatedAt.UTC(),
		ExpiresAt: f.ExpiresAt.UTC(), Revoked: f.Revoked(), RevokeReason: f.RevokeReason}
	if f.Revoked() {
		at := f.RevokedAt.UTC()
		v.RevokedAt = &at
	}
	return v
}

// ResultJSON is what a change did.
type ResultJSON struct {
	Username string `json:"username,omitempty"`
	// Changed is false when there was nothing to do.
	Changed bool `json:"changed"`
	// RevokedSessions is how many sessions the change revoked.
	RevokedSessions int64 `json:"revokedSessions"`
}

// KeyJSON is a signing key and its stage as the CLI's --json and the admin
// API show it. It holds no secret.
type KeyJSON struct {
	ID        string    `json:"id"`
	Algorithm string    `json:"alg"`
	CreatedAt time.Time `json:"createdAt"`
	// Stage is "signing" (the key that signs new tokens), "retired" (it
	// still verifies the tokens it signed, until removableAt) or
	// "removable" (no unexpired token can need it: retire deletes it).
	Stage       string     `json:"stage"`
	RetiredAt   *time.Time `json:"retiredAt,omitempty"`
	RemovableAt *time.Time `json:"removableAt,omitempty"`
}

// The stages of KeyJSON.
const (
	StageSigning   = "signing"
	StageRetired   = "retired"
	StageRemovable = "removable"
)

// KeyView is the KeyJSON of k at now.
func KeyView(k token.KeyInfo, now time.Time) KeyJSON {
	v := KeyJSON{ID: k.ID, Algorithm: k.Algorithm, CreatedAt: k.CreatedAt.UTC()}
	switch {
	case k.Signing:
		v.Stage = StageSigning
	case k.Removable(now):
		v.Stage = StageRemovable
	default:
		v.Stage = StageRetired
	}
	if !k.RetiredAt.IsZero() {
		at := k.RetiredAt.UTC()
		v.RetiredAt = &at
	}
	if !k.Signing && !k.RemovableAt.IsZero() {
		at := k.RemovableAt.UTC()
		v.RemovableAt = &at
	}
	return v
}

// KeyViews is the KeyJSON of each key, never nil.
func KeyViews(keys []token.KeyInfo, now time.Time) []KeyJSON {
	out := make([]KeyJSON, 0, len(keys))
	for _, k := range keys {
		out = append(out, KeyView(k, now))
	}
	return out
}
