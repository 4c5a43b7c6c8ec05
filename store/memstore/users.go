package memstore

import (
	"context"
	"fmt"

	"github.com/silentrefresh/silentrefresh/user"
)

// CreateUser stores a new user; a taken username returns an error wrapping
// user.ErrExists.
func (s *Store) CreateUser(ctx context.Context, u user.User) error {
	if u.ID == "" || u.Username == "" {
		return errInvalid("create user: ID and Username are required")
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	if _, ok := s.db.users[u.Username]; ok {
		return fmt.Errorf("memstore: create user %q: %w", u.Username, user.ErrExists)
	}
	if s.db.userIDs[u.ID] {
		return fmt.Errorf("memstore: create user %q: ID %q already exists", u.Username, u.ID)
	}
	u.CreatedAt = utc(u.CreatedAt)
	s.db.users[u.Username] = u
	s.db.userIDs[u.ID] = true
	return nil
}

// UserByName returns the user with the given username, or an error wrapping
// user.ErrNotFound.
func (s *Store) UserByName(ctx context.Context, username string) (user.User, error) {
	if err := s.lock(ctx); err != nil {
		return user.User{}, err
	}
	defer s.db.mu.Unlock()
	u, ok := s.db.users[username]
	if !ok {
		return user.User{}, fmt.Errorf("memstore: user: %w", user.ErrNotFound)
	}
	return u, nil
}
