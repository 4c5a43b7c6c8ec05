package memstore

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/silentrefresh/silentrefresh/token"
)

// SigningKeys returns every stored key, newest first.
func (s *Store) SigningKeys(ctx context.Context) ([]token.Key, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.Unlock()
	out := make([]token.Key, 0, len(s.db.keys))
	for _, k := range s.db.keys {
		k.PrivateKey = bytes.Clone(k.PrivateKey)
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b token.Key) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// AddSigningKey stores a new key; a taken ID is an error.
func (s *Store) AddSigningKey(ctx context.Context, k token.Key) error {
	switch {
	case k.ID == "":
		return errInvalid("add signing key: empty ID")
	case len(k.PrivateKey) == 0:
		return errInvalid("add signing key: empty private key")
	case k.CreatedAt.IsZero():
		return errInvalid("add signing key: zero CreatedAt")
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	if _, ok := s.db.keys[k.ID]; ok {
		return fmt.Errorf("memstore: add signing key %q: ID already exists", k.ID)
	}
	k.PrivateKey = bytes.Clone(k.PrivateKey)
	k.CreatedAt = utc(k.CreatedAt)
	s.db.keys[k.ID] = k
	return nil
}

// DeleteSigningKey removes a key; an unknown ID returns an error wrapping
// token.ErrKeyNotFound.
func (s *Store) DeleteSigningKey(ctx context.Context, id string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	if _, ok := s.db.keys[id]; !ok {
		return fmt.Errorf("memstore: delete signing key %q: %w", id, token.ErrKeyNotFound)
	}
	delete(s.db.keys, id)
	return nil
}
