// Package user holds the accounts that can log in and the hashing of their
// passwords.
package user

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by a Store for an unknown user.
var ErrNotFound = errors.New("user: not found")

// ErrExists is returned by Store.CreateUser when the username is taken.
var ErrExists = errors.New("user: username already exists")

// User is one account.
type User struct {
	ID           string // stable subject identifier, the "sub" of tokens
	Username     string
	PasswordHash string // argon2id, PHC string format
	CreatedAt    time.Time
	// DisabledAt is when an operator disabled the account; the zero time
	// while it is enabled. A disabled user cannot log in.
	DisabledAt time.Time
}

// Disabled reports whether the account is disabled.
func (u User) Disabled() bool { return !u.DisabledAt.IsZero() }

// Store keeps users. Implementations must be safe for concurrent use.
type Store interface {
	// CreateUser stores a new user; a taken username returns ErrExists.
	CreateUser(ctx context.Context, u User) error
	// UserByName returns the user with the given username, or ErrNotFound.
	UserByName(ctx context.Context, username string) (User, error)
	// UserByID returns the user with the given ID, or ErrNotFound.
	UserByID(ctx context.Context, id string) (User, error)
	// Users returns every user, ordered by username.
	Users(ctx context.Context) ([]User, error)
}
