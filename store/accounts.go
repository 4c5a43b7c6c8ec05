package store

import (
	"context"
	"errors"
	"time"
)

// UserChange is what Accounts.UpdateUser writes to one user. The zero
// UserChange writes nothing.
type UserChange struct {
	// Disable marks the user disabled at At; Enable clears that. At most
	// one of them may be set.
	Disable, Enable bool
	// Delete removes the user. It excludes the other changes.
	Delete bool
	// PasswordHash, when not empty, replaces the user's password hash.
	PasswordHash string
	// RevokeReason, when not empty, revokes at At every session of the
	// user that is not revoked yet, with this reason.
	RevokeReason string
	// At is the instant of the change; required with Disable or
	// RevokeReason.
	At time.Time
}

// Accounts changes a user and its sessions together.
type Accounts interface {
	// UpdateUser applies c to the user with the given ID in one
	// transaction, serialised with the logins of that user
	// (session.SubjectStore.CreateFamilyCapped), and returns how many
	// sessions it revoked. An unknown ID returns an error wrapping
	// user.ErrNotFound and writes nothing; so does an invalid change.
	UpdateUser(ctx context.Context, id string, c UserChange) (revoked int64, err error)
}

// Check reports what is wrong with c, for the stores to refuse it before
// they write anything.
func (c UserChange) Check() error {
	switch {
	case c.Disable && c.Enable:
		return errors.New("store: a user change cannot both disable and enable")
	case c.Delete && (c.Disable || c.Enable || c.PasswordHash != ""):
		return errors.New("store: a user change that deletes cannot change anything else")
	case (c.Disable || c.RevokeReason != "") && c.At.IsZero():
		return errors.New("store: a user change that disables or revokes needs At")
	}
	return nil
}
