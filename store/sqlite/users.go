package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/silentrefresh/silentrefresh/user"
)

// CreateUser stores a new user. A taken username returns an error wrapping
// user.ErrExists. Usernames are compared byte for byte.
func (s *Store) CreateUser(ctx context.Context, u user.User) error {
	if u.ID == "" || u.Username == "" {
		return errors.New("sqlite: create user: ID and Username are required")
	}
	res, err := s.ws.exec(ctx, nil, qInsertUser,
		u.ID, u.Username, u.PasswordHash, micros(u.CreatedAt),
	)
	if err != nil {
		return wrap("create user", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap("create user", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: create user %q: %w", u.Username, user.ErrExists)
	}
	return nil
}

// UserByName returns the user with the given username, or an error wrapping
// user.ErrNotFound.
func (s *Store) UserByName(ctx context.Context, username string) (user.User, error) {
	var (
		u                 user.User
		created, disabled sql.NullInt64
	)
	err := s.rs.queryRow(ctx, nil, qUser, username).Scan(&u.ID, &u.Username, &u.PasswordHash, &created, &disabled)
	if errors.Is(err, sql.ErrNoRows) {
		return user.User{}, fmt.Errorf("sqlite: user: %w", user.ErrNotFound)
	}
	if err != nil {
		return user.User{}, wrap("user", err)
	}
	u.CreatedAt, u.DisabledAt = fromMicros(created), fromMicros(disabled)
	return u, nil
}
