package postgres

import (
	"context"
	"fmt"

	"github.com/silentrefresh/silentrefresh/user"
)

// CreateUser stores a new user; a taken username returns user.ErrExists.
func (s *Store) CreateUser(ctx context.Context, u user.User) error {
	const q = `INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)`
	err := s.do(ctx, "create user", false, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, q, u.ID, u.Username, u.PasswordHash, u.CreatedAt)
		return err
	})
	if uniqueViolation(err, "users_username_key") {
		return fmt.Errorf("postgres: create user %q: %w", u.Username, user.ErrExists)
	}
	return err
}

// UserByName returns the user with the given username, or user.ErrNotFound.
func (s *Store) UserByName(ctx context.Context, username string) (user.User, error) {
	const q = `SELECT ` + userColumns + ` FROM users WHERE username = $1`
	var u user.User
	err := s.do(ctx, "user by name", true, func(ctx context.Context) error {
		var err error
		u, err = scanUser(s.pool.QueryRow(ctx, q, username))
		return err
	})
	if noRows(err) {
		return user.User{}, fmt.Errorf("postgres: user %q: %w", username, user.ErrNotFound)
	}
	return u, err
}
